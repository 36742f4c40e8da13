//! Parity with Pushpin: the same scenarios (tests/parity/run.py) run through Pushpin 1.36 (the
//! Debian package) and through holdfast, both in front of the same origin (the Django app of
//! tests/apps/django_events: django-eventstream, django-grip WebSocket-over-HTTP, and
//! hand-written GRIP answers), and the observations are compared. Differences that are known and
//! explained (Pushpin bugs, deliberate holdfast choices) are listed in run.py's EXPECTED with
//! their reasons; any other difference fails this test and is printed with both observations.
//!
//! Needs the `pushpin` Debian package (`apt-get install -y pushpin`: it brings condure, zurl,
//! pushpin-proxy, pushpin-handler) and the Python packages of tests/apps/requirements.txt in
//! `.venv` (scripts/test.sh installs them). Without `pushpin` or python3 on the machine the test
//! is skipped with a message; `HOLDFAST_PARITY_REQUIRED=1` turns those skips into failures (for CI
//! that installs them).
//!
//! Pushpin runs under a small `sh` watchdog that stops it (SIGTERM, which stops its services) when
//! this test's process goes away, however it goes: no Pushpin is left behind.

#[path = "../common/mod.rs"]
mod common;
#[path = "../django_app/mod.rs"]
mod django_app;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use django_app::*;
use serde_json::json;

/// Grip-Sig key of both proxies; the Django app verifies it.
const SIG_KEY: &str = "holdfast-parity-sig-key-0123456789abcdef";

fn parity_dir() -> PathBuf {
    repo().join("tests").join("parity")
}

fn skip(reason: &str) {
    if std::env::var_os("HOLDFAST_PARITY_REQUIRED").is_some_and(|v| v == "1") {
        panic!("parity test cannot run: {reason}");
    }
    eprintln!("SKIPPED parity_with_pushpin: {reason}");
}

/// A free TCP port on 127.0.0.1 (bound, then released for Pushpin to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pushpin under a watchdog shell: closing the shell's stdin (or this process exiting) makes it
/// send SIGTERM to Pushpin and wait for it.
struct Pushpin {
    shell: Option<Child>,
    stdin: Option<ChildStdin>,
    http: SocketAddr,
    publish: SocketAddr,
    /// ZeroMQ endpoints: PULL, SUB (bound), command, stats.
    zmq: [String; 4],
    dir: PathBuf,
}

impl Pushpin {
    fn start(dir: &Path, routes: &str) -> Pushpin {
        let run = dir.join("run");
        let log = dir.join("log");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        let routes_file = dir.join("routes");
        std::fs::write(&routes_file, routes).unwrap();
        let http = free_port();
        let publish = free_port();
        let zmq_ports = [free_port(), free_port(), free_port()];
        let template = std::fs::read_to_string(parity_dir().join("pushpin.conf.template")).unwrap();
        let conf = template
            .replace("{RUNDIR}", run.to_str().unwrap())
            .replace("{LOGDIR}", log.to_str().unwrap())
            .replace("{ROUTES}", routes_file.to_str().unwrap())
            .replace("{LOG_LEVEL}", "2")
            .replace("{HTTP_PORT}", &http.to_string())
            .replace("{PUBLISH_PORT}", &publish.to_string())
            .replace("{PULL_PORT}", &zmq_ports[0].to_string())
            .replace("{SUB_PORT}", &zmq_ports[1].to_string())
            .replace("{COMMAND_PORT}", &zmq_ports[2].to_string())
            .replace("{SIG_KEY}", SIG_KEY);
        let conf_file = dir.join("pushpin.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let out = std::fs::File::create(dir.join("pushpin.out")).unwrap();
        let script = r#"pushpin --config "$1" --merge-output & p=$!
while read -r _; do :; done
kill -TERM "$p" 2>/dev/null
i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$p" 2>/dev/null; wait"#;
        let mut shell = Command::new("sh")
            .args(["-c", script, "pushpin-watchdog"])
            .arg(&conf_file)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start pushpin");
        let stdin = shell.stdin.take();
        let p = Pushpin {
            shell: Some(shell),
            stdin,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            publish: SocketAddr::from(([127, 0, 0, 1], publish)),
            zmq: {
                let [pull, sub, command] = zmq_ports.map(|p| format!("tcp://127.0.0.1:{p}"));
                let stats = format!("ipc://{}/pty-stats", run.display());
                [pull, sub, command, stats]
            },
            dir: dir.to_path_buf(),
        };
        p.wait_ready();
        p
    }

    /// Until the publish API answers its banner and the HTTP port accepts.
    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let ready = std::net::TcpStream::connect_timeout(&self.http, Duration::from_secs(1))
                .is_ok()
                && std::net::TcpStream::connect_timeout(&self.publish, Duration::from_secs(1))
                    .is_ok_and(|_| {
                        publish_request(self.publish, "GET", "/", &[], b"").status == 200
                    });
            if ready {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "Pushpin did not start; its output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("pushpin.out")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Pushpin {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut shell) = self.shell.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = shell.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = shell.kill();
            let _ = shell.wait();
        }
    }
}

