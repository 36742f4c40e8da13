//! Hostile or broken clients: oversized heads, too many headers, garbage, oversized bodies,
//! slowloris, idle keep-alive, ambiguous framing.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn proxy_with(tweak: impl FnOnce(&mut holdfast::Config)) -> (Origin, Proxy) {
    let origin = Origin::fixed(ok(b"fine"));
    let proxy = Proxy::with(&origin, tweak);
    (origin, proxy)
}

/// Sends raw bytes on a fresh connection, reads the one response, and checks that holdfast
/// then closes the connection (every answer here is an error that ends it).
fn answer_to(proxy: &Proxy, bytes: &[u8]) -> Response {
    let mut c = proxy.client();
    let r = c.send_and_read(bytes);
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.head);
    c.wait_closed(Duration::from_secs(2));
    r
}

#[test]
fn oversized_request_head_is_431() {
    let (origin, proxy) = proxy_with(|c| c.http.header_bytes_max = 1024);
    let big = "v".repeat(3000);
    let r = answer_to(&proxy, &request("GET", "/", &[("X-Big", &big)], b""));
    assert_eq!(r.status, 431);
    assert!(
        origin.requests().is_empty(),
        "the request reached the origin"
    );
}

#[test]
fn too_many_headers_is_431() {
    let (origin, proxy) = proxy_with(|c| c.http.headers_count_max = 10);
    let names: Vec<String> = (0..20).map(|i| format!("X-H{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = answer_to(&proxy, &request("GET", "/", &headers, b""));
    assert_eq!(r.status, 431);
    assert!(origin.requests().is_empty());
}

#[test]
fn garbage_request_line_is_400() {
    let (origin, proxy) = proxy_with(|_| {});
    for garbage in [
        &b"HELLO\r\n\r\n"[..],
        b"GET / HTTP/9.9\x01\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let r = answer_to(&proxy, garbage);
        assert_eq!(r.status, 400, "for {garbage:?}");
    }
    assert!(origin.requests().is_empty());
}

#[test]
fn body_over_limit_is_413() {
    let (origin, proxy) = proxy_with(|c| c.http.body_bytes_max = 1000);
    // Declared too large: refused from the head alone.
    let head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n";
    assert_eq!(answer_to(&proxy, head).status, 413);
    // Chunked, found too large while reading.
    let mut chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend(chunk(&[b'a'; 800]));
    chunked.extend(chunk(&[b'b'; 800]));
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(answer_to(&proxy, &chunked).status, 413);
    assert!(origin.requests().is_empty());
}

#[test]
fn slowloris_is_cut_off_after_header_timeout() {
    let (origin, proxy) = proxy_with(|c| c.http.header_timeout_ms = 1000);
    let mut client = proxy.client();
    let mut writer = client.wire.stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = stop.clone();
    let drip = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaa\r\n";
        for &b in head.iter().cycle().take(200) {
            if stop_writer.load(Ordering::Relaxed) || writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let start = Instant::now();
    let (_, took) = client.wait_closed(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    drip.join().unwrap();
    println!("slowloris cut off after {:?}", start.elapsed());
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    assert!(origin.requests().is_empty());
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let (_origin, proxy) = proxy_with(|c| c.http.keepalive_timeout_ms = 500);
    let mut client = proxy.client();
    assert_eq!(client.get("/").body, b"fine");
    let (rest, took) = client.wait_closed(Duration::from_secs(3));
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2000),
        "idle connection closed after {took:?}"
    );
}

#[test]
fn fresh_connection_without_request_is_closed() {
    let (_origin, proxy) = proxy_with(|c| c.http.keepalive_timeout_ms = 500);
    let mut client = proxy.client();
    let (_, took) = client.wait_closed(Duration::from_secs(3));
    assert!(took < Duration::from_millis(2000), "closed after {took:?}");
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let (origin, proxy) = proxy_with(|_| {});
    let mut raw =
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    raw.extend(chunk(b"hello"));
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = answer_to(&proxy, &raw);
    assert_eq!(r.status, 400);
    assert!(
        origin.requests().is_empty(),
        "smuggling-prone request forwarded"
    );
}

#[test]
fn conflicting_content_lengths_are_400() {
    let (origin, proxy) = proxy_with(|_| {});
    let raw = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(answer_to(&proxy, raw).status, 400);
    assert!(origin.requests().is_empty());
}

#[test]
fn bad_chunk_size_is_400() {
    let (origin, proxy) = proxy_with(|_| {});
    let raw =
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    assert_eq!(answer_to(&proxy, raw).status, 400);
    assert!(origin.requests().is_empty());
}

#[test]
fn proxy_survives_bad_clients() {
    let (_origin, proxy) = proxy_with(|c| c.http.header_bytes_max = 1024);
    for _ in 0..20 {
        let mut c = proxy.client();
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ");
        drop(c);
        let mut c = proxy.client();
        c.send(&[0xff; 2000]);
    }
    assert_eq!(proxy.client().get("/").body, b"fine");
}
