//! Batched translation: many VAs against one root, with a cache of walk prefixes.
//!
//! A [`Translator`] remembers, per VA prefix, what the upper levels of a walk found:
//! the L4 step per 512 GiB slot, the L4+L3 steps per 1 GiB, the L4+L3+L2 steps per
//! 2 MiB, each with the page of the table below (borrowed from the memory map for raw
//! and ELF dumps, a copy for kdump pages). A VA whose 2 MiB prefix was seen before
//! costs one tag compare and one read of its L1 entry; walks that share an L3 or L4
//! entry re-read nothing above it. Dumps do not change, so the cache never goes stale.
//!
//! Every level still goes through the walker's own step function
//! ([`super::walk::step`]), and a cached prefix is reused only for VAs with exactly
//! that prefix, so every result is the [`Walk`] that [`walk`] returns for the same VA
//! — steps, stop, rights and all (the tests compare them on every fixture and on a
//! real dom0 root).
//!
//! Callers that want only the answers use the lean path,
//! [`Translator::translate_addr`] / [`Translator::translate_many`]: a 16-byte
//! [`Resolved`] per VA, no [`Walk`] record. On a raw image it reads the four entries
//! straight from the memory map with masks computed once from the walker's rules (no
//! segment search, copy or step record: several times `walk()`'s speed on the real
//! dom0 root, BENCHMARKS.md); whatever it cannot read there goes to the full walk, so
//! its answers are `Resolved::of(&walk(..))` for every VA (tests/lean.rs).
//!
//! Caches are direct-mapped arrays of fixed size ([`L4_SLOTS`], [`L3_SLOTS`],
//! [`L2_SLOTS`]): memory does not grow with the number of VAs (about 1.5 MiB of slots,
//! plus at most one copied page per slot for compressed dumps). Nothing is shortcut
//! by value: equal entries at different prefixes are cached and walked separately.

use super::desc::PagingDesc;
use super::entry::{Level, Rights};
use super::walk::{self, Next, Resolved, Step, StopCode, Walk, WalkOptions, walk_desc};
use crate::addr::{Maddr, Vaddr};
use crate::mem::resident::{self, Resident};
use crate::mem::{Page, PhysMem, ReadError};

/// Slots of the L4 cache, one per L4 index.
pub const L4_SLOTS: usize = 512;
/// Slots of the 1 GiB-prefix (L3) cache.
pub const L3_SLOTS: usize = 1024;
/// Slots of the 2 MiB-prefix (L2) cache.
pub const L2_SLOTS: usize = 4096;

/// VAs looked up ahead of their walks in [`Translator::translate_batch`], so that the
/// memory loads of their L1 entries overlap.
const GROUP: usize = 8;

/// VAs [`Translator::translate_batch`] and [`Translator::translate_many`] may reorder
/// among themselves on a memory-mapped dump (8 bytes each of working memory).
pub const WINDOW: usize = 1 << 18;

/// The same on a dump whose pages must be decoded (kdump).
pub const DECODE_WINDOW: usize = 1 << INDEX_BITS;

/// Bits of a window index in a sort key of [`Translator::translate_many`], and the
/// mask of the page-number bits above them (VA bits 47:12).
const INDEX_BITS: u32 = 20;
const PAGE_BITS: u64 = (1 << 36) - 1;

/// Sort keys for `window` into `order`, ascending: one u64 per VA, its page number
/// (VA bits 47:12) above its index in the window, so that sorting groups VAs by page
/// with 8 bytes of working memory per VA. Windows hold at most 2^[`INDEX_BITS`] VAs.
fn sort_keys(window: &[Vaddr], order: &mut Vec<u64>) {
    order.clear();
    order.extend(window.iter().enumerate().map(|(i, va)| ((va.0 >> 12) & PAGE_BITS) << INDEX_BITS | i as u64));
    order.sort_unstable();
}

/// The window index in a sort key.
#[inline]
fn key_index(key: u64) -> usize {
    (key & ((1 << INDEX_BITS) - 1)) as usize
}

/// Windows smaller than this are never sorted.
const SORT_MIN: usize = 4096;

const EMPTY: u64 = u64::MAX;

