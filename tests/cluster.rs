//! Three holdfast nodes joined by a three-member NATS cluster (`[cluster]`), on loopback.
//!
//! Subscribers over WebSocket (WebSocket-over-HTTP origin) and SSE (stream hold) are spread over
//! the nodes; channel `a` is published through node 0 and channel `b` through node 1, one item
//! every few milliseconds. Mid-stream the NATS member node 0 is connected to is killed: node 0
//! reconnects to another member and subscribes again. Checked for every subscriber: what it got
//! is in publish order without repeats, and complete from shortly after node 0's reconnect (its
//! own channel `a` is complete from the start: a node delivers what it accepts at once); what a
//! node missed equals its `holdfast_cluster_lost_total`. Then interest: a channel held only by
//! node 0 and published through node 1 is not received by node 2 at all, and not by node 0 either
//! once its subscribers are gone and the linger is over. Separately: a node started with no NATS
//! serves its own publishes, then joins when NATS appears; and an `id`/`prev-id` chain published
//! through the three nodes in turn reaches every node's subscribers in chain order; and a node
//! that misses part of a chain while it reconnects reports exactly what it missed and delivers the
//! rest at once (it does not wait `message_wait_ms` for the lost predecessor), and a subscriber
//! there that tracks prev-ids (an event-log origin with `Grip-Link`) gets what was lost from the
//! origin and ends with every event once, in order.
//!
//! Needs `nats-server` (Debian package `nats-server`; scripts/test.sh installs it). Without it
//! the tests skip with a message, unless `HOLDFAST_CLUSTER_REQUIRED=1` (CI), which makes that a
//! failure. They run once: under `HOLDFAST_TEST_DRIVER=legacy` (the second pass of the suite)
//! they are skipped, since the cluster thread does not depend on the workers' driver and the
//! worker side is the one every other end-to-end test covers on both drivers.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use holdfast::proto::wsoh::Event;
use serde_json::json;

/// Items per channel in the main run.
const ITEMS: u64 = 300;
/// Pause between two items of one channel.
const PUBLISH_EVERY: Duration = Duration::from_millis(8);
/// The item after which the NATS member of node 0 is killed.
const KILL_AFTER: u64 = 100;
/// Slack after a reconnect is seen before items must arrive again: the new subscription has to
/// travel from the NATS member the node moved to, over the routes, to the other members.
const SETTLE: Duration = Duration::from_millis(300);

/// Whether the test can run here; panics instead of skipping when CI requires it.
fn can_run(name: &str) -> bool {
    if std::env::var("HOLDFAST_TEST_DRIVER").as_deref() == Ok("legacy") {
        eprintln!("SKIPPED {name}: runs once, on the default driver (see the module docs)");
        return false;
    }
    let found = Command::new(nats_server())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("HOLDFAST_CLUSTER_REQUIRED").is_some_and(|v| v == "1") {
            panic!("{name} cannot run: nats-server is not installed (apt-get install nats-server)");
        }
        eprintln!("SKIPPED {name}: nats-server is not installed");
        return false;
    }
    true
}

