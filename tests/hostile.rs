//! Hostile clients all at once against one holdfast process (the binary, so the memory measured is
//! holdfast's own) while well-behaved subscribers on the same host get a numbered publish
//! sequence:
//!
//! - slowloris: request heads dripped a byte at a time (cut by `http.header_timeout_ms`);
//! - thousands of sockets from one address that send nothing (past
//!   `server.connections_max_per_ip` they get 503, the rest are closed by the first-request
//!   timeout);
//! - WebSocket clients that never read while publishes flood their channel (cut as stalled
//!   slow consumers once nothing has drained for `hold.stall_timeout_ms`);
//! - oversized WebSocket frames and oversized request heads (`websocket.message_bytes_max`,
//!   `http.header_bytes_max`);
//! - fragmented WebSocket messages that never end (`websocket.fragment_timeout_ms`);
//! - ping floods (`websocket.control_frames_per_sec_max`).
//!
//! Every offender must be closed by its limit within a bounded time, every subscriber must get
//! every message in order, and holdfast's VmRSS (sampled every 50 ms) must stay within a bound
//! while the offenders run and come back near where it was once they are gone.
//!
//! Sizes: 1 000 subscribers and 2 000 idle sockets (1 500 held, 500 refused) keep the test
//! process and holdfast each under ~3 500 open files, and the whole run under ~15 s in a debug
//! build, twice in CI (io_uring and epoll drivers).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::binary::*;
use common::wsraw::*;
use common::*;
use holdfast::proto::wsoh::Event;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Well-behaved stream subscribers on channel `feed`.
const SUBSCRIBERS: usize = 1_000;
/// Numbered messages published on `feed` while the offenders run (one POST each, paced).
const MESSAGES: usize = 200;
const MESSAGE_PAUSE: Duration = Duration::from_millis(15);
/// Idle sockets opened from 127.0.0.3, and the per-IP limit that refuses the ones past it.
const IDLE: usize = 2_000;
const PER_IP_MAX: usize = 1_500;
/// How many of each other offender.
const SLOWLORIS: usize = 20;
const NEVER_READERS: usize = 3;
const OVERSIZED: usize = 10;
const FRAGMENTERS: usize = 10;
const PING_FLOODERS: usize = 10;

/// The limits configured for this run.
const HEADER_TIMEOUT_MS: u64 = 1_000;
const KEEPALIVE_TIMEOUT_MS: u64 = 2_000;
const HEADER_BYTES_MAX: usize = 8_192;
const OUTBOX_BYTES_MAX: usize = 256 * 1024;
/// A never-reader is cut this long after its socket stopped taking bytes (the default, 30 s, is
/// for real networks).
const STALL_TIMEOUT_MS: u64 = 1_000;
const MESSAGE_BYTES_MAX: usize = 64 * 1024;
const FRAGMENT_TIMEOUT_MS: u64 = 1_000;
const CONTROL_PER_SEC_MAX: u32 = 50;
/// How long holdfast waits for a client's answer to its close frame. The offenders never answer,
/// so each closed WebSocket lingers this long; well under the never-reader's 5 s read (with the
/// 5 s default the two raced, and a never-reader cut off late in the flood failed the test).
const CLOSE_TIMEOUT_MS: u64 = 1_000;

/// Flood on the never-readers' channel: items of this size, this many per POST.
const FLOOD_ITEM: usize = 32 * 1024;
const FLOOD_BATCH: usize = 16;

/// Memory budget above the RSS with only the subscribers connected, while the offenders run:
/// 1 500 held idle sockets and ~80 other offenders at 16 KiB each (connection slot, a 4 KiB
/// read buffer, allocator overhead; measured ~10 KiB per held stream) = 25 MiB; three outboxes
/// at their limit, 0.75 MiB; the flood in flight, one 0.5 MiB POST parsed and encoded for both
/// workers, ~2 MiB; the rest is slack for a debug build's allocator. Measured: 17-36 MiB. A
/// never-reader that were not cut off would hold the whole flood (~9 MiB each).
const PEAK_GROWTH_MAX_KIB: u64 = 64 * 1024;
/// Once the offenders are gone, RSS comes back near where it was (the allocator keeps some of
/// the peak: measured 3-9 MiB above).
const AFTER_GROWTH_MAX_KIB: u64 = 24 * 1024;

