//! The xenwalk child: opens, translations (batched, lean, one at a time, plain walks)
//! and whole-space enumeration, timed cold and warm, with peak resident memory.

use crate::measure::{report, secs};
use crate::{Res, err};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::mem::resident;
use xenwalk::paging::{
    EnumerateOptions, Event, Resolved, TableEvent, Translator, WalkOptions, enumerate, enumerate_tables_with,
    enumerate_with, walk,
};
use xenwalk::{Maddr, Vaddr};

pub fn xenwalk_child(image: &Path, cr3: u64, random: &[u64], seq: &[u64], reps: usize) -> Res<()> {
    let opts = WalkOptions::default();
    let root = Maddr(cr3);
    let random: Vec<Vaddr> = random.iter().map(|&v| Vaddr(v)).collect();
    let seq: Vec<Vaddr> = seq.iter().map(|&v| Vaddr(v)).collect();
    let open = || Dump::open(image, OpenOptions::default()).map_err(err("open"));
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let d = open()?;
        opens.push(t.elapsed());
        drop(d);
    }
    report("open_s", opens);

    // Random VAs: a fresh dump and translator (cold), then warm passes.
    let run = |t: &mut Translator<'_>, vas: &[Vaddr]| {
        let (mut sum, mut failed) = (0u64, 0u64);
        t.translate_batch(vas, |_, w| match w.mapping() {
            Some(m) => sum = sum.wrapping_add(m.maddr.0),
            None => failed += 1,
        });
        (sum, failed)
    };
    let dump = open()?;
    let mem = dump.mem.as_ref();
    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    let (sum, failed) = run(&mut t, &random);
    println!("random_cold_s {}", secs(start.elapsed()));
    println!("random_sum {sum}");
    println!("random_failed {failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut t, &random));
            s.elapsed()
        })
        .collect();
    report("random_warm_s", warm);
    println!("random_releases {}", t.releases());
    let mut one = Translator::new(mem, root, opts);
    let single = (0..reps.min(3))
        .map(|_| {
            let s = Instant::now();
            let mut sum = 0u64;
            for &va in &random {
                if let Some(m) = one.translate(va).mapping() {
                    sum = sum.wrapping_add(m.maddr.0);
                }
            }
            std::hint::black_box(sum);
            s.elapsed()
        })
        .collect();
    report("random_single_s", single);
    drop(one);
    drop(t);
    drop(dump);

    // Lean translations (`translate_many`: the answers only, as `--brief` uses them):
    // a fresh dump and translator (cold), then warm passes; the same answers.
    let dump = open()?;
    let mem = dump.mem.as_ref();
    let mut out: Vec<Resolved> = Vec::new();
    let lean = |t: &mut Translator<'_>, out: &mut Vec<Resolved>| {
        t.translate_many(&random, out);
        let (mut sum, mut failed) = (0u64, 0u64);
        for r in out.iter() {
            match r.maddr() {
                Some(m) => sum = sum.wrapping_add(m.0),
                None => failed += 1,
            }
        }
        (sum, failed)
    };
    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    let got = lean(&mut t, &mut out);
    println!("lean_cold_s {}", secs(start.elapsed()));
    if got != (sum, failed) {
        return Err(format!("lean translations differ: {got:?} against {:?}", (sum, failed)));
    }
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(lean(&mut t, &mut out));
            s.elapsed()
        })
        .collect();
    report("lean_warm_s", warm);
    // Not timed: the two paths agree VA for VA (a matching checksum is not enough);
    // the first VA where they differ aborts the run.
    t.translate_many(&random, &mut out);
    let mut full = Translator::new(mem, root, opts);
    let mut first: Option<String> = None;
    // The calls come in the translator's order; `i` is the VA's index.
    full.translate_batch(&random, |i, w| {
        let lean_ans = out.get(i).and_then(|r| r.maddr()).map(|m| m.0);
        let full_ans = w.mapping().map(|m| m.maddr.0);
        if lean_ans != full_ans && first.is_none() {
            first = Some(format!("VA {:#x}: full {full_ans:x?}, lean {lean_ans:x?}", w.va.0));
        }
    });
    if let Some(d) = first {
        return Err(format!("xenwalk's full and lean paths disagree at {d}"));
    }
    drop(full);
    drop(t);
    drop(out);

    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    std::hint::black_box(run(&mut t, &seq));
    println!("seq_cold_s {}", secs(start.elapsed()));
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut t, &seq));
            s.elapsed()
        })
        .collect();
    report("seq_warm_s", warm);
    drop(t);
    drop(dump);

    // Enumeration: a fresh dump (cold), then warm, parallel and on one thread.
    let dump = open()?;
    let mem = dump.mem.as_ref();
    // `plain`: enumerate() itself (one thread, no residency budget).
    let count = |par: bool, plain: bool| {
        let mut leaves = 0u64;
        let f = |ev: Event<'_>| {
            if let Event::Leaf(_) = ev {
                leaves += 1;
            }
            ControlFlow::Continue(())
        };
        let s = Instant::now();
        if plain {
            enumerate(mem, root, opts, f);
        } else {
            let o = EnumerateOptions { parallel: par, ..EnumerateOptions::default() };
            enumerate_with(mem, root, opts, &o, f);
        }
        (s.elapsed(), leaves)
    };
    // The table-at-a-time API: one callback per run of a table's leaves, counted.
    let tables = |par: bool| {
        let mut leaves = 0u64;
        let s = Instant::now();
        let o = EnumerateOptions { parallel: par, ..EnumerateOptions::default() };
        enumerate_tables_with(mem, root, opts, &o, |te| {
            if let TableEvent::Leaves(run) = te {
                leaves += run.count();
            }
            ControlFlow::Continue(())
        });
        (s.elapsed(), leaves)
    };
    let (cold, leaves) = tables(true);
    println!("enum_cold_s {}", secs(cold));
    println!("leaves {leaves}");
    report("enum_warm_s", (0..reps).map(|_| tables(true).0).collect());
    report("enum_seq_budget_s", (0..reps.min(3)).map(|_| tables(false).0).collect());
    // One callback per leaf (enumerate_with), as before: the same leaves.
    let (t, per_leaf) = count(true, false);
    if per_leaf != leaves {
        return Err(format!("per-leaf enumeration found {per_leaf} leaves, the table-at-a-time one {leaves}"));
    }
    report("enum_leaf_warm_s", (0..reps).map(|_| count(true, false).0).chain([t]).collect());
    // Everything above runs under the default residency budget: its peak.
    println!("peak_rss {}", resident::rss().map_or(0, |r| r.peak));
    // References without the budget (they map every table page they read).
    report("enum_seq_s", (0..reps.min(3)).map(|_| count(false, true).0).collect());
    let walks = (0..reps.min(3))
        .map(|_| {
            let s = Instant::now();
            let mut sum = 0u64;
            for &va in &random {
                if let Some(m) = walk(mem, root, va, opts).mapping() {
                    sum = sum.wrapping_add(m.maddr.0);
                }
            }
            std::hint::black_box(sum);
            s.elapsed()
        })
        .collect();
    report("random_walk_s", walks);
    Ok(())
}
