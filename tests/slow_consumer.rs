//! The slow-consumer policy against the binary (so the memory measured is holdfast's own): a flood
//! much larger than the per-connection soft limit, with the slowest honest readers we can build
//! (they read all the time, but slower than the flood) next to subscribers that never read.
//!
//! - `stalled_never_readers_are_cut_and_slow_readers_get_everything`: every honest reader, over
//!   WebSocket and SSE, gets every message in order and is never cut; every never-reader is cut
//!   as stalled (WebSocket: close 1008 after whole frames; SSE: the connection ends) within the
//!   stall timeout plus slack, and none before it; each cut is logged once.
//! - `over_the_worker_budget_the_stalest_go_first`: one worker with a budget that holds the honest
//!   readers' backlog but not the never-readers' too, and a stall timeout too long to matter: the
//!   budget cuts never-readers (no progress since the flood began) until the rest fit, and no
//!   honest reader. Measured: the outboxes peak at ~48 MiB (the budget) and VmRSS grows ~53 MiB;
//!   with no budget they reach ~104 MiB and VmRSS grows ~76 MiB.
//!
//! In both, the outboxes stay within the budget and holdfast's VmRSS within it plus what is not in
//! an outbox. Before the policy knew about progress, both fail: the honest readers are cut with
//! 1008 at the soft limit, a few thousand messages in.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::binary::*;
use common::wsraw::*;
use common::*;
use holdfast::proto::wsoh::Event;
use serde_json::{Value, json};

/// Messages in the flood, and the size of each (WebSocket payload; the SSE event is as long).
const MESSAGES: usize = 20_000;
const MESSAGE_BYTES: usize = 1024;
/// Items per publish request (~0.5 MB bodies, under the 1 MB default).
const PER_POST: usize = 250;
/// The soft limit: the flood is 20x it.
const SOFT_BYTES: usize = 1024 * 1024;
/// How fast an honest reader reads: the flood is published several times faster.
const READ_BYTES_PER_SEC: usize = 3 * 1024 * 1024;
/// The honest readers' receive buffer: small, so their backlog waits in holdfast's outbox.
const READER_RCVBUF: usize = 64 * 1024;
/// Holdfast's send buffer per client socket (`server.socket_send_buffer_bytes`).
const SERVER_SNDBUF: usize = 64 * 1024;
/// The never-readers' receive buffer.
const NEVER_RCVBUF: usize = 4096;
const CLOSE_TIMEOUT_MS: u64 = 500;
/// What holdfast's VmRSS may grow by beyond the outboxes' budget: publish bodies being parsed,
/// the items' three encodings while they wait in the inbox (not the outboxes' to bound), the
/// outboxes' ring buffers (32 bytes a queued message, not counted in the budget) and pages the
/// allocator keeps after a cut. Measured 13-18 MiB.
const OVERHEAD_KIB: u64 = 24 * 1024;

/// One scenario at a time: each runs a holdfast with readers that pace themselves, and two at
/// once on two cores would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// Which never-readers a scenario cuts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// All, as stalled.
    AllStalled,
    /// The stalest, for the worker's budget, until the rest fit.
    SomeForBudget,
}

struct Scenario {
    name: &'static str,
    expect: Expect,
    workers: usize,
    hard_bytes: usize,
    worker_bytes: usize,
    stall_timeout_ms: u64,
    /// Honest readers and never-readers, of each kind (WebSocket and SSE).
    honest: usize,
    never: usize,
}

