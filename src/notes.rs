//! Decoding the ELF notes that dump writers leave: per-CPU registers (where CR3 comes
//! from when the user gives none) and Xen's crash information.
//!
//! Layouts (reference `xen-x86-64.md` §7a, §7d):
//! * `CORE`/NT_PRSTATUS (type 1), 336 bytes: `pr_pid` @32, `pr_reg` @112 = 27 u64 in
//!   the order r15 … rip (index 16) … rsp (index 19) (`X:…/asm/x86_64/elf.h@4.17.0`).
//! * Xen `CRASH_REGS` (0x1000002), 32 bytes: cr0, cr2, cr3, cr4, one per CPU right
//!   after that CPU's CORE note (`X:xen/common/kexec.c@4.17.0`).
//! * Xen `CRASH_INFO` (0x1000001), 80 bytes of u64: version, string maddrs, tainted
//!   @56, `xen_phys_start` @64, `dom0_pfn_to_mfn_frame_list_list` @72 (8- and 9-word
//!   versions exist; makedumpfile accepts them).
//! * `VMCOREINFO_XEN` (type 0): `KEY=VALUE` text, NUL-padded.
//! * QEMU writes the i386 NT_PRSTATUS (144 bytes) for a CPU not in long mode, also in
//!   an ELF64 core ([`PRSTATUS_I386_SIZE`]).
//! * QEMU's `QEMU` note (type 0): `QEMUCPUState`, version @0, size @4, cr0..cr4 @392..
//!   (cr3 @416, cr4 @424), one per CPU in CPU order; its NT_PRSTATUS has `pr_pid` =
//!   CPU index + 1 (QEMU `target/i386/arch_dump.c`).
//!
//! The note stream itself (`Elf64_Nhdr` = namesz, descsz, type, then the name and the
//! descriptor, each padded to the alignment) is parsed by [`parse_stream`], shared by
//! ELF cores (a `PT_NOTE` segment) and kdump-compressed files (the source vmcore's notes
//! copied verbatim at `offset_note`, reference §7b).

use crate::addr::hex_opt;
use crate::mem::Malformed;
use serde::Serialize;

/// One ELF note, copied out of the file (notes are small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawNote {
    /// Note name without the trailing NUL.
    pub name: String,
    pub n_type: u32,
    pub desc: Vec<u8>,
    /// File offset of the note header.
    pub offset: u64,
}

/// Upper bound on a single note's descriptor; real ones are at most a few KiB
/// (VMCOREINFO_XEN is 4068 bytes). Bigger claims are corruption.
pub const MAX_NOTE_DESC: usize = 1 << 20;

/// Read the notes in `b`, a note stream that starts at file offset `off`, with names
/// and descriptors padded to `align` (4 or 8), appending them to `out`. Stops at
/// the end, at an all-zero header (padding at the end of a note buffer), or at the
/// first note that does not fit (the error; notes before it are kept). Written by
/// hand rather than with object's iterator so that each note keeps its file offset.
pub fn parse_stream(mut b: &[u8], mut off: u64, align: usize, out: &mut Vec<RawNote>) -> Result<(), Malformed> {
    let align = align.max(1);
    let pad = |n: usize| n.checked_next_multiple_of(align);
    while b.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(n_type)) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8)) else {
            break;
        };
        if namesz == 0 && descsz == 0 && n_type == 0 {
            break; // zero padding at the end of a note buffer
        }
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name_end = pad(namesz).and_then(|n| n.checked_add(12));
        let desc_end = name_end.zip(pad(descsz)).and_then(|(a, d)| a.checked_add(d));
        let (Some(name_end), Some(desc_end)) = (name_end, desc_end) else {
            return Err(Malformed::new(off, "note sizes overflow"));
        };
        let raw_name = 12usize.checked_add(namesz).and_then(|e| b.get(12..e));
        let desc = name_end.checked_add(descsz).and_then(|e| b.get(name_end..e));
        let (Some(raw_name), Some(desc), true) = (raw_name, desc, descsz <= MAX_NOTE_DESC && desc_end <= b.len())
        else {
            return Err(Malformed::new(
                off,
                format!("note claims {namesz} name bytes and {descsz} descriptor bytes, past the end of its segment"),
            ));
        };
        let name_len = raw_name.iter().position(|&c| c == 0).unwrap_or(namesz);
        let name = String::from_utf8_lossy(raw_name.get(..name_len).unwrap_or(raw_name)).into_owned();
        out.push(RawNote { name, n_type, desc: desc.to_vec(), offset: off });
        b = b.get(desc_end..).unwrap_or(&[]);
        off = off.saturating_add(desc_end as u64);
    }
    Ok(())
}

