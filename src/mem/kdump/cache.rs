//! The bounded cache of decompressed pages ([`CACHE_PAGES`] of them) that
//! [`super::KdumpImage`] decodes into on demand.

use super::PAGE;
use std::collections::HashMap;

/// Pages kept decompressed (1 MiB).
pub const CACHE_PAGES: usize = 256;

/// A bounded cache of decompressed pages with round-robin eviction.
pub(super) struct PageCache {
    slots: Vec<(u64, Box<[u8; PAGE]>)>,
    index: HashMap<u64, usize>,
    hand: usize,
}

impl PageCache {
    pub(super) fn new() -> PageCache {
        PageCache { slots: Vec::new(), index: HashMap::new(), hand: 0 }
    }

    pub(super) fn get(&self, pfn: u64) -> Option<&[u8; PAGE]> {
        let i = *self.index.get(&pfn)?;
        self.slots.get(i).map(|(_, p)| &**p)
    }

    pub(super) fn put(&mut self, pfn: u64, page: Box<[u8; PAGE]>) {
        if self.index.contains_key(&pfn) {
            return;
        }
        if self.slots.len() < CACHE_PAGES {
            self.index.insert(pfn, self.slots.len());
            self.slots.push((pfn, page));
            return;
        }
        let i = self.hand % CACHE_PAGES;
        self.hand = (i + 1) % CACHE_PAGES;
        if let Some(slot) = self.slots.get_mut(i) {
            self.index.remove(&slot.0);
            *slot = (pfn, page);
            self.index.insert(pfn, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded() {
        let mut c = PageCache::new();
        for pfn in 0..(CACHE_PAGES as u64 * 3) {
            c.put(pfn, Box::new([pfn as u8; PAGE]));
            assert_eq!(c.get(pfn).map(|p| p[0]), Some(pfn as u8));
        }
        assert_eq!(c.slots.len(), CACHE_PAGES);
        assert_eq!(c.index.len(), CACHE_PAGES);
        assert!(c.get(0).is_none());
    }
}
