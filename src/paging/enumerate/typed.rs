//! The enumeration in memory of any address kind: an HVM/PVH guest's own tables,
//! whose tables are guest-physical (`Leaf<Gpa>`), read through
//! [`crate::mem::TableMem`]. The same events, order and counts as [`super::enumerate`]
//! (tables decoded by the same [`Decoded`]), sequential and without the memo of
//! decoded tables or the residency budget: a guest's tables are a few thousand pages,
//! and machine memory keeps its own enumerator, tuned for hundreds of gigabytes.

use super::tables::Decoded;
use super::{Event, Leaf, Summary};
use crate::addr::{PhysAddr, Vaddr};
use crate::mem::TableMem;
use crate::paging::desc::PagingDesc;
use crate::paging::entry::{Entry, Level, Rights};
use crate::paging::walk::WalkOptions;
use std::collections::HashSet;
use std::ops::ControlFlow;

/// Enumerate every leaf under the L4 at `root` in `mem`, calling `f` for each event
/// in VA order; `f` may stop it by returning `Break`.
pub fn enumerate_in<A: PhysAddr, F>(mem: &(impl TableMem<A> + ?Sized), root: A, opts: WalkOptions, mut f: F) -> Summary
where
    F: FnMut(Event<'_, A>) -> ControlFlow<()>,
{
    let mut e = Typed {
        read: |a: A| mem.read_u64(a),
        page: |a: A| mem.page_at(a).map(|p| std::array::from_fn(|i| p.entry(i))),
        desc: PagingDesc::x86_64(opts),
        summary: Summary::default(),
        seen: HashSet::new(),
    };
    let _ = e.table(Level::L4, A::at(root.raw() & !0xfff), 0, Rights::ALL, &mut f);
    e.summary.distinct_tables = e.seen.len() as u64;
    e.summary
}

struct Typed<R, P> {
    read: R,
    page: P,
    desc: PagingDesc,
    summary: Summary,
    seen: HashSet<u64>,
}

impl<R, P> Typed<R, P> {
    fn table<A: PhysAddr, F>(
        &mut self,
        level: Level,
        table: A,
        va_base: u64,
        rights: Rights,
        f: &mut F,
    ) -> ControlFlow<()>
    where
        R: FnMut(A) -> Result<u64, crate::mem::ReadError>,
        P: FnMut(A) -> Result<[u64; 512], crate::mem::ReadError>,
        F: FnMut(Event<'_, A>) -> ControlFlow<()>,
    {
        self.summary.tables.bump(level);
        self.seen.insert(table.raw());
        let (rules, present, fold) = (*self.desc.level(level), self.desc.present, self.desc.fold);
        let d = match (self.page)(table) {
            Ok(p) => Decoded::new(&rules, present, fold, |i| p.get(i).copied()),
            Err(error) => {
                // Read what can be read, entry by entry (as the machine enumerator does).
                let part: Vec<Option<u64>> = (0..512).map(|i| (self.read)(table.plus(i as u64 * 8)).ok()).collect();
                let any = part.iter().any(Option::is_some);
                self.summary.unreadable_tables += 1;
                let va = Vaddr::canonicalize(va_base);
                f(Event::Unreadable { level, table, va, error, partial: any })?;
                if !any {
                    return ControlFlow::Continue(());
                }
                Decoded::new(&rules, present, fold, |i| part.get(i).copied().flatten())
            }
        };
        let bit = |m: &[u64; 8], i: usize| m.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
        for i in 0..512usize {
            let e = Entry(d.entry(i));
            let va = va_base | ((i as u64) << rules.shift);
            if bit(&d.junk, i) {
                self.summary.not_present_nonzero += 1;
            } else if bit(&d.leaf, i) {
                self.summary.leaves.bump(level);
                self.summary.mapped_bytes = self.summary.mapped_bytes.saturating_add(level.page_size());
                let leaf = Leaf {
                    va: Vaddr::canonicalize(va),
                    page: A::at(e.0 & rules.leaf_addr),
                    level,
                    entry: e,
                    rights: fold.apply(rights, e),
                };
                f(Event::Leaf(&leaf))?;
            } else if bit(&d.reserved, i) {
                self.summary.reserved_entries += 1;
                let bits = rules.reserved(e.0);
                let entry_maddr = table.plus(i as u64 * 8);
                f(Event::Reserved { level, va: Vaddr::canonicalize(va), entry_maddr, entry: e, bits })?;
            } else if bit(&d.table, i) {
                if let Some(below) = level.below() {
                    self.table(below, A::at(rules.addr(e.0)), va, fold.apply(rights, e), f)?;
                }
            }
        }
        ControlFlow::Continue(())
    }
}
