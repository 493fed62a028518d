//! Steps 5–9 of inference: what every vCPU holds of its own, read across the idle
//! vCPUs and those of the listed domains: `vcpu_id`, `processor`, `next_in_list`,
//! and the roots Xen keeps for it (`arch.cr3`, `guest_table(_user)`,
//! `hvm.monitor_table`).

use super::{Dom, Inference, Inferred, L4State, MAX_TIE, Machine, Obj, filtered_txt, uniq};

/// The listed domains with their vCPUs, as steps 5–9 read them.
#[derive(Clone, Copy)]
pub(super) struct Listed<'d> {
    doms: &'d [Dom],
    /// How many CPUs (idle vCPUs) there are.
    n: u64,
    /// How many vCPUs of listed domains were read.
    nd: usize,
    /// `nr_cpu_ids`, or the idle vCPUs' count where it is unreadable.
    want: u64,
}

impl<'d> Listed<'d> {
    pub(super) fn new(m: &Machine<'_>, doms: &'d [Dom]) -> Listed<'d> {
        let nd = doms.iter().map(|d| d.vcpus.len()).sum();
        Listed { doms, n: m.idle.len() as u64, nd, want: m.nr_cpus() }
    }

    /// Every vCPU of a listed domain, with its index in its domain's vCPU array.
    fn vcpus(&self) -> impl Iterator<Item = &'d (u64, Obj)> + use<'d> {
        self.doms.iter().flat_map(|d| d.vcpus.iter())
    }
}

/// What step 8 found: the members that name Xen-built L4s in the listed domains'
/// vCPUs, and the kernel's (`guest_table`) among them.
pub(super) struct GuestTables {
    named: Vec<u64>,
    kernel: Option<u64>,
}

