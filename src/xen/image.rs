//! Finding the hypervisor image in machine memory, and checking that a `xen-syms`
//! belongs to the dump.
//!
//! Facts (reference §3.2): the image is linked at `XEN_VIRT_START + XEN_IMG_OFFSET`
//! and lies at `xen_phys_start + (VA − XEN_VIRT_START)`; `xen_phys_start` is 2 MiB
//! aligned. Before relocation the variable `xen_phys_start` reads 0 and the image
//! runs from its load address (2 MiB); after relocation the copy at the new place
//! holds its own base in that variable, while the old copy may linger.
//!
//! Only `.rodata` pages are compared: boot patches `.text` (alternatives) and the
//! data sections change at run time. On the real Debian 4.17.7 image 81 of 85
//! `.rodata` pages match byte for byte at the relocated base, 89 of 352 `.text` pages.

use super::symbols::XenSyms;
use crate::addr::{Maddr, PAGE_SIZE};
use crate::mem::PhysMem;
use serde::Serialize;

/// Fraction of present probe pages that must match, in percent.
const MATCH_PERCENT: u64 = 75;
const TWO_MIB: u64 = 2 << 20;
const FOUR_GIB: u64 = 4 << 30;

/// One base at which the image's bytes were found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    #[serde(serialize_with = "crate::addr::hex")]
    pub base: u64,
    pub matched: u32,
    pub probed: u32,
    /// The `xen_phys_start` variable as read in this copy.
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub variable: Option<u64>,
}

/// The outcome of the search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discovery {
    pub candidates: Vec<Candidate>,
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub chosen: Option<u64>,
    /// Why that one (or why none).
    pub why: String,
}

/// The `.rodata` pages to compare: (VA, bytes in xen-syms).
fn probes(syms: &XenSyms) -> Vec<(u64, &[u8])> {
    let Some(sec) = syms.sections.iter().find(|s| s.name == ".rodata" && s.offset.is_some()) else {
        return Vec::new();
    };
    let first = sec.addr.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut v = Vec::new();
    let mut va = first;
    while va + PAGE_SIZE <= sec.addr + sec.size {
        // A page of one repeated byte (zero padding) matches empty memory anywhere.
        if let Some(b) = syms.bytes_at(va, PAGE_SIZE).filter(|b| b.iter().any(|&x| x != b[0])) {
            v.push((va, b));
        }
        va += PAGE_SIZE;
    }
    v
}

fn compare(mem: &dyn PhysMem, base: u64, xvs: u64, probes: &[(u64, &[u8])]) -> (u32, u32) {
    let (mut matched, mut probed) = (0u32, 0u32);
    for &(va, bytes) in probes {
        let Some(ma) = (va - xvs).checked_add(base) else {
            continue;
        };
        if let Ok(p) = mem.page(Maddr(ma).mfn()) {
            probed += 1;
            if p[..] == *bytes {
                matched += 1;
            }
        }
    }
    (matched, probed)
}

fn good(matched: u32, probed: u32) -> bool {
    probed > 0 && u64::from(matched) * 100 >= u64::from(probed) * MATCH_PERCENT
}

/// Bases searched between two releases of the dump's resident pages (8 bases, at
/// most 32 probe pages, each of which may map a large folio of the page cache, up to
/// 2 MiB: 64 bases held 138 MiB on a 100 GiB sparse copy of the dom0 image, 8 hold 24).
const RELEASE_EVERY_BASES: u64 = 8;

