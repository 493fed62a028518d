//! Opening a dump: format detection by magic (never by file name), read-only memory
//! map, and the notes every format can carry.

use crate::mem::{self, PhysMem};
use crate::notes::Notes;
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to interpret the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatHint {
    /// Detect by magic; a file with no known magic and a size that is a whole number
    /// of pages is taken as a raw image.
    #[default]
    Auto,
    /// A flat physical memory image.
    Raw,
    /// An ELF core.
    Elf,
}

/// Options for [`Dump::open`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    pub format: FormatHint,
    /// Machine address of the first byte of a raw image.
    pub base: u64,
    /// Open despite corrupt notes (they become warnings).
    pub skip_bad_notes: bool,
}

/// What kind of file a dump is: a raw image, an ELF core, makedumpfile's
/// kdump-compressed format (plain or flattened), or an `xl dump-core` guest core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Raw { base: u64 },
    Elf(mem::elf::ElfSummary),
    Kdump(Box<mem::kdump::KdumpSummary>),
    XlCore(Box<mem::xlcore::XlCoreSummary>),
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Raw { .. } => "raw",
            Format::Elf(_) => "elf",
            Format::Kdump(_) => "kdump",
            Format::XlCore(_) => "xl_core",
        }
    }
}

/// Why a dump cannot be opened. The CLI prefixes the file name.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open")]
    Io(#[from] std::io::Error),
    #[error("is a directory, not a dump file")]
    Directory,
    #[error("empty file (0 bytes): not a dump")]
    Empty,
    #[error("compressed with {0}: decompress it first (for example `{1}`)")]
    Compressed(&'static str, &'static str),
    #[error("at offset 0x0: {0} is not supported yet")]
    Unsupported(&'static str),
    #[error(
        "at offset 0x0: unknown format (first bytes {magic}) and its size ({size} bytes) is not a \
         whole number of 4 KiB pages, so it is not a raw memory image either; if it is raw, pass \
         --format raw"
    )]
    Unknown { magic: String, size: u64 },
    #[error("corrupt notes: {0} (pass --skip-bad-notes to use the dump's memory without them)")]
    BadNotes(String),
    /// An ELF, kdump (plain or flattened) or `xl dump-core` file its reader refused.
    #[error(transparent)]
    Malformed(#[from] mem::Malformed),
    #[error(transparent)]
    Raw(#[from] mem::raw::RawError),
}

/// What an `info` reader is told a dump holds: machine ranges, or an HVM guest
/// core's guest-physical ones.
pub enum Extents {
    Machine(Vec<mem::Extent>),
    GuestPhysical(Vec<mem::Extent<crate::addr::Gpa>>),
}

impl Extents {
    /// `(start, len, present)` of each range, in address order.
    pub fn ranges(&self) -> Vec<(u64, u64, bool)> {
        match self {
            Extents::Machine(v) => v.iter().map(|e| (e.start.0, e.len, e.present)).collect(),
            Extents::GuestPhysical(v) => v.iter().map(|e| (e.start.0, e.len, e.present)).collect(),
        }
    }

    /// Whether the addresses are guest-physical.
    pub fn guest_physical(&self) -> bool {
        matches!(self, Extents::GuestPhysical(_))
    }
}

/// An opened dump: its memory and what its headers and notes say.
pub struct Dump {
    pub path: PathBuf,
    pub file_size: u64,
    pub format: Format,
    pub mem: Box<dyn PhysMem>,
    pub notes: Notes,
    /// Problems that did not stop the dump from being used.
    pub warnings: Vec<String>,
    /// The kdump image behind `mem`, for what only `info` asks of it.
    kdump: Option<Arc<mem::kdump::KdumpImage>>,
    /// The guest core behind `mem`: its p2m and vCPU contexts.
    guest: Option<Arc<mem::xlcore::XlCore>>,
}

const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Known magics of things people mistake for dumps, or formats not read yet.
fn recognise(head: &[u8]) -> Option<OpenError> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"\xfd7zXZ\0") {
        Some(OpenError::Compressed("xz", "xz -dk FILE"))
    } else if starts(b"\x1f\x8b") {
        Some(OpenError::Compressed("gzip", "gzip -dk FILE"))
    } else if starts(b"\x28\xb5\x2f\xfd") {
        Some(OpenError::Compressed("zstd", "zstd -d FILE"))
    } else if starts(b"BZh") && head.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        Some(OpenError::Compressed("bzip2", "bzip2 -dk FILE"))
    } else if starts(b"\x04\x22\x4d\x18") {
        Some(OpenError::Compressed("lz4", "lz4 -d FILE"))
    } else if starts(b"EMiL") {
        Some(OpenError::Unsupported("a LiME memory image"))
    } else {
        None
    }
}

/// Corrupt notes are bad input: the registers and Xen facts in them cannot be
/// trusted, and silently dropping them would change which root is walked. They are an
/// error unless the user says to go on with the memory alone (`--skip-bad-notes`),
/// in which case they become warnings.
fn check_notes(mut errors: Vec<String>, notes: &Notes, skip: bool) -> Result<Vec<String>, OpenError> {
    errors.extend(notes.problems.iter().cloned());
    if errors.is_empty() || skip {
        return Ok(errors);
    }
    Err(OpenError::BadNotes(errors.join("; ")))
}