/// Every offender must be closed within this long of starting.
const OFFENDER_LIMIT: Duration = Duration::from_secs(8);

/// holdfast with this run's limits, in front of the origin on `origin_port`.
fn start_holdfast(origin_port: u16) -> Holdfast {
    let driver = driver_name();
    let routes = ws_routes(origin_port).replace('\n', "\\n");
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 2
pin_workers = false
driver = "{driver}"
routes = "{routes}"
connections_max_per_ip = {PER_IP_MAX}
shutdown_timeout_ms = 1000

[http]
header_timeout_ms = {HEADER_TIMEOUT_MS}
keepalive_timeout_ms = {KEEPALIVE_TIMEOUT_MS}
header_bytes_max = {HEADER_BYTES_MAX}

[hold]
outbox_bytes_max = {OUTBOX_BYTES_MAX}
stall_timeout_ms = {STALL_TIMEOUT_MS}
slow_consumer = "close"

[publish]
listen = "127.0.0.1:0"

[websocket]
message_bytes_max = {MESSAGE_BYTES_MAX}
control_frames_per_sec_max = {CONTROL_PER_SEC_MAX}
fragment_timeout_ms = {FRAGMENT_TIMEOUT_MS}
close_timeout_ms = {CLOSE_TIMEOUT_MS}
"#
    );
    Holdfast::start("hostile", &config, "info")
}

/// The origin: `/feed` is a stream hold on `feed`; WebSocket-over-HTTP on `/ws/flood` subscribes
/// to `flood` and says `ready`, on any other path it just opens; later events are echoed.
fn origin() -> Origin {
    Origin::start(|req| {
        if !req.path.starts_with("/ws") {
            return Reply::Send(stream_hold("feed", b"ready\n"));
        }
        let events = request_events(req);
        let out = if events.first() == Some(&Event::Open) {
            let mut out = vec![Event::Open];
            if req.path.starts_with("/ws/flood") {
                out.push(control(&json!({"type": "subscribe", "channel": "flood"})));
                out.push(Event::Text(prefixed(b"ready")));
            }
            out
        } else {
            echo_events(&events)
        };
        Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &out,
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Well-behaved subscribers

fn feed_message(i: usize) -> String {
    format!("n {i:04}\n")
}

/// One subscriber: opens the stream, reports once its initial body arrived (it is subscribed),
/// then returns every line after it up to and including `end`.
async fn subscriber(
    addr: SocketAddr,
    gate: Arc<tokio::sync::Semaphore>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Result<Vec<String>, String> {
    let (mut s, mut buf) = {
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /feed HTTP/1.1\r\nHost: hostile.test\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let body_start = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return Err("closed before the response head".into()),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..body_start]).into_owned();
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("subscribe answered {head:?}"));
        }
        buf.drain(..body_start);
        (s, buf)
    };
    let mut text = Vec::new();
    let mut tmp = [0u8; 8192];
    let mut lines = Vec::new();
    let mut announced = false;
    loop {
        loop {
            match take_chunk(&mut buf).map_err(|e| e.to_string())? {
                Chunk::Data(d) => text.extend_from_slice(&d),
                Chunk::Last => return Err(format!("stream ended after {} lines", lines.len())),
                Chunk::NeedMore => break,
            }
        }
        while let Some(i) = text.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = text.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if !announced {
                if line != "ready\n" {
                    return Err(format!("initial body {line:?}"));
                }
                announced = true;
                let _ = ready.send(()).await;
                continue;
            }
            let done = line == "end\n";
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
        match s.read(&mut tmp).await {
            Ok(0) => return Err(format!("closed after {} lines", lines.len())),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => return Err(format!("{e} after {} lines", lines.len())),
        }
    }
}

