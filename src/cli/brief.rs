//! `--brief`, for pipelines: a walk prints one line `VA MADDR` (`VA -` when it does
//! not translate), a listing one line `VA MADDR SIZE` per coalesced range (per leaf
//! with `--leaves`), all in hexadecimal with `0x`, and nothing else on stdout. The
//! format is stable (README "Usage"). VA lists are read, parsed and answered in place:
//! no allocation per line for hexadecimal VAs.

use super::Session;
use super::progress::Bar;
use crate::addr::Vaddr;
use crate::diagnose;
use crate::paging::enumerate::{EnumerateOptions, Event, Progress, Range, enumerate_with};
use crate::paging::root::{Root, RootProblem};
use crate::paging::{Coalescer, Resolved, Translator, WalkOptions};
use crate::parse::{self, VaLine};
use anyhow::{Context, Result};
use std::io::{self, BufRead, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;

/// `0x` and the lowest hex digits of `v` into the end of `buf`; returns where they start.
#[inline]
fn hex(buf: &mut [u8; 18], v: u64) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = DIGITS.get((v & 0xf) as usize).copied().unwrap_or(b'?');
        }
        v >>= 4;
        if v == 0 || i <= 2 {
            break;
        }
    }
    i -= 2;
    if let Some(p) = buf.get_mut(i..i + 2) {
        p.copy_from_slice(b"0x");
    }
    i
}

/// One output line: the values in hex separated by spaces, `-` for `None`.
#[inline]
pub(super) fn line(out: &mut dyn Write, values: &[Option<u64>]) -> io::Result<()> {
    let mut text = [0u8; 3 * 19];
    let mut n = 0;
    let mut buf = [0u8; 18];
    for (k, v) in values.iter().enumerate() {
        let field: &[u8] = match v {
            Some(v) => {
                let at = hex(&mut buf, *v);
                buf.get(at..).unwrap_or(b"?")
            }
            None => b"-",
        };
        let sep = if k + 1 == values.len() { b'\n' } else { b' ' };
        if let Some(dst) = text.get_mut(n..n + field.len() + 1) {
            let (head, tail) = dst.split_at_mut(field.len());
            head.copy_from_slice(field);
            tail.copy_from_slice(&[sep]);
            n += field.len() + 1;
        }
    }
    out.write_all(text.get(..n).unwrap_or(b""))
}

/// Translates VAs in batches and prints `VA MADDR` / `VA -`, in input order.
struct Walks<'a, 'm> {
    translator: Option<Translator<'m>>,
    pending: Vec<Vaddr>,
    answers: Vec<Resolved>,
    /// VAs translated together (see `Translator::translate_many`): one window.
    batch: usize,
    out: &'a mut dyn Write,
    failed: bool,
}