impl Machine<'_> {
    /// Step 5: `vcpu.vcpu_id` and `vcpu.processor`.
    pub(super) fn vcpu_ids(&self, cx: &Listed<'_>, out: &mut Inferred) {
        let Listed { doms, n, nd, want } = *cx;
        // 5. vcpu.vcpu_id and vcpu.processor: idle_vcpu[i] holds i in both.
        let idle_ok = |o: u64| self.idle.iter().enumerate().all(|(i, v)| v.u32(o) == Some(i as u64));
        let ids: Vec<u64> =
            (0..4096).step_by(4).filter(|&o| idle_ok(o) && cx.vcpus().all(|(i, v)| v.u32(o) == Some(*i))).collect();
        let procs: Vec<u64> = (0..4096)
            .step_by(4)
            .filter(|&o| idle_ok(o) && cx.vcpus().all(|(_, v)| v.u32(o).is_some_and(|p| p < want)))
            .collect();
        let discriminating = n >= 2 || doms.iter().any(|d| d.vcpus.len() >= 2);
        let idle_txt = format!("idle_vcpu[i] holds i here for all {n} CPUs");
        // Where several members hold the same values in this dump, the layout fact
        // every release keeps breaks the tie: struct vcpu begins `int vcpu_id; int
        // processor;` (`X:xen/include/xen/sched.h@4.0.0` … `@4.20.0`). The evidence
        // says so, and names the members that merely coincide.
        let id_off = match ids.as_slice() {
            _ if !discriminating => {
                out.refused
                    .insert("vcpu.vcpu_id", "one CPU and no domain with two vCPUs: every zero member fits".into());
                None
            }
            [o] => Some((*o, None)),
            many if many.contains(&0) && many.len() <= MAX_TIE => {
                Some((0, Some(many.iter().copied().filter(|&o| o != 0).collect::<Vec<_>>())))
            }
            [] => {
                out.refused.insert(
                    "vcpu.vcpu_id",
                    "no u32 member holds each idle vCPU's CPU and each vCPU's array index".into(),
                );
                None
            }
            many => {
                out.refused.insert("vcpu.vcpu_id", format!("ambiguous: u32 members at {} fit", uniq(many)));
                None
            }
        };
        if let Some((o, tie)) = &id_off {
            let mut evidence = vec![
                idle_txt.clone(),
                format!("each of the {nd} vCPUs of listed domains holds its index in its domain's vCPU array"),
            ];
            if let Some(others) = tie {
                evidence.push(format!(
                    "+{} hold the same values in this dump; struct vcpu begins with vcpu_id in every release",
                    uniq(others)
                ));
            }
            out.found.insert("vcpu.vcpu_id", Inference { value: *o, evidence });
        }
        if let Some((idv, _)) = id_off {
            let rest: Vec<u64> = procs.iter().copied().filter(|&p| p != idv).collect();
            let pick = match rest.as_slice() {
                // With one CPU every processor is 0, as in most zero members: the
                // values cannot place it, only the layout can, and any reading of a
                // member that holds 0 in every vCPU says the same thing here.
                many if n < 2 && want == 1 && many.contains(&(idv + 4)) => Some((idv + 4, Some(Vec::new()))),
                _ if n < 2 => None,
                [p] => Some((*p, None)),
                many if many.contains(&(idv + 4)) && many.len() <= MAX_TIE => {
                    Some((idv + 4, Some(many.iter().copied().filter(|&o| o != idv + 4).collect::<Vec<_>>())))
                }
                _ => None,
            };
            match pick {
                Some((p, tie)) => {
                    let mut evidence = vec![
                        idle_txt.clone(),
                        format!(
                            "each of the {nd} vCPUs of listed domains holds a CPU number below nr_cpu_ids ({want})"
                        ),
                    ];
                    match tie {
                        Some(others) if others.is_empty() => evidence.push(format!(
                            "one CPU (nr_cpu_ids 1): 0 is the only value, held here and in {} other u32 members; struct vcpu begins `int vcpu_id; int processor;` in every release (sched.h 4.0 … 4.20), which places it",
                            rest.len() - 1
                        )),
                        Some(others) => evidence.push(format!(
                            "+{} hold values as fitting in this dump; processor follows vcpu_id in every release",
                            uniq(&others)
                        )),
                        None => {}
                    }
                    out.found.insert("vcpu.processor", Inference { value: p, evidence });
                }
                None if n < 2 => {
                    out.refused.insert(
                        "vcpu.processor",
                        format!("one CPU: every vCPU's processor is 0, as in {} other u32 members", rest.len()),
                    );
                }
                None if rest.is_empty() => {
                    out.refused
                        .insert("vcpu.processor", "no u32 member other than vcpu_id holds each idle vCPU's CPU".into());
                }
                None => {
                    out.refused.insert("vcpu.processor", format!("ambiguous: u32 members at {} fit", uniq(&rest)));
                }
            }
        } else {
            out.refused.insert("vcpu.processor", "needs vcpu.vcpu_id, to tell the two apart".into());
        }
    }

    /// Step 6: `vcpu.next_in_list`.
    pub(super) fn vcpu_next_in_list(&self, cx: &Listed<'_>, out: &mut Inferred) {
        let Listed { doms, n, .. } = *cx;
        // 6. vcpu.next_in_list: idle vCPUs in CPU order, each domain's in id order.
        let chain_ok = |vs: &[&Obj], o: u64| {
            vs.windows(2).all(|w| w[0].u64(o) == Some(w[1].va.0)) && vs.last().is_none_or(|l| l.u64(o) == Some(0))
        };
        let idle_refs: Vec<&Obj> = self.idle.iter().collect();
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                chain_ok(&idle_refs, o)
                    && doms.iter().all(|d| chain_ok(&d.vcpus.iter().map(|(_, v)| v).collect::<Vec<_>>(), o))
            })
            .collect();
        let longest = doms.iter().map(|d| d.vcpus.len()).max().unwrap_or(0);
        match c.as_slice() {
            [o] if n >= 2 || longest >= 2 => {
                out.found.insert(
                    "vcpu.next_in_list",
                    Inference {
                        value: *o,
                        evidence: vec![
                            format!("idle_vcpu[0..{n}] are linked in CPU order here, the last NULL"),
                            format!(
                                "the vCPUs of each of the {} listed domain(s) are linked in id order, the last NULL",
                                doms.len()
                            ),
                        ],
                    },
                );
            }
            [_] | [] => {
                out.refused.insert(
                    "vcpu.next_in_list",
                    "no member links the idle vCPUs and every domain's vCPUs in order".into(),
                );
            }
            many => {
                out.refused.insert("vcpu.next_in_list", format!("ambiguous: members at {} fit", uniq(many)));
            }
        }
    }

    /// Step 7: `vcpu.arch.cr3`, its offset when established.
    pub(super) fn arch_cr3(&self, cx: &Listed<'_>, out: &mut Inferred) -> Option<u64> {
        let Listed { n, nd, .. } = *cx;
        // 7. vcpu.arch.cr3: __pa(idle_pg_table) in every idle vCPU; an L4 Xen built
        //    in every listed domain's vCPU.
        let slots = self.slots_text();
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                self.idle.iter().all(|v| v.u64(o) == Some(self.idle_root.0))
                    && nd > 0
                    && cx.vcpus().all(|(_, v)| v.u64(o).is_some_and(|c| self.l4_state(c & !0xfff) != L4State::Not))
                    && cx.vcpus().any(|(_, v)| v.u64(o).is_some_and(|c| self.xen_l4(c & !0xfff)))
            })
            .collect();
        match c.as_slice() {
            [o] => {
                out.found.insert(
                    "vcpu.arch.cr3",
                    Inference {
                        value: *o,
                        evidence: vec![
                            format!("all {n} idle vCPUs hold idle_pg_table's address {} here", self.idle_root),
                            {
                                let filtered = cx.vcpus()
                                    .filter(|(_, v)| {
                                        v.u64(*o).is_some_and(|c| self.l4_state(c & !0xfff) == L4State::Filtered)
                                    })
                                    .count();
                                format!(
                                    "each of the {nd} vCPUs of listed domains holds an L4 whose Xen slots {slots} equal idle_pg_table's{}",
                                    filtered_txt(filtered)
                                )
                            },
                        ],
                    },
                );
                Some(*o)
            }
            [] if nd == 0 => {
                out.refused.insert(
                    "vcpu.arch.cr3",
                    "no domain has a vCPU: idle_pg_table's address in the idle vCPUs is one invariant, not two".into(),
                );
                None
            }
            [] => {
                out.refused.insert(
                    "vcpu.arch.cr3",
                    "no member holds idle_pg_table in the idle vCPUs and an L4 in the others".into(),
                );
                None
            }
            many => {
                out.refused.insert("vcpu.arch.cr3", format!("ambiguous: members at {} fit", uniq(many)));
                None
            }
        }
    }

    /// Step 8: `vcpu.arch.guest_table` and `guest_table_user`.
    pub(super) fn guest_tables(&self, cx: &Listed<'_>, cr3: Option<u64>, out: &mut Inferred) -> GuestTables {
        let Listed { nd, .. } = *cx;
        let slots = self.slots_text();
        // 8. vcpu.arch.guest_table / guest_table_user: in PV vCPUs, frame numbers of
        //    L4s Xen built; none (or idle_pg_table) in the idle vCPUs. The kernel one
        //    is the one the vCPUs' own cr3 names.
        let idle_mfn = self.idle_root.0 >> 12;
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                self.idle.iter().all(|v| matches!(v.u64(o), Some(x) if x == 0 || x == idle_mfn))
                    && cx.vcpus().any(|(_, v)| v.u64(o).is_some_and(|x| x != 0))
                    && cx.vcpus().all(|(_, v)| {
                        v.u64(o).is_some_and(|x| x == 0 || (x >> 40 == 0 && self.l4_state(x << 12) != L4State::Not))
                    })
                    && cx.vcpus().any(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && x >> 40 == 0 && self.xen_l4(x << 12)))
            })
            .collect();
        let cr3_hits = |o: u64| {
            cr3.map_or(0, |c| {
                cx.vcpus()
                    .filter(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && v.u64(c).map(|c| c >> 12) == Some(x)))
                    .count()
            })
        };
        let mut ranked: Vec<(usize, u64)> = c.iter().map(|&o| (cr3_hits(o), o)).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        let filtered = |o: u64| {
            cx.vcpus()
                .filter(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && self.l4_state(x << 12) == L4State::Filtered))
                .count()
        };
        let l4_txt = |o: u64| {
            format!(
                "every non-zero value in the {nd} vCPUs of listed domains names an L4 whose Xen slots {slots} equal idle_pg_table's{}",
                filtered_txt(filtered(o))
            )
        };
        let kernel = match ranked.as_slice() {
            [] => {
                let why = if nd == 0 {
                    "no domain has a vCPU".to_string()
                } else {
                    "no member names Xen-built L4s in the listed domains' vCPUs (no PV domain?)".to_string()
                };
                out.refused.insert("vcpu.arch.guest_table", why.clone());
                out.refused.insert("vcpu.arch.guest_table_user", why);
                None
            }
            [(h, o), rest @ ..] if *h > 0 && rest.iter().all(|(h2, _)| h2 < h) => {
                out.found.insert(
                    "vcpu.arch.guest_table",
                    Inference {
                        value: *o,
                        evidence: vec![
                            "0 (or idle_pg_table) in every idle vCPU".into(),
                            l4_txt(*o),
                            format!("it is the L4 in arch.cr3 for {h} of them (kernel mode), more than any other such member"),
                        ],
                    },
                );
                Some(*o)
            }
            _ => {
                let why = if cr3.is_none() {
                    format!("members at {} name L4s; needs vcpu.arch.cr3 to tell the kernel's", uniq(&c))
                } else {
                    format!("ambiguous: members at {} name L4s, none of them more often the vCPUs' cr3", uniq(&c))
                };
                out.refused.insert("vcpu.arch.guest_table", why.clone());
                out.refused.insert("vcpu.arch.guest_table_user", why);
                None
            }
        };
        if let Some(k) = kernel {
            // The user L4 lives only in PV vCPUs (those with a kernel L4): arch.pv
            // and arch.hvm share a union, so an HVM vCPU's monitor table may sit at
            // the same place in other vCPUs.
            let pv_only = |o: u64| {
                cx.vcpus().all(|(_, v)| match v.u64(o) {
                    Some(0) | None => true,
                    Some(x) => v.u64(k).is_some_and(|g| g != 0 && g != x),
                })
            };
            let others: Vec<u64> = c.iter().copied().filter(|&o| o != k && pv_only(o)).collect();
            match others.as_slice() {
                [o] => {
                    out.found.insert(
                        "vcpu.arch.guest_table_user",
                        Inference {
                            value: *o,
                            evidence: vec![
                                "0 (or idle_pg_table) in every idle vCPU".into(),
                                l4_txt(*o),
                                "only in vCPUs with a kernel L4 (guest_table), a second L4, never the kernel's".into(),
                            ],
                        },
                    );
                }
                [] => {
                    out.refused.insert(
                        "vcpu.arch.guest_table_user",
                        "no second member names L4s in PV vCPUs (no vCPU ran in user mode?)".into(),
                    );
                }
                many => {
                    out.refused.insert(
                        "vcpu.arch.guest_table_user",
                        format!("ambiguous: members at {} name L4s in PV vCPUs", uniq(many)),
                    );
                }
            }
        }
        GuestTables { named: c, kernel }
    }

    /// Step 9: `vcpu.arch.hvm.monitor_table`.
    pub(super) fn monitor_table(&self, cx: &Listed<'_>, cr3: Option<u64>, tables: &GuestTables, out: &mut Inferred) {
        let (c, kernel) = (&tables.named, tables.kernel);
        let slots = self.slots_text();
        // 9. vcpu.arch.hvm.monitor_table: in vCPUs without a kernel L4 (HVM, PVH),
        //    the frame of the L4 Xen built for them, which their arch.cr3 names.
        match (kernel, cr3) {
            (Some(k), Some(cr3)) => {
                let hvm: Vec<&Obj> = cx.vcpus().filter(|(_, v)| v.u64(k) == Some(0)).map(|(_, v)| v).collect();
                let m: Vec<u64> = c
                    .iter()
                    .copied()
                    .filter(|&o| {
                        o != k
                            && !hvm.is_empty()
                            && cx.vcpus().all(|(_, v)| match v.u64(o) {
                                Some(0) | None => true,
                                Some(x) => v.u64(k) == Some(0) && v.u64(cr3).map(|c| c >> 12) == Some(x),
                            })
                            && hvm.iter().all(|v| v.u64(o).is_some_and(|x| x != 0))
                    })
                    .collect();
                match m.as_slice() {
                    [o] => {
                        out.found.insert(
                            "vcpu.arch.hvm.monitor_table",
                            Inference {
                                value: *o,
                                evidence: vec![
                                    format!(
                                        "each of the {} vCPUs without a kernel L4 (HVM) names here an L4 whose Xen slots {slots} equal idle_pg_table's",
                                        hvm.len()
                                    ),
                                    "it is the L4 in their arch.cr3; 0 in every PV and idle vCPU".into(),
                                ],
                            },
                        );
                    }
                    [] if hvm.is_empty() => {
                        out.refused.insert(
                            "vcpu.arch.hvm.monitor_table",
                            "no HVM vCPU in this dump (every vCPU has a kernel L4)".into(),
                        );
                    }
                    [] => {
                        out.refused.insert(
                            "vcpu.arch.hvm.monitor_table",
                            "no member names, in every HVM vCPU, the Xen-built L4 its arch.cr3 holds".into(),
                        );
                    }
                    many => {
                        out.refused
                            .insert("vcpu.arch.hvm.monitor_table", format!("ambiguous: members at {} fit", uniq(many)));
                    }
                }
            }
            _ => {
                out.refused.insert(
                    "vcpu.arch.hvm.monitor_table",
                    "needs vcpu.arch.guest_table and vcpu.arch.cr3, to tell HVM vCPUs and their root".into(),
                );
            }
        }
    }
}