/// Publishes the numbered messages on `feed` (one keep-alive connection, one item per POST,
/// paced over the offenders' lifetime), then `end`.
fn publish_feed(publish: SocketAddr) {
    let mut c = Client::connect(publish);
    let messages = (0..MESSAGES).map(feed_message).chain(["end\n".to_string()]);
    for m in messages {
        let body = items(vec![stream_item("feed", &m)]).to_string();
        let r = c.send_and_read(&request("POST", "/publish/", &[], body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
        std::thread::sleep(MESSAGE_PAUSE);
    }
}

// ---------------------------------------------------------------------------------------------
// Offenders. Each returns how it was ended, or why that is wrong.

type Outcome = Result<String, String>;

/// Reads what a closed-or-closing connection has left; Ok(bytes) once the peer closed it.
fn read_until_eof(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut tmp = [0u8; 65536];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    while start.elapsed() < limit {
        match s.read(&mut tmp) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&tmp[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset also ends it.
            Err(_) => return Ok(out),
        }
    }
    Err(format!(
        "still open after {limit:?} ({} bytes read)",
        out.len()
    ))
}

/// The close code of the first close frame in `bytes`, and how many frames came up to it.
fn close_code(mut bytes: Vec<u8>) -> Result<(Option<u16>, usize), String> {
    let mut frames = 0;
    while let Some(f) = take_frame(&mut bytes)? {
        frames += 1;
        if f.opcode == OP_CLOSE {
            return Ok((f.close_code(), frames));
        }
    }
    Ok((None, frames))
}

/// A raw WebSocket on `path`, past its 101 (frames read with it stay in `wire.buf`).
fn ws_open(addr: SocketAddr, path: &str, recv_buffer: Option<usize>) -> Result<Client, String> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| e.to_string())?;
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).map_err(|e| e.to_string())?;
    }
    socket
        .connect_timeout(&addr.into(), IO_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let mut c = Client::from_stream(socket.into());
    let mut upgrade = upgrade_request("websocket", Some("13"), Some(KEY));
    let line_end = find(&upgrade, b" HTTP/1.1").ok_or("request line")?;
    upgrade.splice(4..line_end, path.bytes());
    c.send(&upgrade);
    let r = c.try_read_response().map_err(|e| e.to_string())?;
    if r.status != 101 {
        return Err(format!("handshake answered {}", r.status));
    }
    Ok(c)
}

fn slowloris(addr: SocketAddr) -> Outcome {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let head =
        b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let start = Instant::now();
    let mut tmp = [0u8; 4096];
    for &b in head.iter().cycle() {
        if start.elapsed() > OFFENDER_LIMIT {
            return Err("slowloris still connected".into());
        }
        if s.write_all(&[b]).is_err() {
            break;
        }
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(_) => {} // an error answer (408) before the close
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let took = start.elapsed();
    if took < Duration::from_millis(HEADER_TIMEOUT_MS * 8 / 10) {
        return Err(format!(
            "slowloris closed after {took:?}, before the header timeout"
        ));
    }
    Ok(format!("slowloris closed after {took:?}"))
}

/// Idle sockets from 127.0.0.3: how many were answered 503 (past the per-IP limit) and how long
/// the slowest took to be closed.
async fn idle_sockets(addr: SocketAddr) -> Result<(usize, Duration), String> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..IDLE {
        let gate = gate.clone();
        tasks.spawn(async move {
            let mut s = {
                let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind(SocketAddr::from(([127, 0, 0, 3], 0)))
                    .map_err(|e| e.to_string())?;
                socket.connect(addr).await.map_err(|e| e.to_string())?
            };
            let mut got = Vec::new();
            match timeout(OFFENDER_LIMIT, s.read_to_end(&mut got)).await {
                Ok(_) => Ok::<bool, String>(got.starts_with(b"HTTP/1.1 503")),
                Err(_) => Err("idle socket still open".to_string()),
            }
        });
    }
    let mut refused = 0;
    while let Some(r) = tasks.join_next().await {
        if r.map_err(|e| e.to_string())?? {
            refused += 1;
        }
    }
    Ok((refused, start.elapsed()))
}

