//! `xenwalk p2m`: a domain's p2m in a whole-machine dump (a PV guest's list checked
//! against the M2P; an HVM guest's EPT or NPT), or a PV guest's p2m from its
//! `xl dump-core` core alone.

use super::OutputArgs;
use super::xen::xen_of;
use super::{DumpArgs, Session};
use crate::addr::{Mfn, Pfn};
use crate::mem::xlcore::{GuestKind, XlCore};
use crate::parse;
use crate::render::json::P2mLine as CoreP2mLine;
use crate::xen::p2m::{P2mRun, RunCoalescer};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// A run of pfns whose mfns are consecutive too.
fn runs(core: &XlCore) -> impl Iterator<Item = (Pfn, Mfn, u64)> + '_ {
    let mut it = core.p2m().peekable();
    std::iter::from_fn(move || {
        let (p0, m0) = it.next()?;
        let mut n = 1u64;
        while let Some(&(p, m)) = it.peek() {
            if p.0 != p0.0 + n || m.0 != m0.0.wrapping_add(n) {
                break;
            }
            n += 1;
            it.next();
        }
        Some((p0, m0, n))
    })
}

/// What `xenwalk p2m` is asked on an xl dump-core core.
pub(super) struct CoreP2mArgs<'a> {
    pub frames: &'a [u64],
    pub mfn: bool,
    pub json: bool,
}

