//! ELF cores (`ET_CORE`): the Xen kexec vmcore and QEMU's `dump-guest-memory` output.
//!
//! Facts used (reference `xen-x86-64.md` §7a, §7d):
//! * `PT_LOAD` `p_paddr` is the machine address; `p_vaddr` is a guess by kexec-tools
//!   (or 0 from QEMU) and is ignored. object's own `data_range` keys on `p_vaddr`, so
//!   the program headers are indexed here.
//! * Program headers are found through `e_phoff`: QEMU 10 writes section headers at
//!   0x40 and program headers at 0xc0. With 0xffff or more segments `e_phnum` is
//!   `PN_XNUM` and the count is in section 0's `sh_info` (object handles this).
//! * `p_filesz < p_memsz` means the tail of the segment is not in the file: absent,
//!   never zero.

use super::Malformed;
use super::mapped::{MappedImage, Segment};
use memmap2::Mmap;
use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

pub use crate::notes::RawNote;

/// What the ELF headers say, for `xenwalk info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfSummary {
    /// `e_machine`: EM_X86_64, or EM_386 from QEMU when CPU 0 was not in long mode.
    pub machine: u16,
    pub phoff: u64,
    pub phnum: usize,
    pub loads: usize,
    pub note_segments: usize,
}

/// A parsed ELF core: its memory, its notes, and problems that did not stop parsing.
pub struct ElfCore {
    pub image: MappedImage,
    pub notes: Vec<RawNote>,
    pub summary: ElfSummary,
    /// Corrupt note segments (memory is still readable; see `Dump::open`).
    pub warnings: Vec<String>,
}

