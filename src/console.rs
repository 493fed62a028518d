//! Xen's serial console, as people paste it: the panic banner, register dumps
//! (`cr3:`/`cr2:`), page-fault error codes and every `show_page_walk()` block, parsed
//! so that triage can redo each walk in the dump and compare it line by line.
//!
//! Formats (`X:xen/arch/x86/x86_64/traps.c@4.17.0` `show_page_walk`,
//! `X:xen/arch/x86/traps.c@4.17.0` `show_registers`, `do_page_fault`,
//! `X:xen/drivers/char/console.c@4.17.0` `panic`):
//!
//! ```text
//! (XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----
//! (XEN) CPU:    0
//! (XEN) RIP:    e008:[<ffff82d04021ed72>] kexec_crash_save_cpu+0xb2/0x100
//! (XEN) cr3: 000000003f833000   cr2: 0000000000000000
//! (XEN) Pagetable walk from ffff82d040200000:
//! (XEN)  L4[0x105] = 000000003fc6c063 ffffffffffffffff
//! (XEN)  L3[0x141] = 000000003fc69063 ffffffffffffffff
//! (XEN)  L2[0x001] = 000000003fa000e3 ffffffffffffffff (PSE)
//! (XEN) Panic on CPU 0:
//! (XEN) FATAL PAGE FAULT
//! (XEN) [error_code=0000]
//! (XEN) Faulting linear address: 0000000000000000
//! ```
//!
//! Every line may come with CR/LF endings, ANSI colours, a timestamp (the terminal's
//! `[   12.345678]`, Xen's own `[2026-12-03 12:00:00.123]` after `(XEN)`), or no
//! `(XEN)` prefix at all. Lines that match nothing are ignored; a walk block cut short
//! (another CPU's line in the middle, the log's end) is kept and marked. Parsing
//! never fails and is linear in the text.

use serde::Serialize;

