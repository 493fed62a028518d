//! Physical-memory sources: one trait, one file per dump format.
//!
//! Every format answers the same question: "what are the bytes at this machine
//! address?" The answer has three outcomes, and they must never be confused:
//!
//! * the bytes (borrowed from the memory map when the format allows it);
//! * [`Absent`]: the dump does not hold them, with the precise reason (outside the
//!   image, a hole between segments, a page the dump did not capture). Absent is not
//!   zero: a tool that reads absent pages as zeros is how a walk "hits zeros at L3";
//! * malformed data (a corrupt compressed page, in formats that have them).

pub mod elf;
pub mod flattened;
pub mod kdump;
pub mod lzo;
pub mod mapped;
pub mod raw;
pub mod resident;
pub mod xlcore;

use crate::addr::{Gpa, Maddr, Mfn, PAGE_SIZE, PhysAddr};
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

pub use mapped::{MappedImage, Segment};

/// A malformed or unsupported file: what was wrong and at which file offset. Every
/// format reader fails with it when it opens a file (ELF, flattened, kdump,
/// `xl dump-core`) or reads a note stream; `what` is a fixed text where one will
/// do and allocates only to carry a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset:#x}: {what}")]
pub struct Malformed {
    /// File offset of the offending structure.
    pub offset: u64,
    pub what: Cow<'static, str>,
}

impl Malformed {
    pub fn new(offset: u64, what: impl Into<Cow<'static, str>>) -> Malformed {
        Malformed { offset, what: what.into() }
    }

    /// The same fault seen from the layer above, which names the layer: `what`
    /// becomes `"{layer}: {what}"` (a flattened file's records, read by kdump).
    pub fn within(self, layer: &str) -> Malformed {
        Malformed { offset: self.offset, what: format!("{layer}: {}", self.what).into() }
    }
}

/// Why a dump cannot supply the bytes at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    /// Below the lowest or above the highest address the image describes at all.
    /// `start..end` is the span the image covers.
    OutsideImage { start: Maddr, end: Maddr },
    /// Between two segments: no segment describes this address (a hole in the
    /// machine's memory map, MMIO, or memory the dump writer skipped).
    Hole { prev_end: Maddr, next_start: Maddr },
    /// Inside a segment's memory range but not in the file: the ELF program header
    /// has `p_filesz < p_memsz` (the page exists but was not captured or was filtered).
    NotCaptured { segment: usize },
    /// In a kdump-compressed file, the page exists (1st bitmap) but the writer left it
    /// out (2nd bitmap clear): filtered by makedumpfile's dump level or `-X`.
    Excluded { dump_level: Option<u32> },
    /// In a guest-physical view (an HVM guest's memory seen through its p2m): the guest
    /// frame has no machine frame behind it.
    NotInP2m,
    /// In an `xl dump-core` guest core, no page of the guest has this frame: a PV
    /// guest's machine frame it did not own (Xen's tables, another domain's page), or
    /// an HVM guest-physical frame that is not guest RAM or was not dumped.
    NotInGuestCore { hvm: bool },
    /// A machine address asked of an HVM `xl dump-core` core: the core holds the
    /// guest's pages by guest-physical frame and no p2m (reference §7c), so no machine
    /// address is in it. Its pages are read as guest-physical memory.
    NoMachineMemory,
}

