//! Stages A–D of the second pass: the frame table's `struct page_info`, found from
//! the PV roots' entries; one pass over it counting what each listed domain owns;
//! the domain's page counts that must agree with that pass; and `shared_info`, a
//! Xen-heap page the frame table says the domain owns.

use super::state::{Cx, Kind, decide, list, refuse};
use super::{Dom, Inference, Inferred, Machine, Obj};
use crate::addr::Vaddr;
use std::collections::BTreeMap;

/// `PGC_allocated`, `PGC_xen_heap` (count_info bits 63, 62; the page state in bits
/// 59:58, 0 in use) and the type field of `type_info` (bits 63:61,
/// `PGT_l4_page_table` = 4)
/// (`X:xen/arch/x86/include/asm/mm.h@4.17.0`, unchanged in 4.20).
const PGC_ALLOCATED: u64 = 1 << 63;
const PGC_XEN_HEAP: u64 = 1 << 62;
const PGT_L4: u64 = 4;
/// `PGT_validated` (type_info bit 58, reference §6).
const PGT_VALIDATED: u64 = 1 << 58;

/// Frame-table strides tried for `sizeof(struct page_info)` (32 in every x86-64
/// release without `CONFIG_BIGMEM`; 40 with it).
const STRIDES: &[u64] = &[32, 40, 24, 48, 56, 64];

/// The frame table as inference established it.
#[derive(Clone, Copy)]
pub(super) struct FrameTable {
    stride: u64,
    count: u64,
    ty: u64,
    owner: u64,
}

/// Per-owner totals from one pass over the frame table.
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Owned {
    /// `PGC_allocated` and not `PGC_xen_heap`: what `tot_pages` counts.
    pages: u64,
    /// `PGC_xen_heap`: what `xenheap_pages` counts.
    xenheap: u64,
    /// Typed `PGT_l4_page_table`.
    pub(super) l4: u64,
}

/// What each listed domain owns (stage B), by the pdx the frame table names it by.
pub(super) type Owners = BTreeMap<u64, Owned>;

