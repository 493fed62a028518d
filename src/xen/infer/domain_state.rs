//! Stages E–H of the second pass: what a domain holds about itself beyond its
//! pages: creation flags and liveness (`options`, `is_dying`), the emulations an
//! HVM domain has (`arch.emulation_flags`), a PV domain's `arch.pv.is_32bit`, and
//! the host p2m (`arch.p2m` and the `p2m_domain` members xenwalk reads), each p2m
//! checked against the M2P.

use super::frames::Owners;
use super::state::{Cx, Kind, decide, list, refuse};
use super::{Inference, Inferred, MAX_TIE, Machine, Obj, uniq};
use crate::addr::{Maddr, Mfn, Vaddr};
use std::collections::BTreeMap;

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

/// `p2m_host` (`enum p2m_class`) and `p2m_access_rwx` (`p2m_access_t`)
/// (`X:xen/arch/x86/include/asm/p2m.h@4.17.0`, `X:xen/include/xen/mem_access.h@4.17.0`).
const P2M_HOST: u64 = 0;
const P2M_ACCESS_RWX: u64 = 7;

/// At most this many p2m leaves are checked against the M2P per table.
const P2M_PROBES: usize = 16;

/// Bytes of a `struct p2m_domain` read (688 in 4.20; the members xenwalk reads lie
/// well inside the first KiB).
const P2M_OBJ: usize = 1024;

impl Machine<'_> {
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

    /// Stage E: `domain.options` and `domain.is_dying`; the offset of `options`
    /// when established.
    pub(super) fn options(&self, cx: &Cx<'_>, out: &mut Inferred) -> Option<u64> {
        let (idle_dom, doms, nhvm, pv_ids, hvm_ids) = (cx.idle_dom, cx.doms, cx.nhvm, &cx.pv_ids, &cx.hvm_ids);
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
                    && cx.of(Kind::Pv).all(|d| d.obj.u32(o).is_some_and(|v| v & (CDF_HVM | CDF_HAP) == 0))
                    && cx.of(Kind::Hvm).all(|d| d.obj.u32(o).is_some_and(|v| v & CDF_HVM != 0))
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
                        list(cx.of(Kind::Hvm).filter_map(|d| d.obj.u32(o)))
                    ));
                } else {
                    ev.push(format!(
                        "XEN_DOMCTL_CDF_hvm and _hap clear in the PV domain(s) {pv_ids} (their vCPUs name Xen-built L4s), no flag beyond XEN_DOMCTL_CDF_MAX: {}",
                        list(cx.of(Kind::Pv).filter_map(|d| d.obj.u32(o)))
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
        options
    }

    /// Stage F: `domain.arch.emulation_flags`.
    pub(super) fn emulation_flags(&self, cx: &Cx<'_>, options: Option<u64>, out: &mut Inferred) {
        let (idle_dom, nhvm, pv_ids, hvm_ids) = (cx.idle_dom, cx.nhvm, &cx.pv_ids, &cx.hvm_ids);
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
                        && cx.of(Kind::Pv).all(|d| matches!(d.obj.u32(o), Some(0) | Some(EMU_PIT)))
                        && cx.of(Kind::Hvm).all(|d| d.obj.u32(o).is_some_and(hvm_emulation_ok))
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
                            list(cx.of(Kind::Hvm).filter_map(|d| d.obj.u32(o)))
                        ),
                        format!("0 or XEN_X86_EMU_PIT alone in the PV domain(s) {pv_ids}; 0 in the idle domain"),
                    ]
                },
                || {
                    "no u32 member holds an emulation set Xen accepts in every HVM domain and at most the PIT in PV ones".into()
                },
            );
        }
    }

    /// Stage G: `domain.arch.pv.is_32bit`.
    pub(super) fn is_32bit(&self, cx: &Cx<'_>, owned: Option<&Owners>, out: &mut Inferred) {
        let (idle_dom, gt, gtu, npv, pv_ids) = (cx.idle_dom, cx.gt, cx.gtu, cx.npv, &cx.pv_ids);
        let owned_of = |d: &Obj| self.owned_of(owned, d);
        // G. arch.pv.is_32bit: struct pv_domain begins `l1_pgentry_t **gdt_ldt_l1tab;
        //    atomic_t nr_l4_pages; bool is_32bit;` (4.9 … 4.20): a Xen-heap page, the
        //    count of the domain's L4s (the frame table counts them too), then a bool.
        if npv == 0 {
            refuse(out, &["domain.arch.pv.is_32bit"], "no PV domain");
        } else {
            let c: Vec<u64> = (0..idle_dom.len().saturating_sub(16))
                .step_by(8)
                .filter(|&p| {
                    cx.of(Kind::Pv).all(|d| {
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
                            list(cx.of(Kind::Pv).filter_map(|d| d.obj.u32(o - 4))),
                            list(cx.of(Kind::Pv).filter_map(|d| owned_of(&d.obj).map(|c| c.l4)))
                        ),
                        format!(
                            "struct pv_domain keeps is_32bit right after nr_l4_pages, a bool here in each: {}",
                            list(cx.of(Kind::Pv).filter_map(|d| d.obj.get(o, 1)))
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
    }

    /// Stage H: `domain.arch.p2m`, `p2m_domain.domain`, `phys_table`, `ept`.
    pub(super) fn p2m(&self, cx: &Cx<'_>, out: &mut Inferred) {
        let (idle_dom, doms, nhvm) = (cx.idle_dom, cx.doms, cx.nhvm);

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
            let hvm_p2m: Vec<Obj> = cx.of(Kind::Hvm).filter_map(|d| d.obj.u64(k).and_then(&mut p2m_obj)).collect();
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
    }
}
