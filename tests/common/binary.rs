//! The release-shaped holdfast: the `holdfast` binary as a child process, with a config file in a
//! scratch directory, its log lines (stdout and stderr) collected, and its addresses read from the
//! "listening on" line. Tests that must go through exactly what an operator runs use this rather
//! than the in-process server.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{driver_from_env, scratch_dir};

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

/// How long a test waits for a line it expects.
const LINE_WAIT: Duration = Duration::from_secs(10);

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Scratch(scratch_dir(name))
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines a child printed, with a condition variable to wait on.
#[derive(Default)]
struct Lines {
    seen: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A holdfast child process, killed when dropped.
pub struct Binary {
    child: Child,
    lines: Arc<Lines>,
    _dir: Option<Scratch>,
}

impl Binary {
    /// `holdfast ARGS run` with info logs; nothing is awaited.
    pub fn run(args: &[&str]) -> Binary {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("run")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run holdfast");
        let lines = Arc::new(Lines::default());
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        // Both pipes are read to the end, so holdfast never blocks on a full one.
        for pipe in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.seen.lock().unwrap().push(line);
                    lines.grew.notify_all();
                }
            });
        }
        Binary {
            child,
            lines,
            _dir: None,
        }
    }

    /// Starts holdfast on a config of ephemeral ports, `workers` workers and `routes`, with
    /// `sections` (more TOML) appended, and waits until it listens. Returns it and its client and
    /// publish addresses.
    pub fn start(
        tag: &str,
        workers: usize,
        routes: &str,
        sections: &str,
    ) -> (Binary, SocketAddr, SocketAddr) {
        let dir = Scratch::new(tag);
        let driver = match driver_from_env() {
            holdfast::config::DriverChoice::Legacy => "legacy",
            holdfast::config::DriverChoice::Uring => "uring",
            holdfast::config::DriverChoice::Auto => "auto",
        };
        let routes = routes.replace('\n', "\\n");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin_workers = false\n\
             driver = \"{driver}\"\nroutes = \"{routes}\"\nshutdown_timeout_ms = 1000\n\n\
             [publish]\nlisten = \"127.0.0.1:0\"\n\n{sections}\n"
        );
        let path = dir.file("holdfast.toml", &config);
        let mut b = Binary::run(&["--config", path.to_str().expect("a UTF-8 path")]);
        b._dir = Some(dir);
        let (http, publish) = b.addresses();
        (b, http, publish)
    }

    /// The first line containing `needle`, waiting up to `limit` for it.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut seen = self.lines.seen.lock().unwrap();
        loop {
            if let Some(l) = seen.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            seen = self.lines.grew.wait_timeout(seen, left).unwrap().0;
        }
    }

    /// The first line containing `needle`; the test fails if none comes within 10 s.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_log(needle, LINE_WAIT)
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.log_text()))
    }

    /// Client and publish addresses, from the "listening on [..] (publish API on ..)" line.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        let line = self.wait_for("listening on [");
        parse_listening(&line).unwrap_or_else(|| panic!("unreadable addresses in {line:?}"))
    }

    /// Everything printed so far.
    pub fn log_text(&self) -> String {
        self.lines.seen.lock().unwrap().join("\n")
    }

    /// Everything printed so far and within `more`.
    pub fn output(&self, more: Duration) -> String {
        std::thread::sleep(more);
        self.log_text()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client and publish addresses from the "listening on [..] (publish API on ..)" log line.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = &line[line.find("listening on [")? + "listening on [".len()..];
    let http = rest[..rest.find(']')?]
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let rest = &rest[rest.find("publish API on ")? + "publish API on ".len()..];
    let publish = rest[..rest.find(')')?].trim().parse().ok()?;
    Some((http, publish))
}

/// `holdfast ARGS check-config` within 10 s: whether it succeeded, and stdout and stderr.
pub fn check_config(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("check-config")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run holdfast");
    let start = Instant::now();
    while child.try_wait().expect("wait for holdfast").is_none() {
        assert!(start.elapsed() < LINE_WAIT, "check-config hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("holdfast's output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