/// Runs a command to its end, failing after `limit`; returns (success, stdout, stderr).
fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child never blocks.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), t1.join().unwrap(), t2.join().unwrap())
}

#[test]
fn parity_with_pushpin() {
    if !runs("pushpin") {
        return skip("pushpin is not installed (apt-get install -y pushpin)");
    }
    let python = match python_ready("parity_with_pushpin") {
        Ok(p) => p,
        Err(reason) => return skip(&reason),
    };
    let dir = scratch_dir("parity");
    let started = Instant::now();

    let pending = PendingDjango::spawn(&python, "parity");
    let routes = format!(
        "*,proto=ws 127.0.0.1:{0},over_http\n* 127.0.0.1:{0}\n",
        pending.port
    );
    let pushpin = Pushpin::start(&dir.join("pushpin"), &routes);
    let holdfast = Proxy::start({
        let mut c = config(&routes);
        c.grip.sig_key = Some(SIG_KEY.to_string());
        c.zmq.enabled = true;
        c.zmq.push_in_spec = "tcp://127.0.0.1:*".into();
        c.zmq.push_in_sub_specs = vec!["tcp://127.0.0.1:*".into()];
        c.zmq.command_spec = "tcp://127.0.0.1:*".into();
        // Pushpin's stats socket reports every 10 s (stats_report_interval), as holdfast's.
        c.zmq.stats_spec = "tcp://127.0.0.1:*".into();
        c
    });
    let holdfast_zmq = {
        let e = holdfast.server().and_then(|s| s.zmq_endpoints.clone());
        let e = e.expect("holdfast's [zmq] sockets");
        let one = |s: Option<String>| s.unwrap_or_default();
        [
            one(e.pull),
            one(e.sub.first().cloned()),
            one(e.command),
            one(e.stats),
        ]
    };
    // The app publishes every event to both proxies (django-grip publishes to all GRIP_PROXIES);
    // `key` is also the key it verifies Grip-Sig with. No control_iss: a `Bearer <key>` header
    // goes along, which both publish APIs ignore (no publish auth configured).
    let app = pending.configure(json!([
        {"control_uri": format!("http://{}", pushpin.publish), "key": SIG_KEY, "verify_iss": "pushpin"},
        {"control_uri": format!("http://{}", holdfast.publish), "key": SIG_KEY, "verify_iss": "pushpin"},
    ]));
    eprintln!(
        "parity: Django on {}, Pushpin on {} (publish {}), holdfast on {} (publish {}), ready after {:?}",
        app.port,
        pushpin.http,
        pushpin.publish,
        holdfast.http,
        holdfast.publish,
        started.elapsed()
    );

    let script = parity_dir().join("run.py");
    let only = std::env::var("HOLDFAST_PARITY_ONLY").unwrap_or_default();
    // Both runs at once (each is mostly waiting): the test stays well under a minute.
    let targets = [
        ("pushpin", pushpin.http, pushpin.publish, &pushpin.zmq),
        ("holdfast", holdfast.http, holdfast.publish, &holdfast_zmq),
    ];
    let outputs: Vec<PathBuf> = targets
        .iter()
        .map(|(label, ..)| dir.join(format!("{label}.json")))
        .collect();
    let results: Vec<(bool, String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .zip(&outputs)
            .map(|((label, http, publish, zmq), out)| {
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .arg("scenarios")
                    .args(["--http", &http.to_string()])
                    .args(["--publish", &publish.to_string()])
                    .args(["--django", &app.port.to_string()])
                    .args(["--label", &format!("{label}x")])
                    .args(["--out", out.to_str().unwrap()])
                    .args(["--only", &only])
                    .args(["--zmq-pull", &zmq[0]])
                    .args(["--zmq-sub", &zmq[1]])
                    .args(["--zmq-command", &zmq[2]])
                    .args(["--zmq-stats", &zmq[3]]);
                scope.spawn(move || run(&mut cmd, Duration::from_secs(90)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((label, ..), (ok, _, stderr)) in targets.iter().zip(&results) {
        eprintln!("{stderr}");
        assert!(ok, "run.py scenarios against {label} failed");
    }
    let (same, report, stderr) = run(
        Command::new(&python)
            .arg(&script)
            .arg("compare")
            .arg(&outputs[0])
            .arg(&outputs[1]),
        Duration::from_secs(30),
    );
    eprintln!("{report}{stderr}");
    eprintln!(
        "parity: observations in {} and {}; whole run {:?}",
        outputs[0].display(),
        outputs[1].display(),
        started.elapsed()
    );
    if same {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let log = pushpin.output();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "Pushpin's output (last lines; all of it in {}):",
            dir.join("pushpin").join("pushpin.out").display()
        );
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
    assert!(
        same,
        "holdfast differs from Pushpin in ways not explained (UNEXPLAINED lines above)"
    );
}
