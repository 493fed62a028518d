//! One L4 slot of a root on its own: a memory view whose extra page is an L4 holding
//! only that slot's entry, so the ordinary enumeration lists exactly what the slot
//! maps (used to compare roots slot by slot).

use crate::addr::{Maddr, Mfn, PAGE_SIZE};
use crate::mem::{Absent, Extent, Page, PhysMem, ReadError};

/// A frame no dump has (just below 2^52): where the synthetic L4 lives.
pub const SLOT_ROOT: Maddr = Maddr(0x000f_ffff_ffff_f000);

/// `inner`, plus a synthetic L4 at [`SLOT_ROOT`] holding `entry` at `slot`.
pub struct OneSlot<'a> {
    pub inner: &'a dyn PhysMem,
    page: Box<[u8; PAGE_SIZE as usize]>,
}

impl<'a> OneSlot<'a> {
    pub fn new(inner: &'a dyn PhysMem, slot: usize, entry: u64) -> OneSlot<'a> {
        let mut page = Box::new([0u8; PAGE_SIZE as usize]);
        let i = (slot & 0x1ff) * 8;
        page[i..i + 8].copy_from_slice(&entry.to_le_bytes());
        OneSlot { inner, page }
    }
}

impl PhysMem for OneSlot<'_> {
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        if mfn == SLOT_ROOT.mfn() {
            return Ok(Page::Borrowed(&self.page));
        }
        self.inner.page(mfn)
    }

    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        if addr.mfn() == SLOT_ROOT.mfn() {
            let off = addr.page_offset() as usize;
            let src = self
                .page
                .get(off..off + buf.len())
                .ok_or(ReadError::Absent { addr, why: Absent::OutsideImage { start: Maddr(0), end: SLOT_ROOT } })?;
            buf.copy_from_slice(src);
            return Ok(());
        }
        self.inner.read(addr, buf)
    }

    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        if addr.mfn() == SLOT_ROOT.mfn() { Ok(()) } else { self.inner.locate(addr) }
    }

    fn extents(&self) -> Vec<Extent> {
        self.inner.extents()
    }
}