/// `xenwalk p2m CORE [FRAME...] [--mfn]`: the p2m of an xl dump-core core.
pub(super) fn run(s: &Session, core: &XlCore, a: CoreP2mArgs<'_>) -> Result<ExitCode> {
    let path = s.dump.path.display();
    if core.kind() == GuestKind::Hvm {
        bail!(
            "{path}: an HVM guest core records guest-physical frames only (.xen_pfn): it has no machine frames, \
             so no p2m (walks of it are in guest-physical addresses)"
        );
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if a.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
    let mut missing = false;
    if a.frames.is_empty() {
        for (pfn, mfn, pages) in runs(core) {
            if a.json {
                serde_json::to_writer(&mut out, &CoreP2mLine::found(pfn, mfn, pages))?;
                writeln!(out)?;
            } else if pages == 1 {
                writeln!(out, "pfn {pfn} -> mfn {mfn}")?;
            } else {
                writeln!(
                    out,
                    "pfn {pfn}-{:#x} -> mfn {mfn}-{:#x}  ({pages} pages)",
                    pfn.0 + pages - 1,
                    mfn.0 + pages - 1
                )?;
            }
        }
    }
    for &f in a.frames {
        let r = if a.mfn {
            core.mfn_to_pfn(Mfn(f)).map(|p| (p, Mfn(f)))
        } else {
            core.pfn_to_mfn(Pfn(f)).map(|m| (Pfn(f), m))
        };
        let what = if a.mfn { "mfn" } else { "pfn" };
        match r {
            Ok((pfn, mfn)) if a.json => serde_json::to_writer(&mut out, &CoreP2mLine::found(pfn, mfn, 1))?,
            Ok((pfn, mfn)) if a.mfn => write!(out, "mfn {mfn} -> pfn {pfn}")?,
            Ok((pfn, mfn)) => write!(out, "pfn {pfn} -> mfn {mfn}")?,
            Err(e) => {
                missing = true;
                if a.json {
                    serde_json::to_writer(&mut out, &CoreP2mLine::missing(f, a.mfn, e.to_string()))?;
                } else {
                    write!(out, "{what} {f:#x}: {e}")?;
                }
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if missing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

// The p2m of a domain in a whole-machine dump.

#[derive(Args, Debug)]
pub struct P2mArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    /// Guest frame numbers (hex); with --mfn on a guest core, machine frames. None:
    /// the whole p2m as ranges.
    #[arg(value_parser = parse::hex_u64)]
    pub pfn: Vec<u64>,
    /// The domain (id); needed for a whole-machine dump.
    #[arg(long, value_name = "D")]
    pub domain: Option<u16>,
    /// On an xl dump-core core: the frames are machine frames, answer mfn -> pfn.
    #[arg(long)]
    pub mfn: bool,
    /// Also check the reverse direction over every frame the domain owns (frame table
    /// owner → M2P → p2m).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct P2mLine {
    #[serde(rename = "type")]
    kind: &'static str,
    pfn: crate::addr::Pfn,
    entry: Option<crate::xen::p2m::P2mEntry>,
    error: Option<String>,
    m2p: Option<crate::xen::p2m::M2pEntry>,
    agree: Option<bool>,
}

#[derive(Serialize)]
struct P2mRangeLine {
    #[serde(rename = "type")]
    kind: &'static str,
    pfn: crate::addr::Pfn,
    /// First mfn (null for invalid runs).
    mfn: Option<crate::addr::Mfn>,
    count: u64,
    /// `ram`, `identity`, `foreign`, `invalid` or `unreadable`.
    entry_kind: &'static str,
}

/// Writes the library's coalesced p2m runs ([`RunCoalescer`]) as each closes; the
/// first write error is kept for `finish`, so it can be fed from callbacks that
/// cannot fail.
struct Runs<'o, W: Write> {
    out: &'o mut W,
    json: bool,
    /// `pfn` (PV) or `gfn` (HVM) in human output.
    label: &'static str,
    runs: RunCoalescer,
    err: Option<io::Error>,
}

impl<'o, W: Write> Runs<'o, W> {
    fn new(out: &'o mut W, json: bool, label: &'static str) -> Self {
        Runs { out, json, label, runs: RunCoalescer::default(), err: None }
    }

    /// `count` frames from `first`, mapped from `mfn` on (or to none).
    fn push(&mut self, first: u64, mfn: Option<crate::addr::Mfn>, kind: &'static str, count: u64) {
        if let Some(r) = self.runs.push(first, mfn, kind, count) {
            self.write(r);
        }
    }

    fn write(&mut self, r: P2mRun) {
        if self.err.is_some() {
            return;
        }
        let last = r.first + r.count - 1;
        let res = if self.json {
            let line = P2mRangeLine {
                kind: "p2m_range",
                pfn: crate::addr::Pfn(r.first),
                mfn: r.mfn,
                count: r.count,
                entry_kind: r.kind,
            };
            serde_json::to_writer(&mut *self.out, &line).map_err(io::Error::from).and_then(|()| writeln!(self.out))
        } else {
            match r.mfn {
                Some(m) => writeln!(
                    self.out,
                    "{l} {:#x}-{last:#x} -> mfn {:#x}-{:#x}  {} pages  {}",
                    r.first,
                    m.0,
                    m.0 + r.count - 1,
                    r.count,
                    r.kind,
                    l = self.label
                ),
                None => writeln!(self.out, "{} {:#x}-{last:#x}  {} pages  {}", self.label, r.first, r.count, r.kind),
            }
        };
        self.err = res.err();
    }

    /// Write the last run; the first write error, if any.
    fn finish(mut self) -> io::Result<()> {
        if let Some(r) = self.runs.finish() {
            self.write(r);
        }
        self.err.map_or(Ok(()), Err)
    }
}

#[derive(Serialize)]
struct AltCheck {
    #[serde(flatten)]
    source: crate::xen::p2m::P2mSource,
    differing: u64,
}

#[derive(Serialize, Default)]
struct P2mSummary {
    #[serde(rename = "type")]
    kind: &'static str,
    domain: u16,
    max_pfn: u64,
    source: Option<crate::xen::p2m::P2mSource>,
    ram: u64,
    invalid: u64,
    identity: u64,
    foreign: u64,
    unreadable: u64,
    /// p2m → M2P: frames whose M2P entry is not their pfn.
    m2p_mismatches: u64,
    /// M2P → p2m over the domain's own frames (with --check).
    reverse_checked: Option<u64>,
    reverse_mismatches: Option<u64>,
    /// With --check: the frame the reverse check stopped at, when `max_page` lies
    /// past the dump's last present frame (null when it covered all of max_page).
    reverse_limit: Option<u64>,
    /// Xen-heap frames the domain owns (shared info, grant frames), not checked.
    xen_heap_frames: u64,
    /// Other p2m sources compared entry by entry (with --check).
    alternatives_checked: Vec<AltCheck>,
    mismatch_examples: Vec<String>,
}

pub(super) fn p2m(a: P2mArgs, ui: super::Ui) -> Result<ExitCode> {
    use crate::xen::p2m::{M2p, M2pEntry, P2mEntry, PvP2m};
    let s = a.input.open(ui)?;
    let path = s.dump.path.display().to_string();
    if let Some(core) = s.dump.guest_core() {
        if a.domain.is_some() || a.check {
            bail!("{path}: an xl dump-core core holds one guest: --domain and --check apply to whole-machine dumps");
        }
        return run(&s, core, CoreP2mArgs { frames: &a.pfn, mfn: a.mfn, json: a.output.json });
    }
    if a.mfn {
        bail!("{path}: --mfn answers mfn -> pfn from an xl dump-core core; on a whole machine, `xenwalk m2p` does");
    }
    let Some(domain) = a.domain else {
        bail!(
            "{path}: p2m of a whole-machine dump needs --domain D and --xen-syms (`xenwalk domains` lists the domains); \
             without them p2m reads an xl dump-core guest core"
        );
    };
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let f = crate::xen::domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
    let all = crate::xen::domains::domains(&f).map_err(|e| anyhow::anyhow!("{path}: {}", super::domain_error(&e)))?;
    let Some(d) = all.domains.iter().find(|d| d.id == domain && d.kind != crate::xen::domains::DomKind::Idle) else {
        bail!("{path}: --domain {}: no such domain", domain);
    };
    if !d.kind.is_pv() {
        return hvm_p2m(&a, &s, &f, d);
    }
    let crash_fll = if d.id == 0 {
        s.dump.notes.xen_crash_info.as_ref().and_then(|c| c.dom0_pfn_to_mfn_frame_list_list)
    } else {
        None
    };
    let p2m = PvP2m::open(&f, d.shared_info, crash_fll).map_err(|e| anyhow::anyhow!("{path}: domain {}: {e}", d.id))?;
    let root = x.idle_root().context("the M2P is read through idle_pg_table: pass --xen-syms")?;
    let m2p = M2p::new(x, mem, root);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
    if !a.pfn.is_empty() {
        let mut ok = true;
        for pfn in &a.pfn {
            let pfn = crate::addr::Pfn(*pfn);
            let e = p2m.get(pfn);
            let m = e.as_ref().ok().and_then(|e| e.mfn()).map(|mfn| m2p.get(mfn));
            let agree = m.as_ref().and_then(|r| r.as_ref().ok()).map(|m| *m == M2pEntry::Pfn(pfn));
            ok &= e.is_ok() && agree != Some(false);
            if a.output.json {
                let line = P2mLine {
                    kind: "p2m",
                    pfn,
                    entry: e.as_ref().ok().copied(),
                    error: e.as_ref().err().map(ToString::to_string),
                    m2p: m.and_then(|r| r.ok()),
                    agree,
                };
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            } else {
                match (&e, agree) {
                    (Ok(P2mEntry::Mfn(mfn)), Some(true)) => writeln!(out, "pfn {pfn}: mfn {:#x} (M2P agrees)", mfn.0)?,
                    (Ok(P2mEntry::Mfn(mfn)), _) => writeln!(
                        out,
                        "pfn {pfn}: mfn {:#x}, but M2P[mfn] is {:?}: MISMATCH",
                        mfn.0,
                        m.and_then(|r| r.ok())
                    )?,
                    (Ok(other), _) => writeln!(out, "pfn {pfn}: {other:?}")?,
                    (Err(err), _) => writeln!(out, "pfn {pfn}: {err}")?,
                }
            }
        }
        out.flush()?;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    // The whole p2m, streamed as runs, checked against the M2P as it goes.
    let mut sum = P2mSummary {
        kind: "p2m_summary",
        domain: d.id,
        max_pfn: p2m.max_pfn,
        source: Some(p2m.source.clone()),
        ..Default::default()
    };
    let kind_of = |e: &Result<P2mEntry, crate::xen::p2m::P2mError>| match e {
        Ok(P2mEntry::Mfn(_)) => "ram",
        Ok(P2mEntry::Identity(_)) => "identity",
        Ok(P2mEntry::Foreign(_)) => "foreign",
        Ok(P2mEntry::Invalid) => "invalid",
        Err(_) => "unreadable",
    };
    let mfn_of = |e: &Result<P2mEntry, crate::xen::p2m::P2mError>| match e {
        Ok(P2mEntry::Mfn(m) | P2mEntry::Identity(m) | P2mEntry::Foreign(m)) => Some(*m),
        _ => None,
    };
    let mut runs = Runs::new(&mut out, a.output.json, "pfn");
    for pfn in 0..p2m.max_pfn {
        let e = p2m.get(crate::addr::Pfn(pfn));
        let k = kind_of(&e);
        match k {
            "ram" => sum.ram += 1,
            "identity" => sum.identity += 1,
            "foreign" => sum.foreign += 1,
            "invalid" => sum.invalid += 1,
            _ => sum.unreadable += 1,
        }
        if let Ok(P2mEntry::Mfn(mfn)) = &e {
            match m2p.get(*mfn).map_err(|e| e.to_string()) {
                Ok(M2pEntry::Pfn(p)) if p.0 == pfn => {}
                other => {
                    sum.m2p_mismatches += 1;
                    if sum.mismatch_examples.len() < 16 {
                        sum.mismatch_examples.push(format!("pfn {pfn:#x} -> mfn {:#x}, but M2P says {other:?}", mfn.0));
                    }
                }
            }
        }
        runs.push(pfn, mfn_of(&e), k, 1);
    }
    runs.finish()?;
    if a.check {
        // M2P → p2m over every frame the domain owns (frame table), up to max_page.
        let max_page = x.read_sym_u64(mem, "max_page").context("max_page unreadable")?;
        // The dump bounds the work, never max_page: a frame past the dump's last
        // present byte has no page to check, and a hostile max_page (2^40) must not
        // mean 2^40 frame-table reads.
        let top = mem.extents().iter().filter(|e| e.present).map(|e| (e.start.0 + e.len).div_ceil(4096)).max();
        let limit = max_page.min(top.unwrap_or(0));
        if limit < max_page {
            sum.reverse_limit = Some(limit);
        }
        let (mut checked, mut bad) = (0u64, 0u64);
        for mfn in 0..limit {
            let mfn = crate::addr::Mfn(mfn);
            let o = match crate::xen::p2m::page_owner(&f, mfn) {
                Ok(o) => o,
                // A frame-table page the dump lacks: that frame cannot be checked.
                Err(crate::xen::domains::DomainError::Read(_)) => continue,
                // Anything else (an offset or size no source knows) fails for every
                // frame: said, never counted as "not the domain's".
                Err(e) => anyhow::bail!("{path}: --check: the frame table: {}", super::domain_error(&e)),
            };
            if o.owner != Some(d.addr) {
                continue;
            }
            // Xen-heap frames shared with the guest (shared info, grant frames) have
            // no guest pfn in the M2P: not part of the guest's own memory.
            if o.count_info >> 62 & 1 != 0 {
                sum.xen_heap_frames += 1;
                continue;
            }
            checked += 1;
            let good = match m2p.get(mfn) {
                Ok(M2pEntry::Pfn(p)) => p2m.get(p).ok().and_then(|e| e.mfn()) == Some(mfn),
                _ => false,
            };
            if !good {
                bad += 1;
                if sum.mismatch_examples.len() < 32 {
                    sum.mismatch_examples.push(format!(
                        "mfn {:#x} (owned by domain {}): M2P says {:?}, p2m does not map it back",
                        mfn.0,
                        d.id,
                        m2p.get(mfn).map_err(|e| e.to_string())
                    ));
                }
            }
        }
        sum.reverse_checked = Some(checked);
        sum.reverse_mismatches = Some(bad);
        // Every other source the guest publishes must say the same.
        for alt in &p2m.alternatives {
            let mut differ = 0u64;
            for pfn in 0..p2m.max_pfn {
                let pfn = crate::addr::Pfn(pfn);
                if p2m.raw(pfn).ok() != p2m.raw_via(alt, pfn).ok() {
                    differ += 1;
                    if sum.mismatch_examples.len() < 48 {
                        sum.mismatch_examples.push(format!(
                            "pfn {pfn}: {} says {:?}, {alt} says {:?}",
                            p2m.source,
                            p2m.raw(pfn).map_err(|e| e.to_string()),
                            p2m.raw_via(alt, pfn).map_err(|e| e.to_string())
                        ));
                    }
                }
            }
            sum.alternatives_checked.push(AltCheck { source: alt.clone(), differing: differ });
        }
    }
    let consistent = sum.m2p_mismatches == 0
        && sum.reverse_mismatches.unwrap_or(0) == 0
        && sum.unreadable == 0
        && sum.alternatives_checked.iter().all(|c| c.differing == 0);
    if a.output.json {
        serde_json::to_writer(&mut out, &sum)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "summary: domain {} max_pfn {:#x} via {}: {} ram, {} invalid, {} identity, {} foreign, {} unreadable; p2m->M2P mismatches {}{}",
            d.id,
            sum.max_pfn,
            p2m.source,
            sum.ram,
            sum.invalid,
            sum.identity,
            sum.foreign,
            sum.unreadable,
            sum.m2p_mismatches,
            match (sum.reverse_checked, sum.reverse_mismatches) {
                (Some(c), Some(b)) => format!(
                    "; M2P->p2m over the domain's {c} frames: {b} mismatches ({} Xen-heap frames it owns not checked)",
                    sum.xen_heap_frames
                ),
                _ => String::new(),
            }
        )?;
        if let Some(l) = sum.reverse_limit {
            writeln!(
                out,
                "  M2P->p2m stopped at frame {l:#x}, the dump's last: max_page says more, which the dump cannot hold"
            )?;
        }
        for c in &sum.alternatives_checked {
            writeln!(out, "  also published: {}: {} of {} entries differ", c.source, c.differing, sum.max_pfn)?;
        }
        for e in &sum.mismatch_examples {
            writeln!(out, "  mismatch: {e}")?;
        }
    }
    out.flush()?;
    Ok(if consistent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Serialize)]
struct EptLevelJson {
    level: u8,
    index: u16,
    entry_maddr: crate::addr::Maddr,
    #[serde(serialize_with = "crate::addr::hex")]
    entry: u64,
    flags: Vec<String>,
}

#[derive(Serialize)]
struct HvmP2mLine {
    #[serde(rename = "type")]
    kind: &'static str,
    gfn: crate::addr::Gfn,
    mfn: Option<crate::addr::Mfn>,
    page_size: Option<u64>,
    p2m_type: Option<&'static str>,
    stop: Option<String>,
    /// The host p2m's entries, top down (EPT only).
    ept: Vec<EptLevelJson>,
}

/// An HVM/PVH domain's p2m: Xen's own EPT (or x86 table).
fn hvm_p2m(
    a: &P2mArgs,
    s: &Session,
    f: &crate::xen::domains::Fields<'_>,
    d: &crate::xen::domains::DomainInfo,
) -> Result<ExitCode> {
    use crate::xen::hvm::HostP2m;
    let path = s.dump.path.display().to_string();
    let p2m = HostP2m::of(f, d).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let minor = f.xen.layout().minor;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
    if !a.pfn.is_empty() {
        let mut ok = true;
        for &g in &a.pfn {
            let gfn = crate::addr::Gfn(g);
            let (hit, ept) = match &p2m {
                HostP2m::Ept(e) => {
                    let w = e.walk(gfn);
                    let steps = w
                        .steps
                        .iter()
                        .map(|st| EptLevelJson {
                            level: st.level,
                            index: st.index,
                            entry_maddr: st.entry_maddr,
                            entry: st.entry,
                            flags: crate::paging::ept::EptEntry(st.entry).flag_names(st.level, minor),
                        })
                        .collect();
                    (p2m.translate(gfn), steps)
                }
                HostP2m::Pt { .. } => (p2m.translate(gfn), Vec::new()),
            };
            ok &= hit.mfn.is_some();
            let line = HvmP2mLine {
                kind: "hvm_p2m",
                gfn,
                mfn: hit.mfn,
                page_size: None,
                p2m_type: hit.p2m_type,
                stop: hit.stop.clone(),
                ept,
            };
            if a.output.json {
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            } else {
                match (hit.mfn, &hit.stop) {
                    (Some(m), _) => {
                        writeln!(out, "gfn {:#x}: mfn {:#x} ({}, {})", g, m.0, hit.p2m_type.unwrap_or("?"), p2m.kind())?
                    }
                    (None, Some(why)) => writeln!(out, "gfn {g:#x}: no mfn: {why}")?,
                    (None, None) => writeln!(out, "gfn {g:#x}: no mfn")?,
                }
                for st in &line.ept {
                    writeln!(
                        out,
                        "  EPT L{} [{:#x}] at {} = {:#018x}  {}",
                        st.level,
                        st.index,
                        st.entry_maddr,
                        st.entry,
                        st.flags.join(" ")
                    )?;
                }
            }
        }
        out.flush()?;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    // Every leaf in gfn order, coalesced into runs of one type with contiguous mfns.
    let (mut mapped, mut other) = (0u64, 0u64);
    let mut runs = Runs::new(&mut out, a.output.json, "gfn");
    let mut push = |gfn: crate::addr::Gfn, mfn: Option<crate::addr::Mfn>, kind: &'static str, frames: u64| {
        if mfn.is_some() && kind != "misconfigured" {
            mapped += frames;
        } else {
            other += frames;
        }
        runs.push(gfn.0, mfn, kind, frames);
    };
    let listed = p2m
        .leaves(|l| push(l.gfn, l.mfn, l.kind, l.frames))
        .map_err(|e| anyhow::anyhow!("{path}: domain {}: the p2m's root: {e}", d.id))?;
    let root_desc = match &p2m {
        HostP2m::Ept(ept) => {
            format!("EPT root {} ({} tables read, {} not in the dump)", ept.root, listed.tables, listed.unreadable)
        }
        HostP2m::Pt { root, .. } => format!(
            "NPT root {root} ({} tables read, {} not in the dump, {} non-present entries with bits set not listed)",
            listed.tables, listed.unreadable, listed.not_present_nonzero
        ),
    };
    runs.finish()?;
    if !a.output.json {
        writeln!(
            out,
            "summary: domain {} ({}), {root_desc}: {mapped} frames mapped, {other} in valid non-present or misconfigured entries",
            d.id,
            d.kind.name(),
        )?;
    }
    out.flush()?;
    // A loop in the p2m's tables is a finding about the dump: the listing above went
    // on without following it again.
    if let Some(l) = listed.first_loop {
        eprintln!("xenwalk: {path}: domain {}: {l}", d.id);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
