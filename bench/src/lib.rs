//! Nothing here: the benchmark is `benches/paging.rs` (run with `cargo bench -p xenwalk-bench`).
