//! A publish storm, CI-sized: 1 500 subscribers (1 000 HTTP streaming, 500 WebSocket) on 150
//! channels, 10 per channel and spread over both workers, take 3 000 items/s for 3 s, published
//! in batches of 25 over 4 keep-alive connections (each channel on one of them, so its order is
//! the publisher's). Every subscriber checks the sequence numbers of its channel: none lost,
//! reordered or duplicated.
//!
//! `benches/storm.sh` is the full-size run (10 000 subscribers, 50 000 items/s, release build,
//! the `holdfast-load` tool); this one keeps CI under a few seconds per driver.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wsraw::*;
use common::*;
use holdfast::proto::wsoh::Event;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;

const STREAMS: usize = 1_000;
const WEBSOCKETS: usize = 500;
const CHANNELS: usize = 150;
const RATE: usize = 3_000;
const SECS: usize = 3;
/// Messages per channel: seq 0..COUNT on every channel.
const COUNT: usize = RATE * SECS / CHANNELS;
const BATCH: usize = 25;
const PUBLISH_CONNS: usize = 4;
/// After the last publish, every subscriber must have everything within this long.
const DRAIN: Duration = Duration::from_secs(15);

fn channel(i: usize) -> String {
    format!("c{}", i % CHANNELS)
}

/// `/s/<ch>` holds a stream on `<ch>`; a WebSocket on `/ws/<ch>` is subscribed to `<ch>` when it
/// opens. Both say `ready` once subscribed.
fn origin() -> Origin {
    Origin::start(|req| {
        if let Some(ch) = req.path.strip_prefix("/s/") {
            return Reply::Send(stream_hold(ch, b"ready\n"));
        }
        let events = request_events(req);
        let out = match (events.first(), req.path.strip_prefix("/ws/")) {
            (Some(Event::Open), Some(ch)) => vec![
                Event::Open,
                control(&json!({"type": "subscribe", "channel": ch})),
                Event::Text(prefixed(b"ready")),
            ],
            _ => echo_events(&events),
        };
        Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &out,
        ))
    })
}

/// What one subscriber saw of its channel's sequence.
#[derive(Default, Debug)]
struct Tally {
    received: usize,
    lost: usize,
    reordered: usize,
    duplicated: usize,
}

struct Checker {
    seen: Vec<bool>,
    highest: Option<usize>,
    tally: Tally,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            seen: vec![false; COUNT],
            highest: None,
            tally: Tally::default(),
        }
    }

    /// One message (`seq=N`); Err on anything else.
    fn message(&mut self, text: &str) -> Result<(), String> {
        let seq: usize = text
            .trim_end()
            .strip_prefix("seq=")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n < COUNT)
            .ok_or_else(|| format!("unexpected message {text:?}"))?;
        self.tally.received += 1;
        if self.seen[seq] {
            self.tally.duplicated += 1;
        } else if self.highest.is_some_and(|h| seq < h) {
            self.tally.reordered += 1;
        }
        self.seen[seq] = true;
        self.highest = self.highest.max(Some(seq));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.seen.iter().all(|&s| s)
    }

    fn finish(mut self) -> Tally {
        self.tally.lost = self.seen.iter().filter(|&&s| !s).count();
        self.tally
    }
}

enum Kind {
    Stream,
    Ws,
}

