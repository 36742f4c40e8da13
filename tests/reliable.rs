//! Reliable delivery on streams (GRIP `prev-id` + `Grip-Link rel=next`), with a scripted origin
//! that keeps an event log the way django-eventstream does: a stream hold names the channel with
//! the last event id as prev-id and a next link; the next link answers with the events after
//! `Grip-Last`'s last-id and fresh instructions.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// The origin's event log for channel `a`: event n has id n and content "ev n".
struct Log {
    events: Mutex<Vec<u32>>,
}

fn sse(ids: &[u32]) -> String {
    ids.iter()
        .map(|n| format!("id: {n}\ndata: ev {n}\n\n"))
        .collect()
}

/// `GET /events` (and its next links `/events?last=N`): the events after N, then a hold.
fn event_origin(log: Arc<Log>) -> Origin {
    Origin::start(move |req| {
        let events = log.events.lock().unwrap().clone();
        let after: u32 = match req.header("grip-last") {
            // "a; last-id=N"
            Some(v) => v
                .rsplit('=')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
            None => req
                .path
                .split("last=")
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        };
        let newer: Vec<u32> = events.iter().copied().filter(|&n| n > after).collect();
        let last = newer.last().copied().unwrap_or(after);
        let channel = format!("a; prev-id={last}");
        let link = format!("</events?last={last}>; rel=next");
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Grip-Hold", "stream"),
            ("Grip-Channel", channel.as_str()),
            ("Grip-Link", link.as_str()),
        ];
        Reply::Send(response(200, "OK", &headers, sse(&newer).as_bytes()))
    })
}

fn publish_event(proxy: &Proxy, n: u32) {
    let item = json!({
        "channel": "a", "id": n.to_string(), "prev-id": (n - 1).to_string(),
        "formats": {"http-stream": {"content": sse(&[n])}}
    });
    proxy.publish(&items(vec![item]));
}

/// Reads SSE event ids from the stream until `want` have arrived (or the time is up).
fn read_ids(client: &mut Client, want: usize) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut text = String::new();
    while ids.len() < want {
        let Some(chunk) = client.read_chunk() else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id: ")) {
                ids.push(id.trim().parse().unwrap());
            }
        }
    }
    ids
}

#[test]
fn a_lost_publish_is_recovered_through_the_next_link_once_and_in_order() {
    let log = Arc::new(Log {
        events: Mutex::new(Vec::new()),
    });
    let origin = event_origin(log.clone());
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    client.send(&request("GET", "/events", &[("Host", "example.com")], b""));
    let head = client.read_stream_head();
    assert_eq!(head.head.header("content-type"), Some("text/event-stream"));
    // The hold is in place once the (empty) initial body has been handled; publish 1 and 2.
    std::thread::sleep(Duration::from_millis(100));
    for n in 1..=2 {
        log.events.lock().unwrap().push(n);
        publish_event(&proxy, n);
    }
    assert_eq!(read_ids(&mut client, 2), [1, 2]);
    // Event 3 is stored by the origin but its publish is lost; 4 arrives with prev-id 3.
    log.events.lock().unwrap().extend([3, 4]);
    publish_event(&proxy, 4);
    // holdfast sees the gap, fetches the next link with Grip-Last: a; last-id=2, and gets 3, 4.
    assert_eq!(read_ids(&mut client, 2), [3, 4]);
    log.events.lock().unwrap().push(5);
    publish_event(&proxy, 5);
    assert_eq!(
        read_ids(&mut client, 1),
        [5],
        "delivery resumes after the recovery"
    );
    let fetches: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.header("grip-last").is_some())
        .collect();
    assert_eq!(fetches.len(), 1, "one recovery fetch");
    assert_eq!(fetches[0].header("grip-last"), Some("a; last-id=2"));
    assert_eq!(
        fetches[0].path, "/events?last=0",
        "the next link from the first answer"
    );
}

