//! Stages I–L of the second pass: what each vCPU holds as state: its run state
//! (`runstate.state`, `is_running`), its mode (`arch.flags`) and an HVM vCPU's
//! control registers (`arch.hvm.guest_cr`).

use super::state::{Cx, Kind, decide, refuse};
use super::{Dom, Inferred, Machine, Obj};
use std::collections::BTreeMap;

impl Machine<'_> {
    /// Stage I: `vcpu.runstate.state` in `all` the vCPUs (idle ones included); its
    /// offset when established.
    pub(super) fn runstate(&self, all: &[&Obj], out: &mut Inferred) -> Option<u64> {
        // I. vcpu.runstate.state: struct vcpu_runstate_info (public `vcpu.h`) is
        //    `int state; uint64_t state_entry_time; uint64_t time[4];`: a state 0..3,
        //    then an entry time no earlier than the four times' sum.
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
        decide(
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
        )
    }

    /// Stage J: `vcpu.is_running` in `all` the vCPUs.
    pub(super) fn is_running(&self, all: &[&Obj], runstate: Option<u64>, out: &mut Inferred) {
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
    }

    /// Stage K: `vcpu.arch.flags`.
    pub(super) fn arch_flags(&self, cx: &Cx<'_>, runstate: Option<u64>, out: &mut Inferred) {
        let (gt, gtu, cr3, npv) = (cx.gt, cx.gtu, cx.cr3, cx.npv);
        // K. vcpu.arch.flags: TF_kernel_mode (bit 0) exactly in the PV vCPUs whose
        //    arch.cr3 is their kernel L4.
        match cr3 {
            Some(c3) if npv > 0 => {
                let pv: Vec<&Obj> = cx.of(Kind::Pv).flat_map(|d| d.vcpus.iter().map(|(_, v)| v)).collect();
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
    }

    /// Stage L: `vcpu.arch.hvm.guest_cr`.
    pub(super) fn guest_cr(&self, cx: &Cx<'_>, out: &mut Inferred) {
        // L. vcpu.arch.hvm.guest_cr[5]: CR0 with PE and PG, CR4 with PAE, and the
        //    guest_efer that follows with LME and LMA, in every HVM vCPU in long mode;
        //    guest_cr[3] is a gfn the domain's p2m maps to a frame the M2P maps back.
        let hv: Vec<(&Dom, &Obj)> = cx.of(Kind::Hvm).flat_map(|d| d.vcpus.iter().map(move |(_, v)| (d, v))).collect();
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