/// Everything found in a console log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Console {
    /// Lines read.
    pub lines: usize,
    /// The version from the `----[ Xen-… ]----` banner, the last one seen.
    pub version: Option<String>,
    /// `Panic on CPU n:` and the message lines after it.
    pub panics: Vec<PanicMsg>,
    /// Register dumps: the CPU, RIP and its symbol, cr3 and cr2.
    pub regs: Vec<Regs>,
    /// Page-fault error codes (`[error_code=0002]`, `#PF[0002]`) and addresses.
    pub faults: Vec<FaultMsg>,
    /// `Pagetable walk from` blocks.
    pub walks: Vec<ConsoleWalk>,
    /// `Hardware Dom0 crashed:` (`Domain 0 crashed:` before Xen 4.5): the hardware
    /// domain asked to be shut down as crashed (Linux's panic notifier does), and Xen,
    /// with a crash kernel loaded, crashed into it on the domain's behalf
    /// (`hwdom_shutdown`, `X:xen/common/shutdown.c@4.17.0`): the crash is the domain's,
    /// not Xen's.
    pub hwdom_crash: Option<HwdomCrash>,
    /// `Kernel panic - not syncing: MSG`: a Linux kernel's panic, as dom0's reaches
    /// Xen's console through hvc0.
    pub kernel_panics: Vec<KernelPanic>,
    /// What was noticed and ignored (a block cut short, an unparsable walk line).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HwdomCrash {
    pub line: usize,
    /// The hardware domain's id (0 unless a late hardware domain was built).
    pub domain: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelPanic {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PanicMsg {
    /// 1-based line number of `Panic on CPU`.
    pub line: usize,
    pub cpu: Option<u32>,
    pub message: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Regs {
    pub line: usize,
    pub cpu: Option<u32>,
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub rip: Option<u64>,
    pub rip_symbol: Option<String>,
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub cr3: Option<u64>,
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub cr2: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultMsg {
    pub line: usize,
    pub error_code: u32,
    /// The error code in words ([`decode_pf`]).
    pub decoded: Vec<&'static str>,
    /// `Faulting linear address:`, when it follows.
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub linear: Option<u64>,
}

/// One `Pagetable walk from` block.
#[derive(Clone, Debug, Serialize)]
pub struct ConsoleWalk {
    /// Line of the header.
    pub line: usize,
    #[serde(serialize_with = "crate::addr::hex")]
    pub va: u64,
    /// The CR3 of the nearest register dump before it, if any.
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub cr3: Option<u64>,
    pub steps: Vec<ConsoleStep>,
    /// The block ended before a walk can end (a table entry that is present, not a
    /// large page, above L1): another line cut in, or the log ended.
    pub cut_short: bool,
}

/// One ` Ln[0xidx] = entry pfn` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConsoleStep {
    pub level: u8,
    pub index: u16,
    #[serde(serialize_with = "crate::addr::hex")]
    pub entry: u64,
    /// The second column (the M2P value); `None` when printed as `?`s.
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub pfn: Option<u64>,
    pub pse: bool,
}

/// An x86 page-fault error code in words (SDM Vol. 3A §4.7).
pub fn decode_pf(ec: u32) -> Vec<&'static str> {
    let mut v = vec![
        if ec & 1 != 0 { "present (protection violation)" } else { "not present" },
        if ec & 2 != 0 { "write" } else { "read" },
        if ec & 4 != 0 { "user" } else { "supervisor" },
    ];
    for (bit, name) in
        [(3, "reserved bit set"), (4, "instruction fetch"), (5, "protection key"), (6, "shadow stack"), (15, "SGX")]
    {
        if ec >> bit & 1 != 0 {
            v.push(name);
        }
    }
    v
}

/// Strip what wraps a console line: CR, ANSI escapes, a terminal timestamp, the
/// `(XEN)` prefix and Xen's own timestamp.
fn clean(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte (0x40..=0x7e).
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            s.push(c);
        }
    }
    let mut t = s.as_str();
    // A leading `[ ... ]` timestamp (dmesg, minicom, Xen's own after "(XEN)").
    let strip_stamp = |t: &str| -> Option<usize> {
        let rest = t.strip_prefix('[')?;
        let end = rest.find(']')?;
        let inner = &rest[..end];
        (!inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || " .:-T+".contains(c))).then_some(end + 2)
    };
    if let Some(n) = strip_stamp(t.trim_start()) {
        t = &t.trim_start()[n..];
    }
    if let Some(rest) = t.trim_start().strip_prefix("(XEN)") {
        t = rest;
        if let Some(n) = strip_stamp(t.trim_start()) {
            t = &t.trim_start()[n..];
        }
    }
    t.to_string()
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// ` L4[0x105] = 000000003fc6c063 ffffffffffffffff (PSE)`.
fn walk_step(t: &str) -> Option<ConsoleStep> {
    let t = t.trim_start();
    let level = match t.get(..3)? {
        "L4[" => 4,
        "L3[" => 3,
        "L2[" => 2,
        "L1[" => 1,
        _ => return None,
    };
    let (idx, rest) = t[3..].split_once(']')?;
    let index = u16::try_from(hex(idx)?).ok().filter(|&i| i < 512)?;
    let rest = rest.trim_start().strip_prefix('=')?;
    let mut f = rest.split_whitespace();
    let entry = hex(f.next()?)?;
    let pfn = f.next().and_then(|p| if p.starts_with('?') { None } else { hex(p) });
    let pse = rest.contains("(PSE)");
    Some(ConsoleStep { level, index, entry, pfn, pse })
}

/// Whether a walk that ends with `s` could go on (its entry names a table).
fn continues(s: &ConsoleStep) -> bool {
    s.level > 1 && s.entry & 1 != 0 && !s.pse
}

