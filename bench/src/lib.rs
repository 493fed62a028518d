//! The pieces of the benchmark `benches/paging.rs` (run with `cargo bench -p xenwalk-bench`),
//! which itself keeps `main` and the list of scenarios: [`settings`] (command line and
//! environment), [`images`] (building the synthetic images and the kdump copies,
//! finding the real dom0 image), [`vas`] (the VA sets), [`scenario`] (one scenario
//! measured and printed), [`measure`] (child processes, timings, the CLI end to end),
//! [`child_xenwalk`] and [`child_memflow`] (what a child measures, in each library),
//! [`offsets`] (every source of struct offsets, timed against the built-in table),
//! and [`report`] (the header, the summary table and number formatting).

pub mod child_memflow;
pub mod child_xenwalk;
pub mod images;
pub mod measure;
pub mod offsets;
pub mod report;
pub mod scenario;
pub mod settings;
pub mod vas;

pub const GIB: u64 = 1 << 30;
/// Bump when a synthetic image changes: cached images with another stamp are rebuilt.
pub const IMAGE_VERSION: &str = "v1";

pub type Res<T> = Result<T, String>;

pub fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}
