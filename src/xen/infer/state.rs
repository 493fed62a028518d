//! The second pass of inference: what the domains and vCPUs found by the first pass
//! hold, as states and counts rather than links: the frame table's `struct
//! page_info`, each domain's page counts, `shared_info`, creation flags, p2m, and
//! each vCPU's run state, mode and control registers.
//!
//! The first pass tells PV domains (their vCPUs name Xen-built L4s in
//! `guest_table`) from HVM/PVH ones (a monitor table instead). Everything here is
//! checked against a second reader of the same fact wherever one exists in the
//! dump: the frame table counts a domain's pages independently of `tot_pages`, the
//! M2P maps a p2m's leaves back to the gfns that reached them, `hvm_funcs.name`
//! says whether the machine ran VMX at all.

use super::{Dom, Inference, Inferred, MAX_TIE, Machine, Obj, uniq};
use crate::addr::{Maddr, Mfn, Vaddr};
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

/// `XEN_DOMCTL_CDF_hvm`, `XEN_DOMCTL_CDF_hap`; every defined flag lies below bit 10
/// (`X:xen/include/public/domctl.h@4.20.0`, `XEN_DOMCTL_CDF_MAX`).
const CDF_HVM: u64 = 1 << 0;
const CDF_HAP: u64 = 1 << 1;
const CDF_LIMIT: u64 = 1 << 10;

/// `XEN_X86_EMU_LAPIC`, `XEN_X86_EMU_PIT`, `X86_EMU_ALL` (bits 0..=10)
/// (`X:xen/arch/x86/include/asm/domain.h@4.17.0`, `@4.20.0`).
const EMU_LAPIC: u64 = 1 << 0;
const EMU_PIT: u64 = 1 << 8;
const EMU_ALL: u64 = (1 << 11) - 1;
/// `XEN_X86_EMU_IOAPIC`, `XEN_X86_EMU_USE_PIRQ`, `XEN_X86_EMU_VPCI`.
const EMU_IOAPIC: u64 = 1 << 4;
const EMU_USE_PIRQ: u64 = 1 << 9;
const EMU_VPCI: u64 = 1 << 10;

/// The only emulation sets Xen lets an HVM domain have (`emulation_flags_ok`,
/// `X:xen/arch/x86/domain.c@4.17.0`, `@4.20.0`): the LAPIC alone (PVH domU), every
/// emulation but VPCI (HVM domU; USE_PIRQ optional since 4.19), LAPIC, IOAPIC and
/// VPCI (PVH dom0). Anything else is not `emulation_flags`: on a real PVH domain
/// under SVM, `arch.hvm`'s union at +992 holds 3 and `paging.free_pages` 333, both
/// with bit 0 and below `X86_EMU_ALL` (4.20's lab).
fn hvm_emulation_ok(v: u64) -> bool {
    v == EMU_LAPIC
        || v & !EMU_USE_PIRQ == EMU_ALL & !(EMU_VPCI | EMU_USE_PIRQ)
        || v == EMU_LAPIC | EMU_IOAPIC | EMU_VPCI
}

/// Frame-table strides tried for `sizeof(struct page_info)` (32 in every x86-64
/// release without `CONFIG_BIGMEM`; 40 with it).
const STRIDES: &[u64] = &[32, 40, 24, 48, 56, 64];

/// `p2m_host` (`enum p2m_class`) and `p2m_access_rwx` (`p2m_access_t`)
/// (`X:xen/arch/x86/include/asm/p2m.h@4.17.0`, `X:xen/include/xen/mem_access.h@4.17.0`).
const P2M_HOST: u64 = 0;
const P2M_ACCESS_RWX: u64 = 7;

/// At most this many p2m leaves are checked against the M2P per table.
const P2M_PROBES: usize = 16;

/// Bytes of a `struct p2m_domain` read (688 in 4.20; the members xenwalk reads lie
/// well inside the first KiB).
const P2M_OBJ: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pv,
    Hvm,
    /// No vCPU to tell by.
    Unknown,
}

/// The frame table as inference established it.
#[derive(Clone, Copy)]
struct FrameTable {
    stride: u64,
    count: u64,
    ty: u64,
    owner: u64,
}

/// Per-owner totals from one pass over the frame table.
#[derive(Clone, Copy, Default, Debug)]
struct Owned {
    /// `PGC_allocated` and not `PGC_xen_heap`: what `tot_pages` counts.
    pages: u64,
    /// `PGC_xen_heap`: what `xenheap_pages` counts.
    xenheap: u64,
    /// Typed `PGT_l4_page_table`.
    l4: u64,
}

