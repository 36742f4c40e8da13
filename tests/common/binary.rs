//! The release-shaped holdfast: the `holdfast` binary started as a child process with a config
//! file, its addresses read from its "listening on" log line. Tests that must go through
//! exactly what an operator runs use this instead of the in-process server.

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::{driver_from_env, scratch_dir};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

/// A holdfast child process, killed when dropped.
pub struct Binary {
    child: Child,
    pub http: SocketAddr,
    pub publish: SocketAddr,
    dir: PathBuf,
    /// Every line it logged so far (stdout; logs go there).
    log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `holdfast --config <file> run`; `sections` is TOML appended after a `[server]`
    /// section with ephemeral ports, `workers` workers and the given routes, and `[publish]` on
    /// an ephemeral port.
    pub fn start(tag: &str, workers: usize, routes: &str, sections: &str) -> Binary {
        let dir = scratch_dir(tag);
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
        let path = dir.join("holdfast.toml");
        std::fs::write(&path, config).expect("write the config");
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run holdfast");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let (http, publish) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("holdfast never logged its addresses");
            if let Some(addrs) = parse_listening(&line) {
                break addrs;
            }
        };
        Binary {
            child,
            http,
            publish,
            dir,
            log,
        }
    }

    /// Waits up to `limit` for a logged line containing `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
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