/// Parse `map` as a little-endian x86-64 ELF64 core.
pub fn parse(map: Mmap) -> Result<ElfCore, Malformed> {
    let data: &[u8] = &map;
    let file_len = data.len() as u64;
    if data.len() < 64 {
        return Err(Malformed::new(
            0,
            format!("the file is {file_len} bytes, too short for the 64-byte ELF64 header: truncated"),
        ));
    }
    let ident = data.get(..16).ok_or_else(|| Malformed::new(0, "file too short for an ELF header"))?;
    match ident.get(4) {
        Some(2) => {}
        Some(1) => return Err(Malformed::new(4, "ELF32 file: only ELF64 cores are supported")),
        _ => return Err(Malformed::new(4, "invalid ELF class byte")),
    }
    if ident.get(5) != Some(&1) {
        return Err(Malformed::new(5, "big-endian or invalid ELF data encoding: x86-64 cores are little-endian"));
    }
    let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|e| Malformed::new(0, format!("bad ELF header: {e}")))?;
    let e_type = hdr.e_type(LE);
    if e_type != elf::ET_CORE {
        let hint = if e_type == elf::ET_EXEC {
            " (an executable: if this is xen-syms, it is a symbol file, not a dump)"
        } else {
            ""
        };
        return Err(Malformed::new(16, format!("ELF type {e_type} is not a core file (ET_CORE){hint}")));
    }
    let machine = hdr.e_machine(LE);
    // QEMU writes EM_386 into an ELF64 core when its first CPU is not in long mode
    // (`cpu_get_dump_info`, QEMU `target/i386/arch_dump.c`: the class is 64 once any
    // RAM block ends above 4 GiB, as the BIOS ROM does): the memory is the same.
    if machine != elf::EM_X86_64 && machine != elf::EM_386 {
        return Err(Malformed::new(18, format!("ELF machine {machine} is not x86 (EM_X86_64 = 62, or EM_386 = 3)")));
    }
    let phoff = hdr.e_phoff(LE);
    let phentsize = u64::from(hdr.e_phentsize(LE));
    if phoff > file_len {
        return Err(Malformed::new(
            0x20,
            format!("e_phoff {phoff:#x} points past the end of the file ({file_len:#x} bytes)"),
        ));
    }
    let e_phnum = hdr.e_phnum(LE);
    if e_phnum != elf::PN_XNUM && phentsize == 56 {
        let end = phoff + u64::from(e_phnum) * 56;
        if end > file_len {
            return Err(Malformed::new(
                phoff,
                format!(
                    "{e_phnum} program headers at {phoff:#x}-{:#x} run past the end of the file ({file_len:#x} \
                 bytes): truncated",
                    end - 1
                ),
            ));
        }
    }
    let phdrs = hdr
        .program_headers(LE, data)
        .map_err(|e| Malformed::new(phoff, format!("program headers (e_phoff {phoff:#x}): {e}")))?;
    let phsize = std::mem::size_of::<elf::ProgramHeader64<LE>>() as u64;

    let mut segs = Vec::new();
    let mut note_ranges = Vec::new();
    for (i, ph) in phdrs.iter().enumerate() {
        let at = phoff + i as u64 * phsize;
        let (off, filesz, memsz) = (ph.p_offset(LE), ph.p_filesz(LE), ph.p_memsz(LE));
        match ph.p_type(LE) {
            elf::PT_LOAD => {
                let paddr = ph.p_paddr(LE);
                if filesz > memsz {
                    return Err(Malformed::new(
                        at,
                        format!("program header {i}: PT_LOAD p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}"),
                    ));
                }
                if off.checked_add(filesz).is_none_or(|e| e > file_len) {
                    return Err(Malformed::new(
                        at,
                        format!(
                            "program header {i}: PT_LOAD file range {off:#x}+{filesz:#x} runs past the \
                         end of the file ({file_len:#x} bytes): the dump is truncated"
                        ),
                    ));
                }
                if paddr.checked_add(memsz).is_none() {
                    return Err(Malformed::new(
                        at,
                        format!("program header {i}: PT_LOAD {paddr:#x}+{memsz:#x} overflows the address space"),
                    ));
                }
                if memsz > 0 {
                    segs.push(Segment { paddr, memsz, offset: off, filesz, index: i });
                }
            }
            elf::PT_NOTE => {
                let ok = off.checked_add(filesz).is_some_and(|e| e <= file_len);
                if !ok {
                    return Err(Malformed::new(
                        at,
                        format!(
                            "program header {i}: PT_NOTE range {off:#x}+{filesz:#x} runs past the end \
                         of the file ({file_len:#x} bytes)"
                        ),
                    ));
                }
                note_ranges.push((i, off, filesz, ph.p_align(LE)));
            }
            _ => {}
        }
    }
    if segs.is_empty() {
        let why = if phdrs.is_empty() {
            "no program headers: this ELF core describes no memory (and it has no .xen_pages \
             section, so it is not an `xl dump-core` guest core either)"
        } else {
            "no PT_LOAD segment: this ELF core describes no memory"
        };
        return Err(Malformed::new(phoff, why));
    }
    segs.sort_by_key(|s| s.paddr);
    for w in segs.windows(2) {
        if let [a, b] = w {
            if a.end() > b.paddr {
                return Err(Malformed::new(
                    phoff + b.index as u64 * phsize,
                    format!(
                        "program headers {} and {} overlap: PT_LOAD {:#x}-{:#x} and {:#x}-{:#x}",
                        a.index,
                        b.index,
                        a.paddr,
                        a.end() - 1,
                        b.paddr,
                        b.end() - 1
                    ),
                ));
            }
        }
    }

    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    for &(i, off, filesz, align) in &note_ranges {
        let (Ok(start), Ok(len)) = (usize::try_from(off), usize::try_from(filesz)) else {
            continue;
        };
        let Some(bytes) = data.get(start..start + len) else {
            continue;
        };
        // QEMU writes p_align 0; the ELF64 note convention is 4-byte alignment anyway.
        let align = if align == 8 { 8 } else { 4 };
        if let Err(w) = crate::notes::parse_stream(bytes, off, align, &mut notes) {
            warnings.push(format!("PT_NOTE segment {i}: {w}"));
        }
    }

    let summary = ElfSummary {
        machine: machine.0,
        phoff,
        phnum: phdrs.len(),
        loads: segs.len(),
        note_segments: note_ranges.len(),
    };
    Ok(ElfCore { image: MappedImage::new(map, segs), notes, summary, warnings })
}
