//! WebSocket-over-HTTP with GRIP libraries nobody here wrote: an Express origin on npm's
//! `@fanoutio/serve-grip` (tests/apps/serve-grip/server.mjs: accepts, subscribes to `room`,
//! echoes), publishes from npm's `@fanoutio/grip` `Publisher` and from PyPI's `gripcontrol`
//! `GripPubControl` (tests/apps/gripcontrol_publish.py), and a tungstenite client.
//!
//! This test installs nothing. `scripts/test.sh` installs what it needs first:
//! `npm ci` in tests/apps/serve-grip (its package-lock.json pins every version), and
//! `gripcontrol` into the repository's `.venv` (`python3 -m venv .venv && .venv/bin/pip install
//! -r tests/apps/requirements.txt`). The Python used is `$HOLDFAST_TEST_PYTHON`, else
//! `.venv/bin/python3`, else `python3`. Only when `node` or `python3` is missing altogether is
//! the test skipped (with a message); missing packages fail it, naming the command to run.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// Grip-Sig key shared by holdfast (signing) and the Express origin (verifying).
const SIG_KEY: &str = "holdfast-apps-test-key";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn apps() -> PathBuf {
    repo().join("tests").join("apps")
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HOLDFAST_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv").join("bin").join("python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Express origin on a free port; returns it and its port.
fn start_serve_grip() -> (Kill, u16) {
    let dir = apps().join("serve-grip");
    assert!(
        dir.join("node_modules")
            .join("@fanoutio")
            .join("serve-grip")
            .exists(),
        "npm packages missing: run `npm ci` in {} (scripts/test.sh does)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("PORT", "0")
        .env("GRIP_VERIFY_KEY", SIG_KEY)
        .env("GRIP_VERIFY_ISS", "pushpin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(port) = line.strip_prefix("listening ") {
                let _ = tx.send(port.trim().parse::<u16>().ok());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("the serve-grip origin never said `listening <port>`");
    (child, port)
}

/// Runs a command to its end, failing after `limit`; returns its stdout.
fn run(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                status.success(),
                "{cmd:?} failed ({status}): {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return stdout;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `%`-encodes everything but unreserved characters, for a query value.
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn serve_grip_origin_with_grip_and_gripcontrol_publishers() {
    for tool in ["node", "python3"] {
        if !runs(tool) {
            eprintln!(
                "SKIPPED serve_grip_origin_with_grip_and_gripcontrol_publishers: {tool} is not installed"
            );
            return;
        }
    }
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import gripcontrol, pubcontrol"])
        .stderr(Stdio::null())
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "PyPI gripcontrol is missing for {}: run `python3 -m venv .venv && .venv/bin/pip install \
         -r tests/apps/requirements.txt` (scripts/test.sh does)",
        python.display()
    );

    let (_node, node_port) = start_serve_grip();
    let proxy = ws_proxy(node_port, |c| c.grip.sig_key = Some(SIG_KEY.to_string()));
    let control_uri = format!("http://{}", proxy.publish);

    // The origin checks Grip-Sig with @fanoutio/grip's validateSig (key and `iss`): a missing or
    // bad signature would be a 403 here.
    let mut ws = ws_connect(proxy.http, "/ws");
    ws_send_text(&mut ws, "hello from tungstenite");
    assert_eq!(ws_recv_text(&mut ws), "hello from tungstenite");
    // The echo comes after the OPEN answer's subscribe: the connection is in `room` now.

    // @fanoutio/grip's Publisher, run inside the Express app.
    let mut c = Client::connect(SocketAddr::from(([127, 0, 0, 1], node_port)));
    let path = format!(
        "/publish?control_uri={}&channel=room&text=hi",
        query_value(&control_uri)
    );
    let r = c.get(&path);
    assert_eq!(r.status, 200, "@fanoutio/grip publish: {}", r.text());
    assert_eq!(ws_recv_text(&mut ws), "hi");

    // PyPI gripcontrol's GripPubControl.
    let script = apps().join("gripcontrol_publish.py");
    let out = run(
        Command::new(&python)
            .arg(&script)
            .args([control_uri.as_str(), "room", "py"]),
        Duration::from_secs(20),
    );
    assert!(out.contains("published"), "{out}");
    assert_eq!(ws_recv_text(&mut ws), "py");

    // A binary message goes through serve-grip too (it answers with text: recv() decodes it).
    ws.send(Message::binary(b"bytes".to_vec())).unwrap();
    assert_eq!(ws_recv_text(&mut ws), "bytes");

    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    let (code, _, before) = ws_expect_close(&mut ws, IO_TIMEOUT);
    assert_eq!(code, Some(1000));
    assert!(before.is_empty(), "{before:?}");
}
