//! x86-64 4-level paging: entry decoding, the walker, the root (CR3) and whole-space
//! enumeration. Nothing here knows about Xen; it is what the MMU does.

pub mod batch;
pub mod desc;
pub mod entry;
pub mod enumerate;
pub mod ept;
pub mod map;
pub mod root;
pub mod slot;
pub mod walk;

pub use batch::{Translator, translate_all};
pub use desc::{Fold, LevelDesc, PagingDesc};
pub use entry::{Entry, Level, Rights};
pub use enumerate::{
    Coalescer, EnumerateOptions, Event, Leaf, Leaves, Progress, Range, Summary, TableEvent, enumerate, enumerate_par,
    enumerate_tables, enumerate_tables_with, enumerate_with,
};
pub use root::{Root, RootInput, RootProblem, resolve};
pub use walk::{Mapping, Outcome, Resolved, Step, Stop, StopCode, StopKind, Walk, WalkOptions, walk, walk_in};
