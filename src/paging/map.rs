//! An address space summarised for a picture: per L4 slot (512 GiB) and per L3
//! entry inside it (1 GiB, a "cell"), how many bytes are mapped with each page size,
//! how many coalesced ranges, which tables the dump lacks, and the first few ranges
//! of each cell for hover details. Built in one streaming pass over
//! [`enumerate`], so its memory is bounded by the cells used, not by the leaves.

use super::WalkOptions;
use super::enumerate::{Coalescer, Event, LeafLimit, Range, enumerate};
use crate::addr::{Maddr, Vaddr};
use crate::mem::PhysMem;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

const GIB: u64 = 1 << 30;
/// Ranges kept per cell for hover details.
pub const SAMPLES_PER_CELL: usize = 8;

/// Bytes mapped per page size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BySize {
    pub page_4k: u64,
    pub page_2m: u64,
    pub page_1g: u64,
}

impl BySize {
    pub fn total(&self) -> u64 {
        self.page_4k + self.page_2m + self.page_1g
    }
    fn add(&mut self, page_size: u64, bytes: u64) {
        match page_size {
            s if s >= GIB => self.page_1g += bytes,
            s if s >= 2 << 20 => self.page_2m += bytes,
            _ => self.page_4k += bytes,
        }
    }
    fn merge(&mut self, o: &BySize) {
        self.page_4k += o.page_4k;
        self.page_2m += o.page_2m;
        self.page_1g += o.page_1g;
    }
}

/// One 1 GiB cell (an L3 entry's span) that maps something or lacks a table.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Index of the L3 entry (0..512).
    pub index: u16,
    pub mapped: BySize,
    /// Coalesced ranges touching the cell.
    pub ranges: u64,
    /// Tables under this cell the dump lacks.
    pub unreadable_tables: u64,
    /// Present entries with reserved bits under this cell.
    pub reserved_entries: u64,
    /// The first ranges, clipped to the cell.
    pub samples: Vec<Range>,
}

/// One present L4 slot.
#[derive(Clone, Debug)]
pub struct Slot {
    pub index: u16,
    /// The L4 entry.
    pub entry: u64,
    pub mapped: BySize,
    pub ranges: u64,
    pub unreadable_tables: u64,
    pub reserved_entries: u64,
    /// Cells with something to show, by index.
    pub cells: Vec<Cell>,
}

impl Slot {
    pub fn va(&self) -> Vaddr {
        slot_va(self.index)
    }
}

/// The whole picture of one root.
#[derive(Clone, Debug)]
pub struct AddressMap {
    pub root: Maddr,
    /// Present L4 slots in order (a present slot whose tables map nothing is here too).
    pub slots: Vec<Slot>,
    pub mapped: BySize,
    pub ranges: u64,
    pub unreadable_tables: u64,
    pub reserved_entries: u64,
    /// Whether the L4 itself could be read.
    pub l4_readable: bool,
    /// The leaf limit, when the map stopped at it (the tables alias: [`LeafLimit`]).
    pub leaf_limit_reached: Option<u64>,
}

/// First VA of L4 slot `i`.
pub fn slot_va(i: u16) -> Vaddr {
    Vaddr::canonicalize(u64::from(i) << 39)
}

/// First VA of cell `c` of slot `s`.
pub fn cell_va(s: u16, c: u16) -> Vaddr {
    Vaddr::canonicalize((u64::from(s) << 39) | (u64::from(c) << 30))
}

fn key(va: u64) -> (u16, u16) {
    (((va >> 39) & 511) as u16, ((va >> 30) & 511) as u16)
}

#[derive(Default)]
struct Builder {
    cells: BTreeMap<(u16, u16), Cell>,
}

impl Builder {
    fn cell(&mut self, k: (u16, u16)) -> &mut Cell {
        self.cells.entry(k).or_insert_with(|| Cell { index: k.1, ..Cell::default() })
    }

    /// Split `r` at 1 GiB boundaries into the cells it covers.
    fn range(&mut self, r: &Range) {
        let end = u128::from(r.va.0) + u128::from(r.size);
        let mut cur = u128::from(r.va.0);
        while cur < end {
            let cell_end = ((cur >> 30) + 1) << 30;
            let part_end = cell_end.min(end);
            let bytes = (part_end - cur) as u64;
            let va = cur as u64;
            let c = self.cell(key(va));
            c.mapped.add(r.page_size, bytes);
            c.ranges += 1;
            if c.samples.len() < SAMPLES_PER_CELL {
                let off = va - r.va.0;
                c.samples.push(Range { va: Vaddr(va), maddr: Maddr(r.maddr.0 + off), size: bytes, ..*r });
            }
            cur = part_end;
        }
    }
}