impl Absent {
    /// Stable snake_case name, used in JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Absent::OutsideImage { .. } => "outside_image",
            Absent::Hole { .. } => "hole",
            Absent::NotCaptured { .. } => "not_captured",
            Absent::Excluded { .. } => "excluded",
            Absent::NotInP2m => "p2m_unmapped",
            Absent::NotInGuestCore { .. } => "not_in_guest_core",
            Absent::NoMachineMemory => "no_machine_memory",
        }
    }

    /// Whether the address is one the machine probably had as RAM but the dump does
    /// not hold (as opposed to an address the dump never described).
    pub fn is_uncaptured(&self) -> bool {
        matches!(self, Absent::NotCaptured { .. } | Absent::Excluded { .. } | Absent::NotInGuestCore { .. })
    }
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Absent::OutsideImage { start, end } => {
                write!(f, "outside the image (it covers {start}-{:#x})", end.0.saturating_sub(1))
            }
            Absent::Hole { prev_end, next_start } => write!(
                f,
                "in a hole between segments ({prev_end}-{:#x} is described by no segment)",
                next_start.0.saturating_sub(1)
            ),
            Absent::NotCaptured { segment } => write!(
                f,
                "not captured: inside segment {segment}'s memory range but past its file data \
                 (p_filesz < p_memsz)"
            ),
            Absent::NotInP2m => write!(f, "not mapped in the guest's p2m (no machine frame behind this guest frame)"),
            Absent::Excluded { dump_level } => {
                write!(f, "excluded from the dump (")?;
                match dump_level {
                    Some(l) => write!(f, "dump level {l}")?,
                    None => write!(f, "dump level unknown")?,
                }
                write!(
                    f,
                    "): the kdump file lists the page as existing (1st bitmap) but not as dumped \
                     (2nd bitmap)"
                )
            }
            Absent::NotInGuestCore { hvm: false } => write!(
                f,
                "not in this guest core: no page of the guest's p2m (.xen_p2m) has this machine frame (the \
                 guest did not own it: Xen's own tables, another domain's page or a grant)"
            ),
            Absent::NotInGuestCore { hvm: true } => write!(
                f,
                "not in this guest core: no page of .xen_pfn has this guest-physical frame (not guest RAM, \
                 or not dumped)"
            ),
            Absent::NoMachineMemory => write!(
                f,
                "a machine address, and this HVM guest core holds guest-physical frames only (.xen_pfn, \
                 no p2m): no machine address is in it"
            ),
        }
    }
}

/// A failed read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The dump does not hold the byte at `addr`.
    #[error("{addr} is {why}")]
    Absent { addr: Maddr, why: Absent },
    /// The dump claims to hold the data but it cannot be decoded.
    #[error("{addr}: malformed data at file offset {offset:#x}: {what}")]
    Malformed { addr: Maddr, offset: u64, what: &'static str },
    /// Guest-physical memory does not hold the byte at `gpa`: the host p2m has no
    /// machine frame behind it, or an HVM guest core has no page for it. (When the
    /// p2m answers but the machine page is absent, the error is the machine one.)
    #[error("guest-physical {gpa} is {why}")]
    GuestAbsent { gpa: Gpa, why: Absent },
}

impl ReadError {
    /// The absence reason, if this is an absence.
    pub fn absent(&self) -> Option<Absent> {
        match self {
            ReadError::Absent { why, .. } | ReadError::GuestAbsent { why, .. } => Some(*why),
            ReadError::Malformed { .. } => None,
        }
    }
}

/// One 4 KiB page of machine memory: borrowed from the memory map when the format
/// stores it contiguously, owned when it had to be assembled or decompressed.
pub enum Page<'a> {
    Borrowed(&'a [u8; PAGE_SIZE as usize]),
    Owned(Box<[u8; PAGE_SIZE as usize]>),
}

impl Deref for Page<'_> {
    type Target = [u8; PAGE_SIZE as usize];
    fn deref(&self) -> &Self::Target {
        match self {
            Page::Borrowed(p) => p,
            Page::Owned(p) => p,
        }
    }
}

impl Page<'_> {
    /// The little-endian u64 at entry `index` (0..512) of this page seen as a table.
    #[inline]
    pub fn entry(&self, index: usize) -> u64 {
        let p: &[u8; PAGE_SIZE as usize] = self;
        let i = (index & 0x1ff) * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[i..i + 8]);
        u64::from_le_bytes(b)
    }

    /// Whether every byte of the page is zero.
    pub fn is_zero(&self) -> bool {
        let p: &[u8; PAGE_SIZE as usize] = self;
        p.iter().all(|&b| b == 0)
    }
}

