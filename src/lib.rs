//! xenwalk: walk and explain x86-64 page tables in Xen crash dumps and machine
//! memory images.
//!
//! Layers, bottom up:
//! * [`addr`]: `Maddr`, `Vaddr`, `Mfn`, `Pfn`, `Gfn` newtypes;
//! * [`mem`]: physical-memory sources behind one trait, [`mem::PhysMem`] (raw, ELF,
//!   kdump-compressed and flattened, `xl dump-core` guest cores);
//! * [`dump`]: opening a file (format by magic) and its [`notes`];
//! * [`paging`]: x86-64 entries, the walker, the root (CR3), enumeration;
//! * [`diagnose`]: why a walk stopped, with stable reason codes;
//! * [`xen`]: the hypervisor in a dump (symbols, DWARF, layouts, domains, p2m);
//! * [`session`]: a dump with its hypervisor, and the address spaces in it
//!   ([`session::RootSpec`] → [`session::AddressSpace`]): where a program starts;
//! * [`render`]: JSON records (and, with the `cli` feature, human output); `cli`
//!   (feature `cli`, on by default): the command line.
//!
//! `fixture` (feature `fixture`) builds realistic page tables and images for tests
//! and benchmarks.

pub mod addr;
#[cfg(feature = "cli")]
pub mod cli;
pub mod console;
pub mod diagnose;
pub mod dump;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod mem;
pub mod notes;
pub mod paging;
pub mod parse;
pub mod render;
pub mod session;
pub mod triage;
pub mod xen;

pub use addr::{Gfn, Gpa, Maddr, Mfn, Pfn, PhysAddr, Vaddr};