#[test]
fn a_hint_refetches_the_next_link() {
    let log = Arc::new(Log {
        events: Mutex::new(vec![]),
    });
    let origin = event_origin(log.clone());
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    client.send(&request("GET", "/events", &[("Host", "example.com")], b""));
    client.read_stream_head();
    std::thread::sleep(Duration::from_millis(100));
    log.events.lock().unwrap().extend([1, 2]);
    let hint = json!({"channel": "a", "formats": {"http-stream": {"action": "hint"}}});
    proxy.publish(&items(vec![hint]));
    assert_eq!(
        read_ids(&mut client, 2),
        [1, 2],
        "the hint fetched what the origin has"
    );
}

#[test]
fn paging_without_a_hold_streams_each_page_then_ends() {
    let origin = Origin::start(|req| {
        let page: u32 = req
            .path
            .split("page=")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let body = format!("page {page}\n");
        if page < 3 {
            let link = format!("</list?page={}>; rel=next", page + 1);
            let headers = [("Content-Type", "text/plain"), ("Grip-Link", link.as_str())];
            Reply::Send(response(200, "OK", &headers, body.as_bytes()))
        } else {
            Reply::Send(ok(body.as_bytes()))
        }
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    client.send(&request("GET", "/list", &[("Host", "example.com")], b""));
    client.read_stream_head();
    let mut all = String::new();
    while let Some(chunk) = client.read_chunk() {
        all.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(all, "page 1\npage 2\npage 3\n");
}

/// A long-poll origin: the first request is held on `lp` (prev-id 5); a request carrying
/// `Grip-Last` (or any later request) gets an immediate answer naming what it saw.
fn long_poll_origin() -> Origin {
    let calls = Arc::new(Mutex::new(0u32));
    Origin::start(move |req| {
        let mut n = calls.lock().unwrap();
        *n += 1;
        if *n == 1 {
            let headers = [
                ("Content-Type", "text/plain"),
                ("Grip-Hold", "response"),
                ("Grip-Channel", "lp; prev-id=5"),
            ];
            return Reply::Send(response(200, "OK", &headers, b"timeout\n"));
        }
        let last = req.header("grip-last").unwrap_or("none").to_string();
        Reply::Send(ok(format!("fresh, grip-last: {last}\n").as_bytes()))
    })
}

#[test]
fn a_long_poll_conflict_sends_the_request_again_with_grip_last() {
    let origin = long_poll_origin();
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    client.send(&request(
        "POST",
        "/poll",
        &[("Host", "example.com")],
        b"payload",
    ));
    origin.wait_for(1);
    std::thread::sleep(Duration::from_millis(100));
    // An item whose prev-id (7) does not follow the hold's (5): the origin is asked again.
    let item = json!({"channel": "lp", "id": "8", "prev-id": "7",
        "formats": {"http-response": {"body": "not this\n"}}});
    proxy.publish(&items(vec![item]));
    let resp = client.read_response();
    assert_eq!(resp.text(), "fresh, grip-last: lp; last-id=5\n");
    let again = &origin.wait_for(2)[1];
    assert_eq!(again.method, "POST");
    assert_eq!(
        again.body, b"payload",
        "the original request, body included"
    );
}

#[test]
fn a_long_poll_hint_sends_the_request_again() {
    let origin = long_poll_origin();
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    client.send(&request("GET", "/poll", &[("Host", "example.com")], b""));
    origin.wait_for(1);
    std::thread::sleep(Duration::from_millis(100));
    let hint = json!({"channel": "lp", "formats": {"http-response": {"action": "hint"}}});
    proxy.publish(&items(vec![hint]));
    let resp = client.read_response();
    assert!(resp.text().starts_with("fresh"), "{}", resp.text());
    assert_eq!(origin.requests().len(), 2);
}

fn seq_item(id: u32, prev: Option<u32>) -> serde_json::Value {
    let mut item = json!({"channel": "s", "id": id.to_string(),
        "formats": {"http-stream": {"content": format!("{id}\n")}}});
    if let Some(p) = prev {
        item["prev-id"] = json!(p.to_string());
    }
    item
}

#[test]
fn publishes_are_sequenced_by_prev_id_and_deduplicated() {
    let origin = Origin::fixed(stream_hold("s", b"start\n"));
    let proxy = Proxy::with(&origin, |c| c.publish.message_wait_ms = 300);
    let mut client = proxy.subscribe("/", b"start\n");
    client.set_timeout(Duration::from_secs(5));
    proxy.publish(&items(vec![seq_item(1, None)]));
    // 3 arrives before 2: it waits for 2, then both go in order.
    proxy.publish(&items(vec![seq_item(3, Some(2))]));
    proxy.publish(&items(vec![seq_item(2, Some(1))]));
    // A duplicate of 2 is dropped.
    proxy.publish(&items(vec![seq_item(2, Some(1))]));
    // 5 follows a 4 that never comes: it goes after the wait (300 ms here).
    proxy.publish(&items(vec![seq_item(5, Some(4))]));
    let mut got = Vec::new();
    while got.len() < 4 {
        let chunk = client.read_chunk().expect("a chunk");
        got.extend(String::from_utf8_lossy(&chunk).lines().map(String::from));
    }
    assert_eq!(got, ["1", "2", "3", "5"]);
    assert!(
        !client.has_data_within(Duration::from_millis(500)),
        "nothing more (the duplicate was dropped)"
    );
}

#[test]
fn the_gone_link_is_posted_when_a_stream_client_leaves() {
    let origin = Origin::start(|req| {
        if req.method == "POST" {
            return Reply::Send(ok(b""));
        }
        let headers = [
            ("Content-Type", "text/plain"),
            ("Grip-Hold", "stream"),
            ("Grip-Channel", "g"),
            ("Grip-Link", "</left?who=me>; rel=gone"),
        ];
        Reply::Send(response(200, "OK", &headers, b"start\n"))
    });
    let proxy = Proxy::to(&origin);
    let client = proxy.subscribe("/watch", b"start\n");
    drop(client);
    let requests = origin.wait_for(2);
    let gone = &requests[1];
    assert_eq!(gone.method, "POST");
    assert_eq!(gone.path, "/left?who=me");
}

#[test]
fn items_dropped_for_a_slow_reader_come_back_through_the_next_link() {
    let log = Arc::new(Log {
        events: Mutex::new(Vec::new()),
    });
    let origin = event_origin(log.clone());
    let proxy = Proxy::with(&origin, |c| {
        c.hold.slow_consumer = holdfast::config::SlowConsumerPolicy::DropMessages;
        c.hold.outbox_bytes_max = 16 * 1024;
        c.hold.stall_timeout_ms = 0;
        c.server.socket_send_buffer_bytes = 4096;
    });
    // A reader with a small receive buffer that does not read while the items are published.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&proxy.http.into()).unwrap();
    let mut client = Client::from_stream(socket.into());
    client.set_timeout(Duration::from_secs(10));
    client.send(&request("GET", "/events", &[("Host", "example.com")], b""));
    client.read_stream_head();
    std::thread::sleep(Duration::from_millis(100));
    let padding = "x".repeat(4096);
    const N: u32 = 100;
    for n in 1..=N {
        log.events.lock().unwrap().push(n);
        let item = json!({
            "channel": "a", "id": n.to_string(), "prev-id": (n - 1).to_string(),
            "formats": {"http-stream": {"content": format!("id: {n}\ndata: {padding}\n\n")}}
        });
        proxy.publish(&items(vec![item]));
    }
    let ids = read_ids(&mut client, N as usize);
    assert_eq!(
        ids,
        (1..=N).collect::<Vec<_>>(),
        "every item, once, in order"
    );
    let m = publish_request(proxy.publish, "GET", "/metrics", &[], b"").text();
    let dropped: u64 = m
        .lines()
        .filter(|l| l.starts_with("holdfast_slow_consumer_dropped_messages_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        dropped > 0,
        "the reader was slow enough to have items dropped"
    );
    let fetches = origin
        .requests()
        .into_iter()
        .filter(|r| r.header("grip-last").is_some())
        .count();
    assert!(
        fetches >= 1,
        "the dropped items were fetched from the origin"
    );
}