/// Connects, subscribes and reports ready; then checks messages until it has every seq of its
/// channel or `deadline` passes (what is missing then is lost).
async fn subscriber(
    addr: SocketAddr,
    kind: Kind,
    ch: String,
    gate: Arc<tokio::sync::Semaphore>,
    ready: tokio::sync::mpsc::Sender<()>,
    deadline: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
) -> Result<Tally, String> {
    let (mut s, mut buf) = {
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let req = match kind {
            Kind::Stream => request("GET", &format!("/s/{ch}"), &[], b""),
            Kind::Ws => {
                let mut r = upgrade_request("websocket", Some("13"), Some(KEY));
                r.splice(4..7, format!("/ws/{ch}").bytes());
                r
            }
        };
        s.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            read_more(&mut s, &mut buf).await?;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let want = match kind {
            Kind::Stream => "HTTP/1.1 200",
            Kind::Ws => "HTTP/1.1 101",
        };
        if !head.starts_with(want) {
            return Err(format!("answered {head:?}"));
        }
        buf.drain(..end);
        (s, buf)
    };
    let mut checker = Checker::new();
    let mut text = Vec::new();
    let mut subscribed = false;
    loop {
        // Complete messages out of the buffer.
        let mut messages = Vec::new();
        match kind {
            Kind::Stream => {
                loop {
                    match take_chunk(&mut buf).map_err(|e| e.to_string())? {
                        Chunk::Data(d) => text.extend_from_slice(&d),
                        Chunk::Last => return Err("stream ended".into()),
                        Chunk::NeedMore => break,
                    }
                }
                while let Some(i) = text.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = text.drain(..=i).collect();
                    messages.push(String::from_utf8_lossy(&line).into_owned());
                }
            }
            Kind::Ws => {
                while let Some(f) = take_frame(&mut buf)? {
                    match f.opcode {
                        OP_TEXT if f.fin => {
                            messages.push(String::from_utf8_lossy(&f.payload).into_owned())
                        }
                        OP_PING | OP_PONG => {}
                        _ => return Err(format!("unexpected frame {f:?}")),
                    }
                }
            }
        }
        for m in messages {
            if !subscribed {
                if m.trim_end() != "ready" {
                    return Err(format!("first message {m:?}"));
                }
                subscribed = true;
                let _ = ready.send(()).await;
            } else {
                checker.message(&m)?;
            }
        }
        if checker.complete() {
            return Ok(checker.finish());
        }
        let until = deadline
            .lock()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60));
        match tokio::time::timeout_at(until, read_more(&mut s, &mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(checker.finish()),
        }
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut tmp = [0u8; 16384];
    match s.read(&mut tmp).await {
        Ok(0) => Err("connection closed".into()),
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn item(ch: &str, seq: usize) -> Value {
    json!({
        "channel": ch,
        "formats": {
            "http-stream": {"content": format!("seq={seq}\n")},
            "ws-message": {"content": format!("seq={seq}")},
        }
    })
}

/// Publisher `conn` of PUBLISH_CONNS: the channels i with i % PUBLISH_CONNS == conn, every one
/// seq 0..COUNT in order, BATCH items per POST, paced at its share of RATE. Returns the POSTs.
fn publisher(publish: SocketAddr, conn: usize, start: Instant) -> usize {
    let mine: Vec<String> = (conn..CHANNELS)
        .step_by(PUBLISH_CONNS)
        .map(channel)
        .collect();
    let per_sec = RATE as f64 * mine.len() as f64 / CHANNELS as f64;
    let mut c = Client::connect(publish);
    let mut batch = Vec::new();
    let (mut sent, mut posts) = (0usize, 0usize);
    for seq in 0..COUNT {
        for ch in &mine {
            batch.push(item(ch, seq));
            if batch.len() == BATCH || (seq + 1 == COUNT && ch == mine.last().unwrap()) {
                sent += batch.len();
                let body = items(std::mem::take(&mut batch)).to_string();
                let r = c.send_and_read(&request("POST", "/publish/", &[], body.as_bytes()));
                assert_eq!(r.status, 200, "{}", r.text());
                posts += 1;
                let due = start + Duration::from_secs_f64(sent as f64 / per_sec);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    posts
}

#[test]
fn publish_storm_loses_reorders_and_duplicates_nothing() {
    let origin = origin();
    let proxy = ws_proxy(origin.port(), |_| {});
    let (http, publish) = (proxy.http, proxy.publish);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deadline = Arc::new(std::sync::Mutex::new(None));
    let connect_start = Instant::now();
    let mut tasks = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(STREAMS + WEBSOCKETS);
        let mut tasks = JoinSet::new();
        for i in 0..STREAMS + WEBSOCKETS {
            let kind = if i < STREAMS { Kind::Stream } else { Kind::Ws };
            let sub = subscriber(
                http,
                kind,
                channel(i),
                gate.clone(),
                ready_tx.clone(),
                deadline.clone(),
            );
            tasks.spawn(sub);
        }
        drop(ready_tx);
        for n in 0..STREAMS + WEBSOCKETS {
            if !matches!(
                timeout(Duration::from_secs(30), ready_rx.recv()).await,
                Ok(Some(()))
            ) {
                let why = match tasks.try_join_next() {
                    Some(Ok(Err(e))) => e,
                    _ => "timed out".into(),
                };
                panic!("only {n} subscribers ready: {why}");
            }
        }
        tasks
    });
    println!(
        "{STREAMS} stream + {WEBSOCKETS} WebSocket subscribers on {CHANNELS} channels ready in {:?}",
        connect_start.elapsed()
    );

    let start = Instant::now();
    let publishers: Vec<_> = (0..PUBLISH_CONNS)
        .map(|conn| std::thread::spawn(move || publisher(publish, conn, start)))
        .collect();
    let posts: usize = publishers
        .into_iter()
        .map(|p| p.join().expect("publisher"))
        .sum();
    let publish_secs = start.elapsed().as_secs_f64();
    *deadline.lock().unwrap() = Some(tokio::time::Instant::now() + DRAIN);

    let mut total = Tally::default();
    let clients = STREAMS + WEBSOCKETS;
    rt.block_on(async {
        for _ in 0..clients {
            let t = match timeout(DRAIN + Duration::from_secs(5), tasks.join_next()).await {
                Ok(Some(Ok(Ok(t)))) => t,
                Ok(Some(Ok(Err(e)))) => panic!("a subscriber failed: {e}"),
                Ok(Some(Err(e))) => panic!("a subscriber panicked: {e}"),
                Ok(None) | Err(_) => panic!("subscribers did not finish"),
            };
            total.received += t.received;
            total.lost += t.lost;
            total.reordered += t.reordered;
            total.duplicated += t.duplicated;
        }
    });
    let items = COUNT * CHANNELS;
    println!(
        "storm: {items} items in {posts} POSTs over {publish_secs:.2} s = {:.0} items/s (asked {RATE}); \
         deliveries {} of {} expected in {:.2} s; lost {}, reordered {}, duplicated {}",
        items as f64 / publish_secs,
        total.received,
        COUNT * clients,
        start.elapsed().as_secs_f64(),
        total.lost,
        total.reordered,
        total.duplicated
    );
    assert_eq!(
        (total.lost, total.reordered, total.duplicated),
        (0, 0, 0),
        "lost, reordered, duplicated"
    );
    assert_eq!(total.received, COUNT * clients);
}

/// Not a test of holdfast: the checker counts what it should.
#[test]
fn checker_counts_losses_reorders_and_duplicates() {
    let mut c = Checker::new();
    for m in ["seq=0\n", "seq=2\n", "seq=1\n", "seq=2\n"] {
        c.message(m).unwrap();
    }
    assert!(c.message("seq=x").is_err());
    let t = c.finish();
    assert_eq!(
        (t.received, t.reordered, t.duplicated, t.lost),
        (4, 1, 1, COUNT - 3)
    );
}