/// Size of the i386 `elf_prstatus` QEMU writes for a CPU that is not in long mode
/// (even into an ELF64 core): pid @24, `user_regs` @72 as 17 u32 (ebx, ecx, edx, esi,
/// edi, ebp, eax, ds, es, fs, gs, orig_eax, eip @12, cs, eflags, esp @15, ss)
/// (QEMU `target/i386/arch_dump.c`, `x86_elf_prstatus`).
pub const PRSTATUS_I386_SIZE: usize = 144;

/// Note type of NT_PRSTATUS.
pub const NT_PRSTATUS: u32 = 1;
/// Xen's crash-information note (`XEN_ELFNOTE_CRASH_INFO`).
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// Xen's per-CPU control registers note (`XEN_ELFNOTE_CRASH_REGS`).
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;

/// Where a CPU's control registers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegsSource {
    /// QEMU's `QEMU` note (`dump-guest-memory`).
    QemuNote,
    /// Xen's `CRASH_REGS` note (kexec crash dump).
    XenCrashRegs,
}

impl RegsSource {
    pub fn describe(self) -> &'static str {
        match self {
            RegsSource::QemuNote => "QEMU note",
            RegsSource::XenCrashRegs => "Xen CRASH_REGS note",
        }
    }
}

/// What the notes say about one CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuState {
    /// CPU index, from note order (Xen leaves `pr_pid` 0; QEMU's pr_pid agrees).
    pub cpu: usize,
    #[serde(serialize_with = "hex_opt")]
    pub rip: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub rsp: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr0: Option<u64>,
    /// The last page-fault address (CRASH_REGS, QEMU note).
    #[serde(serialize_with = "hex_opt")]
    pub cr2: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr3: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr4: Option<u64>,
    pub regs_source: Option<RegsSource>,
}

/// Xen's `crash_xen_info_t`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XenCrashInfo {
    pub major: u64,
    pub minor: u64,
    #[serde(serialize_with = "hex_opt")]
    pub xen_phys_start: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub dom0_pfn_to_mfn_frame_list_list: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub tainted: Option<u64>,
    /// The build strings (`xen_extra_version`, `xen_changeset`, `xen_compiler`,
    /// `xen_compile_date`, `xen_compile_time`): the note holds their machine
    /// addresses; the text is read from the dump when it holds those pages.
    pub strings: Vec<CrashInfoString>,
}

/// One string CRASH_INFO points to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrashInfoString {
    pub name: &'static str,
    pub maddr: crate::addr::Maddr,
    pub text: Option<String>,
}

impl XenCrashInfo {
    /// Read the strings from the dump (at most 256 bytes each, up to a NUL).
    pub fn read_strings(&mut self, mem: &dyn crate::mem::PhysMem) {
        for s in &mut self.strings {
            let mut buf = [0u8; 256];
            let mut n = 0;
            while n < buf.len()
                && mem.read(s.maddr.checked_add(n as u64).unwrap_or(s.maddr), &mut buf[n..n + 1]).is_ok()
            {
                if buf[n] == 0 {
                    s.text = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                    break;
                }
                n += 1;
            }
        }
    }
}

/// How many notes of one name and type a dump has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoteCount {
    pub name: String,
    pub n_type: u32,
    pub count: usize,
}

/// Everything decoded from a dump's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notes {
    pub cpus: Vec<CpuState>,
    pub xen_crash_info: Option<XenCrashInfo>,
    /// VMCOREINFO_XEN text, up to its first NUL.
    pub vmcoreinfo_xen: Option<String>,
    /// How many notes of each name and type were seen, in first-seen order.
    pub counts: Vec<NoteCount>,
    /// Notes that were recognised but could not be decoded.
    pub problems: Vec<String>,
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

