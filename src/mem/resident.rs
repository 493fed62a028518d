//! Keeping resident memory bounded while scanning a dump of any size.
//!
//! Raw and ELF dumps are memory-mapped: every page a scan touches stays mapped, and
//! counts in the process's resident set (RSS), until the mapping is dropped. A whole
//! listing of a 64 GiB direct map in 4 KiB pages reads 128 MiB of L1 tables, and a
//! kernel that maps a whole large folio on a fault (Linux 6.x page cache) can map
//! 2 MiB for one touched page. [`Resident`] looks at the process's RSS each time
//! scans have entered `every` 2 MiB regions not read since the last release (a
//! region already read adds nothing more) and, above a limit,
//! asks the source to drop its mappings ([`PhysMem::release_resident`]); the bytes
//! stay in the page cache, so reading them again costs a minor fault, not I/O. Each
//! region can add at most a folio or a fault-around window, 2 MiB, per side of a
//! region boundary, so the RSS overshoots the limit by at most `every` × 4 MiB.

use super::PhysMem;
use crate::addr::Maddr;
use std::fs::File;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// New regions met by all budgets of the process.
static NEW_REGIONS: AtomicU32 = AtomicU32::new(0);

/// Releases done by all budgets of the process (a release drops every mapping).
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Bits of a budget's set of regions read since the last release (8 KiB).
const SEEN_BITS: usize = 1 << 16;

/// What a scan may add to the RSS it starts with before it releases mapped pages:
/// 48 MiB, leaving room under a 100 MiB ceiling for the program itself and for
/// what is mapped between two looks.
pub const DEFAULT_LIMIT: u64 = 48 << 20;

/// The absolute RSS limit for a scan starting now that may add `budget` bytes.
pub fn limit_from_now(budget: Option<u64>) -> Option<u64> {
    budget.map(|b| rss().map_or(b, |r| r.current.saturating_add(b)))
}

/// New 2 MiB regions between two looks at the RSS (a look costs a few microseconds).
pub const ENUMERATE_EVERY: u32 = 8;

/// The same for batched translation.
pub const TRANSLATE_EVERY: u32 = 8;

/// A budget for resident memory, ticked by a scan at each table page it reads.
#[derive(Clone, Debug)]
pub struct Resident {
    limit: Option<u64>,
    every: u32,
    /// The 2 MiB region of the last tick.
    region: u64,
    /// Regions read since the last release (hashed; allocated on first use), and
    /// the release generation it belongs to.
    seen: Vec<u64>,
    generation: u32,
    /// How many times the source was asked to release its pages.
    pub releases: u64,
}

impl Resident {
    /// Release when the RSS exceeds `limit` bytes (never with `None`), looking once
    /// per `every` new 2 MiB regions read by any budget of the process.
    pub fn new(limit: Option<u64>, every: u32) -> Resident {
        let every = every.max(1);
        Resident { limit, every, region: u64::MAX, seen: Vec::new(), generation: 0, releases: 0 }
    }

    /// No limit: never look, never release.
    pub fn unlimited() -> Resident {
        Resident::new(None, u32::MAX)
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// A table page read from `mem` at `at`.
    #[inline]
    pub fn tick(&mut self, mem: &dyn PhysMem, at: Maddr) {
        if self.limit.is_none() || at.0 >> 21 == self.region {
            return;
        }
        let region = at.0 >> 21;
        self.region = region;
        // Only a region not read since the last release can add to the RSS.
        let generation = GENERATION.load(Ordering::Relaxed);
        if self.seen.is_empty() || generation != self.generation {
            self.seen.clear();
            self.seen.resize(SEEN_BITS / 64, 0);
            self.generation = generation;
        }
        let bit = (region ^ (region >> 16)) as usize % SEEN_BITS;
        let Some(word) = self.seen.get_mut(bit / 64) else { return };
        if *word & (1 << (bit % 64)) != 0 {
            return;
        }
        *word |= 1 << (bit % 64);
        // Counted for the whole process: the budgets of parallel tasks add up.
        if NEW_REGIONS.fetch_add(1, Ordering::Relaxed) % self.every == 0 {
            self.check(mem);
        }
    }

    #[cold]
    #[inline(never)]
    fn check(&mut self, mem: &dyn PhysMem) {
        if let (Some(limit), Some(rss)) = (self.limit, rss().map(|r| r.current)) {
            if rss > limit {
                mem.release_resident();
                self.releases += 1;
                GENERATION.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// This process's resident set size now and at its peak, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rss {
    pub current: u64,
    pub peak: u64,
}

/// Read `VmRSS` and `VmHWM` from `/proc/self/status` (Linux; `None` elsewhere or if
/// unreadable). The file is opened once and re-read in place.
pub fn rss() -> Option<Rss> {
    static STATUS: OnceLock<Option<File>> = OnceLock::new();
    let f = STATUS.get_or_init(|| File::open("/proc/self/status").ok()).as_ref()?;
    let mut buf = [0u8; 4096];
    let n = read_at_start(f, &mut buf)?;
    parse_status(buf.get(..n)?)
}

#[cfg(unix)]
fn read_at_start(f: &File, buf: &mut [u8]) -> Option<usize> {
    use std::os::unix::fs::FileExt;
    f.read_at(buf, 0).ok()
}

#[cfg(not(unix))]
fn read_at_start(_: &File, _: &mut [u8]) -> Option<usize> {
    None
}

/// `VmRSS:` and `VmHWM:` (in kB) of a `/proc/<pid>/status` text.
fn parse_status(text: &[u8]) -> Option<Rss> {
    let field = |name: &[u8]| -> Option<u64> {
        let line = text.split(|&b| b == b'\n').find(|l| l.starts_with(name))?;
        let digits = line.get(name.len()..)?.iter().skip_while(|b| !b.is_ascii_digit());
        let mut v = 0u64;
        for &b in digits.take_while(|b| b.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        v.checked_mul(1024)
    };
    Some(Rss { current: field(b"VmRSS:")?, peak: field(b"VmHWM:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let t = b"Name:\txenwalk\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status(t), Some(Rss { current: 1024 * 1024, peak: 2048 * 1024 }));
        assert_eq!(parse_status(b"VmRSS: 1 kB\n"), None);
    }

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let r = rss().expect("/proc/self/status");
            assert!(r.current > 0 && r.peak >= r.current);
        }
    }

    #[test]
    fn a_budget_releases_above_its_limit_only() {
        use crate::fixture::Machine;
        let m = Machine::new(1 << 20);
        let mut high = Resident::new(Some(u64::MAX), 2);
        for i in 0..10 {
            high.tick(&m, Maddr(i << 21));
        }
        assert_eq!(high.releases, 0);
        let mut low = Resident::new(Some(1), 2);
        for i in 0..10 {
            // Two pages in each region: the second is not a new region.
            low.tick(&m, Maddr(i << 21));
            low.tick(&m, Maddr(i << 21 | 0x1000));
        }
        // Tests run in parallel and share the region count: at least some looks.
        assert!(low.releases >= u64::from(cfg!(target_os = "linux")));
        let mut none = Resident::unlimited();
        none.tick(&m, Maddr(0));
        assert_eq!(none.releases, 0);
    }
}