/// The entries the walk of any VA with one prefix reads, down to a level.
struct Slot<'m> {
    /// The prefix (`va >> shift` of the level), or [`EMPTY`].
    tag: u64,
    /// The entries read at L4, L3, L2, as far as this prefix determines them.
    entries: [u64; 3],
    len: u8,
    /// The walk ends within these entries (a leaf or a stop).
    ended: bool,
    /// An entry could not be read: VAs with this prefix are walked afresh.
    unreadable: bool,
    /// The page of the table below the last entry, when the dump holds all of it.
    page: Option<Page<'m>>,
}

impl Slot<'_> {
    fn empty() -> Self {
        Slot { tag: EMPTY, entries: [0; 3], len: 0, ended: false, unreadable: false, page: None }
    }
}

/// A slot of the 2 MiB- or 1 GiB-prefix cache.
#[derive(Clone, Copy)]
enum SlotAt {
    L2(usize),
    L3(usize),
}

/// Cache statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// VAs translated.
    pub translations: u64,
    /// Lookups answered by the 2 MiB, 1 GiB and 512 GiB prefix caches (the lookups
    /// that start a group's loads early included).
    pub l2_hits: u64,
    pub l3_hits: u64,
    pub l4_hits: u64,
    /// Table pages fetched into the cache.
    pub pages: u64,
}

/// Translates many VAs against one root, caching the upper levels of the walk.
pub struct Translator<'m> {
    mem: &'m dyn PhysMem,
    root: Maddr,
    /// The paging rules, built once from the walk options.
    desc: PagingDesc,
    root_page: Option<Page<'m>>,
    l4: Vec<Slot<'m>>,
    l3: Vec<Slot<'m>>,
    l2: Vec<Slot<'m>>,
    resident: Resident,
    stats: Stats,
    /// Walk the next window of a batch in VA order.
    sort_next: bool,
    /// The dump is memory-mapped: walk directly (see [`Translator::new`]).
    direct: bool,
    /// The dump as one slice, for lean translations (see [`Linear`]).
    linear: Option<Linear<'m>>,
}

/// Lean translation over a source that is one slice of machine memory
/// ([`PhysMem::linear`]): entries are loaded from the slice and decoded with the
/// masks of the walker's own [`PagingDesc`], so no per-level segment search, copy or
/// step record. Any entry outside the slice sends the VA to [`walk`], which knows
/// why it cannot be read.
struct Linear<'m> {
    base: u64,
    bytes: &'m [u8],
    /// Per level (index: level number − 1), copied from the [`PagingDesc`] into small
    /// arrays: the hot loop indexes them with the level known at each unrolled step,
    /// where reading the description's level records costs a quarter of the lean
    /// path's speed (dom0, warm: 45 M/s against 61 M/s).
    table_addr: [u64; 4],
    leaf_addr: [u64; 4],
    leaf_bits: [u64; 4],
    rsvd_table: [u64; 4],
    rsvd_leaf: [u64; 4],
    present: u64,
}

