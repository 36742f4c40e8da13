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
