//! A QEMU process driven over QMP (its JSON machine protocol), for the tests that
//! have the real writer produce their files: tests/writers.rs (dump-guest-memory of a
//! guest whose RAM we chose) and tests/xen_lab.rs (a Xen host whose dom0 runs
//! `xl dump-core`, then crashes into a kexec crash kernel).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A QMP session with a QEMU process; quits it when dropped.
pub struct Qemu {
    pub child: Child,
    qmp: BufReader<UnixStream>,
}

impl Qemu {
    /// Start `cmd` (a qemu-system command without its `-qmp` option) with a QMP
    /// socket at `sock`, and negotiate capabilities.
    pub fn start(mut cmd: Command, sock: &Path) -> Qemu {
        let _ = std::fs::remove_file(sock);
        cmd.arg("-qmp").arg(format!("unix:{},server=on,wait=off", sock.display()));
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start QEMU");
        let start = Instant::now();
        let stream = loop {
            if let Ok(s) = UnixStream::connect(sock) {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "QEMU's QMP socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        };
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut q = Qemu { child, qmp: BufReader::new(stream) };
        let mut greeting = String::new();
        q.qmp.read_line(&mut greeting).expect("QMP greeting");
        q.cmd(serde_json::json!({"execute": "qmp_capabilities"}));
        q
    }

    /// Run one command; events before its answer are skipped.
    pub fn cmd(&mut self, c: serde_json::Value) -> serde_json::Value {
        let mut line = c.to_string();
        line.push('\n');
        self.qmp.get_mut().write_all(line.as_bytes()).expect("QMP write");
        loop {
            let mut l = String::new();
            self.qmp.read_line(&mut l).expect("QMP read");
            assert!(!l.is_empty(), "QEMU closed QMP");
            let v: serde_json::Value = serde_json::from_str(&l).expect("QMP JSON");
            if v.get("event").is_some() {
                continue;
            }
            assert!(v.get("error").is_none(), "QMP {c}: {v}");
            return v["return"].clone();
        }
    }

    /// `dump-guest-memory` without paging, in `format` (elf, kdump-zlib, ...).
    pub fn dump(&mut self, path: &Path, format: &str) {
        self.cmd(serde_json::json!({"execute": "dump-guest-memory", "arguments": {
            "paging": false, "protocol": format!("file:{}", path.display()), "format": format}}));
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.qmp.get_mut().write_all(b"{\"execute\":\"quit\"}\n");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