impl<'m> Linear<'m> {
    fn new(base: u64, bytes: &'m [u8], desc: &PagingDesc) -> Linear<'m> {
        let mut l = Linear {
            base,
            bytes,
            table_addr: [0; 4],
            leaf_addr: [0; 4],
            leaf_bits: [0; 4],
            rsvd_table: [u64::MAX; 4],
            rsvd_leaf: [u64::MAX; 4],
            present: desc.present,
        };
        for level in Level::WALK {
            let (i, d) = (usize::from(level.number() - 1), desc.level(level));
            for (arr, v) in [
                (&mut l.table_addr, d.table_addr),
                (&mut l.leaf_addr, d.leaf_addr),
                (&mut l.leaf_bits, d.leaf_bits),
                (&mut l.rsvd_table, d.rsvd_table),
                (&mut l.rsvd_leaf, d.rsvd_leaf),
            ] {
                if let Some(x) = arr.get_mut(i) {
                    *x = v;
                }
            }
        }
        l
    }

    /// The entry at machine address `a`, if the slice holds it.
    #[inline(always)]
    fn load(&self, a: u64) -> Option<u64> {
        let off = usize::try_from(a.wrapping_sub(self.base)).ok()?;
        let b = self.bytes.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Walk canonical `va` from `root` (page-aligned) as [`walk`] would, or `None`
    /// when an entry is outside the slice. Also returns the last table read.
    #[inline(always)]
    fn resolve(&self, root: u64, va: u64) -> Option<(Resolved, u64)> {
        let mut table = root;
        for level in Level::WALK {
            let shift = level.shift();
            let i = usize::from(level.number() - 1);
            let at = |a: &[u64; 4]| a.get(i).copied().unwrap_or(0);
            let e = self.load(table | (((va >> shift) & 0x1ff) << 3))?;
            if e & self.present == 0 {
                return Some((Resolved::Stopped { level, code: StopCode::NotPresent }, table));
            }
            if e & at(&self.leaf_bits) != 0 {
                if e & self.rsvd_leaf.get(i).copied().unwrap_or(u64::MAX) != 0 {
                    return Some((Resolved::Stopped { level, code: StopCode::Reserved }, table));
                }
                let maddr = Maddr((e & at(&self.leaf_addr)) | (va & ((1u64 << shift) - 1)));
                return Some((Resolved::Mapped { maddr, level }, table));
            }
            if e & self.rsvd_table.get(i).copied().unwrap_or(u64::MAX) != 0 {
                return Some((Resolved::Stopped { level, code: StopCode::Reserved }, table));
            }
            table = e & at(&self.table_addr);
        }
        None
    }
}

/// The entry at `a`: from the table's cached page, or read from the dump.
#[inline]
fn read_entry(mem: &dyn PhysMem, page: Option<&Page<'_>>, a: Maddr) -> Result<u64, ReadError> {
    match page {
        // `a` lies in this page: entries are read at `table + 8 * index`.
        Some(p) => Ok(p.entry(((a.0 & 0xfff) >> 3) as usize)),
        None => mem.read_u64(a),
    }
}

#[inline]
fn l3_index(tag: u64) -> usize {
    ((tag ^ (tag >> 9)) as usize) & (L3_SLOTS - 1)
}

#[inline]
fn l2_index(tag: u64) -> usize {
    ((tag ^ (tag >> 9) ^ (tag >> 18)) as usize) & (L2_SLOTS - 1)
}

impl<'m> Translator<'m> {
    /// A translator for the L4 table at `root` (bits 11:0 are ignored, as by
    /// [`walk`]). What it maps is bounded by [`resident::DEFAULT_LIMIT`] above the RSS
    /// at its creation.
    ///
    /// When the dump is memory-mapped (raw, ELF: the root's page is borrowed from the
    /// map), entries cost a load each and upper-level entries stay in the CPU's
    /// caches, so VAs are walked directly: on the real dom0 root that is faster than
    /// any lookup in a cache of prefixes (BENCHMARKS.md). The prefix caches serve
    /// dumps whose pages must be decoded (kdump), where they save a decompression
    /// or a locked cache lookup per level.
    pub fn new(mem: &'m dyn PhysMem, root: Maddr, opts: WalkOptions) -> Translator<'m> {
        let root = Maddr(root.0 & !0xfff);
        let root_page = mem.page(root.mfn()).ok();
        let direct = matches!(root_page, Some(Page::Borrowed(_)));
        let desc = PagingDesc::x86_64(opts);
        let linear = mem.linear().map(|(base, bytes)| Linear::new(base, bytes, &desc));
        let slots = |n: usize| if direct { Vec::new() } else { (0..n).map(|_| Slot::empty()).collect::<Vec<_>>() };
        Translator {
            mem,
            root,
            desc,
            root_page,
            direct,
            linear,
            l4: slots(L4_SLOTS),
            l3: slots(L3_SLOTS),
            l2: slots(L2_SLOTS),
            resident: Resident::new(resident::limit_from_now(Some(resident::DEFAULT_LIMIT)), resident::TRANSLATE_EVERY),
            stats: Stats::default(),
            sort_next: true,
        }
    }

    /// Use the prefix caches (`true`) or walk each VA directly (`false`) whatever the
    /// kind of dump (for tests and measurements; the default is chosen by
    /// [`Translator::new`]).
    pub fn with_prefix_cache(mut self, on: bool) -> Translator<'m> {
        self.direct = !on;
        if on && self.l2.is_empty() {
            let slots = |n: usize| (0..n).map(|_| Slot::empty()).collect::<Vec<_>>();
            (self.l4, self.l3, self.l2) = (slots(L4_SLOTS), slots(L3_SLOTS), slots(L2_SLOTS));
        }
        self
    }

    /// Use this residency budget instead of the default.
    pub fn with_resident(mut self, resident: Resident) -> Translator<'m> {
        self.resident = resident;
        self
    }

    /// The root's L4 table address.
    pub fn root(&self) -> Maddr {
        self.root
    }

    /// Cache statistics so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many times the residency budget released mapped pages.
    pub fn releases(&self) -> u64 {
        self.resident.releases
    }

    /// Walk `va`: the same [`Walk`] as [`walk`]`(mem, root, va, opts)`.
    pub fn translate(&mut self, va: Vaddr) -> Walk {
        self.stats.translations += 1;
        let (mem, root) = (self.mem, self.root);
        if !va.is_canonical() {
            return walk_desc(mem, root, va, &self.desc);
        }
        if self.direct {
            let w = match &self.linear {
                // The walker's steps over entries loaded from the slice; an entry
                // outside it is asked of the dump (which says why it is absent).
                Some(lin) => {
                    let mut steps = [None; 4];
                    let read = |a: Maddr| match lin.load(a.0) {
                        Some(v) => Ok(v),
                        None => mem.read_u64(a),
                    };
                    let outcome = walk::walk_from(Level::L4, root, Rights::ALL, va, &self.desc, &mut steps, read);
                    Walk::from_parts(va, root, steps, outcome)
                }
                None => walk_desc(mem, root, va, &self.desc),
            };
            if let Some(last) = w.steps().last() {
                self.resident.tick(mem, last.table);
            }
            return w;
        }
        let mut steps = [None; 4];
        let at = self.answer_at(va);
        let desc = &self.desc;
        let outcome = match self.slot(at) {
            Some(s) if !s.unreadable => match replay(s, root, va, desc, &mut steps) {
                Next::End(o) => o,
                Next::Table { level, table, rights } => {
                    walk::walk_from(level, table, rights, va, desc, &mut steps, |a| read_entry(mem, s.page.as_ref(), a))
                }
            },
            _ => return walk_desc(mem, root, va, desc),
        };
        Walk::from_parts(va, root, steps, outcome)
    }

    /// Translate `va` to its answer alone: `Resolved::of(&walk(mem, root, va, opts))`,
    /// without building the [`Walk`] record. Over a memory-mapped raw image the
    /// entries are read straight from the map ([`PhysMem::linear`]); over a compressed
    /// dump the prefix caches answer the upper levels and only the L1 entry is
    /// decoded. Whatever this fast path cannot read goes to the full walk.
    #[inline]
    pub fn translate_addr(&mut self, va: Vaddr) -> Resolved {
        if !va.is_canonical() {
            self.stats.translations += 1;
            return Resolved::Stopped { level: Level::L4, code: StopCode::NonCanonical };
        }
        if self.direct {
            if let Some(lin) = &self.linear {
                if let Some((r, last)) = lin.resolve(self.root.0, va.0) {
                    self.stats.translations += 1;
                    self.resident.tick(self.mem, Maddr(last));
                    return r;
                }
            }
            return Resolved::of(&self.translate(va));
        }
        let at = self.answer_at(va);
        let (desc, l1) = (&self.desc, self.desc.level(Level::L1));
        if let Some(Slot { ended: false, unreadable: false, len: 3, page: Some(p), .. }) = self.slot(at) {
            // Every present L1 entry is a leaf.
            let e = p.entry(va.index_at(l1.shift));
            let r = if e & desc.present == 0 {
                Resolved::Stopped { level: Level::L1, code: StopCode::NotPresent }
            } else if e & l1.rsvd_leaf != 0 {
                Resolved::Stopped { level: Level::L1, code: StopCode::Reserved }
            } else {
                Resolved::Mapped { maddr: Maddr((e & l1.leaf_addr) | (va.0 & (l1.page_size - 1))), level: Level::L1 }
            };
            self.stats.translations += 1;
            return r;
        }
        Resolved::of(&self.translate(va))
    }

    /// [`Translator::translate_addr`] for every VA of `vas`: `out` is cleared and
    /// filled with their answers, in the order of `vas`. Windows are walked in VA
    /// order when the previous one had to release mapped pages or kept fetching
    /// table pages, as by [`Translator::translate_batch`]; no allocation per VA.
    pub fn translate_many(&mut self, vas: &[Vaddr], out: &mut Vec<Resolved>) {
        out.clear();
        let mut order: Vec<u64> = Vec::new();
        for window in vas.chunks(self.window()) {
            let (pages, releases) = (self.stats.pages, self.resident.releases);
            let base = out.len();
            if self.sort_next && window.len() >= SORT_MIN {
                sort_keys(window, &mut order);
                out.resize(base + window.len(), Resolved::Stopped { level: Level::L4, code: StopCode::NonCanonical });
                for &key in &order {
                    let i = key_index(key);
                    let Some(&va) = window.get(i) else { continue };
                    let r = self.translate_addr(va);
                    if let Some(slot) = out.get_mut(base + i) {
                        *slot = r;
                    }
                }
            } else {
                for &va in window {
                    let r = self.translate_addr(va);
                    out.push(r);
                }
            }
            self.sort_next = self.keep_sorting(pages, releases, window.len());
        }
    }

    /// The slot that answers canonical `va`: its 2 MiB-prefix slot, or its 1 GiB one
    /// when the walk ends there (a 1 GiB page, a stop), which then stays out of the
    /// 2 MiB cache.
    fn answer(&mut self, va: Vaddr) -> Option<&Slot<'m>> {
        let at = self.answer_at(va);
        self.slot(at)
    }

