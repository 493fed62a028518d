//! Raw flat images (`pmemsave`, `/dev/mem` copies, `dd` of a guest's RAM file):
//! file offset = machine address − base. There is no header, so the whole file is
//! one segment and nothing in it can be "absent" except what lies outside it.

use super::mapped::{MappedImage, Segment};
use memmap2::Mmap;

/// Why a raw image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("--base {base:#x} plus the file size {size:#x} overflows the 64-bit address space")]
    BaseOverflow { base: u64, size: u64 },
}

/// View `map` as machine memory starting at `base`.
pub fn open(map: Mmap, base: u64) -> Result<MappedImage, RawError> {
    let size = map.len() as u64;
    if base.checked_add(size).is_none() {
        return Err(RawError::BaseOverflow { base, size });
    }
    let seg = Segment { paddr: base, memsz: size, offset: 0, filesz: size, index: 0 };
    Ok(MappedImage::new(map, vec![seg]))
}
