//! The memflow child (the comparison): memflow 0.2's x64 translator over a
//! memory-mapped raw file, timed like the xenwalk child, and its answers checked
//! against xenwalk's.

use crate::measure::{report, secs};
use crate::{Res, err};
use std::fs::File;
use std::path::Path;
use std::time::Instant;
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::mem::resident;
use xenwalk::paging::{WalkOptions, walk};
use xenwalk::{Maddr, Vaddr};

/// VAs per call of memflow's `virt_to_phys_list`: one. In larger batches memflow's
/// equal-neighbour heuristic fails a quarter to a third of the VAs of a dom0 root
/// (and random batches run 25x slower); per-VA calls answer all of them. The batched
/// figure is printed too, with its failures.
pub const MF_CHUNK: usize = 1;
/// The batch size of that extra figure.
pub const MF_BATCH: usize = 16;

pub fn memflow_child(image: &Path, cr3: u64, random: &[u64], seq: &[u64], reps: usize) -> Res<()> {
    use memflow::mem::virt_translate::VirtualTranslation;
    use memflow::prelude::v1::*;
    let open = || -> Res<_> {
        let file = File::open(image).map_err(err("open"))?;
        let len = file.metadata().map_err(err("open"))?.len();
        let mut map = MemoryMap::new();
        map.push_remap(Address::from(0u64), len as umem, Address::from(0u64));
        let info = memflow::connector::MmapInfo::try_with_filemap(file, map).map_err(|e| format!("memflow: {e:?}"))?;
        let conn = info.into_connector();
        let translator = memflow::architecture::x86::x64::new_translator(Address::from(cr3));
        Ok(VirtualDma::new(conn, memflow::architecture::x86::x64::ARCH, translator))
    };
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = open()?;
        opens.push(t.elapsed());
        drop(v);
    }
    report("open_s", opens);
    let to_ranges = |v: &[u64]| v.iter().map(|&a| CTup2(Address::from(a), 1 as umem)).collect::<Vec<_>>();
    let random_r = to_ranges(random);
    let seq_r = to_ranges(seq);
    // memflow's batched API, MF_CHUNK VAs per call.
    let chunk: usize = std::env::var("XENWALK_BENCH_MF_CHUNK").ok().and_then(|v| v.parse().ok()).unwrap_or(MF_CHUNK);
    let run = |vm: &mut VirtualDma<_, _, _>, r: &[VtopRange], pairs: Option<&mut Vec<(u64, u64)>>| {
        let (mut ok, mut failed, mut sum) = (0u64, 0u64, 0u64);
        let mut pairs = pairs;
        for r in r.chunks(chunk.max(1)) {
            vm.virt_to_phys_list(
                r,
                (&mut |t: VirtualTranslation| {
                    ok += 1;
                    let p = t.out_physical.address().to_umem();
                    sum = sum.wrapping_add(p);
                    if let Some(v) = pairs.as_deref_mut() {
                        v.push((t.in_virtual.to_umem(), p));
                    }
                    true
                })
                    .into(),
                (&mut |_| {
                    failed += 1;
                    true
                })
                    .into(),
            );
        }
        (ok, failed, sum)
    };
    let mut vm = open()?;
    let start = Instant::now();
    let (ok, failed, _) = run(&mut vm, &random_r, None);
    println!("random_cold_s {}", secs(start.elapsed()));
    println!("random_ok {ok}");
    println!("random_failed {failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut vm, &random_r, None));
            s.elapsed()
        })
        .collect();
    report("random_warm_s", warm);
    // The same VAs in batches of MF_BATCH (fewer answers).
    let chunk = MF_BATCH;
    let run_batched = |vm: &mut VirtualDma<_, _, _>, r: &[VtopRange]| {
        let (mut ok, mut failed) = (0u64, 0u64);
        for r in r.chunks(chunk) {
            vm.virt_to_phys_list(
                r,
                (&mut |_t: VirtualTranslation| {
                    ok += 1;
                    true
                })
                    .into(),
                (&mut |_| {
                    failed += 1;
                    true
                })
                    .into(),
            );
        }
        (ok, failed)
    };
    let start = Instant::now();
    let (_, bfailed) = run_batched(&mut vm, &random_r);
    println!("random_batched_s {}", secs(start.elapsed()));
    println!("random_batched_failed {bfailed}");
    let mut vm = open()?;
    let start = Instant::now();
    let (_, seq_failed, _) = run(&mut vm, &seq_r, None);
    println!("seq_cold_s {}", secs(start.elapsed()));
    println!("seq_failed {seq_failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut vm, &seq_r, None));
            s.elapsed()
        })
        .collect();
    report("seq_warm_s", warm);

    // Whole space: memflow's range translation, one callback per leaf it finds.
    let mut vm = open()?;
    let count = |vm: &mut VirtualDma<_, _, _>| {
        let mut leaves = 0u64;
        let s = Instant::now();
        vm.virt_to_phys_range(
            Address::null(),
            Address::invalid(),
            (&mut |_t: VirtualTranslation| {
                leaves += 1;
                true
            })
                .into(),
        );
        (s.elapsed(), leaves)
    };
    let (cold, leaves) = count(&mut vm);
    println!("enum_cold_s {}", secs(cold));
    println!("leaves {leaves}");
    report("enum_warm_s", (0..reps).map(|_| count(&mut vm).0).collect());
    println!("peak_rss {}", resident::rss().map_or(0, |r| r.peak));

    // Not timed: do memflow's answers agree with xenwalk's where it gives one?
    let mut pairs = Vec::with_capacity(random.len());
    run(&mut vm, &random_r, Some(&mut pairs));
    let dump = Dump::open(image, OpenOptions::default()).map_err(err("open"))?;
    let mut differ = 0u64;
    let mut first = None;
    for (va, pa) in pairs {
        let w = walk(dump.mem.as_ref(), Maddr(cr3), Vaddr(va), WalkOptions::default());
        let ours = w.mapping().map(|m| m.maddr.0);
        if ours != Some(pa) {
            differ += 1;
            first.get_or_insert(format!("VA {va:#x}: memflow {pa:#x}, xenwalk {ours:x?}"));
        }
    }
    println!("random_differ {differ}");
    // Where memflow answers, it must answer as xenwalk does: one VA that differs
    // aborts the run, with the VA.
    match first {
        Some(d) => Err(format!("memflow and xenwalk disagree on {differ} VAs, the first {d}")),
        None => Ok(()),
    }
}