/// The nats-server binary: `HOLDFAST_NATS_SERVER`, else on PATH, else Debian's /usr/sbin one.
fn nats_server() -> String {
    if let Some(p) = std::env::var_os("HOLDFAST_NATS_SERVER") {
        return p.to_string_lossy().into_owned();
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("nats-server").is_file()));
    if on_path {
        "nats-server".to_string()
    } else {
        "/usr/sbin/nats-server".to_string()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// NATS

/// One nats-server process, killed when dropped (and when this test process dies).
struct Nats {
    child: Option<Child>,
    port: u16,
}

impl Nats {
    /// A member of a cluster whose route ports are `routes` (its own is `routes[index]`).
    fn start(port: u16, routes: &[u16], index: usize) -> Nats {
        let mut cmd = Command::new(nats_server());
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if !routes.is_empty() {
            let others: Vec<String> = routes
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != index)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args([
                "--cluster_name",
                "holdfast-test",
                "--cluster",
                &format!("nats://127.0.0.1:{}", routes[index]),
                "--routes",
                &others.join(","),
            ]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the server when
        // the thread that started it (the test) goes away.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start nats-server");
        let nats = Nats {
            child: Some(child),
            port,
        };
        wait_until("nats-server listening", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-member NATS cluster, each member routed to the other two.
fn nats_cluster() -> Vec<Nats> {
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nats: Vec<Nats> = (0..3)
        .map(|i| Nats::start(free_port(), &routes, i))
        .collect();
    nats
}

// ---------------------------------------------------------------------------------------------
// holdfast nodes and their origin

/// The origin behind every node: `GET /sse/<ch>` is an SSE stream hold on `<ch>`, a WebSocket
/// on `/ws/<ch>` is subscribed to `<ch>` (WebSocket-over-HTTP).
fn origin() -> Origin {
    Origin::start(|req| {
        if let Some(ch) = req.path.strip_prefix("/sse/") {
            let headers = [
                ("Content-Type", "text/event-stream"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", ch),
            ];
            return Reply::Send(response(200, "OK", &headers, b": open\n\n"));
        }
        let ch = req.path.strip_prefix("/ws/").unwrap_or("none").to_string();
        let events = request_events(req);
        let out = if events.first() == Some(&Event::Open) {
            vec![
                Event::Open,
                control(&json!({"type": "subscribe", "channel": ch})),
                Event::Text(prefixed(b"ready")),
            ]
        } else {
            vec![]
        };
        Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &out,
        ))
    })
}

fn node(origin: &Origin, name: &str, servers: Vec<String>) -> Proxy {
    let name = name.to_string();
    ws_proxy(origin.port(), move |c| {
        c.cluster.enabled = true;
        c.cluster.servers = servers;
        c.cluster.servers_in_order = true;
        c.cluster.node_name = name;
        c.cluster.interest_linger_ms = 300;
        c.cluster.reconnect_delay_max_ms = 500;
        c.cluster.connect_timeout_ms = 500;
    })
}

/// A metric of a node (summed over its label sets).
fn metric(node: &Proxy, name: &str) -> u64 {
    let r = publish_request(node.publish, "GET", "/metrics", &[], b"");
    r.text()
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn publish_text(node: SocketAddr, channel: &str, text: &str) {
    let body = items(vec![json!({
        "channel": channel,
        "formats": {
            "ws-message": {"content": text},
            "http-stream": {"content": format!("data: {text}\n\n")},
        },
    })]);
    let r = post_publish(node, &[], body.to_string().as_bytes());
    assert_eq!(r.status, 200, "publish refused: {}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Subscribers

/// What one subscriber received: item numbers in arrival order (warm-up items are counted apart).
#[derive(Default)]
struct Got {
    seqs: Vec<u64>,
    warm: u64,
    ended: bool,
}

struct Subscriber {
    label: String,
    node: usize,
    channel: String,
    got: Arc<Mutex<Got>>,
    thread: Option<JoinHandle<()>>,
}

/// Records one message: `<channel> <n>`, `<channel> warm` or `<channel> end`. True at the end.
fn record(got: &Mutex<Got>, text: &str) -> bool {
    let mut g = got.lock().unwrap();
    match text.split(' ').nth(1) {
        Some("warm") => g.warm += 1,
        Some("end") => {
            g.ended = true;
            return true;
        }
        Some(n) => g.seqs.push(n.parse().expect("item number")),
        None => panic!("unexpected message {text:?}"),
    }
    false
}

/// Hands each SSE event (the text up to its blank line) of a held stream to `on_event` until it
/// returns true or the stream ends (or stays silent for the client's read timeout).
fn read_events(c: &mut Client, mut on_event: impl FnMut(&str) -> bool) {
    let mut pending = String::new();
    while let Ok(Some(chunk)) = c.wire.read_chunk() {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            if on_event(&event) {
                return;
            }
        }
    }
}

fn ws_subscriber(proxy: &Proxy, node: usize, channel: &str) -> Subscriber {
    let mut ws = ws_connect(proxy.http, &format!("/ws/{channel}"));
    assert_eq!(ws_recv_text(&mut ws), "ready");
    let got = Arc::new(Mutex::new(Got::default()));
    let g = got.clone();
    let thread = std::thread::spawn(move || {
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    if record(&g, t.as_str()) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    Subscriber {
        label: format!("node{node} ws  {channel}"),
        node,
        channel: channel.to_string(),
        got,
        thread: Some(thread),
    }
}

fn sse_subscriber(proxy: &Proxy, node: usize, channel: &str) -> Subscriber {
    let mut c = proxy.client();
    c.send(&request(
        "GET",
        &format!("/sse/{channel}"),
        &[("Accept", "text/event-stream")],
        b"",
    ));
    assert_eq!(c.read_stream_head().status, 200);
    assert_eq!(c.read_chunk().as_deref(), Some(&b": open\n\n"[..]));
    let got = Arc::new(Mutex::new(Got::default()));
    let g = got.clone();
    let thread = std::thread::spawn(move || {
        read_events(&mut c, |event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .is_some_and(|text| record(&g, text))
        })
    });
    Subscriber {
        label: format!("node{node} sse {channel}"),
        node,
        channel: channel.to_string(),
        got,
        thread: Some(thread),
    }
}

impl Subscriber {
    fn warm(&self) -> u64 {
        self.got.lock().unwrap().warm
    }

    fn finish(&mut self, limit: Duration) -> (Vec<u64>, bool) {
        let start = Instant::now();
        while !self.got.lock().unwrap().ended && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        let g = self.got.lock().unwrap();
        (g.seqs.clone(), g.ended)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // The reader ends on its own at the end marker or when the node closes the connection.
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The publisher of one channel through one node: numbered items, `PUBLISH_EVERY` apart.
fn publisher(node: SocketAddr, channel: &'static str, last: Arc<AtomicU64>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for n in 1..=ITEMS {
            publish_text(node, channel, &format!("{channel} {n}"));
            last.store(n, Ordering::SeqCst);
            std::thread::sleep(PUBLISH_EVERY);
        }
    })
}

#[test]
fn three_nodes_survive_losing_a_nats_member() {
    if !can_run("three_nodes_survive_losing_a_nats_member") {
        return;
    }
    let started = Instant::now();
    let mut nats = nats_cluster();
    let urls: Vec<String> = nats.iter().map(Nats::url).collect();
    let origin = origin();
    // Node i prefers NATS member i, then the others.
    let nodes: Vec<Proxy> = (0..3)
        .map(|i| {
            let servers = (0..3).map(|k| urls[(i + k) % 3].clone()).collect();
            node(&origin, &format!("n{i}"), servers)
        })
        .collect();
    wait_until(
        "every node connected to NATS",
        Duration::from_secs(10),
        || {
            nodes
                .iter()
                .all(|n| metric(n, "holdfast_cluster_connected") == 1)
        },
    );

    let mut subs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for ch in ["a", "b"] {
            subs.push(ws_subscriber(n, i, ch));
            subs.push(sse_subscriber(n, i, ch));
        }
    }
    // Interest travels node → NATS member → routes: publish warm-up items until every
    // subscriber has one, so the numbered run starts with the whole cluster listening.
    wait_until(
        "warm-up reached every subscriber",
        Duration::from_secs(10),
        || {
            publish_text(nodes[0].publish, "a", "a warm");
            publish_text(nodes[1].publish, "b", "b warm");
            std::thread::sleep(Duration::from_millis(30));
            subs.iter().all(|s| s.warm() > 0)
        },
    );
    let lost_before: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "holdfast_cluster_lost_total"))
        .collect();

    let last_a = Arc::new(AtomicU64::new(0));
    let last_b = Arc::new(AtomicU64::new(0));
    let pub_a = publisher(nodes[0].publish, "a", last_a.clone());
    let pub_b = publisher(nodes[1].publish, "b", last_b.clone());
    wait_until("items before the kill", Duration::from_secs(20), || {
        last_a.load(Ordering::SeqCst) >= KILL_AFTER
    });
    let connects_before = metric(&nodes[0], "holdfast_cluster_connects_total");
    nats[0].kill();
    let killed_at = Instant::now();
    wait_until("node 0 reconnected", Duration::from_secs(10), || {
        metric(&nodes[0], "holdfast_cluster_connects_total") > connects_before
            && metric(&nodes[0], "holdfast_cluster_connected") == 1
    });
    let reconnect_took = killed_at.elapsed();
    std::thread::sleep(SETTLE);
    // Everything published from here on must reach every subscriber.
    let from_a = last_a.load(Ordering::SeqCst) + 1;
    let from_b = last_b.load(Ordering::SeqCst) + 1;
    pub_a.join().unwrap();
    pub_b.join().unwrap();
    publish_text(nodes[0].publish, "a", "a end");
    publish_text(nodes[1].publish, "b", "b end");

    eprintln!(
        "cluster: NATS member of node 0 killed after item {KILL_AFTER}; node 0 reconnected in \
         {reconnect_took:?}; required complete from a {from_a}, b {from_b}"
    );
    let mut missing_per_node: HashMap<usize, Vec<u64>> = HashMap::new();
    let mut failures = Vec::new();
    for s in &mut subs {
        let (seqs, ended) = s.finish(Duration::from_secs(10));
        let in_order = seqs.windows(2).all(|w| w[0] < w[1]);
        // A node delivers what it accepted at once: node 0's `a` and node 1's `b` never miss.
        let from = match (s.node, s.channel.as_str()) {
            (0, "a") | (1, "b") => 1,
            (_, "a") => from_a,
            _ => from_b,
        };
        let missing_after: Vec<u64> = (from..=ITEMS).filter(|n| !seqs.contains(n)).collect();
        let missing_total = ITEMS - seqs.len() as u64;
        eprintln!(
            "cluster: {}: received {}/{ITEMS} in order: {in_order}, missing {missing_total} \
             (all before the reconnect), complete from {from}: {}",
            s.label,
            seqs.len(),
            missing_after.is_empty()
        );
        if !(ended && in_order && missing_after.is_empty()) {
            failures.push(format!(
                "{}: ended {ended}, in order {in_order}, missing after reconnect {missing_after:?}",
                s.label
            ));
        }
        missing_per_node
            .entry(s.node)
            .or_default()
            .push(missing_total);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Read once every subscriber has its end marker: each gap was found by then.
    let lost: Vec<u64> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| metric(n, "holdfast_cluster_lost_total") - lost_before[i])
        .collect();
    eprintln!("cluster: holdfast_cluster_lost_total per node: {lost:?}");
    // What a node's subscribers missed is what the node reports lost: both of its channels'
    // subscribers (WebSocket and SSE) miss the same items, and a node misses on one channel.
    for (i, n) in lost.iter().enumerate() {
        let missed = &missing_per_node[&i];
        let per_channel_max = missed.iter().copied().max().unwrap_or(0);
        assert_eq!(
            *n, per_channel_max,
            "node {i}: lost_total {n}, subscribers missed {missed:?}"
        );
    }

    // Interest: `only0` is held by node 0 alone; node 1 publishes on it; node 2 gets nothing.
    let mut only = sse_subscriber(&nodes[0], 0, "only0");
    let received = |i: usize| metric(&nodes[i], "holdfast_cluster_received_total");
    let before: Vec<u64> = (0..3).map(received).collect();
    wait_until(
        "only0 interest reached node 1",
        Duration::from_secs(5),
        || {
            publish_text(nodes[1].publish, "only0", "only0 warm");
            std::thread::sleep(Duration::from_millis(30));
            only.warm() > 0
        },
    );
    for n in 1..=20 {
        publish_text(nodes[1].publish, "only0", &format!("only0 {n}"));
    }
    publish_text(nodes[1].publish, "only0", "only0 end");
    let (seqs, ended) = only.finish(Duration::from_secs(5));
    assert!(ended);
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    let after: Vec<u64> = (0..3).map(received).collect();
    let delta: Vec<u64> = (0..3).map(|i| after[i] - before[i]).collect();
    eprintln!("cluster: items received from NATS while only node 0 held only0: {delta:?}");
    assert!(delta[0] >= 21, "node 0 got only0's items: {delta:?}");
    assert_eq!(
        delta[1], 0,
        "node 1 publishes, holds nothing on only0: {delta:?}"
    );
    assert_eq!(delta[2], 0, "node 2 holds nothing on only0: {delta:?}");
    // Every subscriber is gone (each reader closed its connection at its end marker): after the
    // linger node 0 unsubscribes from everything, and receives nothing more for only0.
    drop(only);
    wait_until("node 0 let go of only0", Duration::from_secs(5), || {
        metric(&nodes[0], "holdfast_cluster_subjects") == 0
    });
    let before0 = received(0);
    for n in 1..=5 {
        publish_text(nodes[1].publish, "only0", &format!("only0 {n}"));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(0), before0, "node 0 no longer listens to only0");
    eprintln!("cluster: test took {:?}", started.elapsed());
}

#[test]
fn a_node_starts_without_nats_and_joins_when_it_appears() {
    if !can_run("a_node_starts_without_nats_and_joins_when_it_appears") {
        return;
    }
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let origin = origin();
    let a = node(&origin, "alone", vec![url.clone()]);
    // No NATS: the node serves its own publishes and says it is not connected.
    let mut sub = sse_subscriber(&a, 0, "x");
    publish_text(a.publish, "x", "x 1");
    wait_until(
        "local delivery without NATS",
        Duration::from_secs(5),
        || sub.got.lock().unwrap().seqs == [1],
    );
    assert_eq!(metric(&a, "holdfast_cluster_connected"), 0);
    // NATS appears: the node connects (retrying with back-off) and joins a second node.
    let _nats = Nats::start(port, &[], 0);
    let b = node(&origin, "second", vec![url]);
    wait_until("both connected", Duration::from_secs(10), || {
        metric(&a, "holdfast_cluster_connected") == 1
            && metric(&b, "holdfast_cluster_connected") == 1
    });
    wait_until(
        "b's publish reaches a's subscriber",
        Duration::from_secs(5),
        || {
            publish_text(b.publish, "x", "x warm");
            std::thread::sleep(Duration::from_millis(30));
            sub.warm() > 0
        },
    );
    publish_text(b.publish, "x", "x 2");
    // Items accepted by different nodes are ordered only per accepting node: wait for b's.
    wait_until("b's item at a's subscriber", Duration::from_secs(5), || {
        sub.got.lock().unwrap().seqs == [1, 2]
    });
    publish_text(a.publish, "x", "x 3");
    publish_text(b.publish, "x", "x end");
    let (seqs, ended) = sub.finish(Duration::from_secs(5));
    assert!(ended);
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn id_chains_stay_in_order_across_accepting_nodes() {
    if !can_run("id_chains_stay_in_order_across_accepting_nodes") {
        return;
    }
    let nats = Nats::start(free_port(), &[], 0);
    let origin = origin();
    let nodes: Vec<Proxy> = (0..3)
        .map(|i| node(&origin, &format!("c{i}"), vec![nats.url()]))
        .collect();
    wait_until("every node connected", Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| metric(n, "holdfast_cluster_connected") == 1)
    });
    let mut subs: Vec<Subscriber> = (0..3)
        .map(|i| sse_subscriber(&nodes[i], i, "chain"))
        .collect();
    let chained = |n: u64, text: String| {
        let mut item = json!({
            "channel": "chain",
            "id": n.to_string(),
            "formats": {"http-stream": {"content": format!("data: {text}\n\n")}},
        });
        if n > 0 {
            item["prev-id"] = json!((n - 1).to_string());
        }
        items(vec![item])
    };
    // The chain starts where every node has seen item 0 (warm-up, not counted).
    wait_until("item 0 everywhere", Duration::from_secs(10), || {
        nodes[0].publish(&chained(0, "chain warm".into()));
        std::thread::sleep(Duration::from_millis(50));
        subs.iter().all(|s| s.warm() > 0)
    });
    // Then 1..=60, each through the next node. A node accepting item n delivers it locally at
    // once, often before item n-1 (accepted elsewhere) has come over NATS: its sequencer holds n
    // until n-1 is delivered. (With publish.message_wait_ms = 0, which releases such items at
    // once, node 0's subscriber gets them out of order: the wait is what keeps the chain.)
    const N: u64 = 60;
    let mut holder = 0;
    for n in 1..=N {
        holder = (n % 3) as usize;
        nodes[holder].publish(&chained(n, format!("chain {n}")));
    }
    nodes[(holder + 1) % 3].publish(&chained(N + 1, "chain end".into()));
    for s in &mut subs {
        let (seqs, ended) = s.finish(Duration::from_secs(10));
        eprintln!(
            "cluster: {}: id chain {} items, in chain order: {}",
            s.label,
            seqs.len(),
            seqs == (1..=N).collect::<Vec<u64>>()
        );
        assert!(ended, "{}: no end", s.label);
        assert_eq!(seqs, (1..=N).collect::<Vec<u64>>(), "{}", s.label);
    }
}

#[test]
fn a_gap_does_not_hold_up_the_chain_after_it() {
    if !can_run("a_gap_does_not_hold_up_the_chain_after_it") {
        return;
    }
    let routes: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut nats: Vec<Nats> = (0..2)
        .map(|i| Nats::start(free_port(), &routes, i))
        .collect();
    let origin = origin();
    // A publishes through member 0; B listens through member 1 and moves to member 0 when 1 dies.
    let a = node(&origin, "gap-a", vec![nats[0].url()]);
    let b = node(&origin, "gap-b", vec![nats[1].url(), nats[0].url()]);
    wait_until("both connected", Duration::from_secs(10), || {
        metric(&a, "holdfast_cluster_connected") == 1
            && metric(&b, "holdfast_cluster_connected") == 1
    });
    let mut sub = sse_subscriber(&b, 1, "g");
    let chained = |n: u64, text: String| {
        items(vec![json!({
            "channel": "g", "id": n.to_string(), "prev-id": n.saturating_sub(1).to_string(),
            "formats": {"http-stream": {"content": format!("data: {text}\n\n")}},
        })])
    };
    wait_until("item 0 at b", Duration::from_secs(10), || {
        a.publish(&items(vec![json!({
            "channel": "g", "id": "0",
            "formats": {"http-stream": {"content": "data: g warm\n\n"}},
        })]));
        std::thread::sleep(Duration::from_millis(50));
        sub.warm() > 0
    });
    // The chain runs while B loses its NATS member: B misses some items, finds the gap when
    // the next one arrives, and forgets the channel's last id, so that item and those after it
    // are delivered at once instead of waiting publish.message_wait_ms (5 s) for the missing
    // predecessor.
    const N: u64 = 150;
    let connects = metric(&b, "holdfast_cluster_connects_total");
    for n in 1..=N {
        a.publish(&chained(n, format!("g {n}")));
        if n == 50 {
            nats[1].kill();
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    a.publish(&chained(N + 1, "g end".into()));
    let published = Instant::now();
    let (seqs, ended) = sub.finish(Duration::from_secs(10));
    let took = published.elapsed();
    let lost = metric(&b, "holdfast_cluster_lost_total");
    eprintln!(
        "cluster: chain across B's NATS reconnect: {} of {N} items, {lost} reported lost, end \
         marker {took:?} after it was published",
        seqs.len()
    );
    assert!(
        metric(&b, "holdfast_cluster_connects_total") > connects,
        "B reconnected"
    );
    assert!(ended, "the end marker arrived");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert_eq!(
        N - seqs.len() as u64,
        lost,
        "what B missed is what it reports"
    );
    assert!(
        took < Duration::from_secs(3),
        "the chain after the gap was held up: {took:?}"
    );
}

/// An SSE origin keeping an event log, as django-eventstream does: `GET /events` (and its next
/// links `/events?last=N`) answers the events after N (or after `Grip-Last`'s last-id) and holds
/// the stream on channel `r` with prev-id = the last event sent.
fn event_origin(log: Arc<Mutex<Vec<u64>>>) -> Origin {
    Origin::start(move |req| {
        let after: u64 = match req.header("grip-last") {
            Some(v) => v.rsplit('=').next().and_then(|n| n.trim().parse().ok()),
            None => req.path.split("last=").nth(1).and_then(|n| n.parse().ok()),
        }
        .unwrap_or(0);
        let newer: Vec<u64> = log
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|&n| n > after)
            .collect();
        let last = newer.last().copied().unwrap_or(after);
        let body: String = newer
            .iter()
            .map(|n| format!("id: {n}\ndata: r {n}\n\n"))
            .collect();
        let channel = format!("r; prev-id={last}");
        let link = format!("</events?last={last}>; rel=next");
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Grip-Hold", "stream"),
            ("Grip-Channel", channel.as_str()),
            ("Grip-Link", link.as_str()),
        ];
        Reply::Send(response(200, "OK", &headers, body.as_bytes()))
    })
}

#[test]
fn a_prev_id_subscriber_recovers_what_its_node_missed() {
    if !can_run("a_prev_id_subscriber_recovers_what_its_node_missed") {
        return;
    }
    let routes: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut nats: Vec<Nats> = (0..2)
        .map(|i| Nats::start(free_port(), &routes, i))
        .collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let origin = event_origin(log.clone());
    let a = node(&origin, "rec-a", vec![nats[0].url()]);
    let b = node(&origin, "rec-b", vec![nats[1].url(), nats[0].url()]);
    wait_until("both connected", Duration::from_secs(10), || {
        metric(&a, "holdfast_cluster_connected") == 1
            && metric(&b, "holdfast_cluster_connected") == 1
    });
    let mut c = b.client();
    c.set_timeout(Duration::from_secs(10));
    c.send(&request("GET", "/events", &[], b""));
    assert_eq!(c.read_stream_head().status, 200);
    wait_until("b subscribed to r", Duration::from_secs(5), || {
        metric(&b, "holdfast_cluster_subjects") == 1
    });
    // The subscription travels from member 1 to member 0 over the route.
    std::thread::sleep(SETTLE);
    let reader = std::thread::spawn(move || {
        let mut ids: Vec<u64> = Vec::new();
        read_events(&mut c, |event| {
            if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id: ")) {
                ids.push(id.trim().parse().unwrap());
            }
            ids.last() == Some(&150)
        });
        ids
    });
    // Events 1..=150, each stored by the origin and then published through A with prev-id; B's
    // NATS member dies after 50. B misses some, delivers the next one (it forgot the last id when
    // it found the gap), the subscriber sees the prev-id jump and fetches its next link, and the
    // origin sends what was missed: the stream ends up complete, once each, in order.
    const N: u64 = 150;
    for n in 1..=N {
        log.lock().unwrap().push(n);
        a.publish(&items(vec![json!({
            "channel": "r", "id": n.to_string(), "prev-id": (n - 1).to_string(),
            "formats": {"http-stream": {"content": format!("id: {n}\ndata: r {n}\n\n")}},
        })]));
        if n == 50 {
            nats[1].kill();
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    let ids = reader.join().unwrap();
    let lost = metric(&b, "holdfast_cluster_lost_total");
    let fetches = origin
        .requests()
        .iter()
        .filter(|r| r.header("grip-last").is_some())
        .count();
    eprintln!(
        "cluster: prev-id subscriber on the reconnecting node: {} of {N} events, {lost} lost in \
         NATS, {fetches} recovery fetches from the origin",
        ids.len()
    );
    assert_eq!(
        ids,
        (1..=N).collect::<Vec<u64>>(),
        "complete, in order, once each"
    );
    assert!(lost > 0, "B missed items while it reconnected");
    assert!(fetches >= 1, "what B missed came from the origin");
}