impl Scenario {
    fn config(&self, origin_port: u16) -> String {
        let routes = ws_routes(origin_port).replace('\n', "\\n");
        format!(
            r#"[server]
listen = ["127.0.0.1:0"]
workers = {workers}
pin_workers = false
driver = "{driver}"
routes = "{routes}"
shutdown_timeout_ms = 1000
socket_send_buffer_bytes = {SERVER_SNDBUF}

[hold]
outbox_bytes_max = {SOFT_BYTES}
outbox_hard_bytes_max = {hard}
outbox_bytes_max_per_worker = {budget}
stall_timeout_ms = {stall}
slow_consumer = "close"

[publish]
listen = "127.0.0.1:0"

[websocket]
close_timeout_ms = {CLOSE_TIMEOUT_MS}

[log]
lines_per_second = 1000
"#,
            workers = self.workers,
            driver = driver_name(),
            hard = self.hard_bytes,
            budget = self.worker_bytes,
            stall = self.stall_timeout_ms,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The origin and the flood

/// WebSocket-over-HTTP on `/ws` subscribes to `flood` and says `ready`; `/sse` is an SSE stream
/// hold on `flood` whose initial body is a `ready` comment.
fn origin() -> Origin {
    Origin::start(|req| {
        if req.path.starts_with("/sse") {
            let headers = [
                ("Content-Type", "text/event-stream"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", "flood"),
            ];
            return Reply::Send(response(200, "OK", &headers, b":ready\n\n"));
        }
        let events = request_events(req);
        let out = if events.first() == Some(&Event::Open) {
            vec![
                Event::Open,
                control(&json!({"type": "subscribe", "channel": "flood"})),
                Event::Text(prefixed(b"ready")),
            ]
        } else {
            Vec::new()
        };
        Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &out,
        ))
    })
}

/// Message `i`: its number, then padding to MESSAGE_BYTES.
fn message(i: usize) -> String {
    let mut m = format!("{i:06} ");
    m.push_str(&"m".repeat(MESSAGE_BYTES - m.len()));
    m
}

fn item(i: usize) -> Value {
    let m = message(i);
    json!({"channel": "flood", "formats": {
        "ws-message": {"content": m},
        "http-stream": {"content": format!("data: {m}\n\n")},
    }})
}

/// Publishes the flood as fast as holdfast takes it; returns how long that took.
fn publish_flood(publish: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut c = Client::connect(publish);
    for first in (0..MESSAGES).step_by(PER_POST) {
        let list = (first..MESSAGES.min(first + PER_POST)).map(item).collect();
        let body = items(list).to_string();
        let r = c.send_and_read(&request("POST", "/publish/", &[], body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ws,
    Sse,
}

/// A connected subscriber past its `ready`: the socket, and bytes already read after it.
struct Sub {
    kind: Kind,
    stream: TcpStream,
    buf: Vec<u8>,
}

fn socket_with_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
    socket
        .connect_timeout(&addr.into(), IO_TIMEOUT)
        .expect("connect");
    socket.into()
}

fn subscribe(addr: SocketAddr, kind: Kind, rcvbuf: usize) -> Sub {
    let mut c = Client::from_stream(socket_with_rcvbuf(addr, rcvbuf));
    match kind {
        Kind::Ws => {
            c.send(&upgrade_request("websocket", Some("13"), Some(KEY)));
            assert_eq!(c.read_response().status, 101);
            assert_eq!(read_frame(&mut c).payload, b"ready");
        }
        Kind::Sse => {
            c.send(&request("GET", "/sse", &[], b""));
            let head = c.read_stream_head();
            assert_eq!(head.status, 200);
            assert_eq!(c.read_chunk().as_deref(), Some(&b":ready\n\n"[..]));
        }
    }
    Sub {
        kind,
        buf: std::mem::take(&mut c.wire.buf),
        stream: c.wire.stream,
    }
}

/// What a subscriber's bytes decode to so far.
#[derive(Default, Debug)]
struct Decoded {
    /// Messages, checked to be 0, 1, 2, ... in order.
    messages: usize,
    /// A WebSocket close frame: its code and reason.
    close: Option<(Option<u16>, String)>,
    /// The SSE stream's terminating chunk.
    last_chunk: bool,
    /// The connection ended (EOF or reset) when read at last.
    ended: bool,
}

/// Decoding state: WebSocket frames, or HTTP chunks carrying SSE events.
#[derive(Default)]
struct Decoder {
    text: Vec<u8>,
    got: Decoded,
}

impl Decoder {
    /// Takes what is whole off the front of `buf`.
    fn feed(&mut self, kind: Kind, buf: &mut Vec<u8>) -> Result<(), String> {
        match kind {
            Kind::Ws => {
                while let Some(f) = take_frame(buf)? {
                    match f.opcode {
                        OP_TEXT => self.message(&f.payload)?,
                        OP_CLOSE => {
                            let reason = String::from_utf8_lossy(f.payload.get(2..).unwrap_or(&[]));
                            self.got.close = Some((f.close_code(), reason.into_owned()));
                        }
                        op => return Err(format!("unexpected opcode {op}")),
                    }
                }
            }
            Kind::Sse => {
                loop {
                    match take_chunk(buf).map_err(|e| e.to_string())? {
                        Chunk::Data(d) => self.text.extend_from_slice(&d),
                        Chunk::Last => self.got.last_chunk = true,
                        Chunk::NeedMore => break,
                    }
                }
                while let Some(end) = find(&self.text, b"\n\n") {
                    let event: Vec<u8> = self.text.drain(..end + 2).collect();
                    let data = event
                        .strip_prefix(b"data: ")
                        .and_then(|e| e.strip_suffix(b"\n\n"))
                        .ok_or_else(|| format!("not an SSE data event: {:?}", &event[..20]))?;
                    self.message(data)?;
                }
            }
        }
        Ok(())
    }

    fn message(&mut self, payload: &[u8]) -> Result<(), String> {
        let want = message(self.got.messages);
        if payload != want.as_bytes() {
            let head = String::from_utf8_lossy(&payload[..payload.len().min(8)]).into_owned();
            return Err(format!(
                "message {} is {head:?}...: lost, duplicated or out of order",
                self.got.messages
            ));
        }
        self.got.messages += 1;
        Ok(())
    }
}

/// An honest reader: reads all the time, paced to READ_BYTES_PER_SEC, until it has every message
/// (counting them in `progress` as they come). Fails on a close, an end, or a message out of order.
fn honest_reader(mut sub: Sub, progress: Arc<AtomicUsize>) -> Result<Duration, String> {
    let start = Instant::now();
    let mut d = Decoder::default();
    let mut tmp = vec![0u8; 16 * 1024];
    let mut read = 0usize;
    sub.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    loop {
        d.feed(sub.kind, &mut sub.buf)?;
        progress.store(d.got.messages, Ordering::Relaxed);
        if d.got.close.is_some() || d.got.last_chunk {
            return Err(format!(
                "{:?} reader cut after {} messages: {:?}",
                sub.kind, d.got.messages, d.got.close
            ));
        }
        if d.got.messages == MESSAGES {
            return Ok(start.elapsed());
        }
        // Pace: never ahead of READ_BYTES_PER_SEC since the start.
        let due = Duration::from_secs_f64(read as f64 / READ_BYTES_PER_SEC as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match sub.stream.read(&mut tmp) {
            Ok(0) => {
                return Err(format!(
                    "{:?} reader: connection closed after {} messages",
                    sub.kind, d.got.messages
                ));
            }
            Ok(n) => {
                read += n;
                sub.buf.extend_from_slice(&tmp[..n]);
            }
            Err(e) => {
                return Err(format!(
                    "{:?} reader: {e} after {} messages",
                    sub.kind, d.got.messages
                ));
            }
        }
    }
}

/// A never-reader, read at last: everything up to the end of the connection, or what came in
/// `limit` if it stays open.
fn read_at_last(mut sub: Sub, limit: Duration) -> Result<Decoded, String> {
    let start = Instant::now();
    let mut d = Decoder::default();
    let mut tmp = vec![0u8; 64 * 1024];
    sub.stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    while start.elapsed() < limit {
        d.feed(sub.kind, &mut sub.buf)?;
        match sub.stream.read(&mut tmp) {
            Ok(0) => {
                d.got.ended = true;
                break;
            }
            Ok(n) => sub.buf.extend_from_slice(&tmp[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => {
                d.got.ended = true;
                break;
            }
        }
    }
    d.feed(sub.kind, &mut sub.buf)?;
    Ok(d.got)
}

// ---------------------------------------------------------------------------------------------
// Watching holdfast

/// Cuts by reason, as /metrics counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cuts {
    stalled: u64,
    hard_cap: u64,
    worker_budget: u64,
}

impl Cuts {
    fn read(text: &str) -> Cuts {
        let n = |r: &str| {
            let label = format!("reason=\"{r}\"");
            metric_sum(text, "holdfast_slow_consumer_cuts_total", &[&label])
        };
        Cuts {
            stalled: n("stalled"),
            hard_cap: n("hard_cap"),
            worker_budget: n("worker_budget"),
        }
    }

    fn total(&self) -> u64 {
        self.stalled + self.hard_cap + self.worker_budget
    }
}

/// What a watcher saw while the flood ran: when the cuts happened (since the flood began) and
/// the most the outboxes held.
#[derive(Debug, Default)]
struct Watched {
    cut_at: Vec<Duration>,
    outbox_peak_bytes: u64,
}

/// Polls /metrics every 20 ms from `t0` until stopped.
fn watcher(publish: SocketAddr, t0: Instant, stop: Arc<AtomicBool>) -> JoinHandle<Watched> {
    std::thread::spawn(move || {
        let mut w = Watched::default();
        while !stop.load(Ordering::Relaxed) {
            // Quietly ends if holdfast is gone (a failed test drops it first).
            let Ok(text) = try_metrics(publish) else {
                return w;
            };
            let cuts = Cuts::read(&text).total() as usize;
            while w.cut_at.len() < cuts {
                w.cut_at.push(t0.elapsed());
            }
            let outbox = metric_sum(&text, "holdfast_outbox_bytes", &[]);
            w.outbox_peak_bytes = w.outbox_peak_bytes.max(outbox);
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    })
}

/// Waits until /metrics counts `want` cuts.
fn wait_for_cuts(hf: &Holdfast, s: &Scenario, want: u64) {
    let limit = Duration::from_millis(s.stall_timeout_ms.min(10_000) + 10_000);
    let cut = wait_for_metric(
        hf.publish,
        "holdfast_slow_consumer_cuts_total",
        &[],
        want,
        limit,
    );
    assert!(
        cut.is_some(),
        "{}: fewer than {want} never-readers cut within {limit:?}: {:?}",
        s.name,
        Cuts::read(&hf.metrics())
    );
}

type NeverRead = JoinHandle<Result<(Kind, Decoded), String>>;

/// Reads every never-reader at last, each in its own thread.
fn read_in_parallel(never: Vec<Sub>) -> Vec<NeverRead> {
    // Long enough for a cut WebSocket's close handshake to time out twice.
    let limit = Duration::from_millis(4 * CLOSE_TIMEOUT_MS + 2_000);
    never
        .into_iter()
        .map(|sub| {
            std::thread::spawn(move || {
                let kind = sub.kind;
                read_at_last(sub, limit)
                    .map(|d| (kind, d))
                    .map_err(|e| format!("{kind:?}: {e}"))
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A run

struct Outcome {
    /// Each never-reader's decoded bytes, by kind.
    never: Vec<(Kind, Decoded)>,
    cuts: Cuts,
    watched: Watched,
    /// Log lines of cuts.
    cut_lines: Vec<String>,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    flood_took: Duration,
    /// The least any honest reader was behind when the flood had been published.
    min_lag_messages: usize,
    slowest_reader: Duration,
}

fn run(s: &Scenario) -> Outcome {
    let origin = origin();
    let hf = Holdfast::start(s.name, &s.config(origin.port()), "info");
    let kinds = [Kind::Ws, Kind::Sse];
    let never: Vec<Sub> = kinds
        .iter()
        .flat_map(|&k| (0..s.never).map(move |_| k))
        .map(|k| subscribe(hf.http, k, NEVER_RCVBUF))
        .collect();
    let honest = s.honest * kinds.len();
    let ready = Arc::new(Barrier::new(honest + 1));
    let mut readers = Vec::new();
    for &k in &kinds {
        for _ in 0..s.honest {
            let (ready, progress) = (ready.clone(), Arc::new(AtomicUsize::new(0)));
            let http = hf.http;
            let p = progress.clone();
            let h = std::thread::spawn(move || {
                let sub = subscribe(http, k, READER_RCVBUF);
                ready.wait();
                honest_reader(sub, p)
            });
            readers.push((progress, h));
        }
    }
    ready.wait();
    std::thread::sleep(Duration::from_millis(300));
    let rss_before_kib = rss_kib(hf.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(hf.pid(), stop.clone());
    let t0 = Instant::now();
    let watch = watcher(hf.publish, t0, stop.clone());
    let flood_took = publish_flood(hf.publish);
    let min_lag_messages = readers
        .iter()
        .map(|(p, _)| MESSAGES - p.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);

    // The never-readers are read only once the cuts are in (reading is progress). Stalls cut
    // them all while the honest readers still read: they are read at once, in parallel, so a
    // WebSocket's close frame goes out before its close handshake times out. The budget cuts as
    // many as it needs while the flood lasts: they are read once the honest readers are done.
    let (want, early) = match s.expect {
        Expect::AllStalled => ((s.never * kinds.len()) as u64, true),
        Expect::SomeForBudget => (1, false),
    };
    let mut never = Some(never);
    let mut never_readers = None;
    if early {
        wait_for_cuts(&hf, s, want);
        never_readers = never.take().map(read_in_parallel);
    }
    let mut slowest_reader = Duration::ZERO;
    for (_, h) in readers {
        match h.join() {
            Ok(Ok(took)) => slowest_reader = slowest_reader.max(took),
            Ok(Err(e)) => panic!("{}: an honest reader failed: {e}", s.name),
            Err(_) => panic!("{}: an honest reader panicked", s.name),
        }
    }
    if !early {
        wait_for_cuts(&hf, s, want);
        never_readers = never.take().map(read_in_parallel);
    }
    let never: Vec<(Kind, Decoded)> = never_readers
        .unwrap_or_default()
        .into_iter()
        .map(|h| match h.join() {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => panic!("{}: a never-reader: {e}", s.name),
            Err(_) => panic!("{}: a never-reader panicked", s.name),
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    let rss_peak_kib = sampler
        .join()
        .expect("sampler")
        .into_iter()
        .max()
        .unwrap_or(0);
    let watched = watch.join().expect("watcher");
    let cuts = Cuts::read(&hf.metrics());
    let cut_lines = hf
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("slow consumer cut"))
        .collect();
    Outcome {
        never,
        cuts,
        watched,
        cut_lines,
        rss_before_kib,
        rss_peak_kib,
        flood_took,
        min_lag_messages,
        slowest_reader,
    }
}

/// Checks what every scenario shares, and prints the numbers.
fn check_common(s: &Scenario, o: &Outcome) {
    let honest = s.honest * 2;
    println!(
        "{}: {honest} honest readers got all {MESSAGES} x {MESSAGE_BYTES} B in order (slowest {:?}; \
         flood published in {:?}, readers then at least {} messages = {:.1} MiB behind); \
         cuts {:?} at {:?} after the flood began; outboxes peaked at {:.1} MiB; \
         VmRSS {:.1} MiB before, peak {:.1} MiB",
        s.name,
        o.slowest_reader,
        o.flood_took,
        o.min_lag_messages,
        (o.min_lag_messages * MESSAGE_BYTES) as f64 / 1048576.0,
        o.cuts,
        o.watched.cut_at,
        o.watched.outbox_peak_bytes as f64 / 1048576.0,
        mib(o.rss_before_kib),
        mib(o.rss_peak_kib),
    );
    for l in &o.cut_lines {
        println!("  {l}");
    }
    // The readers must really have been far behind, or this tests nothing.
    assert!(
        o.min_lag_messages * MESSAGE_BYTES > 2 * SOFT_BYTES,
        "the honest readers were only {} messages behind: slow them down",
        o.min_lag_messages
    );
    let ended = o.never.iter().filter(|(_, d)| d.ended).count() as u64;
    assert_eq!(
        ended,
        o.cuts.total(),
        "every cut never-reader, and only they, ended (the honest readers were not cut)"
    );
    for (kind, d) in o.never.iter().filter(|(_, d)| d.ended) {
        assert!(
            d.messages < MESSAGES,
            "a {kind:?} never-reader got all {MESSAGES} messages: never cut"
        );
        // Whole frames up to the close (the one being written was finished first; the decoder
        // fails on anything else). Read at once after its cut, a WebSocket gets its close frame;
        // read later, its connection may have ended with the close still unsent.
        let closed = Some((Some(1008), "slow consumer".to_string()));
        match kind {
            Kind::Ws if s.expect == Expect::AllStalled => assert_eq!(
                d.close, closed,
                "a WebSocket never-reader after {} messages",
                d.messages
            ),
            Kind::Ws => assert!(
                d.close.is_none() || d.close == closed,
                "a WebSocket never-reader closed with {:?}",
                d.close
            ),
            Kind::Sse => assert!(!d.last_chunk, "a cut stream ends without its last chunk"),
        }
    }
    // Memory: the outboxes together within the workers' budgets, and holdfast within that plus
    // what is not in an outbox.
    let budget = (s.workers * s.worker_bytes) as u64;
    assert!(
        o.watched.outbox_peak_bytes <= budget,
        "the outboxes held {} bytes, past the {budget} byte budget",
        o.watched.outbox_peak_bytes
    );
    let growth = o.rss_peak_kib.saturating_sub(o.rss_before_kib);
    assert!(
        growth <= (budget >> 10) + OVERHEAD_KIB,
        "holdfast grew {:.1} MiB, past its {} MiB budget + {} MiB",
        mib(growth),
        budget >> 20,
        OVERHEAD_KIB >> 10
    );
    assert_eq!(
        o.cut_lines.len() as u64,
        o.cuts.total(),
        "one log line per cut: {:#?}",
        o.cut_lines
    );
}

#[test]
fn stalled_never_readers_are_cut_and_slow_readers_get_everything() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scenario {
        name: "slow-stalled",
        expect: Expect::AllStalled,
        workers: 2,
        hard_bytes: 64 * 1024 * 1024,
        // Holds everything even if most connections land on one worker: here only stalls cut.
        worker_bytes: 512 * 1024 * 1024,
        stall_timeout_ms: 2_000,
        honest: 4,
        never: 4,
    };
    let o = run(&s);
    check_common(&s, &o);
    let never = (s.never * 2) as u64;
    assert_eq!(
        o.cuts,
        Cuts {
            stalled: never,
            ..Cuts::default()
        },
        "only the never-readers are cut, all as stalled"
    );
    let stall = Duration::from_millis(s.stall_timeout_ms);
    let first = o.watched.cut_at.first().copied().unwrap_or_default();
    let last = o.watched.cut_at.last().copied().unwrap_or_default();
    assert!(
        first >= stall,
        "a never-reader was cut {first:?} after the flood began, before the stall timeout"
    );
    assert!(
        last <= stall + Duration::from_secs(3),
        "the last never-reader was cut {last:?} after the flood began"
    );
    for l in &o.cut_lines {
        assert!(l.contains("slow consumer cut (stalled)"), "{l}");
    }
}

#[test]
fn over_the_worker_budget_the_stalest_go_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scenario {
        name: "slow-budget",
        expect: Expect::SomeForBudget,
        workers: 1,
        hard_bytes: 32 * 1024 * 1024,
        worker_bytes: 48 * 1024 * 1024,
        stall_timeout_ms: 600_000,
        honest: 1,
        never: 2,
    };
    let o = run(&s);
    check_common(&s, &o);
    assert!(
        o.cuts.worker_budget > 0 && o.cuts.total() == o.cuts.worker_budget,
        "the budget, and nothing else, cut never-readers: {:?}",
        o.cuts
    );
}