    /// Where [`Translator::answer`]'s slot is, so that it can be read beside the
    /// translator's other fields.
    fn answer_at(&mut self, va: Vaddr) -> SlotAt {
        let tag = va.0 >> Level::L2.shift();
        let i = l2_index(tag);
        if self.l2.get(i).is_some_and(|s| s.tag == tag) {
            self.stats.l2_hits += 1;
            return SlotAt::L2(i);
        }
        let p = self.l3_slot(va);
        if self.l3.get(p).is_some_and(|s| s.ended || s.unreadable) {
            return SlotAt::L3(p);
        }
        let slot = self.below(Level::L3, p, tag, va);
        if let Some(s) = self.l2.get_mut(i) {
            *s = slot;
        }
        SlotAt::L2(i)
    }

    fn slot(&self, at: SlotAt) -> Option<&Slot<'m>> {
        match at {
            SlotAt::L2(i) => self.l2.get(i),
            SlotAt::L3(i) => self.l3.get(i),
        }
    }

    /// Walk every VA of `vas`, calling `f(i, &walk)` once for each `vas[i]`, with
    /// `walk` exactly [`walk`]`(vas[i])`.
    ///
    /// The order of the calls is the translator's choice: VAs are taken in windows of
    /// [`Translator::window`]; when the previous window's walks kept fetching table pages (more
    /// tables in play than the caches hold), a window is walked in VA order, so that
    /// VAs under one table run together and each table page is read (and, for a
    /// compressed dump, decompressed) once per window rather than once per VA.
    /// Otherwise VAs go in input order. Either way they go in small groups whose L1
    /// entries are fetched together, so their memory loads overlap.
    pub fn translate_batch(&mut self, vas: &[Vaddr], mut f: impl FnMut(usize, &Walk)) {
        let mut order: Vec<u64> = Vec::new();
        let size = self.window();
        for (w, window) in vas.chunks(size).enumerate() {
            let base = w * size;
            let (pages, releases) = (self.stats.pages, self.resident.releases);
            if self.sort_next && window.len() >= SORT_MIN {
                sort_keys(window, &mut order);
                for group in order.chunks(GROUP) {
                    for &key in group {
                        if let Some(&va) = window.get(key_index(key)) {
                            self.prefetch(va);
                        }
                    }
                    for &key in group {
                        let i = key_index(key);
                        if let Some(&va) = window.get(i) {
                            let w = self.translate(va);
                            f(base + i, &w);
                        }
                    }
                }
            } else {
                for (g, group) in window.chunks(GROUP).enumerate() {
                    for &va in group {
                        self.prefetch(va);
                    }
                    for (k, &va) in group.iter().enumerate() {
                        let w = self.translate(va);
                        f(base + g * GROUP + k, &w);
                    }
                }
            }
            self.sort_next = self.keep_sorting(pages, releases, window.len());
        }
    }

    /// VAs taken together (and sorted when [`Translator::keep_sorting`] says so):
    /// [`WINDOW`] for memory-mapped dumps, [`DECODE_WINDOW`] for compressed ones, where
    /// each table page met in a sorted window is decompressed once for it and a
    /// random sample of a large space meets most tables in every window.
    pub fn window(&self) -> usize {
        if self.direct { WINDOW } else { DECODE_WINDOW }
    }

    /// Sort the next window if this one had to give back mapped pages (its tables
    /// do not fit the residency budget), or, for a compressed dump, fetched more than
    /// one table page per 16 VAs or more pages than half the 2 MiB-prefix cache holds
    /// (a sorted window fetches each of its tables once: many tables, keep sorting).
    fn keep_sorting(&self, pages: u64, releases: u64, len: usize) -> bool {
        let fetched = self.stats.pages - pages;
        self.resident.releases > releases
            || (!self.direct && (fetched * 16 > len as u64 || fetched > (L2_SLOTS / 2) as u64))
    }

    /// Fill the caches for `va` and ask the CPU to start loading its L1 entry.
    fn prefetch(&mut self, va: Vaddr) {
        if self.direct || !va.is_canonical() {
            return;
        }
        if let Some(Slot { ended: false, unreadable: false, page: Some(Page::Borrowed(p)), .. }) = self.answer(va) {
            prefetch_entry(p, va.index_at(Level::L1.shift()));
        }
    }

    /// The L4 slot for canonical `va`, filled from the root.
    fn l4_slot(&mut self, va: Vaddr) -> usize {
        let tag = va.0 >> Level::L4.shift();
        let i = (tag as usize) & (L4_SLOTS - 1);
        if self.l4.get(i).is_some_and(|s| s.tag == tag) {
            self.stats.l4_hits += 1;
            return i;
        }
        let root = Slot { tag, page: None, ..Slot::empty() };
        // Lent to `extend` rather than copied (a kdump page is 4 KiB of heap).
        let page = self.root_page.take();
        let slot = self.extend(root, page.as_ref(), va);
        self.root_page = page;
        if let Some(s) = self.l4.get_mut(i) {
            *s = slot;
        }
        i
    }

    /// The 1 GiB-prefix slot for canonical `va`.
    fn l3_slot(&mut self, va: Vaddr) -> usize {
        let tag = va.0 >> Level::L3.shift();
        let i = l3_index(tag);
        if self.l3.get(i).is_some_and(|s| s.tag == tag) {
            self.stats.l3_hits += 1;
            return i;
        }
        let p = self.l4_slot(va);
        let slot = self.below(Level::L4, p, tag, va);
        if let Some(s) = self.l3.get_mut(i) {
            *s = slot;
        }
        i
    }

    /// The slot for `tag` one level under slot `p` of the `parent` cache.
    fn below(&mut self, parent_level: Level, p: usize, tag: u64, va: Vaddr) -> Slot<'m> {
        let cache = if parent_level == Level::L4 { &self.l4 } else { &self.l3 };
        let Some(parent) = cache.get(p) else { return Slot { tag, unreadable: true, ..Slot::empty() } };
        let base = Slot {
            tag,
            entries: parent.entries,
            len: parent.len,
            ended: parent.ended,
            unreadable: parent.unreadable,
            page: None,
        };
        if parent.ended || parent.unreadable {
            return base;
        }
        // The parent's page, lent to `extend` and put back (not copied).
        let cache = if parent_level == Level::L4 { &mut self.l4 } else { &mut self.l3 };
        let page = cache.get_mut(p).and_then(|s| s.page.take());
        let slot = self.extend(base, page.as_ref(), va);
        let cache = if parent_level == Level::L4 { &mut self.l4 } else { &mut self.l3 };
        if let Some(s) = cache.get_mut(p) {
            s.page = page;
        }
        slot
    }

    /// Read one more entry for `slot` (from `page`, the table below its entries, or
    /// from the dump) and fetch the page of the table it leads to.
    fn extend(&mut self, mut slot: Slot<'m>, page: Option<&Page<'_>>, va: Vaddr) -> Slot<'m> {
        let mut steps = [None; 4];
        let Next::Table { level, table, rights } = replay(&slot, self.root, va, &self.desc, &mut steps) else {
            slot.ended = true;
            return slot;
        };
        let entry_maddr = table.wrapping_add(va.index_at(level.shift()) as u64 * 8);
        let entry = match read_entry(self.mem, page, entry_maddr) {
            Ok(e) => e,
            Err(_) => {
                slot.unreadable = true;
                return slot;
            }
        };
        let (Some(e), Ok(len)) = (slot.entries.get_mut(usize::from(slot.len)), u8::try_from(usize::from(slot.len) + 1))
        else {
            slot.unreadable = true;
            return slot;
        };
        *e = entry;
        slot.len = len;
        match walk::step(level, table, rights, va, &self.desc, &mut steps, |_| Ok(entry)) {
            Next::End(_) => slot.ended = true,
            Next::Table { table, .. } => {
                self.stats.pages += 1;
                self.resident.tick(self.mem, table);
                slot.page = self.mem.page(table.mfn()).ok();
            }
        }
        slot
    }
}

