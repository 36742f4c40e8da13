//! The release-shaped holdfast: the `holdfast` binary as a child process, with a config file in a
//! scratch directory, its log lines (stdout and stderr) collected, and its addresses read from the
//! "listening on" line. Tests that must go through exactly what an operator runs (or measure
//! holdfast's own memory) use this rather than the in-process server. Also: reading /metrics
//! (of a child or an in-process instance) and sampling a process's VmRSS.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Client, driver_from_env, scratch_dir};

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
        Binary::run_logging(args, "info")
    }

    /// `holdfast ARGS run` with `RUST_LOG=log_level`; nothing is awaited.
    pub fn run_logging(args: &[&str], log_level: &str) -> Binary {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("run")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", log_level)
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

/// The `server.driver` value for the driver the tests run on (`HOLDFAST_TEST_DRIVER`).
pub fn driver_name() -> &'static str {
    match driver_from_env() {
        holdfast::config::DriverChoice::Legacy => "legacy",
        holdfast::config::DriverChoice::Uring => "uring",
        holdfast::config::DriverChoice::Auto => "auto",
    }
}

/// A running holdfast whose addresses are known; killed when dropped.
pub struct Holdfast {
    pub bin: Binary,
    pub http: SocketAddr,
    pub publish: SocketAddr,
}

impl Holdfast {
    /// Runs the binary with `config` (a whole TOML file; listeners on port 0) at `log_level`,
    /// and waits until it listens.
    pub fn start(name: &str, config: &str, log_level: &str) -> Holdfast {
        let dir = Scratch::new(name);
        let path = dir.file("holdfast.toml", config);
        let mut bin = Binary::run_logging(&["--config", path.to_str().expect("UTF-8")], log_level);
        bin._dir = Some(dir);
        let (http, publish) = bin.addresses();
        Holdfast { bin, http, publish }
    }

    /// holdfast on ephemeral ports with `workers` workers and `routes`, with `sections` (more
    /// TOML) appended.
    pub fn with_routes(name: &str, workers: usize, routes: &str, sections: &str) -> Holdfast {
        let routes = routes.replace('\n', "\\n");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin_workers = false\n\
             driver = \"{}\"\nroutes = \"{routes}\"\nshutdown_timeout_ms = 1000\n\n\
             [publish]\nlisten = \"127.0.0.1:0\"\n\n{sections}\n",
            driver_name()
        );
        Holdfast::start(name, &config, "info")
    }

    pub fn pid(&self) -> u32 {
        self.bin.pid()
    }

    /// `GET /metrics` on the publish listener.
    pub fn metrics(&self) -> String {
        metrics(self.publish)
    }

    /// Every line logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.bin.lines.seen.lock().unwrap().clone()
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

/// `GET /metrics` on a publish listener.
pub fn metrics(publish: SocketAddr) -> String {
    try_metrics(publish).unwrap_or_else(|e| panic!("GET /metrics: {e}"))
}

/// `GET /metrics`, or why it failed (for watchers that may outlive holdfast).
pub fn try_metrics(publish: SocketAddr) -> io::Result<String> {
    let stream = std::net::TcpStream::connect_timeout(&publish, super::IO_TIMEOUT)?;
    let mut c = Client::from_stream(stream);
    io::Write::write_all(
        &mut c.wire.stream,
        &super::request("GET", "/metrics", &[], b""),
    )?;
    let r = c.try_read_response()?;
    if r.status != 200 {
        return Err(io::Error::other(format!("/metrics answered {}", r.status)));
    }
    Ok(r.text())
}

/// Polls /metrics every 20 ms until the metric's sum (see [`metric_sum`]) reaches `at_least`;
/// returns how long that took, None past `limit`.
pub fn wait_for_metric(
    publish: SocketAddr,
    name: &str,
    labels: &[&str],
    at_least: u64,
    limit: Duration,
) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if metric_sum(&metrics(publish), name, labels) >= at_least {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The sum of a metric's samples (over all its labels) whose labels contain every one of
/// `labels` (e.g. `reason="stalled"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let rest = key.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|want| rest.contains(want));
            if matches {
                value.parse::<u64>().ok()
            } else {
                None
            }
        })
        .sum()
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Samples holdfast's VmRSS every 50 ms until stopped; returns the samples.
pub fn rss_sampler(pid: u32, stop: Arc<AtomicBool>) -> JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        samples
    })
}

/// Raises the soft open-files limit to the hard one (holdfast, a child, inherits it).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