impl Notes {
    /// Decode `raw` notes, in file order.
    pub fn decode(raw: &[RawNote]) -> Notes {
        let mut n = Notes::default();
        let mut core_seen = 0usize;
        let mut qemu_seen = 0usize;
        let mut last_core_cpu: Option<usize> = None;
        for note in raw {
            match n.counts.iter_mut().find(|c| c.name == note.name && c.n_type == note.n_type) {
                Some(c) => c.count += 1,
                None => n.counts.push(NoteCount { name: note.name.clone(), n_type: note.n_type, count: 1 }),
            }
            let d = &note.desc;
            match (note.name.as_str(), note.n_type) {
                ("CORE", NT_PRSTATUS) => {
                    let cpu = core_seen;
                    core_seen += 1;
                    last_core_cpu = Some(cpu);
                    if d.len() == PRSTATUS_I386_SIZE {
                        // QEMU's 32-bit layout, written for a CPU not in long mode.
                        let c = n.cpu_mut(cpu);
                        c.rip = u32_at(d, 72 + 12 * 4).map(u64::from);
                        c.rsp = u32_at(d, 72 + 15 * 4).map(u64::from);
                        continue;
                    }
                    if d.len() < 112 + 27 * 8 {
                        n.problems.push(format!(
                            "NT_PRSTATUS at offset {:#x}: {} bytes, too short for x86-64 registers",
                            note.offset,
                            d.len()
                        ));
                        continue;
                    }
                    let c = n.cpu_mut(cpu);
                    c.rip = u64_at(d, 112 + 16 * 8);
                    c.rsp = u64_at(d, 112 + 19 * 8);
                }
                ("Xen", XEN_ELFNOTE_CRASH_REGS) => {
                    let Some(cpu) = last_core_cpu else {
                        n.problems.push(format!(
                            "Xen CRASH_REGS at offset {:#x} precedes every NT_PRSTATUS: no CPU to attach it to",
                            note.offset
                        ));
                        continue;
                    };
                    if d.len() < 32 {
                        n.problems.push(format!(
                            "Xen CRASH_REGS at offset {:#x}: {} bytes, expected 32",
                            note.offset,
                            d.len()
                        ));
                        continue;
                    }
                    let c = n.cpu_mut(cpu);
                    c.cr0 = u64_at(d, 0);
                    c.cr2 = u64_at(d, 8);
                    c.cr3 = u64_at(d, 16);
                    c.cr4 = u64_at(d, 24);
                    c.regs_source = Some(RegsSource::XenCrashRegs);
                }
                ("Xen", XEN_ELFNOTE_CRASH_INFO) => {
                    if d.len() < 64 {
                        n.problems.push(format!(
                            "Xen CRASH_INFO at offset {:#x}: {} bytes, expected 64-80",
                            note.offset,
                            d.len()
                        ));
                        continue;
                    }
                    let names = ["extra_version", "changeset", "compiler", "compile_date", "compile_time"];
                    let strings = names
                        .iter()
                        .enumerate()
                        .filter_map(|(i, name)| {
                            let ma = u64_at(d, 16 + 8 * i)?;
                            (ma != 0).then_some(CrashInfoString { name, maddr: crate::addr::Maddr(ma), text: None })
                        })
                        .collect();
                    n.xen_crash_info = Some(XenCrashInfo {
                        major: u64_at(d, 0).unwrap_or(0),
                        minor: u64_at(d, 8).unwrap_or(0),
                        xen_phys_start: u64_at(d, 64),
                        dom0_pfn_to_mfn_frame_list_list: u64_at(d, 72),
                        tainted: u64_at(d, 56),
                        strings,
                    });
                }
                ("VMCOREINFO_XEN", _) => {
                    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                    n.vmcoreinfo_xen = Some(String::from_utf8_lossy(d.get(..end).unwrap_or(d)).into_owned());
                }
                ("QEMU", 0) => {
                    let cpu = qemu_seen;
                    qemu_seen += 1;
                    let size = u32_at(d, 4).unwrap_or(0) as usize;
                    if d.len() < 432 || size < 432 {
                        n.problems.push(format!(
                            "QEMU note at offset {:#x}: {} bytes (size field {size}), too short for control registers",
                            note.offset,
                            d.len()
                        ));
                        continue;
                    }
                    let c = n.cpu_mut(cpu);
                    c.cr0 = u64_at(d, 392);
                    c.cr2 = u64_at(d, 408);
                    c.cr3 = u64_at(d, 416);
                    c.cr4 = u64_at(d, 424);
                    c.regs_source = Some(RegsSource::QemuNote);
                    if c.rip.is_none() {
                        c.rip = u64_at(d, 136);
                    }
                }
                (name, XEN_ELFNOTE_CRASH_INFO | XEN_ELFNOTE_CRASH_REGS) => {
                    // Xen's note types under another name: a corrupt or foreign note.
                    n.problems.push(format!(
                        "note at offset {:#x} has Xen's type {:#x} but the name {name:?}, not \"Xen\"",
                        note.offset, note.n_type
                    ));
                }
                _ => {}
            }
        }
        n
    }

    fn cpu_mut(&mut self, cpu: usize) -> &mut CpuState {
        let pos = match self.cpus.iter().position(|c| c.cpu == cpu) {
            Some(p) => p,
            None => {
                self.cpus.push(CpuState { cpu, ..CpuState::default() });
                self.cpus.len() - 1
            }
        };
        &mut self.cpus[pos]
    }