impl Machine<'_> {
    /// `len` bytes at a hypervisor VA, through the idle root where not linear.
    fn va_bytes(&self, va: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let a = va.checked_add(done as u64)?;
            let n = ((4096 - (a & 0xfff)) as usize).min(len - done);
            let ma = match self.xen.virt_to_maddr(Vaddr(a)) {
                Ok(m) => m,
                Err(_) => self.xen.walk_maddr(self.mem, self.idle_root, Vaddr(a)).ok()?,
            };
            self.mem.read(ma, &mut buf[done..done + n]).ok()?;
            done += n;
        }
        Some(buf)
    }

    pub(super) fn va_obj(&self, va: u64, len: usize) -> Option<Obj> {
        self.va_bytes(va, len).map(|bytes| Obj { va: Vaddr(va), bytes })
    }

    /// The pdx Xen stores for an object in the direct map (`page_get_owner` is
    /// `pdx_to_virt(_domain)`, the direct map's page of that pdx; reference §3.3).
    fn owner_pdx(&self, va: Vaddr) -> u64 {
        (va.0.wrapping_sub(self.xen.layout().directmap_start)) >> 12
    }

    /// The frame-table entry of `mfn` at stride `stride`.
    fn frame(&self, mfn: u64, stride: u64) -> Option<Obj> {
        let pdx = self.xen.pdx.value.pfn_to_pdx(mfn);
        let va = self.xen.layout().frametable_start.checked_add(pdx.checked_mul(stride)?)?;
        self.va_obj(va, stride as usize)
    }

    /// The machine frame behind a direct-map VA.
    fn mfn_of(&self, va: u64) -> Option<u64> {
        self.xen.virt_to_maddr(Vaddr(va)).ok().map(|m| m.0 >> 12)
    }

    /// What stage B counted for domain `d`.
    pub(super) fn owned_of(&self, owned: Option<&Owners>, d: &Obj) -> Option<Owned> {
        owned.and_then(|o| o.get(&self.owner_pdx(d.va)).copied())
    }

    /// Stage A: `struct page_info`'s members and size, when one layout fits.
    pub(super) fn frame_table(&self, cx: &Cx<'_>, out: &mut Inferred) -> Option<FrameTable> {
        let (gt, gtu, pv_ids) = (cx.gt, cx.gtu, &cx.pv_ids);
        // A. The frame table: the entries of the PV roots name their domain as owner
        //    and type them L4.
        let mut samples: Vec<(u64, u64)> = Vec::new();
        for d in cx.of(Kind::Pv) {
            for (_, v) in &d.vcpus {
                for o in [Some(gt), gtu].into_iter().flatten() {
                    if let Some(m) = v.u64(o).filter(|&m| m != 0) {
                        if !samples.contains(&(m, d.obj.va.0)) {
                            samples.push((m, d.obj.va.0));
                        }
                    }
                }
            }
        }
        let mut layouts = Vec::new();
        for &s in STRIDES {
            let entries: Option<Vec<Obj>> = samples.iter().map(|&(m, _)| self.frame(m, s)).collect();
            let Some(entries) = entries.filter(|e| !e.is_empty()) else { continue };
            let all = |f: &dyn Fn(&Obj, u64) -> bool| samples.iter().zip(&entries).all(|(&(_, d), e)| f(e, d));
            let owners: Vec<u64> =
                (0..s - 3).step_by(4).filter(|&o| all(&|e, d| e.u32(o) == Some(self.owner_pdx(Vaddr(d))))).collect();
            // type_info of a validated L4: type 4 in bits 63:61, PGT_validated (58).
            let types: Vec<u64> = (0..s - 7)
                .step_by(8)
                .filter(|&t| all(&|e, _| e.u64(t).is_some_and(|v| v >> 61 == PGT_L4 && v & PGT_VALIDATED != 0)))
                .collect();
            // count_info of an allocated guest page in use: PGC_allocated, not Xen
            // heap, state inuse (bits 59:58 = 0).
            let counts: Vec<u64> = (0..s - 7)
                .step_by(8)
                .filter(|&c| {
                    all(&|e, _| {
                        e.u64(c).is_some_and(|v| v & PGC_ALLOCATED != 0 && v & PGC_XEN_HEAP == 0 && (v >> 58) & 3 == 0)
                    })
                })
                .collect();
            for &o in &owners {
                for &t in &types {
                    for &c in &counts {
                        let apart = |a: u64, an: u64, b: u64, bn: u64| a + an <= b || b + bn <= a;
                        if apart(o, 4, t, 8) && apart(o, 4, c, 8) && apart(t, 8, c, 8) {
                            layouts.push(FrameTable { stride: s, count: c, ty: t, owner: o });
                        }
                    }
                }
            }
        }
        match layouts.as_slice() {
            [l] => {
                let n = samples.len();
                let doms_txt = format!("domain(s) {pv_ids}");
                let ev = |what: &str| {
                    vec![
                        format!(
                            "the frame table's entries for the {n} L4s the PV vCPUs of {doms_txt} name, at a stride of {} bytes, {what}",
                            l.stride
                        ),
                        format!(
                            "and no other layout fits: +{} PGC_allocated in use (count_info), +{} a validated L4 (type_info), +{} the pdx of the domain whose vCPU names it (_domain)",
                            l.count, l.ty, l.owner
                        ),
                    ]
                };
                out.found.insert(
                    "page_info.count_info",
                    Inference {
                        value: l.count,
                        evidence: ev("hold PGC_allocated here, not PGC_xen_heap, state in use"),
                    },
                );
                out.found.insert(
                    "page_info.u.inuse.type_info",
                    Inference { value: l.ty, evidence: ev("hold type 4 (L4) in bits 63:61 and PGT_validated here") },
                );
                out.found.insert(
                    "page_info.v.inuse._domain",
                    Inference { value: l.owner, evidence: ev("hold the pdx of the domain that owns the L4 here") },
                );
                out.sizes.insert(
                    "page_info",
                    Inference {
                        value: l.stride,
                        evidence: ev("and only at this stride, hold their owner and type at fixed offsets"),
                    },
                );
                Some(*l)
            }
            [] => {
                let why = if samples.is_empty() {
                    "no PV vCPU names an L4: the frame table has no known page to start from".to_string()
                } else {
                    format!(
                        "at no stride of {} do the frame-table entries of the {} PV root L4s hold their owner, a validated L4 type and PGC_allocated",
                        list(STRIDES.iter().copied()),
                        samples.len()
                    )
                };
                refuse(
                    out,
                    &["page_info.count_info", "page_info.u.inuse.type_info", "page_info.v.inuse._domain"],
                    &why,
                );
                None
            }
            many => {
                let why = format!(
                    "ambiguous: {} frame-table layouts fit (stride/owner {})",
                    many.len(),
                    many.iter().map(|l| format!("{}/{}", l.stride, l.owner)).collect::<Vec<_>>().join(", ")
                );
                refuse(
                    out,
                    &["page_info.count_info", "page_info.u.inuse.type_info", "page_info.v.inuse._domain"],
                    &why,
                );
                None
            }
        }
    }

    /// Stage B: what each listed domain owns, by one pass over the frame table.
    pub(super) fn frame_pass(&self, cx: &Cx<'_>, ft: FrameTable) -> Option<Owners> {
        let doms = cx.doms;
        // B. One pass over the frame table: what each listed domain owns. The dump
        //    bounds the pass, never max_page alone (a hostile max_page of 2^40 must not
        //    mean 2^40 reads).
        let max_page = self.xen.read_sym_u64(self.mem, "max_page")?;
        let top = self.mem.extents().iter().filter(|e| e.present).map(|e| (e.start.0 + e.len).div_ceil(4096)).max()?;
        let limit = max_page.min(top);
        let pdx_end = self.xen.pdx.value.pfn_to_pdx(limit.saturating_sub(1)) + 1;
        let mut want: Owners = doms.iter().map(|d| (self.owner_pdx(d.obj.va), Owned::default())).collect();
        let base = self.xen.layout().frametable_start;
        let bytes = pdx_end.checked_mul(ft.stride)?;
        let mut page = vec![0u8; 4096];
        let mut off = 0u64;
        while off < bytes {
            let va = base + off;
            let chunk = (4096 - (va & 0xfff)).min(bytes - off);
            let ma = self.xen.walk_maddr(self.mem, self.idle_root, Vaddr(va));
            let ok = ma.is_ok_and(|ma| self.mem.read(ma, &mut page[..chunk as usize]).is_ok());
            if ok {
                // Entries wholly inside this chunk (the stride divides 4096 for 32;
                // others straddle and are read whole below).
                let first = off.div_ceil(ft.stride);
                let mut i = first;
                while (i + 1) * ft.stride <= off + chunk {
                    let at = (i * ft.stride - off) as usize;
                    let rd = |o: u64, n: usize| {
                        let mut w = [0u8; 8];
                        w[..n].copy_from_slice(&page[at + o as usize..at + o as usize + n]);
                        u64::from_le_bytes(w)
                    };
                    if let Some(c) = want.get_mut(&rd(ft.owner, 4)) {
                        let (count, ty) = (rd(ft.count, 8), rd(ft.ty, 8));
                        if count & PGC_XEN_HEAP != 0 {
                            c.xenheap += 1;
                        } else if count & PGC_ALLOCATED != 0 {
                            c.pages += 1;
                        }
                        if ty >> 61 == PGT_L4 {
                            c.l4 += 1;
                        }
                    }
                    i += 1;
                }
            }
            off += chunk;
        }
        Some(want)
    }

    /// Stage C: `domain.tot_pages`, `xenheap_pages`, `max_pages`.
    pub(super) fn page_counts(&self, cx: &Cx<'_>, owned: Option<&Owners>, out: &mut Inferred) {
        let (idle_dom, doms) = (cx.idle_dom, cx.doms);
        let owned_of = |d: &Obj| self.owned_of(owned, d);
        // C. tot_pages: the frame table's count of each domain's pages; 0 in the idle
        //    domain. xenheap_pages and max_pages follow it.
        let tot = match owned {
            None => {
                refuse(
                    out,
                    &["domain.tot_pages", "domain.xenheap_pages", "domain.max_pages"],
                    "needs the frame table (page_info) and max_page, to count each domain's pages",
                );
                None
            }
            Some(_) => {
                let c: Vec<u64> = (0..idle_dom.len())
                    .step_by(4)
                    .filter(|&o| {
                        idle_dom.u32(o) == Some(0)
                            && doms.iter().any(|d| owned_of(&d.obj).is_some_and(|c| c.pages > 0))
                            && doms.iter().all(|d| {
                                owned_of(&d.obj).is_some_and(|c| {
                                    d.obj.u32(o) == Some(c.pages) && d.obj.u32(o + 4) == Some(c.xenheap)
                                })
                            })
                    })
                    .collect();
                let counts = list(doms.iter().filter_map(|d| owned_of(&d.obj).map(|c| c.pages)));
                decide(
                    out,
                    "domain.tot_pages",
                    &c,
                    |_| {
                        vec![
                            format!("each listed domain holds here the number of frames the frame table says it owns, allocated and not Xen heap ({counts})"),
                            "and right after it (xenheap_pages) the number of Xen-heap frames it owns; 0 in the idle domain".into(),
                        ]
                    },
                    || {
                        format!(
                            "no u32 member holds each domain's count of owned frames from the frame table ({counts})"
                        )
                    },
                )
            }
        };
        if let Some(t) = tot {
            let heap = list(doms.iter().filter_map(|d| owned_of(&d.obj).map(|c| c.xenheap)));
            let x = t + 4;
            let c: Vec<u64> = [x]
                .into_iter()
                .filter(|&o| doms.iter().all(|d| owned_of(&d.obj).is_some_and(|c| d.obj.u32(o) == Some(c.xenheap))))
                .collect();
            decide(
                out,
                "domain.xenheap_pages",
                &c,
                |_| {
                    vec![
                        format!(
                            "each listed domain holds here the number of Xen-heap frames the frame table says it owns ({heap})"
                        ),
                        "it follows tot_pages in every release (struct domain)".into(),
                    ]
                },
                || format!("the u32 after tot_pages does not hold each domain's Xen-heap frames ({heap})"),
            );
            // max_pages: tot_pages, xenheap_pages, outstanding_pages, max_pages in
            // every release since 4.3 (`X:xen/include/xen/sched.h@4.17.0`, `@4.20.0`).
            let m = t + 12;
            let fits = doms.iter().all(|d| matches!((d.obj.u32(m), d.obj.u32(t)), (Some(mx), Some(tp)) if mx >= tp));
            decide(
                out,
                "domain.max_pages",
                &if fits { vec![m] } else { vec![] },
                |_| {
                    vec![
                        "tot_pages, xenheap_pages, outstanding_pages, max_pages in that order in every release since 4.3".into(),
                        format!(
                            "each listed domain holds here a limit no lower than its tot_pages ({})",
                            list(doms.iter().filter_map(|d| d.obj.u32(m)))
                        ),
                    ]
                },
                || "the u32 three after tot_pages is below tot_pages in some domain".into(),
            );
        }
    }

    /// Stage D: `domain.shared_info`.
    pub(super) fn shared_info(&self, cx: &Cx<'_>, ft: Option<FrameTable>, out: &mut Inferred) {
        let (idle_dom, doms) = (cx.idle_dom, cx.doms);
        // D. shared_info: a Xen-heap page the domain owns.
        match ft {
            None => refuse(out, &["domain.shared_info"], "needs the frame table (page_info)"),
            Some(ft) => {
                let listed: Vec<&Dom> = doms.iter().collect();
                let c: Vec<u64> = (0..idle_dom.len())
                    .step_by(8)
                    .filter(|&o| {
                        !listed.is_empty()
                            && listed.iter().all(|d| {
                                d.obj.u64(o).is_some_and(|p| {
                                    p & 0xfff == 0
                                        && p != 0
                                        && matches!(
                                            self.xen.region(Vaddr(p)).map(|r| r.name),
                                            Some("directmap" | "directmap_high")
                                        )
                                        && self.mfn_of(p).and_then(|m| self.frame(m, ft.stride)).is_some_and(|e| {
                                            e.u32(ft.owner) == Some(self.owner_pdx(d.obj.va))
                                                && e.u64(ft.count).is_some_and(|c| c & PGC_XEN_HEAP != 0)
                                        })
                                })
                            })
                    })
                    .collect();
                decide(
                    out,
                    "domain.shared_info",
                    &c,
                    |_| {
                        vec![
                            format!("each of the {} listed domains points here at a page-aligned page of the direct map", listed.len()),
                            "the frame table says that page is Xen heap (PGC_xen_heap) owned by that domain (share_xen_page_with_guest)".into(),
                        ]
                    },
                    || "no pointer member names, in every listed domain, a Xen-heap page it owns".into(),
                );
            }
        }
    }
}
