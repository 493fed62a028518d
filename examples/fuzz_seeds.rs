//! Writes the seed corpora of the fuzz targets (`fuzz/`): small valid inputs of every
//! format, from the fixture writers. `scripts/fuzz.sh` runs it; not part of the tool.
//!
//! Usage: `cargo run --example fuzz_seeds -- DIR [XL_CORE]` (writes
//! DIR/<target>/<name>). With XL_CORE, a core written by the real `xl dump-core`
//! (tests/xen_lab.rs's), a cut of it is a seed too: its headers, notes and vCPU
//! contexts as Xen's toolstack wrote them, with a few of its pages.

#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::fs;
use std::path::Path;
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::xlcore::XlCoreOptions;
use xenwalk::fixture::{CpuRegs, ElfLayout, Machine, PageTables, XEN_TABLE, qemu_cpu_notes, xen_crash_notes};
use xenwalk::mem::kdump::Compression;
use xenwalk::paging::Level;
use xenwalk::{Maddr, Vaddr};

fn main() -> std::io::Result<()> {
    let out = std::env::args().nth(1).expect("usage: fuzz_seeds DIR");
    let out = Path::new(&out);
    // A 16-page machine: an L4 at 0x1000 mapping VA 0 and a 2 MiB page (its other
    // tables come from the top of RAM), a noise page.
    let mut m = Machine::new(0x10000);
    let pt = PageTables::at(Maddr(0x1000));
    pt.map(&mut m, Vaddr(0), Maddr(0x5000), Level::L1, 0x63, XEN_TABLE);
    pt.map(&mut m, Vaddr(0xffff_8300_0020_0000), Maddr(0x20_0000), Level::L2, 0x63, XEN_TABLE);
    m.fill_noise(Maddr(0x5000), 7);
    let cpus = [CpuRegs { cr3: 0x1000, cr4: 1 << 17, ..Default::default() }];
    let dir = |t: &str| {
        let d = out.join(t);
        fs::create_dir_all(&d).map(|_| d)
    };
    let (elf, kd, fl, xl, dump, notes) =
        (dir("elf")?, dir("kdump")?, dir("flattened")?, dir("xlcore")?, dir("dump_open")?, dir("notes")?);
    let qemu = qemu_cpu_notes(&cpus);
    let xen = xen_crash_notes(&cpus, 0x20_0000, "PAGESIZE=4096\n");
    m.write_elf(&elf.join("qemu10.elf"), &[], &qemu, ElfLayout::Qemu10)?;
    m.write_elf(&elf.join("xen-omit.elf"), &[xenwalk::Mfn(5)], &xen, ElfLayout::Classic)?;
    for (i, kinds) in [
        vec![Compression::Zlib],
        vec![Compression::Lzo],
        vec![Compression::Snappy],
        vec![Compression::Zstd],
        vec![Compression::None],
    ]
    .into_iter()
    .enumerate()
    {
        let o = KdumpOptions {
            kinds,
            excluded: [6].into(),
            holes: std::iter::once(7..9).collect(),
            notes: if i % 2 == 0 { xen.clone() } else { qemu.clone() },
            header_version: 6 - i as u32,
            ..KdumpOptions::default()
        };
        m.write_kdump(&kd.join(format!("k{i}.kdump")), &o)?;
        m.write_kdump_flattened(&fl.join(format!("k{i}.flat")), &o, 1000)?;
    }
    let pv = XlCoreOptions {
        // Every stored frame, pfns in reverse order.
        pages: {
            let mut f: Vec<u64> = m.stored_frames().map(|f| f.0).collect();
            f.reverse();
            f.into_iter().enumerate().map(|(i, f)| (i as u64, f)).collect()
        },
        invalid_tail: 1,
        vcpus: vec![(cpus[0], 0x2000)],
        shared_info: Some((16, 0, 0, 0)),
        ..Default::default()
    };
    m.write_xl_core(&xl.join("pv.core"), &pv)?;
    let hvm = XlCoreOptions { hvm: true, pages: (0..16).map(|f| (f, f)).collect(), ..pv };
    m.write_xl_core(&xl.join("hvm.core"), &hvm)?;
    m.write_raw(&dump.join("m.raw"))?;
    if let Some(real) = std::env::args().nth(2) {
        // The vCPUs' roots and the first pages: about 40 KiB, under the fuzzer's max_len.
        let core = xenwalk::dump::Dump::open(Path::new(&real), Default::default())
            .map_err(|e| std::io::Error::other(format!("{real}: {e}")))?;
        let roots: Vec<u64> = match &core.format {
            xenwalk::dump::Format::XlCore(s) => {
                s.vcpus.iter().flat_map(|v| [v.cr3, v.user_cr3]).flatten().map(|c| c >> 12).collect()
            }
            _ => Vec::new(),
        };
        let cut = xenwalk::fixture::xlcore::cut(&fs::read(&real)?, &|pfn, mfn| pfn < 4 || roots.contains(&mfn))?;
        fs::write(xl.join("real-cut.core"), cut)?;
    }
    for d in [&elf, &kd, &fl, &xl] {
        for e in fs::read_dir(d)? {
            let e = e?;
            fs::copy(e.path(), dump.join(e.file_name()))?;
        }
    }
    // Note streams: the ones inside the ELF seeds.
    let all: Vec<_> = qemu.iter().chain(&xen).cloned().collect();
    fs::write(notes.join("notes.bin"), xenwalk::fixture::note_bytes(&all))?;
    // Compressed pages of each kind (first byte selects the kind, as in the target).
    let dec = dir("decompress")?;
    let page = m.page(xenwalk::Mfn(5)).map(|p| p.to_vec()).unwrap_or_default();
    for (sel, kind) in
        [(1u8, Compression::Zlib), (2, Compression::Lzo), (3, Compression::Snappy), (4, Compression::Zstd)]
    {
        if let Some(c) = xenwalk::fixture::kdump::compress(kind, &page[..2048].repeat(2)) {
            let mut v = vec![sel];
            v.extend(c);
            fs::write(dec.join(format!("{kind:?}")), v)?;
        }
    }
    // The Xen-aware targets: patches of the synthetic machine, expressions, VA lines.
    for (t, name, bytes) in harness::xen_seeds() {
        fs::write(dir(t)?.join(name), bytes)?;
    }
    Ok(())
}
