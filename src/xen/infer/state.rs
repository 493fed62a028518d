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
//!
//! The stages live beside the facts they read: the frame table and page counts in
//! `frames.rs` (A–D), the domain's flags and p2m in `domain_state.rs` (E–H), the
//! vCPUs' states in `vcpu_state.rs` (I–L).

use super::{Dom, Inference, Inferred, Machine, Obj, uniq};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Pv,
    Hvm,
    /// No vCPU to tell by.
    Unknown,
}

/// What every stage reads: the domains, the kind the first pass tells each by, and
/// the vCPU members it placed.
pub(super) struct Cx<'a> {
    pub(super) idle_dom: &'a Obj,
    pub(super) doms: &'a [Dom],
    /// `vcpu.arch.guest_table`, `guest_table_user`, `arch.cr3`.
    pub(super) gt: u64,
    pub(super) gtu: Option<u64>,
    pub(super) cr3: Option<u64>,
    /// Each listed domain's kind, in `doms`' order.
    kinds: Vec<Kind>,
    /// How many PV and HVM domains there are.
    pub(super) npv: usize,
    pub(super) nhvm: usize,
    /// The ids of the PV and of the HVM domains, `, `-separated.
    pub(super) pv_ids: String,
    pub(super) hvm_ids: String,
}

impl<'a> Cx<'a> {
    /// The listed domains of kind `k`.
    pub(super) fn of(&self, k: Kind) -> impl Iterator<Item = &'a Dom> {
        of_kind(self.doms, &self.kinds, k)
    }
}

/// The domains of `doms` whose kind (in `kinds`, in the same order) is `k`.
fn of_kind<'d>(doms: &'d [Dom], kinds: &[Kind], k: Kind) -> impl Iterator<Item = &'d Dom> {
    doms.iter().zip(kinds).filter(move |(_, kk)| **kk == k).map(|(d, _)| d)
}

/// The decision for one key from its candidates: one wins; or a refusal.
pub(super) fn decide(
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

pub(super) fn refuse(out: &mut Inferred, keys: &[&'static str], why: &str) {
    for k in keys {
        out.refused.insert(k, why.to_string());
    }
}

pub(super) fn list(v: impl IntoIterator<Item = u64>) -> String {
    v.into_iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

impl Machine<'_> {
    pub(super) fn found(out: &Inferred, key: &str) -> Option<u64> {
        out.found.get(key).map(|i| i.value)
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
        let of = |k: Kind| of_kind(doms, &kinds, k);
        let (npv, nhvm) = (of(Kind::Pv).count(), of(Kind::Hvm).count());
        let ids = |ds: &mut dyn Iterator<Item = &Dom>| -> String {
            let idk = Self::found(out, "domain.domain_id");
            list(ds.filter_map(|d| idk.and_then(|o| d.obj.u16(o))))
        };
        let pv_ids = ids(&mut of(Kind::Pv));
        let hvm_ids = ids(&mut of(Kind::Hvm));
        let cx = Cx { idle_dom, doms, gt, gtu, cr3, kinds, npv, nhvm, pv_ids, hvm_ids };

        // A.–D. (frames.rs) The frame table, what each domain owns by it, the counts
        //    that must agree, shared_info.
        let ft = self.frame_table(&cx, out);
        let owned = ft.and_then(|ft| self.frame_pass(&cx, ft));
        self.page_counts(&cx, owned.as_ref(), out);
        self.shared_info(&cx, ft, out);

        // E.–H. (domain_state.rs) Flags, emulations, is_32bit, the p2m.
        let options = self.options(&cx, out);
        self.emulation_flags(&cx, options, out);
        self.is_32bit(&cx, owned.as_ref(), out);
        self.p2m(&cx, out);

        // I.–L. (vcpu_state.rs) Run state, mode, control registers; the first two
        //    read every vCPU, the idle ones first.
        let all: Vec<&Obj> = self.idle.iter().chain(doms.iter().flat_map(|d| d.vcpus.iter().map(|(_, v)| v))).collect();
        let runstate = self.runstate(&all, out);
        self.is_running(&all, runstate, out);
        self.arch_flags(&cx, runstate, out);
        self.guest_cr(&cx, out);
    }
}
