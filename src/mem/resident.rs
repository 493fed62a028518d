//! Keeping resident memory bounded while scanning a dump of any size.
//!
//! Raw and ELF dumps are memory-mapped: every page a scan touches stays mapped, and
//! counts in the process's resident set (RSS), until the mapping is dropped. A whole
//! listing of a 64 GiB direct map in 4 KiB pages reads 128 MiB of L1 tables, and a
//! kernel that maps a whole large folio on a fault (Linux 6.x page cache) can map
//! 2 MiB for one touched page. [`Resident`] looks at the process's RSS every so many
//! table reads and, above a limit, asks the source to drop its mappings
//! ([`PhysMem::release_resident`]); the bytes stay in the page cache, so reading them
//! again costs a minor fault, not I/O.

use super::PhysMem;
use std::fs::File;
use std::sync::OnceLock;

/// The RSS above which scans release mapped pages: 64 MiB, leaving room under a
/// 100 MiB ceiling for the program itself and the pages mapped between two checks.
pub const DEFAULT_LIMIT: u64 = 64 << 20;

/// Table reads between two looks at the RSS in whole-space enumeration (each read is
/// 512 entries; a look costs a few microseconds).
pub const ENUMERATE_EVERY: u32 = 16;

/// New table pages between two looks at the RSS in batched translation.
pub const TRANSLATE_EVERY: u32 = 64;

/// A budget for resident memory, ticked by a scan at each table page it reads.
#[derive(Clone, Debug)]
pub struct Resident {
    limit: Option<u64>,
    every: u32,
    left: u32,
    /// How many times the source was asked to release its pages.
    pub releases: u64,
}

impl Resident {
    /// Release when the RSS exceeds `limit` bytes (never with `None`), looking every
    /// `every` ticks.
    pub fn new(limit: Option<u64>, every: u32) -> Resident {
        let every = every.max(1);
        Resident { limit, every, left: every, releases: 0 }
    }

    /// No limit: never look, never release.
    pub fn unlimited() -> Resident {
        Resident::new(None, u32::MAX)
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// One more table page read from `mem`.
    #[inline]
    pub fn tick(&mut self, mem: &dyn PhysMem) {
        if self.limit.is_none() {
            return;
        }
        self.left -= 1;
        if self.left == 0 {
            self.left = self.every;
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
        for _ in 0..10 {
            high.tick(&m);
        }
        assert_eq!(high.releases, 0);
        let mut low = Resident::new(Some(1), 2);
        for _ in 0..10 {
            low.tick(&m);
        }
        assert_eq!(low.releases, if cfg!(target_os = "linux") { 5 } else { 0 });
        let mut none = Resident::unlimited();
        none.tick(&m);
        assert_eq!(none.releases, 0);
    }
}