/// The decision for one key from its candidates: one wins; or a refusal.
fn decide(
    out: &mut Inferred,
    key: &'static str,
    cands: &[u64],
    evidence: impl FnOnce(u64) -> Vec<String>,
    none: impl FnOnce() -> String,
) -> Option<u64> {
    match cands {
        [o] => {
            out.found.insert(key, Inference { value: *o, evidence: evidence(*o) });
            Some(*o)
        }
        [] => {
            out.refused.insert(key, none());
            None
        }
        many => {
            out.refused.insert(key, format!("ambiguous: members at {} fit", uniq(many)));
            None
        }
    }
}

fn refuse(out: &mut Inferred, keys: &[&'static str], why: &str) {
    for k in keys {
        out.refused.insert(k, why.to_string());
    }
}

fn list(v: impl IntoIterator<Item = u64>) -> String {
    v.into_iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

impl Machine<'_> {
    fn found(out: &Inferred, key: &str) -> Option<u64> {
        out.found.get(key).map(|i| i.value)
    }

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

    fn va_obj(&self, va: u64, len: usize) -> Option<Obj> {
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

    /// A p2m root's first leaves (any of the 4-level formats: an entry is present when
    /// one of its low three bits is set, as in both x86 PTEs and EPT entries), each
    /// `(gfn, mfn)`.
    fn p2m_leaves(&self, root_mfn: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        self.leaves_in(root_mfn, 4, 0, &mut out);
        out
    }

    fn leaves_in(&self, mfn: u64, level: u32, gfn_base: u64, out: &mut Vec<(u64, u64)>) {
        if out.len() >= P2M_PROBES || mfn == 0 || mfn >> 40 != 0 {
            return;
        }
        let mut page = vec![0u8; 4096];
        if self.mem.read(Maddr(mfn << 12), &mut page).is_err() {
            return;
        }
        let shift = 9 * (level - 1);
        let mut tables = 0;
        for i in 0..512u64 {
            let e = u64::from_le_bytes(page[i as usize * 8..i as usize * 8 + 8].try_into().unwrap());
            if e & 7 == 0 {
                continue;
            }
            let next = (e >> 12) & ((1 << 40) - 1);
            let gfn = gfn_base | (i << shift);
            if level == 1 || (level <= 3 && e & 0x80 != 0) {
                if level == 1 {
                    out.push((gfn, next));
                } else {
                    // A superpage: its first frame.
                    out.push((gfn, next & !((1u64 << shift) - 1)));
                }
            } else {
                self.leaves_in(next, level - 1, gfn, out);
                tables += 1;
                if tables >= 4 {
                    break;
                }
            }
            if out.len() >= P2M_PROBES {
                return;
            }
        }
    }

    /// How many of `leaves` the M2P maps back to the gfn that reached them.
    fn m2p_agrees(&self, leaves: &[(u64, u64)]) -> usize {
        leaves.iter().filter(|&&(g, m)| self.xen.m2p(self.mem, self.idle_root, Mfn(m)).ok() == Some(g)).count()
    }

    pub(super) fn infer_state(&self, idle_dom: &Obj, doms: &[Dom], out: &mut Inferred) {
        // The keys this pass establishes: COVERED from page_info on.
        let first = super::COVERED.iter().position(|k| *k == "page_info.count_info").unwrap_or(0);
        let all = &super::COVERED[first..];
        let Some(gt) = Self::found(out, "vcpu.arch.guest_table") else {
            refuse(out, all, "needs vcpu.arch.guest_table, to tell PV domains from HVM ones");
            return;
        };
        let gtu = Self::found(out, "vcpu.arch.guest_table_user");
        let mt = Self::found(out, "vcpu.arch.hvm.monitor_table");
        let cr3 = Self::found(out, "vcpu.arch.cr3");
        let kinds: Vec<Kind> = doms
            .iter()
            .map(|d| {
                if d.vcpus.iter().any(|(_, v)| v.u64(gt).is_some_and(|x| x != 0)) {
                    Kind::Pv
                } else if mt.is_some_and(|m| d.vcpus.iter().any(|(_, v)| v.u64(m).is_some_and(|x| x != 0))) {
                    Kind::Hvm
                } else {
                    Kind::Unknown
                }
            })
            .collect();
        let of = |k: Kind| doms.iter().zip(&kinds).filter(move |(_, kk)| **kk == k).map(|(d, _)| d);
        let (npv, nhvm) = (of(Kind::Pv).count(), of(Kind::Hvm).count());
        let ids = |ds: &mut dyn Iterator<Item = &Dom>| -> String {
            let idk = Self::found(out, "domain.domain_id");
            list(ds.filter_map(|d| idk.and_then(|o| d.obj.u16(o))))
        };
        let pv_ids = ids(&mut of(Kind::Pv));
        let hvm_ids = ids(&mut of(Kind::Hvm));

        // A. The frame table: the entries of the PV roots name their domain as owner
        //    and type them L4.
        let mut samples: Vec<(u64, u64)> = Vec::new();
        for d in of(Kind::Pv) {
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
        let ft = match layouts.as_slice() {
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
        };

        // B. One pass over the frame table: what each listed domain owns. The dump
        //    bounds the pass, never max_page alone (a hostile max_page of 2^40 must not
        //    mean 2^40 reads).
        let owned: Option<BTreeMap<u64, Owned>> = ft.and_then(|ft| {
            let max_page = self.xen.read_sym_u64(self.mem, "max_page")?;
            let top =
                self.mem.extents().iter().filter(|e| e.present).map(|e| (e.start.0 + e.len).div_ceil(4096)).max()?;
            let limit = max_page.min(top);
            let pdx_end = self.xen.pdx.value.pfn_to_pdx(limit.saturating_sub(1)) + 1;
            let mut want: BTreeMap<u64, Owned> =
                doms.iter().map(|d| (self.owner_pdx(d.obj.va), Owned::default())).collect();
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
        });
        let owned_of = |d: &Obj| owned.as_ref().and_then(|o| o.get(&self.owner_pdx(d.va)).copied());

        // C. tot_pages: the frame table's count of each domain's pages; 0 in the idle
        //    domain. xenheap_pages and max_pages follow it.
        let tot = match &owned {
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

        // E. options: in 4.17's and 4.20's struct domain (DWARF) it sits between
        //    `unsigned int nr_pirqs` and `is_dying, controller_pause_count,
        //    time_offset { int64_t seconds; bool set; }`. A listed domain has pirqs
        //    (nr_static_irqs at least, 16), is alive, and its flags stay below
        //    XEN_DOMCTL_CDF_MAX; the idle domain holds 0 in all of them. With an HVM
        //    domain, XEN_DOMCTL_CDF_hvm must be set exactly in the HVM domains.
        let fits_at = |o: u64, d: &Obj, listed: bool| -> bool {
            if o < 4 {
                return false;
            }
            let (Some(pirqs), Some(v), Some(dying), Some(pause), Some(set), Some(pad)) =
                (d.u32(o - 4), d.u32(o), d.u32(o + 4), d.u32(o + 8), d.get(o + 20, 1), d.get(o + 21, 3))
            else {
                return false;
            };
            let common = v < CDF_LIMIT && dying == 0 && pause < 1 << 16 && set <= 1 && pad == 0;
            if listed { common && (16..1 << 16).contains(&pirqs) } else { common && pirqs == 0 && v == 0 }
        };
        let opts: Vec<u64> = (4..idle_dom.len().saturating_sub(24))
            .step_by(4)
            .filter(|&o| {
                fits_at(o, idle_dom, false)
                    && !doms.is_empty()
                    && doms.iter().all(|d| fits_at(o, &d.obj, true))
                    && of(Kind::Pv).all(|d| d.obj.u32(o).is_some_and(|v| v & (CDF_HVM | CDF_HAP) == 0))
                    && of(Kind::Hvm).all(|d| d.obj.u32(o).is_some_and(|v| v & CDF_HVM != 0))
            })
            .collect();
        let options = decide(
            out,
            "domain.options",
            &opts,
            |o| {
                let mut ev = vec![format!(
                    "between nr_pirqs (+{}: 16 or more in each listed domain: {}) and is_dying, controller_pause_count, time_offset (0, small, a bool and padding), as 4.17's and 4.20's DWARF lay them out; 0 in all of them in the idle domain",
                    o - 4,
                    list(doms.iter().filter_map(|d| d.obj.u32(o - 4)))
                )];
                if nhvm > 0 {
                    ev.push(format!(
                        "XEN_DOMCTL_CDF_hvm is set here exactly in the HVM domain(s) {hvm_ids} (monitor tables, no guest L4): {}",
                        list(of(Kind::Hvm).filter_map(|d| d.obj.u32(o)))
                    ));
                } else {
                    ev.push(format!(
                        "XEN_DOMCTL_CDF_hvm and _hap clear in the PV domain(s) {pv_ids} (their vCPUs name Xen-built L4s), no flag beyond XEN_DOMCTL_CDF_MAX: {}",
                        list(of(Kind::Pv).filter_map(|d| d.obj.u32(o)))
                    ));
                }
                ev
            },
            || {
                "no u32 member sits between a pirq count and a live domain's is_dying with flags that fit the domains' kinds".into()
            },
        );
        if let Some(o) = options {
            // is_dying follows options (4.17's and 4.20's DWARF).
            let y = o + 4;
            let fits =
                std::iter::once(idle_dom).chain(doms.iter().map(|d| &d.obj)).all(|d| d.u32(y).is_some_and(|v| v <= 2))
                    && doms.iter().all(|d| d.obj.u32(y) == Some(0) || d.vcpus.is_empty());
            decide(
                out,
                "domain.is_dying",
                &if fits { vec![y] } else { vec![] },
                |_| {
                    vec![
                        "it follows options (4.17's and 4.20's DWARF)".into(),
                        "DOMDYING_alive (0) in every listed domain with vCPUs, and 0..2 in every domain".into(),
                    ]
                },
                || "the u32 after options is not a DOMDYING_* state in every domain".into(),
            );
        }

        // F. arch.emulation_flags: a set Xen accepts for HVM in every HVM domain
        //    ([`hvm_emulation_ok`]); nothing or the PIT alone in every PV domain; 0 in
        //    the idle domain.
        if nhvm == 0 {
            refuse(
                out,
                &["domain.arch.emulation_flags"],
                "no HVM domain: the flags are 0 or PIT alone in PV domains, as in many members",
            );
        } else {
            let c: Vec<u64> = (0..idle_dom.len())
                .step_by(4)
                .filter(|&o| {
                    Some(o) != options
                        && idle_dom.u32(o) == Some(0)
                        && of(Kind::Pv).all(|d| matches!(d.obj.u32(o), Some(0) | Some(EMU_PIT)))
                        && of(Kind::Hvm).all(|d| d.obj.u32(o).is_some_and(hvm_emulation_ok))
                })
                .collect();
            decide(
                out,
                "domain.arch.emulation_flags",
                &c,
                |o| {
                    vec![
                        format!(
                            "a set Xen accepts for an HVM domain (LAPIC alone, all but VPCI, or LAPIC|IOAPIC|VPCI) in the HVM domain(s) {hvm_ids}: {}",
                            list(of(Kind::Hvm).filter_map(|d| d.obj.u32(o)))
                        ),
                        format!("0 or XEN_X86_EMU_PIT alone in the PV domain(s) {pv_ids}; 0 in the idle domain"),
                    ]
                },
                || {
                    "no u32 member holds an emulation set Xen accepts in every HVM domain and at most the PIT in PV ones".into()
                },
            );
        }

        // G. arch.pv.is_32bit: struct pv_domain begins `l1_pgentry_t **gdt_ldt_l1tab;
        //    atomic_t nr_l4_pages; bool is_32bit;` (4.9 … 4.20): a Xen-heap page, the
        //    count of the domain's L4s (the frame table counts them too), then a bool.
        if npv == 0 {
            refuse(out, &["domain.arch.pv.is_32bit"], "no PV domain");
        } else {
            let c: Vec<u64> = (0..idle_dom.len().saturating_sub(16))
                .step_by(8)
                .filter(|&p| {
                    of(Kind::Pv).all(|d| {
                        let ptr = d.obj.u64(p).is_some_and(|x| {
                            x != 0
                                && x & 0xfff == 0
                                && matches!(
                                    self.xen.region(Vaddr(x)).map(|r| r.name),
                                    Some("directmap" | "directmap_high")
                                )
                        });
                        // nr_l4_pages counts the L4s Xen validated for it: at least the
                        // distinct ones its vCPUs name, at most the frame table's L4s
                        // it owns (a dom0 builder's first L4 is typed without being
                        // counted).
                        let named = {
                            let mut v: Vec<u64> = d
                                .vcpus
                                .iter()
                                .flat_map(|(_, v)| [Some(gt), gtu].into_iter().flatten().filter_map(|o| v.u64(o)))
                                .filter(|&m| m != 0)
                                .collect();
                            v.sort_unstable();
                            v.dedup();
                            v.len() as u64
                        };
                        let l4s = d.obj.u32(p + 8).is_some_and(|n| match owned_of(&d.obj) {
                            Some(c) => n >= named.max(1) && n <= c.l4,
                            None => false,
                        });
                        ptr && l4s && (12..15).all(|b| d.obj.get(p + b, 1).is_some_and(|v| v <= 1))
                    })
                })
                .collect();
            decide(
                out,
                "domain.arch.pv.is_32bit",
                &c.iter().map(|p| p + 12).collect::<Vec<_>>(),
                |o| {
                    vec![
                        format!(
                            "in each PV domain ({pv_ids}) the u32 at +{} (arch.pv.nr_l4_pages: {}) lies between the L4s its vCPUs name and the frame table's count of its L4s ({}), after a Xen-heap page pointer (gdt_ldt_l1tab)",
                            o - 4,
                            list(of(Kind::Pv).filter_map(|d| d.obj.u32(o - 4))),
                            list(of(Kind::Pv).filter_map(|d| owned_of(&d.obj).map(|c| c.l4)))
                        ),
                        format!(
                            "struct pv_domain keeps is_32bit right after nr_l4_pages, a bool here in each: {}",
                            list(of(Kind::Pv).filter_map(|d| d.obj.get(o, 1)))
                        ),
                    ]
                },
                || {
                    if owned.is_none() {
                        "needs the frame table's count of each PV domain's L4s".into()
                    } else {
                        "no member pair (Xen-heap pointer, the domain's L4 count) opens arch.pv in every PV domain"
                            .into()
                    }
                },
            );
        }

        // H. arch.p2m: a heap object whose member points back at its domain; in an
        //    HVM domain its phys_table is a p2m root whose leaves the M2P maps back.
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        let mut cache: BTreeMap<u64, Option<Obj>> = BTreeMap::new();
        let mut p2m_obj = |p: u64| -> Option<Obj> {
            cache
                .entry(p)
                .or_insert_with(|| {
                    (p != 0
                        && p & 7 == 0
                        && matches!(self.xen.region(Vaddr(p)).map(|r| r.name), Some("directmap" | "directmap_high")))
                    .then(|| self.va_obj(p, P2M_OBJ))
                    .flatten()
                })
                .clone()
        };
        if !doms.is_empty() {
            for k in (0..idle_dom.len()).step_by(8) {
                if idle_dom.u64(k) != Some(0) {
                    continue;
                }
                let mut back: Option<Vec<u64>> = None;
                for d in doms {
                    let Some(o) = d.obj.u64(k).and_then(&mut p2m_obj) else {
                        back = Some(Vec::new());
                        break;
                    };
                    // struct p2m_domain: `struct domain *domain; enum p2m_class
                    // p2m_class; p2m_access_t default_access;` in 4.17's and 4.20's
                    // DWARF; a host p2m is p2m_host (0) with p2m_access_rwx (7)
                    // (`p2m_initialise`, `X:xen/arch/x86/mm/p2m.c@4.17.0`).
                    let here: Vec<u64> = (0..P2M_OBJ as u64 - 16)
                        .step_by(8)
                        .filter(|&k2| {
                            o.u64(k2) == Some(d.obj.va.0)
                                && o.u32(k2 + 8) == Some(P2M_HOST)
                                && o.u32(k2 + 12) == Some(P2M_ACCESS_RWX)
                        })
                        .collect();
                    back = Some(match back {
                        None => here,
                        Some(b) => b.into_iter().filter(|x| here.contains(x)).collect(),
                    });
                }
                for k2 in back.unwrap_or_default() {
                    pairs.push((k, k2));
                }
            }
        }
        // The host p2m comes first: `struct p2m_domain *p2m` precedes nested_p2m[] and
        // altp2m_p2m[] in every release, and those point back at the domain too.
        let tie = pairs.len() > 1
            && pairs.len() <= MAX_TIE
            && pairs.iter().all(|p| p.1 == pairs[0].1)
            && pairs.iter().all(|p| p.0 >= pairs[0].0);
        let pick = if tie { pairs[..1].to_vec() } else { pairs.clone() };
        let p2m = match pick.as_slice() {
            [(k, k2)] => {
                let more = if tie {
                    format!(
                        "; +{} point at such objects too, later in struct arch_domain (nested_p2m, altp2m_p2m)",
                        uniq(&pairs[1..].iter().map(|p| p.0).collect::<Vec<_>>())
                    )
                } else {
                    String::new()
                };
                out.found.insert(
                    "domain.arch.p2m",
                    Inference {
                        value: *k,
                        evidence: vec![
                            format!("each of the {} listed domains points here at a heap object that holds the domain's own address at +{k2}, then p2m_host (0) and p2m_access_rwx (7), as a host p2m_domain does{more}", doms.len()),
                            "the idle domain holds NULL here (arch_domain_create returns before p2m_init for it)".into(),
                        ],
                    },
                );
                out.found.insert(
                    "p2m_domain.domain",
                    Inference {
                        value: *k2,
                        evidence: vec![
                            format!("the object arch.p2m (+{k}) of each listed domain points back at that domain here"),
                            "at no other offset of every such object".into(),
                        ],
                    },
                );
                Some(*k)
            }
            [] => {
                refuse(
                    out,
                    &["domain.arch.p2m", "p2m_domain.domain", "p2m_domain.phys_table", "p2m_domain.ept"],
                    "no pointer member of the listed domains names an object that points back at its domain",
                );
                None
            }
            many => {
                let why = format!(
                    "ambiguous: (arch.p2m, p2m_domain.domain) pairs {} fit",
                    many.iter().map(|(a, b)| format!("({a}, {b})")).collect::<Vec<_>>().join(", ")
                );
                refuse(out, &["domain.arch.p2m", "p2m_domain.domain", "p2m_domain.phys_table", "p2m_domain.ept"], &why);
                None
            }
        };
        if p2m.is_some() && nhvm == 0 {
            refuse(
                out,
                &["p2m_domain.phys_table", "p2m_domain.ept"],
                "no HVM domain: a PV domain's p2m_domain has no table (its p2m is the guest's own list)",
            );
        }
        if let (Some(k), true) = (p2m, nhvm > 0) {
            let hvm_p2m: Vec<Obj> = of(Kind::Hvm).filter_map(|d| d.obj.u64(k).and_then(&mut p2m_obj)).collect();
            let mut agree = Vec::new();
            let c: Vec<u64> = (0..P2M_OBJ as u64)
                .step_by(8)
                .filter(|&o| {
                    let mut a = Vec::new();
                    let ok = hvm_p2m.iter().all(|p| {
                        p.u64(o).is_some_and(|m| {
                            if m == 0 || m >> 40 != 0 {
                                return false;
                            }
                            let leaves = self.p2m_leaves(m);
                            let n = self.m2p_agrees(&leaves);
                            a.push(format!("{n}/{}", leaves.len()));
                            leaves.len() >= 2 && n * 2 > leaves.len()
                        })
                    });
                    if ok {
                        agree = a;
                    }
                    ok
                })
                .collect();
            let phys = decide(
                out,
                "p2m_domain.phys_table",
                &c,
                |_| {
                    vec![
                        format!(
                            "in each HVM domain's p2m it names a 4-level table whose leaves the M2P maps back to the gfns that reach them ({})",
                            agree.join(", ")
                        ),
                        "no other member of those objects names such a table".into(),
                    ]
                },
                || "no member of the HVM domains' p2m names a table whose leaves the M2P maps back".into(),
            );
            // ept: on VMX, the EPTP of the same table (write-back, 4-level walk).
            match (phys, self.xen.hvm_name(self.mem)) {
                (Some(pt), Some(name)) if name == "VMX" => {
                    let c: Vec<u64> = (0..P2M_OBJ as u64)
                        .step_by(8)
                        .filter(|&o| {
                            hvm_p2m.iter().all(|p| {
                                matches!((p.u64(o), p.u64(pt)), (Some(e), Some(t)) if e & 0x3f == 0x1e && (e >> 12) & ((1 << 40) - 1) == t)
                            })
                        })
                        .collect();
                    decide(
                        out,
                        "p2m_domain.ept",
                        &c,
                        |_| {
                            vec![
                                "hvm_funcs.name is VMX: the host p2m is an EPT".into(),
                                "each HVM domain's p2m holds here an EPTP (write-back, 4-level walk) of its phys_table"
                                    .into(),
                            ]
                        },
                        || "no member holds an EPTP of phys_table in every HVM domain's p2m".into(),
                    );
                }
                (_, Some(name)) if name == "SVM" => {
                    out.refused.insert(
                        "p2m_domain.ept",
                        "not used on this machine: hvm_funcs.name is SVM, whose p2m is the x86-64 table phys_table names".into(),
                    );
                }
                (_, name) => {
                    out.refused.insert(
                        "p2m_domain.ept",
                        format!(
                            "needs phys_table and a VMX machine (hvm_funcs.name: {})",
                            name.as_deref().unwrap_or("unreadable")
                        ),
                    );
                }
            }
        }

        // I. vcpu.runstate.state: struct vcpu_runstate_info (public `vcpu.h`) is
        //    `int state; uint64_t state_entry_time; uint64_t time[4];`: a state 0..3,
        //    then an entry time no earlier than the four times' sum.
        let all: Vec<&Obj> = self.idle.iter().chain(doms.iter().flat_map(|d| d.vcpus.iter().map(|(_, v)| v))).collect();
        let c: Vec<u64> = (0..4096u64 - 48)
            .step_by(8)
            .filter(|&r| {
                all.iter().all(|v| {
                    let (Some(s), Some(t)) = (v.u32(r), v.u64(r + 8)) else { return false };
                    let times: Option<Vec<u64>> = (0..4).map(|i| v.u64(r + 16 + 8 * i)).collect();
                    let Some(times) = times else { return false };
                    let sum = times.iter().try_fold(0u64, |a, &x| a.checked_add(x));
                    s <= 3
                        && v.get(r + 4, 4) == Some(0)
                        && t > 0
                        && t < 1 << 60
                        && sum.is_some_and(|sm| sm > 0 && sm <= t)
                })
            })
            .collect();
        let runstate = decide(
            out,
            "vcpu.runstate.state",
            &c,
            |_| {
                vec![
                    format!("in all {} vCPUs (idle ones included) a state 0..3 (RUNSTATE_running … offline) here", all.len()),
                    "followed by state_entry_time (nanoseconds since boot, below 2^60) and time[4] whose sum never exceeds it (struct vcpu_runstate_info, public vcpu.h)".into(),
                ]
            },
            || "no member is followed by a vcpu_runstate_info whose times fit in every vCPU".into(),
        );

        // J. vcpu.is_running: a bool, set only in vCPUs whose runstate is running, in
        //    at most one vCPU per CPU, in at least one vCPU.
        let pk = Self::found(out, "vcpu.processor");
        match (runstate, pk) {
            (Some(r), Some(pk)) => {
                let c: Vec<u64> = (0..4096u64)
                    .filter(|&b| {
                        let mut per_cpu = BTreeMap::new();
                        let mut any = false;
                        let ok = all.iter().all(|v| match v.get(b, 1) {
                            Some(0) => true,
                            Some(1) => {
                                any = true;
                                *per_cpu.entry(v.u32(pk)).or_insert(0) += 1;
                                v.u32(r) == Some(0)
                            }
                            _ => false,
                        });
                        ok && any && per_cpu.values().all(|&n| n == 1)
                            && all.iter().any(|v| v.u32(r) == Some(0) && v.get(b, 1) == Some(1))
                            // Not a byte of a member already placed.
                            && ![r, pk].iter().any(|&m| (m..m + 4).contains(&b))
                    })
                    .collect();
                // Where one vCPU runs (one CPU), fpu_dirtied holds the same pattern: the
                // bools after runstate are `fpu_initialised, fpu_dirtied,
                // is_initialised, is_running` in 4.17's and 4.20's DWARF, so of two
                // such bytes two apart in that run, is_running is the later.
                let near: Vec<u64> = c.iter().copied().filter(|&b| (r + 48..r + 72).contains(&b)).collect();
                let (c, paired) = match near.as_slice() {
                    [a, b] if *b == a + 2 && c.len() > 1 => (vec![*b], Some(*a)),
                    [one] if c.len() > 1 => (vec![*one], None),
                    _ => (c, None),
                };
                let running = |b: u64| all.iter().filter(|v| v.get(b, 1) == Some(1)).count();
                decide(
                    out,
                    "vcpu.is_running",
                    &c,
                    |b| {
                        vec![
                            format!(
                                "1 in {} vCPU(s), each in runstate running, 0 in the other {}",
                                running(b),
                                all.len() - running(b)
                            ),
                            "at most one vCPU per CPU (processor) holds 1".into(),
                            match paired {
                                Some(a) => format!(
                                    "+{a} holds the same pattern (fpu_dirtied, two before is_running after runstate in 4.17's and 4.20's DWARF); other such bytes lie outside the bools after runstate"
                                ),
                                None => "the only such byte among the bools after runstate".into(),
                            },
                        ]
                    },
                    || "no byte is 1 in running vCPUs only, one per CPU".into(),
                );
            }
            _ => refuse(out, &["vcpu.is_running"], "needs vcpu.runstate.state and vcpu.processor"),
        }

        // K. vcpu.arch.flags: TF_kernel_mode (bit 0) exactly in the PV vCPUs whose
        //    arch.cr3 is their kernel L4.
        match cr3 {
            Some(c3) if npv > 0 => {
                let pv: Vec<&Obj> = of(Kind::Pv).flat_map(|d| d.vcpus.iter().map(|(_, v)| v)).collect();
                let kern = |v: &Obj| v.u64(c3).map(|c| c >> 12) == v.u64(gt);
                let c: Vec<u64> = (0..4096u64)
                    .step_by(8)
                    .filter(|&o| {
                        o != gt
                            && Some(o) != gtu
                            && o != c3
                            && runstate.is_none_or(|r| r != o)
                            && self.idle.iter().all(|v| v.u64(o) == Some(1))
                            && pv.iter().all(|v| v.u64(o).is_some_and(|f| f < 0x100 && (f & 1 != 0) == kern(v)))
                    })
                    .collect();
                let (k, u) = (pv.iter().filter(|v| kern(v)).count(), pv.iter().filter(|v| !kern(v)).count());
                decide(
                    out,
                    "vcpu.arch.flags",
                    &c,
                    |_| {
                        vec![
                            format!(
                                "TF_kernel_mode (bit 0) is set here in the {k} PV vCPU(s) whose arch.cr3 is their kernel L4 (guest_table)"
                            ),
                            format!("and clear in the {u} whose cr3 is another L4; no flag beyond bit 7"),
                            format!(
                                "exactly TF_kernel_mode in the {} idle vCPUs (arch_vcpu_create sets it in every vCPU, and idle ones never leave it)",
                                self.idle.len()
                            ),
                        ]
                    },
                    || {
                        format!(
                            "no member holds TF_kernel_mode exactly in the {k} PV vCPU(s) running on their kernel L4"
                        )
                    },
                );
            }
            _ => refuse(out, &["vcpu.arch.flags"], "needs vcpu.arch.cr3 and a PV domain"),
        }

        // L. vcpu.arch.hvm.guest_cr[5]: CR0 with PE and PG, CR4 with PAE, and the
        //    guest_efer that follows with LME and LMA, in every HVM vCPU in long mode;
        //    guest_cr[3] is a gfn the domain's p2m maps to a frame the M2P maps back.
        let hv: Vec<(&Dom, &Obj)> = of(Kind::Hvm).flat_map(|d| d.vcpus.iter().map(move |(_, v)| (d, v))).collect();
        if hv.is_empty() {
            refuse(out, &["vcpu.arch.hvm.guest_cr"], "no HVM vCPU");
        } else {
            let c: Vec<u64> = (0..4096u64 - 48)
                .step_by(8)
                .filter(|&o| {
                    hv.iter().all(|(_, v)| {
                        let (Some(cr0), Some(cr3), Some(cr4), Some(efer)) =
                            (v.u64(o), v.u64(o + 24), v.u64(o + 32), v.u64(o + 40))
                        else {
                            return false;
                        };
                        cr0 >> 32 == 0
                            && cr0 & 0x8000_0001 == 0x8000_0001
                            && cr4 >> 26 == 0
                            && cr4 & 0x20 != 0
                            && efer >> 16 == 0
                            && efer & 0x500 == 0x500
                            && cr3 >> 52 == 0
                    })
                })
                .collect();
            decide(
                out,
                "vcpu.arch.hvm.guest_cr",
                &c,
                |o| {
                    vec![
                        format!(
                            "in each of the {} HVM vCPUs, guest_cr[0] here has PE and PG and guest_cr[4] PAE (long mode's paging)",
                            hv.len()
                        ),
                        format!(
                            "the u64 after guest_cr[5] (+{}) is guest_efer with LME and LMA in each, as struct hvm_vcpu keeps it",
                            o + 40
                        ),
                    ]
                },
                || {
                    "no member holds long-mode CR0/CR4 followed by an EFER with LMA in every HVM vCPU (a guest still booting?)".into()
                },
            );
        }
    }
}
