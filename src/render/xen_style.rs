//! Xen's own `show_page_walk()` console lines (`X:xen/arch/x86/x86_64/traps.c@4.17.0`:
//! `"Pagetable walk from %016lx:"`, then `" L4[0x%03lx] = %016lx %016lx"` per level,
//! `" (PSE)"` on a large page), to diff against a crash log. The walk itself is
//! [`crate::xen::Xen::page_walk_as_xen`]'s data; this only prints it.

use crate::xen::{XenPageWalk, XenPfn};

/// The lines Xen prints for `w`.
pub fn lines(w: &XenPageWalk) -> Vec<String> {
    let mut out = vec![format!("Pagetable walk from {:016x}:", w.va.0)];
    for s in &w.steps {
        let (name, idx) = (s.level.name(), s.index);
        out.push(match &s.entry {
            Err(err) => format!(" {name}[{idx:#05x}] = ???????????????? (not in the dump: {err})"),
            Ok(e) => {
                let pfn = match s.pfn {
                    XenPfn::Value(p) => format!("{p:016x}"),
                    XenPfn::Unknown => "????????????????".to_string(),
                };
                format!(" {name}[{idx:#05x}] = {e:016x} {pfn}{}", if s.pse { " (PSE)" } else { "" })
            }
        });
    }
    out
}
