//! The VAs translated: a random sample of the mapped leaves and a sequential walk
//! through them, written once per scenario as binary and text files.

use crate::scenario::Scenario;
use crate::settings::Settings;
use crate::{IMAGE_VERSION, Res, err};
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use xenwalk::Maddr;
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::paging::{EnumerateOptions, Event, WalkOptions, enumerate_with};

/// Random mapped VAs (a uniform sample of the leaves, a random byte in each, in random
/// order) and sequential ones (4 KiB steps through the leaves in VA order), written
/// as binary (for the libraries) and text (for the CLI).
pub struct VaSets {
    pub random_bin: PathBuf,
    pub random_txt: PathBuf,
    pub seq_bin: PathBuf,
    pub leaves: u64,
}

pub struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

pub fn va_sets(s: &Settings, sc: &Scenario) -> Res<VaSets> {
    let stem = s.dir.join(format!("vas-{}-{}-{IMAGE_VERSION}", sc.key, s.vas));
    let sets = VaSets {
        random_bin: stem.with_extension("random.bin"),
        random_txt: stem.with_extension("random.txt"),
        seq_bin: stem.with_extension("seq.bin"),
        leaves: 0,
    };
    let dump = Dump::open(&sc.image, OpenOptions::default()).map_err(err("open"))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ sc.cr3);
    let n = s.vas;
    let mut sample: Vec<u64> = Vec::with_capacity(n);
    let mut seq: Vec<u64> = Vec::with_capacity(n);
    let mut seen = 0u64;
    let summary =
        enumerate_with(dump.mem.as_ref(), Maddr(sc.cr3), WalkOptions::default(), &EnumerateOptions::default(), |ev| {
            if let Event::Leaf(l) = ev {
                let va = l.va.0 + rng.next() % l.size();
                if sample.len() < n {
                    sample.push(va);
                } else {
                    let j = rng.next() % (seen + 1);
                    if let Some(slot) = sample.get_mut(j as usize) {
                        *slot = va;
                    }
                }
                seen += 1;
                let mut off = 0;
                while seq.len() < n && off < l.size() {
                    seq.push(l.va.0 + off);
                    off += 4096;
                }
            }
            ControlFlow::Continue(())
        });
    if let Some(file) = &sc.va_file {
        sample = read_va_text(file)?;
    }
    // Fill up to n by repeating (tiny roots), then shuffle.
    let k = sample.len();
    for i in 0..n.saturating_sub(k) {
        if k > 0 {
            sample.push(sample[i % k]);
        }
    }
    for i in (1..sample.len()).rev() {
        sample.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    write_bin(&sets.random_bin, &sample)?;
    write_bin(&sets.seq_bin, &seq)?;
    let mut t = BufWriter::new(File::create(&sets.random_txt).map_err(err("vas"))?);
    for v in &sample {
        writeln!(t, "{v:#x}").map_err(err("vas"))?;
    }
    t.flush().map_err(err("vas"))?;
    Ok(VaSets { leaves: summary.leaves.total(), ..sets })
}

pub fn read_va_text(p: &Path) -> Res<Vec<u64>> {
    let f = File::open(p).map_err(err("va file"))?;
    let mut v = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(err("va file"))?;
        if let xenwalk::parse::VaLine::Value(x) = xenwalk::parse::va_line_bytes(line.as_bytes()) {
            v.push(x);
        }
    }
    Ok(v)
}

pub fn write_bin(p: &Path, v: &[u64]) -> Res<()> {
    let mut w = BufWriter::new(File::create(p).map_err(err("bin"))?);
    for x in v {
        w.write_all(&x.to_le_bytes()).map_err(err("bin"))?;
    }
    w.flush().map_err(err("bin"))
}

pub fn read_bin(p: &Path) -> Res<Vec<u64>> {
    let b = std::fs::read(p).map_err(err("bin"))?;
    Ok(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}
