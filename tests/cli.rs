//! The holdfast binary: `check-config`, and `run` stopped by SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::binary::{BIN, Scratch, parse_listening};
use common::*;

/// Kills the child if the test ends early.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn check_config(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("check-config")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run holdfast");
    wait_status(&mut child, Duration::from_secs(10));
    child.wait_with_output().unwrap()
}

fn wait_status(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("holdfast still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_config_accepts_good_config() {
    let dir = Scratch::new("check-good");
    let routes = dir.file(
        "routes",
        "# a comment\n*,path_beg=/api 127.0.0.1:9000\n* 127.0.0.1:8080\n",
    );
    let out = check_config(&["--routes", path_arg(&routes)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 routes"), "{stdout}");
}

#[test]
fn check_config_refuses_unsupported_route_option_naming_the_line() {
    let dir = Scratch::new("check-bad-route");
    let routes = dir.file("routes", "# line one\n* 127.0.0.1:80,untrusted\n");
    let out = check_config(&["--routes", path_arg(&routes)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted a bad routes file");
    assert!(
        stderr.contains("line 2"),
        "message names the line: {stderr}"
    );
    assert!(
        stderr.contains("untrusted"),
        "message names the option: {stderr}"
    );
}

#[test]
fn check_config_refuses_a_missing_certificate_naming_the_file() {
    let dir = Scratch::new("check-bad-cert");
    let config = dir.file(
        "holdfast.toml",
        "[tls]\nlisten = [\"127.0.0.1:0\"]\n[[tls.certificates]]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n",
    );
    let out = check_config(&["--config", path_arg(&config)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted a missing certificate");
    // Relative paths are resolved against the config file's directory, and named in full.
    let expected = dir.file("unused", "").with_file_name("missing.pem");
    assert!(
        stderr.contains(&*expected.to_string_lossy()),
        "message names the file: {stderr}"
    );
}

#[test]
fn check_config_refuses_unknown_config_key() {
    let dir = Scratch::new("check-bad-key");
    let config = dir.file("holdfast.toml", "[http]\nheader_bytes_mx = 5\n");
    let out = check_config(&["--config", path_arg(&config)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("header_bytes_mx"), "{stderr}");
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let origin = Origin::fixed(stream_hold("cli", b"init\n"));
    let dir = Scratch::new("run-sigterm");
    let routes = dir.file("routes", &route_to(&origin));
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--publish-listen", "127.0.0.1:0"])
        .args(["--workers", "2", "--routes", path_arg(&routes), "run"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run holdfast");
    let mut child = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
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
    // server.transparent_huge_pages defaults to off: the process's THP flag is cleared.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    let thp = status.lines().find(|l| l.starts_with("THP_enabled:"));
    if let Some(line) = thp {
        assert!(line.ends_with('0'), "{line}");
    }
    let mut sub = Client::connect(http);
    sub.send(&request("GET", "/", &[], b""));
    assert_eq!(sub.read_stream_head().status, 200);
    assert_eq!(sub.next_text(), "init\n");
    let body = items(vec![stream_item("cli", "live\n")]).to_string();
    assert_eq!(post_publish(publish, &[], body.as_bytes()).status, 200);
    assert_eq!(sub.next_text(), "live\n");

    let start = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    assert_eq!(
        sub.read_chunk(),
        None,
        "held stream ends with the last chunk"
    );
    let (rest, _) = sub.wait_closed(Duration::from_secs(5));
    assert!(rest.is_empty(), "bytes after the last chunk: {rest:?}");
    let status = wait_status(&mut child.0, Duration::from_secs(5));
    println!(
        "holdfast exited {status} {:?} after SIGTERM",
        start.elapsed()
    );
    assert!(status.success(), "exit status {status}");
    reader.join().unwrap();
}

/// systemd's Type=notify protocol: READY=1 once the listeners are bound, STOPPING=1 on SIGTERM.
#[test]
fn run_notifies_systemd_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = Scratch::new("sd-notify");
    let socket_path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let origin = Origin::fixed(ok(b"x"));
    let routes = dir.file("routes", &route_to(&origin));
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--publish-listen", "127.0.0.1:0"])
        .args(["--workers", "1", "--routes", path_arg(&routes), "run"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run holdfast");
    let mut child = ChildGuard(child);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a READY notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    let n = socket.recv(&mut buf).expect("a STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let status = child.0.wait().expect("holdfast exits");
    assert!(status.success(), "exit status {status}");
}

/// SIGHUP reloads routes without dropping held connections; an invalid file keeps the old ones.
#[test]
fn sighup_reloads_routes_and_keeps_held_connections() {
    let first = Origin::fixed(stream_hold("hup", b"init\n"));
    let second = Origin::fixed(ok(b"from the second origin\n"));
    let dir = Scratch::new("sighup");
    let routes = dir.file("routes", &route_to(&first));
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--publish-listen", "127.0.0.1:0"])
        .args(["--workers", "2", "--routes", path_arg(&routes), "run"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run holdfast");
    let mut child = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (http, publish) = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("addresses logged");
        if let Some(addrs) = parse_listening(&line) {
            break addrs;
        }
    };
    let mut held = Client::connect(http);
    held.send(&request("GET", "/", &[], b""));
    assert_eq!(held.read_stream_head().status, 200);
    assert_eq!(held.next_text(), "init\n");
    let wait_for_log = |needle: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a log line");
        if line.contains(needle) {
            return;
        }
    };
    let hup = || {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0);
    };
    // An invalid routes file: refused, the old routes stay.
    std::fs::write(&routes, "* 127.0.0.1:80,bogus_option\n").unwrap();
    hup();
    wait_for_log("reload refused");
    let mut probe = Client::connect(http);
    probe.send(&request("GET", "/", &[], b""));
    assert_eq!(
        probe.read_stream_head().status,
        200,
        "old routes still serve"
    );
    drop(probe);
    // A valid one: new requests go to the second origin.
    std::fs::write(&routes, route_to(&second)).unwrap();
    hup();
    wait_for_log("reloaded");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        Client::connect(http).get("/").text(),
        "from the second origin\n"
    );
    // The stream held through both reloads still gets publishes.
    let body = items(vec![stream_item("hup", "after reload\n")]).to_string();
    assert_eq!(post_publish(publish, &[], body.as_bytes()).status, 200);
    assert_eq!(held.next_text(), "after reload\n");
}
