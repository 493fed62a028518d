//! Steps 1–4 of inference: the links between the idle domain, the listed domains
//! and their vCPUs (`vcpu.domain`, `domain.vcpu`, `domain.next_in_list`), and what
//! each domain says of itself (`domain_id`, `max_vcpus`).

use super::{
    COVERED, DOMID_FIRST_RESERVED, DOMID_IDLE, Dom, Inference, Inferred, MAX_CHAIN, MAX_TOTAL_VCPUS, MAX_VCPUS,
    Machine, Obj, uniq,
};
use crate::addr::Vaddr;

/// The members that link a domain and its vCPUs, as step 1 found them.
#[derive(Clone, Copy)]
pub(super) struct Links {
    /// `vcpu.domain`.
    vcpu_domain: u64,
    /// `domain.vcpu`: the domain's array of vCPU pointers.
    domain_vcpu: u64,
}

impl Machine<'_> {
    /// Step 1: `vcpu.domain` and `domain.vcpu`, and the idle domain they lead to.
    /// `None` when inference can go no further (every key then has its refusal).
    pub(super) fn links(&self, out: &mut Inferred) -> Option<(Links, Obj)> {
        let n = self.idle.len() as u64;
        // 1. vcpu.domain and domain.vcpu, together: every idle vCPU points at one
        //    page (the idle domain), whose vcpu member is &idle_vcpu.
        let mut pairs = Vec::new();
        for k in (0..4096).step_by(8) {
            let Some(p) = self.idle[0].u64(k) else { break };
            if p == 0 || self.idle.iter().any(|v| v.u64(k) != Some(p) || v.va.0 == p) {
                continue;
            }
            let Some(d) = self.object(p) else { continue };
            for k2 in (0..d.len()).step_by(8) {
                if d.u64(k2) == Some(self.idle_vcpu_sym) {
                    pairs.push((k, k2, p));
                }
            }
        }
        // With a domain on domain_list, its vCPU array must point back at it too.
        if let Some(h) = &self.head {
            pairs.retain(|&(k, k2, _)| {
                h.u64(k2)
                    .and_then(|a| self.xen.read_va_u64(self.mem, Some(self.idle_root), Vaddr(a)).ok())
                    .is_some_and(|v0| v0 != 0 && self.object(v0).is_some_and(|v| v.u64(k) == Some(h.va.0)))
            });
        }
        let (vcpu_domain, domain_vcpu, idle_dom) = match pairs.as_slice() {
            [(k, k2, p)] => (*k, *k2, *p),
            [] => {
                let why = format!(
                    "no member of the {n} idle vCPUs points at one page whose own member holds &idle_vcpu ({:#x})",
                    self.idle_vcpu_sym
                );
                for key in COVERED {
                    out.refused.insert(key, why.clone());
                }
                return None;
            }
            many => {
                let why = format!(
                    "ambiguous: {} (vcpu.domain, domain.vcpu) pairs fit: {}",
                    many.len(),
                    many.iter().map(|(a, b, _)| format!("({a}, {b})")).collect::<Vec<_>>().join(", ")
                );
                for key in COVERED {
                    out.refused.insert(key, why.clone());
                }
                return None;
            }
        };
        let head_txt =
            if self.head.is_some() { "; domain_list's first domain: its vCPU 0 points back at it" } else { "" };
        out.found.insert(
            "vcpu.domain",
            Inference {
                value: vcpu_domain,
                evidence: vec![
                    format!("all {n} idle vCPUs hold the same heap page {idle_dom:#x} here (the idle domain)"),
                    format!("that page holds &idle_vcpu at +{domain_vcpu} (idle_domain->vcpu = idle_vcpu){head_txt}"),
                ],
            },
        );
        out.found.insert(
            "domain.vcpu",
            Inference {
                value: domain_vcpu,
                evidence: vec![
                    format!("the idle domain {idle_dom:#x} holds &idle_vcpu here, at no other offset"),
                    format!("idle_vcpu[*] point at that domain from +{vcpu_domain}{head_txt}"),
                ],
            },
        );
        let idle_dom = self.object(idle_dom)?;
        Some((Links { vcpu_domain, domain_vcpu }, idle_dom))
    }

    /// The vCPUs of a domain object, through domain.vcpu; `count` entries.
    fn vcpus_of(&self, links: Links, d: &Obj, count: u64) -> Option<Vec<(u64, Obj)>> {
        let Links { vcpu_domain, domain_vcpu } = links;
        let a = d.u64(domain_vcpu)?;
        let mut v = Vec::new();
        for i in 0..count.min(MAX_VCPUS) {
            let p = self.xen.read_va_u64(self.mem, Some(self.idle_root), Vaddr(a + i * 8)).ok()?;
            if p == 0 {
                continue;
            }
            let o = self.object(p)?;
            if o.u64(vcpu_domain) != Some(d.va.0) {
                return None;
            }
            v.push((i, o));
        }
        Some(v)
    }

    /// A struct domain: its vCPU 0 points back at it.
    fn is_domain(&self, links: Links, d: &Obj) -> bool {
        self.vcpus_of(links, d, 1).is_some_and(|v| !v.is_empty())
    }

    /// Step 2: `domain.next_in_list`, and the domains listed from `domain_list` (the
    /// first alone when the member is refused).
    pub(super) fn domain_list(&self, links: Links, out: &mut Inferred) -> Vec<Obj> {
        let Links { vcpu_domain, domain_vcpu } = links;
        let is_domain = |d: &Obj| self.is_domain(links, d);
        // 2. domain.next_in_list: from domain_list, a chain of domains ending in NULL.
        let mut doms: Vec<Obj> = Vec::new();
        if let Some(h) = &self.head {
            let mut chains: Vec<(u64, Vec<u64>)> = Vec::new();
            let mut lone = 0;
            for k in (0..h.len()).step_by(8) {
                if k == domain_vcpu {
                    continue;
                }
                let mut chain = vec![h.va.0];
                let mut cur = h.u64(k);
                let ok = loop {
                    match cur {
                        Some(0) => break true,
                        Some(p) if chain.len() < MAX_CHAIN && !chain.contains(&p) => match self.object(p) {
                            Some(o) if is_domain(&o) => {
                                chain.push(p);
                                cur = o.u64(k);
                            }
                            _ => break false,
                        },
                        _ => break false,
                    }
                };
                if ok && chain.len() >= 2 {
                    chains.push((k, chain));
                } else if ok {
                    lone += 1;
                }
            }
            match chains.as_slice() {
                [(k, chain)] => {
                    out.found.insert(
                        "domain.next_in_list",
                        Inference {
                            value: *k,
                            evidence: vec![
                                format!(
                                    "from domain_list it links {} distinct heap pages and ends in NULL",
                                    chain.len()
                                ),
                                format!(
                                    "each is a struct domain: its vCPU 0 points back at it (+{vcpu_domain}); no other member links two"
                                ),
                            ],
                        },
                    );
                    doms = chain.iter().filter_map(|&p| self.object(p)).collect();
                }
                [] => {
                    out.refused.insert(
                        "domain.next_in_list",
                        format!(
                            "domain_list holds one domain: its next_in_list is NULL, like {lone} other pointer members (needs a second domain, or VMCOREINFO_XEN)"
                        ),
                    );
                    // Every candidate ends the list here, so the list is this one domain.
                    doms = self.object(h.va.0).into_iter().collect();
                }
                many => {
                    out.refused.insert(
                        "domain.next_in_list",
                        format!(
                            "ambiguous: members at {} each link domains",
                            uniq(&many.iter().map(|c| c.0).collect::<Vec<_>>())
                        ),
                    );
                    doms = self.object(h.va.0).into_iter().collect();
                }
            }
        } else {
            out.refused.insert("domain.next_in_list", "domain_list is empty".into());
        }
        doms
    }

    /// Step 3: `domain.domain_id`.
    pub(super) fn domain_id(&self, idle_dom: &Obj, doms: &[Obj], out: &mut Inferred) {
        // 3. domain.domain_id: DOMID_IDLE in the idle domain; listed ids increase.
        if doms.is_empty() {
            out.refused.insert(
                "domain.domain_id",
                "only the idle domain exists: DOMID_IDLE alone is one invariant, not two".into(),
            );
        } else {
            let c: Vec<u64> = (0..idle_dom.len())
                .step_by(2)
                .filter(|&o| {
                    idle_dom.u16(o) == Some(DOMID_IDLE) && {
                        let ids: Vec<Option<u64>> = doms.iter().map(|d| d.u16(o)).collect();
                        ids.iter().all(|i| i.is_some_and(|i| i < DOMID_FIRST_RESERVED))
                            && ids.windows(2).all(|w| w[0] < w[1])
                    }
                })
                .collect();
            match c.as_slice() {
                [o] => {
                    out.found.insert(
                        "domain.domain_id",
                        Inference {
                            value: *o,
                            evidence: vec![
                                "the idle domain holds DOMID_IDLE (0x7fff) here".into(),
                                format!(
                                    "the {} listed domain(s) hold ids below DOMID_FIRST_RESERVED, increasing along domain_list ({})",
                                    doms.len(),
                                    doms.iter().filter_map(|d| d.u16(*o)).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                                ),
                            ],
                        },
                    );
                }
                [] => {
                    out.refused.insert(
                        "domain.domain_id",
                        "no u16 member holds DOMID_IDLE in the idle domain and valid ids in the listed ones".into(),
                    );
                }
                many => {
                    out.refused.insert("domain.domain_id", format!("ambiguous: u16 members at {} fit", uniq(many)));
                }
            }
        }
    }

    /// Step 4: `domain.max_vcpus`, its offset when established.
    pub(super) fn max_vcpus(&self, links: Links, idle_dom: &Obj, doms: &[Obj], out: &mut Inferred) -> Option<u64> {
        let vcpus_of = |d: &Obj, count: u64| self.vcpus_of(links, d, count);
        // 4. domain.max_vcpus: nr_cpu_ids in the idle domain; each listed domain's
        //    vCPU array holds that many slots of its own vCPUs.
        let want = self.nr_cpus();
        let c: Vec<u64> = (0..idle_dom.len())
            .step_by(4)
            .filter(|&o| {
                idle_dom.u32(o) == Some(want)
                    && doms.iter().all(|d| {
                        d.u32(o).is_some_and(|m| {
                            (1..=MAX_VCPUS).contains(&m)
                                && vcpus_of(d, m).is_some_and(|v| v.first().is_some_and(|(i, _)| *i == 0))
                        })
                    })
            })
            .collect();
        match c.as_slice() {
            [o] => {
                let mut evidence = vec![format!(
                    "the idle domain holds nr_cpu_ids ({want}) here (idle_domain->max_vcpus = nr_cpu_ids)"
                )];
                if doms.is_empty() {
                    evidence.push(format!("no other u32 member of the idle domain holds {want}"));
                    // One invariant only: say so rather than claim two.
                    out.refused.insert(
                        "domain.max_vcpus",
                        format!("only the idle domain exists: {want} at +{o} is one invariant, not two"),
                    );
                    None
                } else {
                    evidence.push(format!(
                        "each listed domain's vCPU array holds that many slots of vCPUs that point back at it ({})",
                        doms.iter().filter_map(|d| d.u32(*o)).map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    out.found.insert("domain.max_vcpus", Inference { value: *o, evidence });
                    Some(*o)
                }
            }
            [] => {
                out.refused.insert(
                    "domain.max_vcpus",
                    format!("no u32 member holds nr_cpu_ids ({want}) in the idle domain and a vCPU count in every listed one"),
                );
                None
            }
            many => {
                out.refused.insert("domain.max_vcpus", format!("ambiguous: u32 members at {} fit", uniq(many)));
                None
            }
        }
    }

    /// The listed domains with their vCPUs (all of them when max_vcpus is known,
    /// else vCPU 0 alone).
    pub(super) fn with_vcpus(&self, links: Links, doms: Vec<Obj>, max_vcpus: Option<u64>) -> Vec<Dom> {
        // Every vCPU is kept as a page: a hostile dump (thousands of domains of
        // 8192 vCPUs) must not make that unbounded, so the whole machine's vCPUs
        // share one budget and the domains past it are read with vCPU 0 alone.
        let mut budget = MAX_TOTAL_VCPUS;
        doms.into_iter()
            .map(|d| {
                let count = max_vcpus.and_then(|o| d.u32(o)).unwrap_or(1).min(budget.max(1));
                let vcpus = self.vcpus_of(links, &d, count).unwrap_or_default();
                budget = budget.saturating_sub(count);
                Dom { obj: d, vcpus }
            })
            .collect()
    }
}
