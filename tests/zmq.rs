//! ZeroMQ publishing (`[zmq]`), against publishers holdfast did not write: pyzmq sending what
//! Pushpin's docs show (PUSH to the PULL socket, XPUB to the SUB socket, REQ to the command
//! socket), and pubcontrol / gripcontrol's own ZeroMQ publishing (tests/apps/zmq_client.py).
#![cfg(feature = "zmq")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv's Python with pyzmq, tnetstring and gripcontrol; a missing package fails loudly.
fn python() -> PathBuf {
    let python = std::env::var_os("HOLDFAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python3"));
    let probe = Command::new(&python)
        .args(["-c", "import zmq, tnetstring, pubcontrol, gripcontrol"])
        .stderr(Stdio::null())
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "PyPI pyzmq / tnetstring3 / gripcontrol missing for {}: run `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/apps/requirements.txt` (scripts/test.sh does)",
        python.display()
    );
    python
}

fn script() -> PathBuf {
    repo().join("tests/apps/zmq_client.py")
}

/// Runs one op of zmq_client.py to the end; its JSON lines.
fn run(op: &str, args: Value) -> Vec<Value> {
    let out = Command::new(python())
        .arg(script())
        .arg(op)
        .arg(args.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zmq_client.py {op} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A long-running op (xpub): its stdin, and its lines as they come.
struct Interactive {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
}

impl Interactive {
    fn start(op: &str, args: Value) -> Interactive {
        let mut child = Command::new(python())
            .arg(script())
            .arg(op)
            .arg(args.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Interactive {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").expect("write to the script");
    }

    fn next(&self, within: Duration) -> Option<Value> {
        self.lines.recv_timeout(within).ok()
    }

    /// Waits for `want`, skipping other lines.
    fn expect(&self, want: Value) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.next(left) {
                Some(v) if v == want => return,
                Some(_) => {}
                None => break,
            }
        }
        panic!("never saw {want}");
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// holdfast with every ZeroMQ socket on an ephemeral loopback port.
fn zmq_proxy(origin: &Origin, tweak: impl FnOnce(&mut holdfast::config::Config)) -> Proxy {
    Proxy::with(origin, |c| {
        c.zmq.enabled = true;
        c.zmq.push_in_spec = "tcp://127.0.0.1:*".into();
        c.zmq.push_in_sub_specs = vec!["tcp://127.0.0.1:*".into()];
        c.zmq.command_spec = "tcp://127.0.0.1:*".into();
        tweak(c);
    })
}

fn endpoints(proxy: &Proxy) -> holdfast::zmq::Endpoints {
    let server = proxy.server().expect("running");
    server.zmq_endpoints.clone().expect("[zmq] enabled")
}

fn stream_item(channel: &str, content: &str) -> Value {
    json!({"channel": channel, "formats": {"http-stream": {"content": content}}})
}

fn metric(proxy: &Proxy, line_start: &str) -> u64 {
    let text = proxy_get_metrics(proxy);
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
}

fn proxy_get_metrics(proxy: &Proxy) -> String {
    let mut c = Client::connect(proxy.publish);
    let r = c.send_and_read(&request("GET", "/metrics", &[("Connection", "close")], b""));
    r.text()
}

#[test]
fn pull_socket_takes_tnetstring_and_json_items_as_pushpin_documents() {
    let origin = Origin::fixed(stream_hold("zc", b"init\n"));
    let proxy = zmq_proxy(&origin, |_| {});
    let e = endpoints(&proxy);
    let mut sub = proxy.subscribe("/s", b"init\n");
    let messages = json!([
        // Pushpin's docs: a tnetstring item with its channel, as pubcontrol sends it.
        [{"tnet": stream_item("zc", "one\n")}],
        // Refused (an empty channel, as the HTTP API refuses it) and skipped.
        [{"tnet": stream_item("", "never\n")}],
        // 'J' + JSON, and a 'T'-prefixed tnetstring.
        [{"json": stream_item("zc", "two\n")}],
        [{"text": "T"}, {"text": "ignored"}],
        [{"hex": format!("54{}", hex(&tnet_item("zc", "three\n")))}],
    ]);
    let out = run("push", json!({"endpoint": e.pull, "messages": messages}));
    assert_eq!(out.last(), Some(&json!({"sent": 5})));
    for want in ["one\n", "two\n", "three\n"] {
        assert_eq!(sub.read_chunk().as_deref(), Some(want.as_bytes()));
    }
    assert_eq!(
        metric(&proxy, "holdfast_zmq_items_total{socket=\"pull\"}"),
        3
    );
    assert_eq!(
        metric(&proxy, "holdfast_zmq_rejected_total{socket=\"pull\"}"),
        2
    );
    assert_eq!(metric(&proxy, "holdfast_publishes_received_total"), 3);
}

/// The item as Python's tnetstring writes it (for the 'T'-prefixed message).
fn tnet_item(channel: &str, content: &str) -> Vec<u8> {
    use holdfast::proto::tnetstring::{Value as T, to_vec};
    to_vec(&T::Map(vec![
        (b"channel", T::Bytes(channel.as_bytes())),
        (
            b"formats",
            T::Map(vec![(
                b"http-stream",
                T::Map(vec![(b"content", T::Bytes(content.as_bytes()))]),
            )]),
        ),
    ]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sub_socket_subscribes_to_the_channels_that_have_subscribers() {
    let origin = Origin::fixed(stream_hold("zs", b"init\n"));
    let proxy = zmq_proxy(&origin, |c| c.zmq.subscription_linger_ms = 100);
    let e = endpoints(&proxy);
    let mut xpub = Interactive::start("xpub", json!({"endpoint": e.sub[0]}));
    xpub.expect(json!({"connected": true}));
    assert_eq!(
        xpub.next(Duration::from_millis(300)),
        None,
        "no subscriber yet: holdfast subscribes to nothing"
    );
    let mut client = proxy.subscribe("/s", b"init\n");
    xpub.expect(json!({"sub": "zs"}));
    // [channel, item]: the channel part names the channel.
    let item = json!({"formats": {"http-stream": {"content": "via sub\n"}}});
    xpub.send(json!({"send": [{"text": "zs"}, {"tnet": item}]}));
    assert_eq!(client.read_chunk().as_deref(), Some(&b"via sub\n"[..]));
    xpub.send(json!({"send": [{"text": "zs"}, {"json": {"formats": {"http-stream": {"content": "json\n"}}}}]}));
    assert_eq!(client.read_chunk().as_deref(), Some(&b"json\n"[..]));
    assert_eq!(metric(&proxy, "holdfast_zmq_subscriptions"), 1);
    // The last subscriber leaves: after the linger, holdfast unsubscribes.
    drop(client);
    xpub.expect(json!({"unsub": "zs"}));
    xpub.send(json!({"quit": true}));
}

fn command(proxy: &Proxy, request: Value) -> Value {
    let e = endpoints(proxy);
    let out = run(
        "command",
        json!({"endpoint": e.command, "request": request}),
    );
    out.into_iter().next().expect("a response")
}

#[test]
fn command_socket_answers_as_pushpins() {
    let origin = Origin::fixed(stream_hold("zk", b"init\n"));
    let proxy = zmq_proxy(&origin, |_| {});
    let e = endpoints(&proxy);
    let uris = command(&proxy, json!({"method": "get-zmq-uris"}));
    assert_eq!(
        uris,
        json!({"success": true, "value": {
            "command": e.command, "publish-pull": e.pull, "publish-sub": e.sub[0]}})
    );
    let mut sub = proxy.subscribe("/s", b"init\n");
    let published = command(
        &proxy,
        json!({"id": "1", "method": "publish", "args": {"items": [stream_item("zk", "cmd\n")]}}),
    );
    assert_eq!(published["success"], json!(true));
    assert_eq!(published["id"], json!("1"));
    assert_eq!(sub.read_chunk().as_deref(), Some(&b"cmd\n"[..]));
    let bad = command(
        &proxy,
        json!({"method": "publish", "args": {"items": [stream_item("zk", "a\n"), stream_item("", "b\n")]}}),
    );
    assert_eq!(bad["success"], json!(false));
    assert_eq!(bad["condition"], json!("bad-request"));
    assert_eq!(
        bad["value"],
        json!("Invalid format: item 1: \"channel\" must not be empty")
    );
    assert!(
        !sub.has_data_within(Duration::from_millis(200)),
        "all or nothing"
    );
    assert_eq!(
        command(&proxy, json!({"method": "recover"}))["success"],
        json!(true)
    );
    let refresh = command(
        &proxy,
        json!({"method": "refresh", "args": {"channel": "zk"}}),
    );
    assert_eq!(refresh["success"], json!(true));
    let unknown = command(&proxy, json!({"method": "nope"}));
    assert_eq!(unknown["condition"], json!("method-not-found"));
    let check = command(
        &proxy,
        json!({"method": "conncheck", "args": {"ids": ["a"]}}),
    );
    assert_eq!(check["condition"], json!("not-supported"));
    let garbage = command(&proxy, json!({"raw": "not a map"}));
    assert_eq!(garbage["condition"], json!("bad-format"));
}

#[test]
fn pubcontrol_and_gripcontrol_publish_over_zeromq() {
    let origin = Origin::fixed(stream_hold("zg", b"init\n"));
    let proxy = zmq_proxy(&origin, |_| {});
    let e = endpoints(&proxy);
    let mut sub = proxy.subscribe("/s", b"init\n");
    // pubcontrol asks the command socket for the PULL endpoint (get-zmq-uris), then PUSHes.
    let out = run(
        "pubcontrol",
        json!({"command": e.command, "channel": "zg", "content": "from pubcontrol\n"}),
    );
    assert_eq!(out[0]["push_uri"], json!(e.pull));
    assert_eq!(sub.read_chunk().as_deref(), Some(&b"from pubcontrol\n"[..]));
    // gripcontrol with require_subscribers publishes on XPUB to the SUB socket.
    run(
        "gripcontrol",
        json!({"command": e.command, "channel": "zg", "content": "from gripcontrol\n"}),
    );
    let mut chunk = sub.read_chunk();
    if chunk.as_deref() == Some(b"discovery\n") {
        chunk = sub.read_chunk();
    }
    assert_eq!(chunk.as_deref(), Some(&b"from gripcontrol\n"[..]));
}

#[test]
fn a_full_queue_slows_the_zeromq_reader_and_drops_nothing() {
    let origin = Origin::fixed(stream_hold("zb", b"init\n"));
    let proxy = zmq_proxy(&origin, |c| {
        c.zmq.queue_capacity = 1;
        c.zmq.receive_hwm = 1;
        c.publish.inbox_capacity = 2;
    });
    let e = endpoints(&proxy);
    let mut sub = proxy.subscribe("/s", b"init\n");
    let n = 2_000;
    let numbered = json!({"channel": "zb", "count": n});
    let out = run("push", json!({"endpoint": e.pull, "numbered": numbered}));
    assert_eq!(out.last(), Some(&json!({"sent": n})));
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = sub.read_chunk().expect("every item arrives");
        got.extend(String::from_utf8_lossy(&chunk).lines().map(str::to_owned));
    }
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "all of them, in order");
    assert!(metric(&proxy, "holdfast_zmq_queue_full_waits_total") > 0);
}

#[test]
fn stats_socket_sends_pushpins_report() {
    let origin = Origin::fixed(stream_hold("zr", b"init\n"));
    let proxy = zmq_proxy(&origin, |c| {
        c.zmq.stats_spec = "tcp://127.0.0.1:*".into();
        c.zmq.stats_report_interval_ms = 200;
        c.zmq.instance_id = "node-a".into();
    });
    let e = endpoints(&proxy);
    let mut sub = proxy.subscribe("/s", b"init\n");
    proxy.publish(&json!({"items": [stream_item("zr", "x\n")]}));
    assert_eq!(sub.read_chunk().as_deref(), Some(&b"x\n"[..]));
    let out = run(
        "stats",
        json!({"endpoint": e.stats, "prefix": "report", "count": 2}),
    );
    for report in &out {
        assert_eq!(report["type"], json!("report"));
        assert_eq!(report["format"], json!("T"));
        let f = &report["fields"];
        assert_eq!(f["from"], json!("node-a"));
        assert_eq!(f["connections"], json!(1), "{f}");
        assert!(f["duration"].as_u64().is_some_and(|d| d >= 150), "{f}");
        for key in ["minutes", "received", "sent"] {
            assert!(f[key].is_u64(), "{key} in {f}");
        }
    }
    // Pushpin's Prometheus request_received and connection_minute, in /metrics.
    let text = proxy_get_metrics(&proxy);
    let sum = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sum("holdfast_requests_received_total{") >= 1.0, "{text}");
    assert!(sum("holdfast_connection_seconds_total{") > 0.1, "{text}");
}

#[test]
fn a_message_over_message_bytes_max_is_not_taken() {
    let origin = Origin::fixed(stream_hold("zm", b"init\n"));
    let proxy = zmq_proxy(&origin, |c| c.zmq.message_bytes_max = 200);
    let e = endpoints(&proxy);
    let mut sub = proxy.subscribe("/s", b"init\n");
    let big = "x".repeat(300) + "\n";
    let messages = json!([[{"tnet": stream_item("zm", &big)}]]);
    run("push", json!({"endpoint": e.pull, "messages": messages}));
    // libzmq drops the peer that sent it; a new publisher's small message gets through.
    let messages = json!([[{"tnet": stream_item("zm", "small\n")}]]);
    run("push", json!({"endpoint": e.pull, "messages": messages}));
    assert_eq!(sub.read_chunk().as_deref(), Some(&b"small\n"[..]));
}
