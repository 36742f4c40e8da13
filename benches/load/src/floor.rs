//! The kernel's floor under a fan-out: an "ideal proxy" that holds N Server-Sent Events
//! connections and, every interval, writes one stamped event to each of them in a tight loop.
//! It parses nothing, routes nothing and asks no origin: what `subscribe` measures against it is
//! what loopback TCP alone costs on this machine, the bound under every proxy's publish ->
//! delivery latency (holdfast's, Pushpin's).
//!
//! Each round is stamped with the time it was due, and rounds that piled up while the sender was
//! behind go out together in one send per connection, as a proxy's would.
//!
//! `--send sendmsg` makes one non-blocking `send` per connection (what holdfast's fan-out does);
//! `--send uring` queues one io_uring SEND per connection and submits them `--uring-batch` at a
//! time, so the difference between the two is what batching the sends into few submissions buys.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::util::now_ns;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SendMode {
    Sendmsg,
    Uring,
}

#[derive(Args, Debug)]
pub struct FloorArgs {
    #[arg(long, default_value = "127.0.0.1:9300")]
    pub listen: SocketAddr,
    /// Connections to wait for before publishing
    #[arg(long)]
    pub clients: usize,
    /// Rounds: one event to every connection per round
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Bytes of each event as the client receives it (`data: seq=.. ts=.. xxx\n\n`)
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    #[arg(long, value_enum, default_value = "sendmsg")]
    pub send: SendMode,
    /// SENDs per io_uring submission (--send uring)
    #[arg(long, default_value_t = 1024)]
    pub uring_batch: u32,
    /// Seconds to wait for --clients connections
    #[arg(long, default_value_t = 120)]
    pub connect_wait: u64,
    /// Seconds to keep the connections open after the last round (so that subscribers finish
    /// reading before the connections close)
    #[arg(long, default_value_t = 5)]
    pub linger: u64,
}

const HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: open\n\n";

pub fn floor_main(a: FloorArgs) -> Result<i32, String> {
    crate::util::raise_nofile();
    let listener = TcpListener::bind(a.listen).map_err(|e| format!("bind {}: {e}", a.listen))?;
    let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let conns = conns.clone();
        std::thread::spawn(move || accept_loop(listener, conns));
    }
    let deadline = Instant::now() + Duration::from_secs(a.connect_wait);
    while conns.lock().map_err(|_| "poisoned")?.len() < a.clients {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} clients connected",
                conns.lock().map_err(|_| "poisoned")?.len(),
                a.clients
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let conns = conns.lock().map_err(|_| "poisoned")?;
    let fds: Vec<RawFd> = conns.iter().map(|s| s.as_raw_fd()).collect();
    eprintln!(
        "floor: {} connections, {} rounds every {} ms",
        fds.len(),
        a.count,
        a.interval_ms
    );
    let mut uring = match a.send {
        SendMode::Uring => Some(
            io_uring::IoUring::new(a.uring_batch.next_power_of_two())
                .map_err(|e| format!("io_uring: {e}"))?,
        ),
        SendMode::Sendmsg => None,
    };
    let mut loop_us = Vec::with_capacity(a.count as usize);
    let mut failed = 0u64;
    let start = Instant::now();
    let start_ns = now_ns();
    let mut seq = 0;
    while seq < a.count {
        let due = start + Duration::from_millis(seq * a.interval_ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Every round due by now goes out in this pass, each stamped with the time it was due
        // (as a publisher would have stamped it): a sender that falls behind pays for it in
        // latency, and catches up by writing what piled up in one send per connection.
        let elapsed_ms = start.elapsed().as_millis() as u64;
        let last = (elapsed_ms / a.interval_ms.max(1)).clamp(seq, a.count - 1);
        let mut payload = Vec::new();
        for s in seq..=last {
            let due_ns = start_ns + s * a.interval_ms * 1_000_000;
            payload.extend_from_slice(&event(s, due_ns, a.size));
        }
        seq = last + 1;
        let t0 = Instant::now();
        failed += match &mut uring {
            None => send_all(&fds, &payload),
            Some(ring) => send_all_uring(ring, &fds, &payload, a.uring_batch as usize)?,
        };
        loop_us.push(t0.elapsed().as_micros() as u64);
    }
    let passes = loop_us.len();
    std::thread::sleep(Duration::from_secs(a.linger));
    loop_us.sort_unstable();
    let pick = |q: f64| loop_us[((loop_us.len() - 1) as f64 * q) as usize];
    let per_send_ns = |us: u64| us as f64 * 1000.0 / fds.len().max(1) as f64;
    println!(
        "{{\"connections\":{},\"rounds\":{},\"passes\":{},\"send\":\"{:?}\",\"failed_sends\":{},\"loop_us_p50\":{},\"loop_us_max\":{},\"ns_per_send_p50\":{:.0}}}",
        fds.len(),
        a.count,
        passes,
        a.send,
        failed,
        pick(0.5),
        pick(1.0),
        per_send_ns(pick(0.5)),
    );
    Ok(0)
}

fn accept_loop(listener: TcpListener, conns: Arc<Mutex<Vec<TcpStream>>>) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        // Read the request head, then answer; the body is close-delimited.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        let ok = loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                break true;
            }
        };
        if ok
            && s.write_all(HEAD).is_ok()
            && let Ok(mut c) = conns.lock()
        {
            c.push(s);
        }
    }
}

/// `data: seq=N ts=NANOS xxx\n\n`, `size` bytes long (or longer if the stamp needs it).
fn event(seq: u64, ts: u64, size: usize) -> Vec<u8> {
    let mut e = format!("data: seq={seq} ts={ts} ").into_bytes();
    let fill = size.saturating_sub(e.len() + 2);
    e.resize(e.len() + fill, b'x');
    e.extend_from_slice(b"\n\n");
    e
}

fn send_all(fds: &[RawFd], payload: &[u8]) -> u64 {
    let mut failed = 0;
    for &fd in fds {
        // SAFETY: payload outlives the call; send only reads it.
        let n = unsafe {
            libc::send(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n != payload.len() as isize {
            failed += 1;
        }
    }
    failed
}

fn send_all_uring(
    ring: &mut io_uring::IoUring,
    fds: &[RawFd],
    payload: &[u8],
    batch: usize,
) -> Result<u64, String> {
    use io_uring::{opcode, types};
    let mut failed = 0;
    for chunk in fds.chunks(batch) {
        for &fd in chunk {
            let sqe = opcode::Send::new(types::Fd(fd), payload.as_ptr(), payload.len() as u32)
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build();
            // SAFETY: payload outlives the completion (we wait for every one below).
            unsafe { ring.submission().push(&sqe) }.map_err(|_| "submission queue full")?;
        }
        ring.submit_and_wait(chunk.len())
            .map_err(|e| format!("io_uring submit: {e}"))?;
        for cqe in ring.completion() {
            if cqe.result() != payload.len() as i32 {
                failed += 1;
            }
        }
    }
    Ok(failed)
}
