//! The `xenwalk` binary: all the work is in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    xenwalk::cli::main()
}