    /// The state of CPU `cpu`, if any note mentioned it.
    pub fn cpu(&self, cpu: usize) -> Option<&CpuState> {
        self.cpus.iter().find(|c| c.cpu == cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &str, n_type: u32, desc: Vec<u8>) -> RawNote {
        RawNote { name: name.into(), n_type, desc, offset: 0 }
    }

    #[test]
    fn xen_kexec_order_attaches_regs_to_the_preceding_core_note() {
        let mut pr = vec![0u8; 336];
        pr[240..248].copy_from_slice(&0xffff_82d0_4020_0000u64.to_le_bytes());
        let regs = |cr3: u64| {
            let mut v = vec![0u8; 32];
            v[16..24].copy_from_slice(&cr3.to_le_bytes());
            v[24..32].copy_from_slice(&0x350660u64.to_le_bytes());
            v
        };
        let mut info = vec![0u8; 80];
        info[0] = 4;
        info[8] = 0x11;
        info[64..72].copy_from_slice(&0x3f80_0000u64.to_le_bytes());
        let raw = vec![
            note("CORE", 1, pr.clone()),
            note("Xen", XEN_ELFNOTE_CRASH_REGS, regs(0x0111_1000)),
            note("Xen", XEN_ELFNOTE_CRASH_INFO, info),
            note("CORE", 1, pr),
            note("Xen", XEN_ELFNOTE_CRASH_REGS, regs(0x0222_2000)),
            note("VMCOREINFO_XEN", 0, b"PAGESIZE=4096\nSYMBOL(max_page)=ffff82d0405932f0\n\0\0\0".to_vec()),
        ];
        let n = Notes::decode(&raw);
        assert_eq!(n.cpus.len(), 2);
        assert_eq!(n.cpu(0).unwrap().cr3, Some(0x0111_1000));
        assert_eq!(n.cpu(1).unwrap().cr3, Some(0x0222_2000));
        assert_eq!(n.cpu(1).unwrap().rip, Some(0xffff_82d0_4020_0000));
        assert_eq!(n.xen_crash_info.as_ref().unwrap().xen_phys_start, Some(0x3f80_0000));
        assert!(n.vmcoreinfo_xen.as_ref().unwrap().ends_with("ffff82d0405932f0\n"));
        assert!(n.problems.is_empty());
    }

    #[test]
    fn note_stream_keeps_offsets_and_stops_on_garbage() {
        let mut buf = Vec::new();
        for (name, ty, desc) in [("CORE", 1u32, vec![1u8; 8]), ("Xen", 0x100_0002, vec![2u8; 32])] {
            let n = name.len() + 1;
            buf.extend_from_slice(&(n as u32).to_le_bytes());
            buf.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            buf.extend_from_slice(&ty.to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.push(0);
            while buf.len() % 4 != 0 {
                buf.push(0);
            }
            buf.extend_from_slice(&desc);
        }
        let mut out = Vec::new();
        parse_stream(&buf, 0x100, 4, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, "Xen");
        assert_eq!(out[1].offset, 0x100 + 12 + 8 + 8);
        // A note that claims more than is there is an error with its offset.
        let mut bad = buf.clone();
        bad.extend_from_slice(&[5, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        let mut out = Vec::new();
        let e = parse_stream(&bad, 0, 4, &mut out).unwrap_err();
        assert_eq!(e.offset, buf.len() as u64);
        assert_eq!(out.len(), 2);
        // Sizes near u32::MAX neither overflow nor panic.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0];
        assert!(parse_stream(&huge, 0, 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn xen_types_under_another_name_are_reported() {
        let n = Notes::decode(&[note("Xem", XEN_ELFNOTE_CRASH_INFO, vec![0; 80])]);
        assert!(n.xen_crash_info.is_none());
        assert_eq!(n.problems.len(), 1);
        assert!(n.problems[0].contains("\"Xem\""));
    }

    #[test]
    fn qemu_i386_prstatus_gives_eip_and_esp() {
        let mut pr = vec![0u8; PRSTATUS_I386_SIZE];
        pr[24..28].copy_from_slice(&1u32.to_le_bytes());
        pr[72 + 48..72 + 52].copy_from_slice(&0xfff0u32.to_le_bytes());
        pr[72 + 60..72 + 64].copy_from_slice(&0x7c00u32.to_le_bytes());
        let n = Notes::decode(&[note("CORE", 1, pr)]);
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        assert_eq!((n.cpu(0).unwrap().rip, n.cpu(0).unwrap().rsp), (Some(0xfff0), Some(0x7c00)));
    }

    #[test]
    fn short_notes_are_reported_not_trusted() {
        let n = Notes::decode(&[note("QEMU", 0, vec![1, 0, 0, 0, 0xb8, 1, 0, 0])]);
        assert!(n.cpus.is_empty());
        assert_eq!(n.problems.len(), 1);
    }
}
