//! The Django origin of tests/apps/django_events (PyPI django-eventstream + django-grip under
//! uvicorn) as a child process, and a raw SSE client. Used by tests/django_events.rs and
//! tests/parity/main.rs; needs `mod common;` beside it in the test crate.
//!
//! The Python packages come from tests/apps/requirements.txt, installed into the repository's
//! `.venv` by scripts/test.sh. The Python used is `$HOLDFAST_TEST_PYTHON`, else
//! `.venv/bin/python3`, else `python3`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// How long the Django app may take to import, migrate its SQLite database and start serving.
const START_LIMIT: Duration = Duration::from_secs(40);

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn python() -> PathBuf {
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

/// Whether the Python packages are there: Ok, Err(reason to skip: no python3 at all), or a panic
/// naming the install command (a missing package is a broken setup, not a skip).
pub fn python_ready(test: &str) -> Result<PathBuf, String> {
    let python = python();
    if !runs(python.to_str().unwrap_or("python3")) {
        return Err(format!("SKIPPED {test}: python3 is not installed"));
    }
    let probe = Command::new(&python)
        .args([
            "-c",
            // find_spec: importing django_eventstream needs configured settings.
            "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m \
             in ['django', 'django_eventstream', 'django_grip', 'gripcontrol', 'uvicorn']))",
        ])
        .stderr(Stdio::null())
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "PyPI django-eventstream / django-grip / uvicorn missing for {}: run `python3 -m venv .venv \
         && .venv/bin/pip install -r tests/apps/requirements.txt` (scripts/test.sh does)",
        python.display()
    );
    Ok(python)
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Django app bound to its port, waiting for its GRIP configuration.
pub struct PendingDjango {
    child: Kill,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pub port: u16,
    db_dir: PathBuf,
}

/// The Django app, serving.
pub struct DjangoApp {
    _child: Kill,
    // Kept open: the app exits when it closes.
    _stdin: ChildStdin,
    pub port: u16,
    pub db_dir: PathBuf,
}

impl Drop for DjangoApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.db_dir);
    }
}