/// What part of an address space a source describes, for `info` and for diagnosis
/// ("the image covers ..."): machine addresses, or guest-physical ones for an HVM
/// guest core's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent<A: PhysAddr = Maddr> {
    pub start: A,
    pub len: u64,
    /// True when the bytes are in the file; false for described-but-absent memory.
    pub present: bool,
}

/// A source of machine memory. Implementations are cheap to share between threads.
pub trait PhysMem: Send + Sync {
    /// The 4 KiB page of `mfn`. Fails with [`ReadError::Absent`] if any byte of the
    /// page is absent (callers needing partial pages use [`PhysMem::read`]).
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError>;

    /// Fill `buf` with the bytes at `addr`.
    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Read one little-endian u64 (a page-table entry) at `addr`.
    fn read_u64(&self, addr: Maddr) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Where the bytes at `addr` would come from, or why they cannot.
    fn locate(&self, addr: Maddr) -> Result<(), Absent>;

    /// The described ranges, in address order.
    fn extents(&self) -> Vec<Extent>;

    /// All of this source's bytes as one slice starting at machine address `.0`,
    /// when the format stores them so (a raw image: one memory-mapped segment, no
    /// byte absent). Every address in the slice reads as the slice says; addresses
    /// outside it must be asked through the other methods. Lean translation
    /// ([`crate::paging::Translator::translate_addr`]) reads its entries straight from
    /// it: a bounds check per level instead of a segment search and a copy.
    fn linear(&self) -> Option<(u64, &[u8])> {
        None
    }

    /// Give back this process's resident copies of the pages read so far, where the
    /// format maps the file into memory: the data stays readable (the next read maps it
    /// again from the page cache) and borrowed pages stay valid. Long scans call it
    /// through [`resident::Resident`] to keep resident memory bounded. By default
    /// nothing is held, so nothing is done.
    fn release_resident(&self) {}
}

/// Page-table memory of one address kind: what the walker, the root check, the
/// diagnosis and the guest enumeration read. Every [`PhysMem`] is one at machine
/// addresses; an HVM/PVH guest's guest-physical memory
/// ([`crate::xen::hvm::GuestMemory`]: through the host p2m, or an HVM `xl dump-core`
/// core's pages) is one at [`Gpa`]s and is deliberately *not* a `PhysMem`, so a
/// guest-physical address cannot be read as a machine one.
pub trait TableMem<A: PhysAddr>: Send + Sync {
    /// One little-endian u64 (a page-table entry) at `addr`.
    fn read_u64(&self, addr: A) -> Result<u64, ReadError>;
    /// The 4 KiB page containing `addr`.
    fn page_at(&self, addr: A) -> Result<Page<'_>, ReadError>;
    /// Where the bytes at `addr` would come from, or why they cannot.
    fn locate_at(&self, addr: A) -> Result<(), Absent>;
}

impl<T: PhysMem + ?Sized> TableMem<Maddr> for T {
    #[inline]
    fn read_u64(&self, addr: Maddr) -> Result<u64, ReadError> {
        PhysMem::read_u64(self, addr)
    }
    #[inline]
    fn page_at(&self, addr: Maddr) -> Result<Page<'_>, ReadError> {
        self.page(addr.mfn())
    }
    #[inline]
    fn locate_at(&self, addr: Maddr) -> Result<(), Absent> {
        self.locate(addr)
    }
}

/// A shared source is a source (a dump keeps its kdump image both as memory and for
/// `info`'s page census).
impl<T: PhysMem + ?Sized> PhysMem for std::sync::Arc<T> {
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        (**self).page(mfn)
    }
    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        (**self).read(addr, buf)
    }
    fn read_u64(&self, addr: Maddr) -> Result<u64, ReadError> {
        (**self).read_u64(addr)
    }
    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        (**self).locate(addr)
    }
    fn extents(&self) -> Vec<Extent> {
        (**self).extents()
    }
    fn release_resident(&self) {
        (**self).release_resident()
    }
    fn linear(&self) -> Option<(u64, &[u8])> {
        (**self).linear()
    }
}
