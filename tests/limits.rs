//! Connection limits: past the total or per-IP limit a new connection gets 503 and is closed,
//! while held connections are untouched.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// A client connecting from a chosen loopback source address.
fn client_from(source: [u8; 4], proxy: SocketAddr) -> Client {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&proxy.into()).unwrap();
    let stream: TcpStream = socket.into();
    let c = Client::from_stream(stream);
    c.set_timeout(Duration::from_secs(5));
    c
}

fn hold(c: &mut Client) {
    c.send(&request("GET", "/", &[], b""));
    assert_eq!(c.read_stream_head().status, 200);
    assert_eq!(c.next_text(), "start\n");
}

#[test]
fn per_ip_limit_refuses_the_extra_connection_only() {
    let origin = Origin::fixed(stream_hold("l", b"start\n"));
    let proxy = Proxy::with(&origin, |c| c.server.connections_max_per_ip = 2);
    let mut a = client_from([127, 0, 0, 1], proxy.http);
    hold(&mut a);
    let mut b = client_from([127, 0, 0, 1], proxy.http);
    hold(&mut b);
    let mut third = client_from([127, 0, 0, 1], proxy.http);
    assert_eq!(third.read_response().status, 503);
    let mut other_ip = client_from([127, 0, 0, 2], proxy.http);
    hold(&mut other_ip);
    // The held ones still get publishes.
    proxy.publish(&items(vec![stream_item("l", "still here\n")]));
    for c in [&mut a, &mut b, &mut other_ip] {
        assert_eq!(c.next_text(), "still here\n");
    }
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = client_from([127, 0, 0, 1], proxy.http);
    hold(&mut again);
}

#[test]
fn total_limit_refuses_past_the_limit() {
    let origin = Origin::fixed(stream_hold("t", b"start\n"));
    let proxy = Proxy::with(&origin, |c| c.server.connections_max = 3);
    let mut held: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = client_from([127, 0, 0, 1 + i], proxy.http);
            hold(&mut c);
            c
        })
        .collect();
    let mut extra = client_from([127, 0, 0, 9], proxy.http);
    assert_eq!(extra.read_response().status, 503);
    proxy.publish(&items(vec![stream_item("t", "ok\n")]));
    for c in &mut held {
        assert_eq!(c.next_text(), "ok\n");
    }
}

/// Issue 15: a request body has one deadline, `http.body_timeout_ms`, not only one per read. A
/// client dripping a byte every 200 ms (well inside the 10 s pause allowed between reads) gets
/// 408 at the deadline and is closed; before, it held its connection for as long as it dripped.
#[test]
fn request_body_dripped_slowly_gets_408_at_the_body_deadline() {
    let origin = Origin::fixed(ok(b"served\n"));
    let proxy = Proxy::with(&origin, |c| c.http.body_timeout_ms = 1_000);
    let mut c = proxy.client();
    c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    let start = std::time::Instant::now();
    loop {
        c.send(b"x");
        if c.has_data_within(Duration::from_millis(200)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still reading a dripped body after 5 s"
        );
    }
    let r = c.read_response();
    let elapsed = start.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    let (_, closed_after) = c.wait_closed(Duration::from_secs(2));
    assert!(closed_after < Duration::from_secs(2));
    assert!(origin.requests().is_empty(), "nothing reached the origin");
    // Counted.
    let m = publish_request(proxy.publish, "GET", "/metrics", &[], b"").text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("holdfast_request_body_timeouts_total") && l.ends_with(" 1")),
        "{m}"
    );
}
