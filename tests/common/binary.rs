//! holdfast as a child process (the binary, so the memory measured is holdfast's own): start it
//! with a config, find its addresses in its log, sample its VmRSS; and reading /metrics (of a
//! child or an in-process instance).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Client, driver_from_env, scratch_dir};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

/// The `server.driver` value for the driver the tests run on (`HOLDFAST_TEST_DRIVER`).
pub fn driver_name() -> &'static str {
    match driver_from_env() {
        holdfast::config::DriverChoice::Legacy => "legacy",
        holdfast::config::DriverChoice::Uring => "uring",
        holdfast::config::DriverChoice::Auto => "auto",
    }
}

/// A holdfast child process, killed when dropped.
pub struct Holdfast {
    child: Child,
    pub http: SocketAddr,
    pub publish: SocketAddr,
    dir: PathBuf,
    /// Log lines after the "listening" one (holdfast's stdout, read to the end by a thread).
    pub log: mpsc::Receiver<String>,
}

impl Holdfast {
    /// Runs the binary with `config` (a whole TOML file; listeners on port 0) at `log_level`.
    pub fn start(name: &str, config: &str, log_level: &str) -> Holdfast {
        let dir = scratch_dir(name);
        let path = dir.join("holdfast.toml");
        std::fs::write(&path, config).expect("write the config");
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run holdfast");
        // Logs are read to the end (so holdfast never blocks on a full pipe); the addresses come
        // from the "listening on" line.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = io::BufRead::lines(io::BufReader::new(stdout));
            while let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
        });
        let (http, publish) = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("holdfast never logged its addresses");
            if let Some(addrs) = parse_listening(&line) {
                break addrs;
            }
        };
        Holdfast {
            child,
            http,
            publish,
            dir,
            log: rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /metrics` on the publish listener.
    pub fn metrics(&self) -> String {
        metrics(self.publish)
    }

    /// The log lines written so far (since the last call).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Holdfast {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Client and publish addresses from the "listening on [..] (publish API on ..)" log line.
fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
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