/// A WebSocket on `flood` that reads `ready`, then nothing until the flood is over and holdfast
/// counted the never-readers as stalled; then it reads what is left and expects close 1008, the
/// connection closed and most of the flood missing.
fn never_reader(
    addr: SocketAddr,
    publish: SocketAddr,
    subscribed: Arc<Barrier>,
    flooded: Arc<Barrier>,
) -> Outcome {
    // A tiny receive buffer, so that the kernel absorbs little of the flood.
    let opened = ws_open(addr, "/ws/flood", Some(4096)).and_then(|mut c| {
        let f = read_frame(&mut c);
        if f.payload != b"ready" {
            return Err(format!("first message {:?}", f.payload));
        }
        Ok(c)
    });
    subscribed.wait();
    let mut c = opened?;
    flooded.wait();
    // Reading before the cut would be progress (a slow reader is kept): wait for all of them.
    let cut = wait_for_metric(
        publish,
        "holdfast_slow_consumer_cuts_total",
        &["reason=\"stalled\""],
        NEVER_READERS as u64,
        Duration::from_millis(STALL_TIMEOUT_MS * 10),
    );
    if cut.is_none() {
        return Err("the never-readers were not all cut as stalled".into());
    }
    let mut rest = std::mem::take(&mut c.wire.buf);
    rest.extend(read_until_eof(&mut c.wire.stream, Duration::from_secs(5))?);
    let (code, frames) = close_code(rest)?;
    let total = flood_items();
    if frames >= total {
        return Err(format!("the never-reader got all {frames} flood messages"));
    }
    if code != Some(1008) {
        return Err(format!(
            "the never-reader was closed with {code:?}, not 1008"
        ));
    }
    Ok(format!(
        "never-reader closed after {frames} of {total} flood messages (close code {code:?})"
    ))
}

fn tcp_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 * 1024 * 1024)
}

/// Enough to fill the kernel's send buffer twice over plus the outbox limit.
fn flood_items() -> usize {
    let bytes = 2 * tcp_send_buffer_max() + 2 * OUTBOX_BYTES_MAX;
    bytes.div_ceil(FLOOD_ITEM).div_ceil(FLOOD_BATCH) * FLOOD_BATCH
}

