//! One table page decoded once into masks ([`Decoded`]: leaves, tables below, reserved,
//! junk), and a table's leaves delivered together ([`Leaves`]).

use super::Leaf;
use crate::addr::{Maddr, Vaddr};
use crate::paging::desc::{Fold, LevelDesc};
use crate::paging::entry::{Entry, Level, Rights};
use std::ops::ControlFlow;
use std::sync::Arc;

/// One table page's entries, decoded once: which are leaves, which lead to tables,
/// which have reserved bits. It depends only on the page's bytes and the rules of its
/// level (which it keeps) — not on the VA or the rights above — and dumps do not change, so
/// an enumeration that meets the same frame again at the same level reuses it
/// (tables shared by many entries cost one decode, whatever the fan-in).
#[derive(Debug)]
pub(super) struct Decoded {
    pub(super) entries: [u64; 512],
    /// Present, no reserved bits, a page.
    pub(super) leaf: [u64; 8],
    /// Present, no reserved bits, a table below.
    pub(super) table: [u64; 8],
    /// Present with reserved bits set.
    pub(super) reserved: [u64; 8],
    /// Not present but not zero.
    pub(super) junk: [u64; 8],
    /// The rules the page was decoded by: its level's masks, and how rights fold.
    pub(super) rules: LevelDesc,
    pub(super) fold: Fold,
}

impl Decoded {
    /// Decode `raw` (entry `i`, or `None` where the dump cannot supply it) by the
    /// rules of its level, `rules`, and of the walk, `present` and `fold`
    /// ([`crate::paging::PagingDesc`]).
    pub(super) fn new(rules: &LevelDesc, present: u64, fold: Fold, raw: impl Fn(usize) -> Option<u64>) -> Decoded {
        let mut d = Decoded {
            entries: [0; 512],
            leaf: [0; 8],
            table: [0; 8],
            reserved: [0; 8],
            junk: [0; 8],
            rules: *rules,
            fold,
        };
        for i in 0..512 {
            let Some(v) = raw(i) else { continue };
            if let Some(e) = d.entries.get_mut(i) {
                *e = v;
            }
            let mask = if v & present == 0 {
                if v == 0 {
                    continue;
                }
                &mut d.junk
            } else {
                let leaf = rules.is_leaf(v);
                if v & if leaf { rules.rsvd_leaf } else { rules.rsvd_table } != 0 {
                    &mut d.reserved
                } else if leaf {
                    &mut d.leaf
                } else {
                    &mut d.table
                }
            };
            if let Some(x) = mask.get_mut(i / 64) {
                *x |= 1u64 << (i % 64);
            }
        }
        d
    }

    pub(super) fn entry(&self, i: usize) -> u64 {
        self.entries.get(i).copied().unwrap_or(0)
    }
}

/// Leaves of one table delivered together ([`TableEvent::Leaves`](super::TableEvent::Leaves)): entries `i` of
/// the table whose bit is set in the mask, each a present leaf without reserved bits.
#[derive(Clone, Debug)]
pub struct Leaves {
    pub(super) decoded: Arc<Decoded>,
    pub level: Level,
    /// The table's machine address.
    pub table: Maddr,
    /// The VA of the table's entry 0 (bits 63:48 clear).
    pub va_base: u64,
    /// Rights accumulated by the entries above the table (each leaf folds in its own).
    pub rights: Rights,
    pub(super) mask: [u64; 8],
}

impl Leaves {
    /// Number of leaves.
    #[inline]
    pub fn count(&self) -> u64 {
        self.mask.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    /// Bit `i % 64` of word `i / 64`: entry `i` is one of these leaves.
    pub fn mask(&self) -> &[u64; 8] {
        &self.mask
    }
    /// The raw entry `i` of the table.
    pub fn entry(&self, i: usize) -> Entry {
        Entry(self.decoded.entry(i))
    }
    /// The leaf at entry `i` (which must be set in the mask).
    #[inline]
    pub fn leaf(&self, i: usize) -> Leaf {
        let e = self.entry(i);
        let va = self.va_base | ((i as u64) << self.level.shift());
        Leaf {
            va: Vaddr::canonicalize(va),
            page: Maddr(e.0 & self.decoded.rules.leaf_addr),
            level: self.level,
            entry: e,
            rights: self.decoded.fold.apply(self.rights, e),
        }
    }
    /// Call `f` on each leaf in VA order until it breaks.
    #[inline]
    pub fn try_for_each(&self, mut f: impl FnMut(&Leaf) -> ControlFlow<()>) -> ControlFlow<()> {
        let (level, rules, fold) = (self.level, &self.decoded.rules, self.decoded.fold);
        let (shift, frame) = (rules.shift, rules.leaf_addr);
        for (w, &bits) in self.mask.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                let e = Entry(self.decoded.entry(i));
                let leaf = Leaf {
                    va: Vaddr::canonicalize(self.va_base | ((i as u64) << shift)),
                    page: Maddr(e.0 & frame),
                    level,
                    entry: e,
                    rights: fold.apply(self.rights, e),
                };
                f(&leaf)?;
            }
        }
        ControlFlow::Continue(())
    }
}
