//! Leaves merged for display: [`Range`] (a run of leaves) and [`Coalescer`] (merges
//! consecutive compatible leaves, one range at a time).

use super::Leaf;
use crate::addr::{Maddr, Vaddr};
use crate::paging::entry::{Entry, Level, Rights, bits};

/// A run of leaves merged for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub va: Vaddr,
    pub maddr: Maddr,
    pub size: u64,
    pub page_size: u64,
    pub level: Level,
    /// The leaf entry bits shared by every page of the range (frame bits removed;
    /// A and D removed when coalescing).
    pub attrs: Entry,
    pub rights: Rights,
    /// Number of leaves merged.
    pub leaves: u64,
}

impl Range {
    /// A range holding exactly one leaf, with all its bits.
    pub fn single(leaf: &Leaf) -> Range {
        Range {
            va: leaf.va,
            maddr: leaf.page,
            size: leaf.size(),
            page_size: leaf.size(),
            level: leaf.level,
            attrs: Entry(leaf.entry.0 & !leaf.entry.frame_mask(leaf.level, 52)),
            rights: leaf.rights,
            leaves: 1,
        }
    }
    /// Last VA of the range.
    pub fn va_last(&self) -> Vaddr {
        Vaddr(self.va.0.wrapping_add(self.size - 1))
    }
    /// Last machine address of the range.
    pub fn maddr_last(&self) -> Maddr {
        Maddr(self.maddr.0.wrapping_add(self.size - 1))
    }
}

/// Merges consecutive leaves with the same page size, rights, and attributes (all
/// leaf bits except the frame, Accessed and Dirty) whose VAs and machine addresses
/// both continue the previous leaf. Holds one range at a time.
#[derive(Default)]
pub struct Coalescer {
    cur: Option<Range>,
}

impl Coalescer {
    /// Add a leaf; returns the range it closed, if any.
    pub fn push(&mut self, leaf: &Leaf) -> Option<Range> {
        let mut r = Range::single(leaf);
        r.attrs = Entry(r.attrs.0 & !(bits::A | bits::D));
        if let Some(cur) = &mut self.cur {
            let joins = cur.page_size == r.page_size
                && cur.attrs == r.attrs
                && cur.rights == r.rights
                && cur.va.0.wrapping_add(cur.size) == r.va.0
                && cur.maddr.0.wrapping_add(cur.size) == r.maddr.0;
            if joins {
                cur.size += r.size;
                cur.leaves += 1;
                return None;
            }
        }
        self.cur.replace(r)
    }
    /// The last open range.
    pub fn finish(&mut self) -> Option<Range> {
        self.cur.take()
    }
}