impl Dump {
    /// Dumped pages per compression kind of a kdump file (reads every page
    /// descriptor: O(pages), for `info`); `None` for other formats.
    pub fn kdump_census(&self) -> Option<mem::kdump::Census> {
        self.kdump.as_ref().map(|k| k.census())
    }

    /// The `xl dump-core` guest core behind `mem` (its p2m, vCPU contexts), if that is
    /// what the dump is.
    pub fn guest_core(&self) -> Option<&mem::xlcore::XlCore> {
        self.guest.as_deref()
    }

    /// The ranges the dump holds, in the only address kind it has: machine
    /// addresses, or for an HVM guest core (no machine address in it) guest-physical.
    pub fn extents(&self) -> Extents {
        match self.guest.as_deref() {
            Some(g) if g.kind() == mem::xlcore::GuestKind::Hvm => Extents::GuestPhysical(g.guest_extents()),
            _ => Extents::Machine(self.mem.extents()),
        }
    }

    /// Open `path` read-only. Opening maps the file and reads headers and notes only.
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Dump, OpenError> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            return Err(OpenError::Directory);
        }
        let file = File::open(path)?;
        let file_size = file.metadata()?.len();
        if file_size == 0 {
            return Err(OpenError::Empty);
        }
        // SAFETY: the map is read-only and private to this process. If another process
        // truncates the file while it is mapped, reads past the new end fault (SIGBUS);
        // dumps are not modified while being analysed, and xenwalk never writes.
        let map = unsafe { Mmap::map(&file)? };
        let head = map.get(..16).unwrap_or(&map[..]);
        let is_elf = head.starts_with(ELF_MAGIC);
        let format = match opts.format {
            FormatHint::Elf => FormatHint::Elf,
            FormatHint::Raw => FormatHint::Raw,
            FormatHint::Auto if is_elf => FormatHint::Elf,
            FormatHint::Auto if mem::kdump::is_kdump(head) || mem::flattened::is_flattened(head) => {
                let flat = mem::flattened::is_flattened(head);
                let k = if flat { mem::kdump::open_flattened(map)? } else { mem::kdump::open_plain(map)? };
                let mut notes = Notes::decode(&k.notes);
                if let Some(ci) = notes.xen_crash_info.as_mut() {
                    ci.read_strings(&k.image);
                }
                let mut warnings = k.warnings;
                warnings.extend(check_notes(k.note_errors, &notes, opts.skip_bad_notes)?);
                let image = Arc::new(k.image);
                return Ok(Dump {
                    path: path.to_owned(),
                    file_size,
                    format: Format::Kdump(Box::new(image.summary().clone())),
                    mem: Box::new(Arc::clone(&image)),
                    notes,
                    warnings,
                    kdump: Some(image),
                    guest: None,
                });
            }
            FormatHint::Auto => {
                if let Some(e) = recognise(head) {
                    return Err(e);
                }
                if file_size % crate::addr::PAGE_SIZE != 0 {
                    let magic = head.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
                    return Err(OpenError::Unknown { magic, size: file_size });
                }
                FormatHint::Raw
            }
        };
        match format {
            FormatHint::Elf => {
                if !is_elf {
                    return Err(mem::Malformed::new(0, "no ELF magic (7f 45 4c 46)").into());
                }
                if mem::xlcore::is_xl_core(&map) {
                    let g = mem::xlcore::parse(map)?;
                    let notes = Notes::decode(&g.notes);
                    let warnings = check_notes(g.warnings, &notes, opts.skip_bad_notes)?;
                    let core = Arc::new(g.core);
                    return Ok(Dump {
                        path: path.to_owned(),
                        file_size,
                        format: Format::XlCore(Box::new(core.summary().clone())),
                        mem: Box::new(Arc::clone(&core)),
                        notes,
                        warnings,
                        kdump: None,
                        guest: Some(core),
                    });
                }
                let core = mem::elf::parse(map)?;
                let mut notes = Notes::decode(&core.notes);
                if let Some(ci) = notes.xen_crash_info.as_mut() {
                    ci.read_strings(&core.image);
                }
                let warnings = check_notes(core.warnings, &notes, opts.skip_bad_notes)?;
                Ok(Dump {
                    path: path.to_owned(),
                    file_size,
                    format: Format::Elf(core.summary),
                    mem: Box::new(core.image),
                    notes,
                    warnings,
                    kdump: None,
                    guest: None,
                })
            }
            _ => {
                let image = mem::raw::open(map, opts.base)?;
                Ok(Dump {
                    path: path.to_owned(),
                    file_size,
                    format: Format::Raw { base: opts.base },
                    mem: Box::new(image),
                    notes: Notes::default(),
                    warnings: Vec::new(),
                    kdump: None,
                    guest: None,
                })
            }
        }
    }
}