/// Parse a console log.
pub fn parse(text: &str) -> Console {
    let mut c = Console::default();
    let mut cpu: Option<u32> = None;
    let mut walk: Option<ConsoleWalk> = None;
    let mut panic: Option<PanicMsg> = None;
    let finish_walk = |w: ConsoleWalk, c: &mut Console, cut: bool| {
        let mut w = w;
        w.cut_short = cut && w.steps.last().is_none_or(continues);
        if w.cut_short {
            c.notes.push(format!(
                "line {}: the walk from {:#x} is cut short after {} lines",
                w.line,
                w.va,
                w.steps.len()
            ));
        }
        c.walks.push(w);
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        c.lines = n;
        let t = clean(raw);
        let tt = t.trim();
        // A walk's lines, in order, until something else.
        if let Some(w) = walk.as_mut() {
            if let Some(s) = walk_step(&t) {
                let expected = 4 - w.steps.len() as u8;
                if s.level == expected {
                    w.steps.push(s);
                    if !continues(&s) {
                        let done = walk.take();
                        finish_walk(done.expect("walk"), &mut c, false);
                    }
                    continue;
                }
                c.notes.push(format!("line {n}: {} out of order in the walk from {:#x}", tt, w.va));
            }
            let done = walk.take();
            finish_walk(done.expect("walk"), &mut c, true);
        }
        if let Some(p) = panic.as_mut() {
            if tt.starts_with("****") || tt.is_empty() || p.message.len() >= 16 {
                c.panics.push(panic.take().expect("panic"));
            } else {
                p.message.push(tt.to_string());
            }
        }
        if let Some(rest) = tt.strip_prefix("Pagetable walk from ") {
            match hex(rest.trim_end_matches(':')) {
                Some(va) => {
                    let cr3 = c.regs.iter().rev().find_map(|r| r.cr3);
                    walk = Some(ConsoleWalk { line: n, va, cr3, steps: Vec::new(), cut_short: false });
                }
                None => c.notes.push(format!("line {n}: unreadable walk header {tt:?}")),
            }
        } else if let Some(rest) = tt.strip_prefix("Panic on CPU ") {
            panic =
                Some(PanicMsg { line: n, cpu: rest.trim_end_matches(':').trim().parse().ok(), message: Vec::new() });
        } else if tt.starts_with("----[ Xen-") {
            c.version = tt.strip_prefix("----[ Xen-").and_then(|r| r.split_whitespace().next()).map(String::from);
        } else if let Some(rest) = tt.strip_prefix("CPU:") {
            cpu = rest.trim().parse().ok();
            c.regs.push(Regs { line: n, cpu, ..Regs::default() });
        } else if let Some(rest) = tt.strip_prefix("RIP:") {
            // `e008:[<ffff82d04021ed72>] kexec_crash_save_cpu+0xb2/0x100`
            let rip = rest.split_once("[<").and_then(|(_, r)| r.split_once(">]")).and_then(|(h, _)| hex(h));
            let sym = rest.split_once(">]").map(|(_, s)| s.trim().split('/').next().unwrap_or("").to_string());
            if let Some(r) = c.regs.last_mut().filter(|r| r.rip.is_none()) {
                r.rip = rip;
                r.rip_symbol = sym.filter(|s| !s.is_empty());
            }
        } else if tt.starts_with("cr3:") || tt.contains(" cr3: ") || tt.contains(" cr2: ") {
            let field = |name: &str| tt.split_once(name).and_then(|(_, r)| r.split_whitespace().next()).and_then(hex);
            let (cr3, cr2) = (field("cr3:"), field("cr2:"));
            if c.regs.last().is_none_or(|r| r.cr3.is_some()) {
                c.regs.push(Regs { line: n, cpu, ..Regs::default() });
            }
            if let Some(r) = c.regs.last_mut() {
                r.cr3 = r.cr3.or(cr3);
                r.cr2 = r.cr2.or(cr2);
            }
        }
        if c.hwdom_crash.is_none() {
            let id = tt
                .strip_prefix("Hardware Dom")
                .and_then(|r| r.split_once(" crashed:"))
                .and_then(|(d, _)| d.parse().ok())
                .or_else(|| tt.starts_with("Domain 0 crashed:").then_some(0));
            if let Some(domain) = id {
                c.hwdom_crash = Some(HwdomCrash { line: n, domain });
            }
        }
        if let Some((_, msg)) = tt.split_once("Kernel panic - not syncing: ") {
            c.kernel_panics.push(KernelPanic { line: n, message: msg.trim().to_string() });
        }
        // Page-fault error codes: `[error_code=0002]` (a fatal fault), `#PF[0002]`.
        for (pat, close) in [("[error_code=", ']'), ("#PF[", ']')] {
            if let Some((_, r)) = tt.split_once(pat) {
                if let Some(ec) = r.split(close).next().and_then(|h| u32::from_str_radix(h, 16).ok()) {
                    c.faults.push(FaultMsg { line: n, error_code: ec, decoded: decode_pf(ec), linear: None });
                }
            }
        }
        if let Some(rest) = tt.strip_prefix("Faulting linear address:") {
            if let Some(f) = c.faults.last_mut().filter(|f| f.linear.is_none()) {
                f.linear = hex(rest);
            }
        }
    }
    if let Some(w) = walk.take() {
        finish_walk(w, &mut c, true);
    }
    if let Some(p) = panic.take() {
        c.panics.push(p);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----\r\n\
        (XEN) CPU:    1\r\n\
        (XEN) RIP:    e008:[<ffff82d04021ed72>] kexec_crash_save_cpu+0xb2/0x100\r\n\
        (XEN) cr3: 000000003f833000   cr2: 0000000000000010\r\n\
        \x1b[1;31m(XEN) Pagetable walk from 0000000000000010:\x1b[0m\r\n\
        [  12.5] (XEN)  L4[0x000] = 000000003f80c067 0000000000001234\r\n\
        (XEN) [2026-12-03 12:00:00.123]  L3[0x000] = 0000000000000000 ffffffffffffffff\r\n\
        (XEN) ****************************************\r\n\
        (XEN) Panic on CPU 1:\r\n\
        (XEN) FATAL PAGE FAULT\r\n\
        (XEN) [error_code=0002]\r\n\
        (XEN) Faulting linear address: 0000000000000010\r\n\
        (XEN) ****************************************\r\n";

    /// dom0's panic as the 4.17 lab's serial log has it: Linux's line through hvc0
    /// (a timestamp, no prefix), then Xen's.
    #[test]
    fn a_dom0_panic_and_xens_crash_on_its_behalf() {
        let log = "[   41.023456] sysrq: Trigger a crash\r\n\
            [   41.024001] Kernel panic - not syncing: sysrq triggered crash\r\n\
            (XEN) Hardware Dom0 crashed: Executing kexec image on cpu0\r\n";
        let c = parse(log);
        assert_eq!(c.kernel_panics.len(), 1);
        assert_eq!((c.kernel_panics[0].line, c.kernel_panics[0].message.as_str()), (2, "sysrq triggered crash"));
        let h = c.hwdom_crash.expect("Hardware Dom0 crashed");
        assert_eq!((h.line, h.domain), (3, 0));
        assert!(parse("(XEN) Domain 0 crashed: rebooting machine in 5 seconds.").hwdom_crash.is_some());
        assert!(parse(LOG).hwdom_crash.is_none() && parse(LOG).kernel_panics.is_empty());
    }

    #[test]
    fn a_fatal_page_fault_with_crlf_colours_and_timestamps() {
        let c = parse(LOG);
        assert_eq!(c.version.as_deref(), Some("4.17.7"));
        assert_eq!(c.regs.len(), 1);
        assert_eq!((c.regs[0].cpu, c.regs[0].cr3, c.regs[0].cr2), (Some(1), Some(0x3f83_3000), Some(0x10)));
        assert_eq!(c.regs[0].rip_symbol.as_deref(), Some("kexec_crash_save_cpu+0xb2"));
        assert_eq!(c.walks.len(), 1);
        let w = &c.walks[0];
        assert_eq!((w.va, w.cr3, w.steps.len(), w.cut_short), (0x10, Some(0x3f83_3000), 2, false));
        assert_eq!(w.steps[0], ConsoleStep { level: 4, index: 0, entry: 0x3f80_c067, pfn: Some(0x1234), pse: false });
        assert_eq!(c.panics.len(), 1);
        assert_eq!(c.panics[0].cpu, Some(1));
        assert_eq!(c.panics[0].message[0], "FATAL PAGE FAULT");
        assert_eq!(c.faults.len(), 1);
        assert_eq!((c.faults[0].error_code, c.faults[0].linear), (2, Some(0x10)));
        assert_eq!(c.faults[0].decoded, ["not present", "write", "supervisor"]);
    }

    #[test]
    fn a_walk_cut_by_another_line_is_kept_and_marked() {
        let c = parse(
            "Pagetable walk from ffff82d040200000:\n L4[0x105] = 000000003fc6c063 ffffffffffffffff\n(XEN) CPU:    3\n",
        );
        assert_eq!(c.walks.len(), 1);
        assert!(c.walks[0].cut_short);
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        // Truncated at the end of the log, and garbage: never a panic.
        let c = parse("Pagetable walk from ffff82d040200000:\n L4[0x105] = 000000003fc6c063");
        assert!(c.walks[0].cut_short);
        let c = parse("Pagetable walk from zz\n L4[0x9999] = x\n#PF[zzzz]\n\u{1b}[\n[error_code=");
        assert!(c.walks.is_empty() && c.faults.is_empty());
    }

    #[test]
    fn error_codes_in_words() {
        assert_eq!(decode_pf(0x0001), ["present (protection violation)", "read", "supervisor"]);
        assert_eq!(decode_pf(0x0015), ["present (protection violation)", "read", "user", "instruction fetch"]);
    }
}