/// Run the walker's steps of `va` over the entries `slot` holds: where they lead.
#[inline]
fn replay(slot: &Slot<'_>, root: Maddr, va: Vaddr, desc: &PagingDesc, steps: &mut [Option<Step>; 4]) -> Next {
    let (mut level, mut table, mut rights) = (Level::L4, root, Rights::ALL);
    for &e in slot.entries.iter().take(usize::from(slot.len)) {
        match walk::step(level, table, rights, va, desc, steps, |_| Ok(e)) {
            Next::Table { level: l, table: t, rights: r } => (level, table, rights) = (l, t, r),
            end => return end,
        }
    }
    Next::Table { level, table, rights }
}

/// Walk every VA of `vas` against `root`: `walk` for each, through one [`Translator`].
pub fn translate_all(mem: &dyn PhysMem, root: Maddr, vas: &[Vaddr], opts: WalkOptions) -> Vec<Walk> {
    let mut t = Translator::new(mem, root, opts);
    let mut out: Vec<Option<Walk>> = vec![None; vas.len()];
    t.translate_batch(vas, |i, w| {
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(*w);
        }
    });
    out.into_iter().flatten().collect()
}

/// Hint the CPU to load entry `index` of a mapped table page.
#[inline]
fn prefetch_entry(page: &[u8; 4096], index: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = page.as_ptr().wrapping_add((index & 0x1ff) * 8);
        // SAFETY: PREFETCHT0 is a hint: it never faults and has no architectural
        // effect (Intel SDM vol. 2B, PREFETCHh); `p` points into `page` anyway.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (page, index);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Machine, PageTables, XEN_TABLE, xen};
    use crate::paging::entry::bits;
    use crate::paging::walk::walk;

    /// xorshift64*.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn same_as_walk(mem: &dyn PhysMem, root: Maddr, vas: &[Vaddr]) {
        let opts = WalkOptions::default();
        for cached in [true, false] {
            let mut t = Translator::new(mem, root, opts).with_prefix_cache(cached);
            for &va in vas {
                assert_eq!(t.translate(va), walk(mem, root, va, opts), "{va}");
            }
            for &va in vas {
                assert_eq!(t.translate_addr(va), Resolved::of(&walk(mem, root, va, opts)), "lean {va}");
            }
            let mut called = vec![0u8; vas.len()];
            t.translate_batch(vas, |i, w| {
                assert_eq!(*w, walk(mem, root, vas[i], opts), "{}", vas[i]);
                called[i] += 1;
            });
            assert!(called.iter().all(|&c| c == 1), "every VA exactly once");
            // Once more in VA order (sorted windows).
            t.sort_next = true;
            t.translate_batch(vas, |i, w| assert_eq!(*w, walk(mem, root, vas[i], opts), "{}", vas[i]));
        }
        assert_eq!(translate_all(mem, root, vas, opts).len(), vas.len());
    }

    /// VAs near every interesting address of the Xen-like fixture, and random ones in
    /// the slots it uses, against both roots (absent tables, zero tables, junk,
    /// reserved bits, large pages, a dangling entry, malformed pages).
    #[test]
    fn equals_the_walker_on_the_xenlike_machine() {
        let mut x = xen::build();
        let mut vas: Vec<Vaddr> = Vec::new();
        for &(va, _, _) in x.xen_mapped.iter().chain(&x.guest_mapped) {
            vas.extend([va, Vaddr(va.0 + 0x123), Vaddr(va.0 ^ 0x1000), Vaddr(va.0 ^ 0x20_0000)]);
        }
        vas.extend([x.va_uncaptured_table, x.va_zero_l3, x.va_swapped, x.va_past_ram, x.va_reserved, x.va_l4_ps]);
        vas.push(x.va_empty);
        vas.push(Vaddr(0x0000_8000_0000_0000)); // non-canonical
        let mut seed = 7u64;
        for _ in 0..4000 {
            let base = vas[(rng(&mut seed) % vas.len() as u64) as usize].0;
            let bit = rng(&mut seed) % 40;
            vas.push(Vaddr(base ^ (1 << bit)));
        }
        x.machine.uncaptured.extend(x.omitted.iter().map(|m| m.0));
        x.machine.malformed.insert(x.noise.mfn().0);
        for root in [x.idle, x.pv] {
            same_as_walk(&x.machine, root, &vas);
        }
    }

    /// Thousands of VAs sharing few tables, with conflicting cache slots, identical
    /// entries at different prefixes (never merged), and a table page that the
    /// source holds only in part.
    #[test]
    fn equals_the_walker_with_shared_and_identical_tables() {
        let mut m = Machine::new(64 << 20);
        let pt = PageTables::new(&mut m);
        let leaf = bits::P | bits::RW | bits::A;
        // One L1 table mapped under 64 L2 entries and 8 L3 entries: identical entries.
        let va0 = Vaddr(0xffff_8880_0000_0000);
        pt.map_range(&mut m, va0, Maddr(0x10_0000), 0x20_0000, Level::L1, leaf, XEN_TABLE);
        let l2 = pt.table_of(&m, va0, Level::L2).expect("L2");
        let l1e = m.read_u64(l2);
        for i in 1..64 {
            m.write_u64(Maddr(l2.0 + 8 * i), l1e);
        }
        let l3 = pt.table_of(&m, va0, Level::L3).expect("L3");
        let l2e = m.read_u64(Maddr(l3.0 + 8 * va0.index_at(30) as u64));
        for i in 0..8 {
            m.write_u64(Maddr(l3.0 + 8 * i), l2e);
        }
        pt.map(&mut m, Vaddr(0x7f00_0000_0000), Maddr(0x4000_0000), Level::L3, leaf, XEN_TABLE);
        pt.map(&mut m, Vaddr(0x7f00_4020_0000), Maddr(0x20_0000), Level::L2, leaf, XEN_TABLE);
        let mut seed = 3u64;
        let mut vas = Vec::new();
        for _ in 0..20_000 {
            let r = rng(&mut seed);
            let va = match r % 4 {
                0 => 0xffff_8880_0000_0000 | (r >> 8) & 0x1_ffff_ffff,
                1 => 0xffff_8800_0000_0000 | (r >> 8) & 0xff_ffff_ffff,
                2 => 0x7f00_0000_0000 | (r >> 8) & 0xffff_ffff,
                _ => Vaddr::canonicalize(r >> 8).0,
            };
            vas.push(Vaddr(va));
        }
        same_as_walk(&m, pt.root, &vas);
        let mut t = Translator::new(&m, pt.root, WalkOptions::default()).with_prefix_cache(true);
        t.translate_batch(&vas, |_, _| {});
        let s = t.stats();
        assert_eq!(s.translations, vas.len() as u64);
        assert!(s.l2_hits > 0 && s.l3_hits > 0, "{s:?}");
    }

    #[test]
    fn a_root_outside_memory_and_an_absent_l1() {
        let mut m = Machine::new(16 << 20);
        let pt = PageTables::new(&mut m);
        let va = Vaddr(0x1000);
        pt.map(&mut m, va, Maddr(0x5000), Level::L1, bits::P, XEN_TABLE);
        let l1 = pt.table_of(&m, va, Level::L1).expect("L1");
        m.uncaptured.insert(l1.mfn().0);
        same_as_walk(&m, pt.root, &[va, Vaddr(0x2000), Vaddr(0x20_0000)]);
        same_as_walk(&m, Maddr(1 << 40), &[va, Vaddr(0xffff_8000_0000_0000)]);
        same_as_walk(&m, Maddr(pt.root.0 | 0x18), &[va]);
    }
}