impl PendingDjango {
    /// Starts tests/apps/django_events/server.py; returns once it listens.
    pub fn spawn(python: &Path, name: &str) -> PendingDjango {
        let dir = repo().join("tests").join("apps").join("django_events");
        let mut child = Command::new(python)
            .arg(dir.join("server.py"))
            .current_dir(&dir)
            .env("PORT", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Django app");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = Kill(child);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(START_LIMIT)
            .expect("the Django app never said `listening <port>`");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the Django app: {first:?}"));
        let db_dir = std::env::temp_dir().join(format!(
            "holdfast-django-{}-{name}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&db_dir);
        std::fs::create_dir_all(&db_dir).unwrap();
        PendingDjango {
            child,
            stdin,
            lines,
            port,
            db_dir,
        }
    }

    /// Gives the app its proxies (django-grip `GRIP_PROXIES` entries) and waits until it serves.
    pub fn configure(mut self, grip_proxies: Value) -> DjangoApp {
        let conf = json!({
            "db": self.db_dir.join("db.sqlite3"),
            "grip_proxies": grip_proxies,
        });
        writeln!(self.stdin, "{conf}").expect("configure the Django app");
        self.stdin.flush().unwrap();
        match self.lines.recv_timeout(START_LIMIT) {
            Ok(line) if line == "ready" => {}
            Ok(line) => panic!("the Django app did not start: {line:?}"),
            Err(_) => panic!("the Django app never said `ready` (see its stderr above)"),
        }
        DjangoApp {
            _child: self.child,
            _stdin: self.stdin,
            port: self.port,
            db_dir: self.db_dir.clone(),
        }
    }
}

impl DjangoApp {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A request straight to the app (not through a proxy); the answer must be 200 JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Connection", "close")];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let mut c = Client::connect(self.addr());
        // A batch of synchronous publishes can take a while on a busy machine.
        c.set_timeout(Duration::from_secs(30));
        let r = c.send_and_read(&request(method, path, &headers, text.as_bytes()));
        assert_eq!(
            r.status,
            200,
            "{method} {path} on the Django app: {}",
            r.text()
        );
        r.json()
    }

    /// `send_event(channel, "message", d)` for each of `data`, in order; returns their ids.
    pub fn send(&self, channel: &str, data: &[Value]) -> Vec<String> {
        let r = self.call(
            "POST",
            &format!("/send/{channel}"),
            Some(&json!({ "data": data })),
        );
        ids_of(&r)
    }

    /// Appends events to django-eventstream's storage without publishing them.
    pub fn store_unpublished(&self, channel: &str, data: &[Value]) -> Vec<String> {
        let r = self.call(
            "POST",
            &format!("/store/{channel}"),
            Some(&json!({ "data": data })),
        );
        ids_of(&r)
    }

    /// The requests the proxy made to /events/ and /ws so far (each: path, method, signed,
    /// grip_last, last_event_id).
    pub fn log(&self) -> Vec<Value> {
        match self.call("GET", "/log", None) {
            Value::Array(a) => a,
            other => panic!("/log: {other}"),
        }
    }
}

fn ids_of(r: &Value) -> Vec<String> {
    r["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {r}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SSE

/// One server-sent event (the fields this test looks at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// A raw SSE client over the strict HTTP/1.1 client of tests/common.
pub struct Sse {
    pub client: Client,
    pub head: Response,
    text: String,
}

impl Sse {
    /// `GET path` with `Accept: text/event-stream` and an optional `Last-Event-ID`.
    pub fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        let mut client = Client::connect(addr);
        client.set_timeout(Duration::from_secs(15));
        client.send(&request("GET", path, &headers, b""));
        let head = client.read_stream_head();
        assert_eq!(head.status, 200, "SSE {path}: {:?}", head.head);
        client.set_timeout(IO_TIMEOUT);
        Sse {
            client,
            head,
            text: String::new(),
        }
    }

    /// The next event (comments skipped), or None if none completes within `limit`; a closed
    /// stream fails the test.
    pub fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        let start = Instant::now();
        loop {
            if let Some(e) = self.take_event() {
                return Some(e);
            }
            let left = limit.checked_sub(start.elapsed())?;
            self.client.set_timeout(left.max(Duration::from_millis(1)));
            match self.client.wire.read_chunk() {
                Ok(Some(data)) => self
                    .text
                    .push_str(&String::from_utf8(data).expect("UTF-8 SSE chunk")),
                Ok(None) => panic!("the SSE stream ended; unparsed: {:?}", self.text),
                Err(e) if is_timeout(&e) => return None,
                Err(e) => panic!("reading the SSE stream: {e}"),
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.text.find("\n\n")?;
            let block: String = self.text.drain(..end + 2).collect();
            let mut event = SseEvent {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            let mut any = false;
            let mut data_lines = Vec::new();
            for line in block.lines() {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                any = true;
                match field {
                    "event" => event.event = value.to_string(),
                    "id" => event.id = Some(value.to_string()),
                    "data" => data_lines.push(value.to_string()),
                    _ => {}
                }
            }
            if any {
                event.data = data_lines.join("\n");
                return Some(event);
            }
        }
    }

    /// Waits for django-eventstream's `stream-open` event (the hold is set up once it arrives).
    pub fn expect_open(&mut self) {
        match self.next_within(Duration::from_secs(10)) {
            Some(e) if e.event == "stream-open" => {}
            other => panic!("expected stream-open first, got {other:?}"),
        }
    }

    /// `message` events until `n` have arrived or `limit` passes (other events are skipped).
    pub fn messages(&mut self, n: usize, limit: Duration) -> Vec<SseEvent> {
        let start = Instant::now();
        let mut out = Vec::new();
        while out.len() < n {
            let Some(left) = limit.checked_sub(start.elapsed()) else {
                break;
            };
            match self.next_within(left) {
                Some(e) if e.event == "message" => out.push(e),
                Some(_) => {}
                None => break,
            }
        }
        out
    }

    /// Message events arriving within `quiet` (used to prove nothing more comes).
    pub fn extra_messages(&mut self, quiet: Duration) -> Vec<SseEvent> {
        self.messages(usize::MAX, quiet)
    }
}

/// Checks that `got` is exactly the events `want_ids` (Last-Event-ID form `channel:N`) in order,
/// each with data `"<channel>-<N>"` as the tests send them; prints the counts.
pub fn check_sequence(who: &str, got: &[SseEvent], channel: &str, want: &[u64]) {
    let ids: Vec<String> = got
        .iter()
        .map(|e| e.id.clone().unwrap_or_default())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let duplicates = ids.iter().filter(|i| !seen.insert(i.as_str())).count();
    let numbers: Vec<u64> = ids
        .iter()
        .filter_map(|i| i.rsplit(':').next().and_then(|n| n.parse().ok()))
        .collect();
    let in_order = numbers.windows(2).all(|w| w[0] < w[1]);
    eprintln!(
        "{who}: expected {}, received {}, duplicates {duplicates}, in order: {in_order}",
        want.len(),
        got.len()
    );
    let want_ids: Vec<String> = want.iter().map(|n| format!("{channel}:{n}")).collect();
    assert_eq!(ids, want_ids, "{who}: event ids");
    for e in got {
        let n = e.id.as_deref().unwrap().rsplit(':').next().unwrap();
        assert_eq!(
            e.data,
            format!("\"{channel}-{n}\""),
            "{who}: data of event {:?}",
            e.id
        );
    }
}

/// Data for events `from..=to` on `channel`, as `check_sequence` expects it.
pub fn data_range(channel: &str, from: u64, to: u64) -> Vec<Value> {
    (from..=to)
        .map(|n| json!(format!("{channel}-{n}")))
        .collect()
}
