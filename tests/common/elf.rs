//! A byte-by-byte ELF64 core writer for malformed-input tests: the header and program
//! header layout constants (to patch single fields), [`Phdr`], and [`elf64_core`],
//! which puts blobs at any file offset (unlike `xenwalk::fixture::write_elf_core`,
//! which lays segments out itself and writes a file).

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const ET_CORE: u16 = 4;
pub const ET_EXEC: u16 = 2;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

// Byte offsets of the ELF64 header fields the variants change.
pub const EI_CLASS: usize = 4;
pub const EI_DATA: usize = 5;
pub const E_TYPE: usize = 16;
pub const E_MACHINE: usize = 18;
pub const E_PHOFF: usize = 32;
pub const E_PHENTSIZE: usize = 54;
pub const E_PHNUM: usize = 56;
pub const EHDR_SIZE: usize = 64;
pub const PHDR_SIZE: usize = 56;
// Byte offsets inside one program header.
pub const P_TYPE: usize = 0;
pub const P_OFFSET: usize = 8;
pub const P_PADDR: usize = 24;
pub const P_MEMSZ: usize = 40;

/// File offset of program header `i` in files made by [`elf64_core`].
pub const fn ph(i: usize) -> usize {
    EHDR_SIZE + i * PHDR_SIZE
}

/// One ELF64 program header.
#[derive(Clone, Copy)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Phdr {
    /// A PT_LOAD of `size` bytes of machine memory at `paddr`, all in the file at
    /// `offset`. p_vaddr 0, as QEMU writes it.
    pub fn load(offset: u64, paddr: u64, size: u64) -> Phdr {
        Phdr {
            p_type: PT_LOAD,
            p_flags: 7, // RWX
            p_offset: offset,
            p_vaddr: 0,
            p_paddr: paddr,
            p_filesz: size,
            p_memsz: size,
            p_align: 0,
        }
    }

    pub fn note(offset: u64, size: u64) -> Phdr {
        Phdr {
            p_type: PT_NOTE,
            p_flags: 0,
            p_offset: offset,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: size,
            p_memsz: size,
            p_align: 4,
        }
    }
}

/// A little-endian x86-64 ELF64 `ET_CORE` file: the 64-byte header, the program
/// headers right after it (e_phoff 64), then each blob at its file offset (gaps are
/// zero). No section headers.
pub fn elf64_core(phdrs: &[Phdr], blobs: &[(usize, &[u8])]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF");
    f.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SysV ABI
    f.resize(16, 0); // rest of e_ident
    f.extend_from_slice(&ET_CORE.to_le_bytes()); // e_type
    f.extend_from_slice(&EM_X86_64.to_le_bytes()); // e_machine
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    f.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    f.extend_from_slice(&(phdrs.len() as u16).to_le_bytes()); // e_phnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(f.len(), EHDR_SIZE);
    for p in phdrs {
        f.extend_from_slice(&p.p_type.to_le_bytes());
        f.extend_from_slice(&p.p_flags.to_le_bytes());
        f.extend_from_slice(&p.p_offset.to_le_bytes());
        f.extend_from_slice(&p.p_vaddr.to_le_bytes());
        f.extend_from_slice(&p.p_paddr.to_le_bytes());
        f.extend_from_slice(&p.p_filesz.to_le_bytes());
        f.extend_from_slice(&p.p_memsz.to_le_bytes());
        f.extend_from_slice(&p.p_align.to_le_bytes());
    }
    for &(off, bytes) in blobs {
        assert!(off >= f.len(), "blob at {off:#x} overlaps the headers");
        f.resize(off, 0);
        f.extend_from_slice(bytes);
    }
    f
}