fn publish_flood(publish: SocketAddr) {
    let payload = "f".repeat(FLOOD_ITEM - 8);
    let mut c = Client::connect(publish);
    for batch in 0..flood_items() / FLOOD_BATCH {
        let list = (0..FLOOD_BATCH)
            .map(|i| {
                ws_item(
                    "flood",
                    &format!("{:07} {payload}", batch * FLOOD_BATCH + i),
                )
            })
            .collect();
        let body = items(list).to_string();
        let r = c.send_and_read(&request("POST", "/publish/", &[], body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Sends `frames` repeatedly (every `every`) until holdfast closes; expects close code `want`.
fn ws_offender(
    addr: SocketAddr,
    name: &str,
    first: Vec<u8>,
    then: Vec<u8>,
    every: Duration,
    want: u16,
    min_time: Duration,
) -> Outcome {
    let c = ws_open(addr, "/ws/quiet", None)?;
    let mut got = c.wire.buf;
    let mut s = c.wire.stream;
    s.set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut tmp = [0u8; 65536];
    let _ = s.write_all(&first);
    let closed = loop {
        if start.elapsed() > OFFENDER_LIMIT {
            return Err(format!("{name} still open after {OFFENDER_LIMIT:?}"));
        }
        if !then.is_empty() && s.write_all(&then).is_err() {
            break true;
        }
        match s.read(&mut tmp) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => break true,
        }
        if close_code(got.clone())?.0.is_some() {
            break false;
        }
        std::thread::sleep(every);
    };
    let took = start.elapsed();
    if !closed {
        got.extend(read_until_eof(&mut s, Duration::from_secs(3))?);
    }
    let (code, _) = close_code(got)?;
    if code != Some(want) {
        return Err(format!("{name}: close code {code:?}, expected {want}"));
    }
    if took < min_time {
        return Err(format!("{name} closed after {took:?}, before {min_time:?}"));
    }
    Ok(format!("{name} closed with {want} after {took:?}"))
}

fn oversized_frame(addr: SocketAddr) -> Outcome {
    // A frame header declaring 100 MB, then the first 4 KiB of it, then nothing.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&100_000_000u64.to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0u8; 4096]);
    ws_offender(
        addr,
        "oversized frame",
        frame,
        Vec::new(),
        Duration::from_millis(10),
        1009,
        Duration::ZERO,
    )
}

fn oversized_head(addr: SocketAddr) -> Outcome {
    let big = "v".repeat(HEADER_BYTES_MAX * 2);
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let _ = s.write_all(&request("GET", "/", &[("X-Big", &big)], b""));
    let got = read_until_eof(&mut s, OFFENDER_LIMIT)?;
    if !got.starts_with(b"HTTP/1.1 431") {
        return Err(format!(
            "oversized head answered {:?}",
            String::from_utf8_lossy(&got[..got.len().min(40)])
        ));
    }
    Ok("oversized head closed with 431".into())
}

fn endless_fragments(addr: SocketAddr) -> Outcome {
    ws_offender(
        addr,
        "endless fragmented message",
        encode_frame(false, OP_TEXT, b"never", Some([1, 2, 3, 4])),
        encode_frame(false, OP_CONT, b" ends", Some([1, 2, 3, 4])),
        Duration::from_millis(100),
        1008,
        Duration::from_millis(FRAGMENT_TIMEOUT_MS * 8 / 10),
    )
}

fn ping_flood(addr: SocketAddr) -> Outcome {
    let ping = encode_frame(true, OP_PING, b"p", Some([1, 2, 3, 4]));
    ws_offender(
        addr,
        "ping flood",
        Vec::new(),
        ping.repeat(20),
        Duration::from_millis(5),
        1008,
        Duration::ZERO,
    )
}

// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_clients_are_cut_off_while_subscribers_get_everything_in_memory_bounds() {
    let nofile = raise_nofile();
    let need = (SUBSCRIBERS + IDLE + 500) as u64;
    assert!(
        nofile >= need,
        "open-files limit {nofile} is below the {need} this test needs"
    );
    let origin = origin();
    let hf = start_holdfast(origin.port());
    let (http, publish) = (hf.http, hf.publish);
    let rss_idle = rss_kib(hf.pid());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. The well-behaved subscribers connect; RSS with them and nothing else is the reference.
    let start = Instant::now();
    let mut subscribers = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(SUBSCRIBERS);
        let mut tasks = JoinSet::new();
        for _ in 0..SUBSCRIBERS {
            tasks.spawn(subscriber(http, gate.clone(), ready_tx.clone()));
        }
        drop(ready_tx);
        for n in 0..SUBSCRIBERS {
            match timeout(Duration::from_secs(20), ready_rx.recv()).await {
                Ok(Some(())) => {}
                _ => {
                    let why = match tasks.try_join_next() {
                        Some(Ok(Err(e))) => e,
                        _ => "timed out".into(),
                    };
                    panic!("only {n} of {SUBSCRIBERS} subscribers ready: {why}");
                }
            }
        }
        tasks
    });
    println!(
        "{SUBSCRIBERS} subscribers connected in {:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib(hf.pid());

    // 2. The offenders, the flood and the numbered publishes, all at once.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(hf.pid(), stop.clone());
    let start = Instant::now();
    let mut offenders: Vec<JoinHandle<Outcome>> = Vec::new();
    let subscribed = Arc::new(Barrier::new(NEVER_READERS + 1));
    let flooded = Arc::new(Barrier::new(NEVER_READERS + 1));
    for _ in 0..NEVER_READERS {
        let (a, b) = (subscribed.clone(), flooded.clone());
        offenders.push(std::thread::spawn(move || {
            never_reader(http, publish, a, b)
        }));
    }
    let flood = std::thread::spawn(move || {
        subscribed.wait();
        publish_flood(publish);
        flooded.wait();
    });
    for _ in 0..SLOWLORIS {
        offenders.push(std::thread::spawn(move || slowloris(http)));
    }
    for _ in 0..OVERSIZED {
        offenders.push(std::thread::spawn(move || oversized_frame(http)));
        offenders.push(std::thread::spawn(move || oversized_head(http)));
    }
    for _ in 0..FRAGMENTERS {
        offenders.push(std::thread::spawn(move || endless_fragments(http)));
    }
    for _ in 0..PING_FLOODERS {
        offenders.push(std::thread::spawn(move || ping_flood(http)));
    }
    let idle = rt.spawn(idle_sockets(http));
    let feed = std::thread::spawn(move || publish_feed(publish));

    // 3. Every offender ended by its limit.
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for h in offenders {
        match h.join() {
            Ok(Ok(what)) => {
                let kind: String = what.split(" closed").next().unwrap_or(&what).into();
                *seen.entry(kind).or_default() += 1;
            }
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("an offender panicked".into()),
        }
    }
    flood.join().expect("the flood is published");
    let (refused, idle_took) = rt
        .block_on(idle)
        .expect("idle sockets task")
        .unwrap_or_else(|e| panic!("idle sockets: {e}"));
    println!("offenders ended: {seen:?}");
    println!(
        "idle sockets from 127.0.0.3: {refused} of {IDLE} refused with 503, all closed within {idle_took:?}"
    );
    assert!(failures.is_empty(), "offenders not cut off: {failures:?}");
    assert!(
        refused > 0 && refused <= IDLE - PER_IP_MAX,
        "{refused} idle sockets answered 503 (the per-IP limit is {PER_IP_MAX} of {IDLE})"
    );
    let offenders_took = start.elapsed();

    // 4. Every subscriber got every message, in order.
    feed.join().expect("the feed is published");
    let expected: Vec<String> = (0..MESSAGES)
        .map(feed_message)
        .chain(["end\n".to_string()])
        .collect();
    rt.block_on(async {
        for done in 0..SUBSCRIBERS {
            let got = match timeout(Duration::from_secs(10), subscribers.join_next()).await {
                Ok(Some(Ok(Ok(got)))) => got,
                Ok(Some(Ok(Err(e)))) => panic!("a subscriber failed: {e}"),
                Ok(Some(Err(e))) => panic!("a subscriber panicked: {e}"),
                Ok(None) => panic!("only {done} subscribers"),
                Err(_) => panic!("only {done} of {SUBSCRIBERS} subscribers got everything"),
            };
            assert!(
                got == expected,
                "a subscriber got {} lines, lost, duplicated or out of order (first {:?})",
                got.len(),
                got.first()
            );
        }
    });
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    let peak = samples.iter().copied().max().unwrap_or(0);
    // Everything hostile is gone, and so are the subscribers (each returns with `end`).
    std::thread::sleep(Duration::from_millis(1000));
    let rss_after = rss_kib(hf.pid());
    rt.shutdown_timeout(Duration::from_secs(2));
    println!(
        "holdfast VmRSS: {:.1} MiB idle, {:.1} MiB with {SUBSCRIBERS} subscribers, peak {:.1} MiB \
         during the offenders ({} samples over {offenders_took:?}), {:.1} MiB after",
        mib(rss_idle),
        mib(rss_before),
        mib(peak),
        samples.len(),
        mib(rss_after)
    );
    assert!(
        rss_before > 0 && peak > 0 && rss_after > 0,
        "VmRSS not read"
    );
    assert!(
        peak <= rss_before + PEAK_GROWTH_MAX_KIB,
        "holdfast grew {:.1} MiB while the offenders ran (budget {} MiB)",
        mib(peak - rss_before),
        PEAK_GROWTH_MAX_KIB / 1024
    );
    assert!(
        rss_after <= rss_before + AFTER_GROWTH_MAX_KIB,
        "holdfast kept {:.1} MiB after the offenders left (budget {} MiB)",
        mib(rss_after.saturating_sub(rss_before)),
        AFTER_GROWTH_MAX_KIB / 1024
    );
}