impl Walks<'_, '_> {
    fn push(&mut self, va: u64) -> io::Result<()> {
        self.pending.push(Vaddr(va));
        if self.pending.len() >= self.batch { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Only the answers are printed: the lean path, no walk records.
        match &mut self.translator {
            Some(t) => t.translate_many(&self.pending, &mut self.answers),
            None => self.answers.clear(),
        }
        // Without a translator the root cannot be walked: nothing translates.
        for (k, va) in self.pending.iter().enumerate() {
            let maddr = self.answers.get(k).and_then(|r| r.maddr()).map(|m| m.0);
            self.failed |= maddr.is_none();
            line(self.out, &[Some(va.0), maddr])?;
        }
        self.pending.clear();
        Ok(())
    }
}

/// Walk the `--va` values and every line of the VA list.
pub(super) fn walks(
    s: &Session,
    mem: &dyn crate::mem::PhysMem,
    root: &Root,
    opts: WalkOptions,
    vas: &[u64],
    list: Option<(String, Box<dyn BufRead>)>,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let blocked = root.problem.filter(RootProblem::blocks_walks).is_some();
    let translator = (!blocked).then(|| Translator::new(mem, root.maddr, opts));
    let batch = translator.as_ref().map_or(1 << 12, Translator::window);
    let mut w = Walks {
        translator,
        pending: Vec::with_capacity(batch),
        answers: Vec::with_capacity(batch),
        batch,
        out,
        failed: false,
    };
    for &va in vas {
        w.push(va)?;
    }
    let mut bad_input = false;
    if let Some((name, mut reader)) = list {
        let mut text = Vec::with_capacity(256);
        let mut n = 0usize;
        loop {
            text.clear();
            let got =
                reader.read_until(b'\n', &mut text).with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            if got == 0 {
                break;
            }
            n += 1;
            match parse::va_line_bytes(&text) {
                VaLine::Skip => {}
                VaLine::Value(va) => w.push(va)?,
                VaLine::Slow => {
                    let line = String::from_utf8_lossy(&text);
                    match parse::va_line(&line).map(|r| r.and_then(|e| super::resolve(s, &e))) {
                        None => {}
                        Some(Ok(va)) => w.push(va)?,
                        Some(Err(e)) => {
                            eprintln!("xenwalk: error: {name}:{n}: {e}; skipped");
                            bad_input = true;
                        }
                    }
                }
            }
        }
    }
    w.flush()?;
    w.out.flush()?;
    Ok(super::va_exit(bad_input, w.failed))
}

/// The whole address space: `VA MADDR SIZE` per coalesced range (per leaf with
/// `leaves`). Ranges are cut where the full listing has a `!!` line, as there.
pub(super) fn list(
    mem: &dyn crate::mem::PhysMem,
    root: &Root,
    opts: WalkOptions,
    leaves: bool,
    mut limit: crate::paging::enumerate::LeafLimit,
    out: &mut dyn Write,
    ui: super::Ui,
) -> Result<ExitCode> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        // A result (exit 1), not a warning: said even with --quiet.
        let d = diagnose::root_diagnosis(root, &p);
        eprintln!("xenwalk: root {} cannot be walked: {}: {}", root.maddr, d.reason.code(), d.explanation);
        return Ok(ExitCode::from(1));
    }
    let bar = Bar::new(ui.quiet);
    let progress = |p: Progress| bar.update(p);
    let o = EnumerateOptions {
        progress: if bar.enabled() { Some(&progress) } else { None },
        ..EnumerateOptions::default()
    };
    let mut co = Coalescer::default();
    let mut result: io::Result<()> = Ok(());
    let summary = enumerate_with(mem, root.maddr, opts, &o, |ev| {
        if matches!(ev, Event::Leaf(_)) {
            limit.take()?;
        }
        let closed = match ev {
            Event::Leaf(l) if leaves => Some(Range::single(l)),
            Event::Leaf(l) => co.push(l),
            _ => co.finish(),
        };
        if let Some(r) = closed {
            result = line(out, &[Some(r.va.0), Some(r.maddr.0), Some(r.size)]);
        }
        if result.is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    });
    bar.finish();
    result?;
    if let Some(r) = co.finish() {
        line(out, &[Some(r.va.0), Some(r.maddr.0), Some(r.size)])?;
    }
    out.flush()?;
    let (unreadable, reserved) = (summary.unreadable_tables, summary.reserved_entries);
    if unreadable + reserved > 0 {
        ui.note(format_args!(
            "note: {unreadable} table(s) the dump lacks and {reserved} entr(ies) with reserved bits are not in a \
             --brief listing (the full listing shows them)"
        ));
    }
    Ok(super::leaf_limit_exit(out, limit.reached())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_lines() {
        let mut b = [0u8; 18];
        for v in [0u64, 1, 0xf, 0x10, 0xffff_82d0_4020_0000, u64::MAX] {
            let at = hex(&mut b, v);
            assert_eq!(std::str::from_utf8(&b[at..]).unwrap(), format!("{v:#x}"));
        }
        let mut out = Vec::new();
        line(&mut out, &[Some(0xffff_8000_0000_0000), None]).unwrap();
        line(&mut out, &[Some(0x1000), Some(0), Some(u64::MAX)]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "0xffff800000000000 -\n0x1000 0x0 0xffffffffffffffff\n");
    }
}