/// Build the map of `root` in one pass, of at most `limit`'s leaves.
pub fn build(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions, mut limit: LeafLimit) -> AddressMap {
    let mut b = Builder::default();
    let mut co = Coalescer::default();
    let summary = enumerate(mem, root, opts, |ev| {
        match ev {
            Event::Leaf(l) => {
                limit.take()?;
                if let Some(r) = co.push(l) {
                    b.range(&r);
                }
            }
            Event::Unreadable { va, .. } => b.cell(key(va.0)).unreadable_tables += 1,
            Event::Reserved { va, .. } => b.cell(key(va.0)).reserved_entries += 1,
        }
        ControlFlow::Continue(())
    });
    if let Some(r) = co.finish() {
        b.range(&r);
    }
    let l4 = mem.page(Maddr(root.0 & !0xfff).mfn()).ok();
    let mut slots: BTreeMap<u16, Slot> = BTreeMap::new();
    if let Some(p) = &l4 {
        for i in 0..512u16 {
            let e = p.entry(usize::from(i));
            if e & 1 != 0 {
                slots.insert(
                    i,
                    Slot {
                        index: i,
                        entry: e,
                        mapped: BySize::default(),
                        ranges: 0,
                        unreadable_tables: 0,
                        reserved_entries: 0,
                        cells: Vec::new(),
                    },
                );
            }
        }
    }
    for ((s, _), c) in b.cells {
        // A cell's slot is present (its leaves came through it); an unreadable L4
        // has no slots at all.
        let Some(slot) = slots.get_mut(&s) else { continue };
        slot.mapped.merge(&c.mapped);
        slot.ranges += c.ranges;
        slot.unreadable_tables += c.unreadable_tables;
        slot.reserved_entries += c.reserved_entries;
        slot.cells.push(c);
    }
    let slots: Vec<Slot> = slots.into_values().collect();
    let mut mapped = BySize::default();
    for s in &slots {
        mapped.merge(&s.mapped);
    }
    AddressMap {
        root,
        ranges: slots.iter().map(|s| s.ranges).sum(),
        mapped,
        unreadable_tables: summary.unreadable_tables,
        reserved_entries: summary.reserved_entries,
        l4_readable: l4.is_some(),
        leaf_limit_reached: limit.reached(),
        slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Machine, PageTables, XEN_TABLE};
    use crate::paging::Level;
    use crate::paging::entry::bits;

    #[test]
    fn cells_split_ranges_and_count_by_page_size() {
        let mut m = Machine::new(64 << 20);
        let pt = PageTables::new(&mut m);
        let leaf = bits::P | bits::RW;
        // Slot 1: three 4 KiB pages (one range), and a 2 MiB page in another GiB.
        let s1 = slot_va(1).0;
        pt.map_range(&mut m, Vaddr(s1), Maddr(0x10_0000), 0x3000, Level::L1, leaf, XEN_TABLE);
        pt.map(&mut m, Vaddr(s1 + 5 * GIB), Maddr(0x20_0000), Level::L2, leaf, XEN_TABLE);
        // Slot 300: two 2 MiB pages either side of a GiB boundary, contiguous in both
        // spaces: one coalesced range, split between two cells.
        let s300 = slot_va(300).0;
        pt.map(&mut m, Vaddr(s300 + GIB - (2 << 20)), Maddr(0x40_0000), Level::L2, leaf, XEN_TABLE);
        pt.map(&mut m, Vaddr(s300 + GIB), Maddr(0x60_0000), Level::L2, leaf, XEN_TABLE);
        // Slot 7: present, maps nothing.
        let l3 = m.alloc();
        m.write_u64(Maddr(pt.root.0 + 7 * 8), l3.0 | XEN_TABLE);
        let map = build(&m, pt.root, WalkOptions::default(), LeafLimit::default());
        assert_eq!(map.slots.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 7, 300]);
        let s = &map.slots[0];
        assert_eq!(s.mapped, BySize { page_4k: 0x3000, page_2m: 2 << 20, page_1g: 0 });
        assert_eq!(s.cells.iter().map(|c| (c.index, c.ranges)).collect::<Vec<_>>(), [(0, 1), (5, 1)]);
        assert_eq!(s.cells[0].samples[0].size, 0x3000);
        assert!(map.slots[1].cells.is_empty());
        let s = &map.slots[2];
        assert_eq!(s.mapped.page_2m, 4 << 20);
        assert_eq!(
            s.cells.iter().map(|c| (c.index, c.mapped.page_2m)).collect::<Vec<_>>(),
            [(0, 2 << 20), (1, 2 << 20)]
        );
        assert_eq!(s.cells[1].samples[0].maddr, Maddr(0x60_0000), "the clipped part keeps its machine address");
        assert_eq!(map.mapped.total(), 0x3000 + (6 << 20));
    }
}
