//! A private directory per test for files the test writes, and runs of the binary
//! in it that cannot hang the test ([`Sandbox::run`]: output to files, a timeout, the
//! exit code `None` when a signal killed it); [`Report`] and [`Bad`] check such runs
//! against the bad-input contract (one line on stderr naming the file and what is
//! wrong, nothing on stdout, exit code 2, no panic) and collect every violation.

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A child that runs longer than this is taken as hung, killed, and reported.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A private directory under the system temp dir, removed when dropped (also when the
/// test fails). The name holds the process id and the test name, so parallel tests
/// and concurrent `cargo test` runs never share files.
pub struct Sandbox {
    pub dir: PathBuf,
    runs: Cell<u32>,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("xenwalk-bad-input-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create sandbox directory");
        Sandbox { dir, runs: Cell::new(0) }
    }

    /// Write `bytes` to a file called `name` in the sandbox and return its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, bytes).expect("write test input");
        p
    }

    /// A path in the sandbox that does not exist.
    pub fn missing(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Run `xenwalk ARGS` with a timeout. The child's stdout and stderr go to files,
    /// not pipes, so a chatty child can never block on a full pipe while we poll.
    pub fn run(&self, args: &[&str]) -> Run {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let out_path = self.dir.join(format!("run{n}.stdout"));
        let err_path = self.dir.join(format!("run{n}.stderr"));
        let out = fs::File::create(&out_path).expect("create stdout file");
        let err = fs::File::create(&err_path).expect("create stderr file");
        let cmd = format!("xenwalk {}", args.join(" "));
        let mut child = Command::new(super::bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn xenwalk");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for xenwalk") {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{cmd}` did not finish within {TIMEOUT:?} (hang): killed");
            }
            sleep(Duration::from_millis(5));
        };
        Run {
            cmd,
            // None when the child was killed by a signal (abort, SIGSEGV, SIGBUS).
            code: status.code(),
            stdout: fs::read_to_string(&out_path).expect("read stdout file"),
            stderr: fs::read_to_string(&err_path).expect("read stderr file"),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What one run of the binary did.
pub struct Run {
    pub cmd: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    command: {}", self.cmd)?;
        writeln!(f, "    exit:    {:?}", self.code)?;
        writeln!(f, "    stderr:  {:?}", self.stderr)?;
        let so: String = self.stdout.chars().take(300).collect();
        write!(f, "    stdout:  {so:?}")
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Collects contract violations of many cases; `finish` fails the test with all of
/// them.
#[derive(Default)]
pub struct Report {
    pub failures: Vec<String>,
}

impl Report {
    pub fn check(&mut self, case: &str, run: &Run, problems: Vec<String>) {
        if !problems.is_empty() {
            self.failures.push(format!("case `{case}`:\n    - {}\n{run}", problems.join("\n    - ")));
        }
    }

    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!("{} case(s) broke the bad-input contract:\n\n{}", self.failures.len(), self.failures.join("\n\n"));
        }
    }
}

/// What a rejected input must look like. `what` lists words of which at least one
/// must appear (case-insensitively) in the error line: it says what is wrong.
pub struct Bad<'a> {
    pub path: &'a Path,
    pub what: &'a [&'a str],
    /// ELF problems also give the file offset of the offending structure.
    pub elf_offset: bool,
}

impl Bad<'_> {
    pub fn problems(&self, r: &Run) -> Vec<String> {
        let mut p = Vec::new();
        if r.stderr.contains("panicked") {
            p.push("panicked".into());
        }
        if r.code != Some(2) {
            p.push(format!("exit code {:?}, expected 2 (bad input)", r.code));
        }
        if !r.stdout.is_empty() {
            p.push("stdout is not empty".into());
        }
        let lines: Vec<&str> = r.stderr.lines().collect();
        if lines.len() != 1 {
            p.push(format!("stderr has {} lines, expected exactly one", lines.len()));
        }
        let path = self.path.display().to_string();
        if !r.stderr.contains(&path) {
            p.push(format!("error does not name the file {path}"));
        }
        let lower = r.stderr.to_lowercase();
        if !self.what.iter().any(|w| lower.contains(&w.to_lowercase())) {
            p.push(format!("error does not say what is wrong (none of {:?})", self.what));
        }
        if self.elf_offset && !r.stderr.contains("offset 0x") {
            p.push("ELF error without the file offset (`offset 0x...`)".into());
        }
        if let Some(rep) = repeated_tail(r.stderr.trim_end()) {
            p.push(format!("error says the same thing twice: {rep:?}"));
        }
        p
    }
}

/// The repeated part if `line` ends in `X: X` (whole `: `-separated parts). This is
/// how an error chain prints a cause that the outer message already includes, which
/// makes the one line twice as long and no clearer.
pub fn repeated_tail(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(": ").collect();
    let n = parts.len();
    (1..=n / 2).find(|&k| parts[n - k..] == parts[n - 2 * k..n - k]).map(|k| parts[n - k..].join(": "))
}

/// The problems of a run that must succeed with `code` (0 or 1) and a quiet stderr.
pub fn ok_problems(r: &Run, code: i32) -> Vec<String> {
    let mut p = Vec::new();
    if r.stderr.contains("panicked") {
        p.push("panicked".into());
    }
    if r.code != Some(code) {
        p.push(format!("exit code {:?}, expected {code}", r.code));
    }
    if !r.stderr.is_empty() {
        p.push("unexpected output on stderr".into());
    }
    if r.stdout.is_empty() {
        p.push("stdout is empty".into());
    }
    p
}