/// Search every 2 MiB-aligned base the dump could hold the image at.
pub fn discover(mem: &dyn PhysMem, syms: &XenSyms) -> Discovery {
    let none = |why: &str| Discovery { candidates: Vec::new(), chosen: None, why: why.into() };
    let Some(xvs) = syms.xen_virt_start() else {
        return none("xen-syms has neither __image_base__ nor _start");
    };
    let probes = probes(syms);
    let Some(&(first_va, _)) = probes.first() else {
        return none("xen-syms has no .rodata to compare");
    };
    let var_va = syms.addr("xen_phys_start");
    let quick: Vec<(u64, &[u8])> = probes.iter().step_by((probes.len() / 4).max(1)).take(4).copied().collect();
    let mut candidates = Vec::new();
    let mut steps = 0u64;
    let mut scan = |from: u64, to: u64, candidates: &mut Vec<Candidate>| {
        for e in mem.extents().iter().filter(|e| e.present) {
            // Bases whose first probe page lands in this extent, within [from, to).
            let lo = (e.start.0.saturating_sub(first_va - xvs) / TWO_MIB * TWO_MIB).max(from);
            let hi = e.start.0.saturating_add(e.len).min(to);
            let mut base = lo;
            while base < hi {
                // The quick probes decide, unless the dump lacks some of their pages
                // (a sparse cut or a filtered dump): then every probe is tried.
                let (qm, qp) = compare(mem, base, xvs, &quick);
                if qm > 0 || (qp as usize) < quick.len() {
                    let (matched, probed) = compare(mem, base, xvs, &probes);
                    if good(matched, probed) && !candidates.iter().any(|c: &Candidate| c.base == base) {
                        let variable = var_va.and_then(|v| mem.read_u64(Maddr(v - xvs + base)).ok());
                        candidates.push(Candidate { base, matched, probed, variable });
                    }
                }
                base += TWO_MIB;
                // Each probe maps the kernel's fault-around window (64 KiB by default)
                // of a file-backed dump, so a whole-dump search would leave ~64x what it
                // read resident (142 MiB for a 1 GiB raw image): hand it back as it goes.
                steps += 1;
                if steps % RELEASE_EVERY_BASES == 0 {
                    mem.release_resident();
                }
            }
        }
    };
    // A multiboot Xen relocates itself to the highest suitable RAM below 4 GiB
    // (reference §3.2): search there first, and above only when no relocated copy is
    // found there (an EFI loader may place the image elsewhere), so that a dump of a
    // large machine is not read from end to end.
    scan(0, FOUR_GIB, &mut candidates);
    if !candidates.iter().any(|c| c.variable == Some(c.base) && c.base != 0) {
        scan(FOUR_GIB, u64::MAX, &mut candidates);
    }
    mem.release_resident();
    // The live copy: the one whose variable holds its own base; else a single
    // pre-relocation copy whose variable is 0 (the boot tables are then live).
    let relocated: Vec<&Candidate> = candidates.iter().filter(|c| c.variable == Some(c.base) && c.base != 0).collect();
    let (chosen, why) = if let [c] = relocated[..] {
        (
            Some(c.base),
            format!(
                "the copy at {:#x} holds its own base in xen_phys_start ({} of {} .rodata pages match)",
                c.base, c.matched, c.probed
            ),
        )
    } else if relocated.len() > 1 {
        (None, format!("{} copies claim to be live; pass --xen-phys-start", relocated.len()))
    } else if let Some(c) = candidates.iter().find(|c| c.variable == Some(0)) {
        (
            Some(0),
            format!(
                "only a copy before relocation: its xen_phys_start reads 0 at {:#x}, so Xen still runs on its boot tables at the load address",
                c.base
            ),
        )
    } else if let [c] = &candidates[..] {
        (Some(c.base), format!("one copy found at {:#x} ({} of {} .rodata pages match)", c.base, c.matched, c.probed))
    } else if candidates.is_empty() {
        (None, "xen-syms' .rodata is nowhere in the dump: a different build, or the image was not captured".into())
    } else {
        (None, format!("{} candidate copies and none is clearly live; pass --xen-phys-start", candidates.len()))
    };
    Discovery { candidates, chosen, why }
}

/// Does `xen-syms` describe the hypervisor in the dump?
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageCheck {
    pub matched: u32,
    pub probed: u32,
    /// Build-id read from the image in the dump, as hex.
    pub dump_build_id: Option<String>,
    pub syms_build_id: Option<String>,
    pub ok: bool,
    /// Nothing could be compared (the image's pages are not in the dump): neither a
    /// match nor a mismatch.
    pub unverifiable: bool,
    /// What differs, in words (empty when it matches).
    pub problems: Vec<String>,
}

/// Compare the image at `base` with `syms`: `.rodata` pages and the build-id note.
pub fn check(mem: &dyn PhysMem, syms: &XenSyms, base: u64) -> ImageCheck {
    let xvs = syms.xen_virt_start().unwrap_or(0);
    let (matched, probed) = compare(mem, base, xvs, &probes(syms));
    let mut problems = Vec::new();
    let syms_build_id = syms.build_id_hex();
    // The build-id note is in the image (`.note.gnu.build-id`): header 12 bytes,
    // "GNU\0", then the id.
    let dump_build_id = syms.sections.iter().find(|s| s.name == ".note.gnu.build-id").and_then(|s| {
        let len = syms.build_id.as_ref()?.len();
        let mut buf = vec![0u8; 16 + len];
        mem.read(Maddr((s.addr - xvs).checked_add(base)?), &mut buf).ok()?;
        (buf.get(12..16) == Some(b"GNU\0")).then(|| buf[16..].iter().map(|b| format!("{b:02x}")).collect::<String>())
    });
    if let (Some(d), Some(s)) = (&dump_build_id, &syms_build_id) {
        if d != s {
            problems.push(format!("build-id differs: xen-syms {s}, the dump's image {d}"));
        }
    }
    let unverifiable = probed == 0 && dump_build_id.is_none();
    if unverifiable {
        problems.push(format!(
            "none of xen-syms' .rodata pages nor its build-id note is in the dump at xen_phys_start {base:#x}: cannot verify"
        ));
    } else if probed > 0 && !good(matched, probed) {
        problems.push(format!(
            "only {matched} of {probed} .rodata pages of xen-syms match the image at xen_phys_start {base:#x}"
        ));
    }
    ImageCheck { matched, probed, dump_build_id, syms_build_id, ok: problems.is_empty(), unverifiable, problems }
}
