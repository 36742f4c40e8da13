//! GRIP holds: long-poll answered by a publish or by its timeout, streams (plain and SSE),
//! keep-alive data, the JSON instruct form, Grip-Status, and clients leaving while held.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// An origin whose every answer is a long-poll hold on `lp` with extra headers.
fn long_poll_origin(extra: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::start(move |_| {
        let mut headers = vec![
            ("Content-Type", "text/plain"),
            ("X-Orig", "a"),
            ("X-Both", "origin"),
            ("Grip-Hold", "response"),
            ("Grip-Channel", "lp"),
        ];
        headers.extend_from_slice(extra);
        Reply::Send(response(200, "OK", &headers, b"timeout\n"))
    })
}

fn assert_no_grip_headers(r: &Response) {
    let grip = r.head.names_starting("grip-");
    assert!(
        grip.is_empty(),
        "Grip-* headers reached the client: {grip:?}"
    );
}

#[test]
fn long_poll_gets_published_response() {
    let origin = long_poll_origin(&[]);
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/lp", &[], b""));
    origin.wait_for(1);
    let item = json!({"channel": "lp", "formats": {"http-response": {
        "code": 201, "reason": "Made",
        "headers": {"X-Both": "published", "X-Pub": "p"},
        "body": "hello\n"}}});
    let r = publish_until_answered(&proxy, &mut client, &items(vec![item]));
    assert_eq!((r.status, r.reason.as_str()), (201, "Made"));
    assert_eq!(r.body, b"hello\n");
    assert_eq!(r.header("x-orig"), Some("a"), "original header inherited");
    assert_eq!(r.head.all("x-both"), ["published"], "published header wins");
    assert_eq!(r.header("x-pub"), Some("p"));
    assert_eq!(r.framing, Framing::Length(6));
    assert_no_grip_headers(&r);
    // The connection stays usable for the next request.
    client.send(&request("GET", "/lp2", &[], b""));
    origin.wait_for(2);
}

#[test]
fn long_poll_body_bin_and_header_list() {
    let origin = long_poll_origin(&[]);
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/lp", &[], b""));
    origin.wait_for(1);
    let item = json!({"channel": "lp", "formats": {"http-response": {
        "headers": [["Content-Type", "application/octet-stream"]],
        "body-bin": "AAEC/w=="}}});
    let r = publish_until_answered(&proxy, &mut client, &items(vec![item]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, [0, 1, 2, 255]);
    assert_eq!(r.head.all("content-type"), ["application/octet-stream"]);
}

#[test]
fn long_poll_timeout_returns_original_response() {
    let origin = long_poll_origin(&[]);
    let proxy = Proxy::with(&origin, |c| c.grip.hold_timeout_default_secs = 1);
    let mut client = proxy.client();
    let start = Instant::now();
    let r = client.get("/lp");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "timed out after {took:?}"
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"timeout\n");
    assert_eq!(r.header("x-orig"), Some("a"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_no_grip_headers(&r);
}

#[test]
fn grip_timeout_header_is_honoured() {
    // Grip-Timeout overrides the (short) configured default; Pushpin's minimum is 5 s.
    let origin = long_poll_origin(&[("Grip-Timeout", "5")]);
    let proxy = Proxy::with(&origin, |c| c.grip.hold_timeout_default_secs = 1);
    let mut client = proxy.client();
    client.set_timeout(Duration::from_secs(10));
    let start = Instant::now();
    let r = client.get("/lp");
    let took = start.elapsed();
    assert_eq!(r.body, b"timeout\n");
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(8),
        "timed out after {took:?}"
    );
}

#[test]
fn stream_gets_initial_body_then_publishes_in_order_then_close() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            200,
            "OK",
            &[
                ("Content-Type", "text/plain"),
                ("X-Stream", "1"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", "s"),
            ],
            b"init\n",
        ))
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/stream", &[], b""));
    let head = client.read_stream_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-stream"), Some("1"));
    assert!(!head.head.has("content-length"));
    assert_no_grip_headers(&head);
    assert_eq!(client.next_text(), "init\n");
    for m in ["one\n", "two\n", "three\n"] {
        proxy.publish(&items(vec![stream_item("s", m)]));
    }
    // Several items in one publish keep their order too.
    proxy.publish(&items(vec![
        stream_item("s", "four\n"),
        stream_item("s", "five\n"),
    ]));
    for m in ["one\n", "two\n", "three\n", "four\n", "five\n"] {
        assert_eq!(client.next_text(), m);
    }
    proxy.publish(&items(vec![close_item("s")]));
    assert_eq!(client.read_chunk(), None, "close ends the response");
    // The response ended cleanly, so the keep-alive connection serves another request.
    client.send(&request("GET", "/stream", &[], b""));
    assert_eq!(client.read_stream_head().status, 200);
    assert_eq!(client.next_text(), "init\n");
}

#[test]
fn stream_subscribers_on_other_channels_get_nothing() {
    let origin = Origin::start(|req| Reply::Send(stream_hold(&req.path[1..], b"init\n")));
    let proxy = Proxy::to(&origin);
    let mut red = proxy.subscribe("/red", b"init\n");
    let mut blue = proxy.subscribe("/blue", b"init\n");
    proxy.publish(&items(vec![stream_item("red", "r1\n")]));
    proxy.publish(&items(vec![stream_item("blue", "b1\n")]));
    assert_eq!(red.next_text(), "r1\n");
    assert_eq!(blue.next_text(), "b1\n");
}

#[test]
fn sse_with_curl_receives_events() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Grip-Hold", "stream"),
            ("Grip-Channel", "events"),
        ],
        b": open\n\n",
    ));
    let proxy = Proxy::to(&origin);
    let mut curl = Command::new("curl")
        .args(["-sSN", "--max-time", "10", "-D", "-"])
        .arg(format!("http://{}/sse", proxy.http))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl");
    let (tx, rx) = mpsc::channel();
    let stdout = curl.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_with = |want: &str| -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(IO_TIMEOUT) {
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("curl never printed {want:?}; got {seen:?}");
    };
    let head = next_line_with(": open");
    assert!(
        head.iter().any(|l| l
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")),
        "{head:?}"
    );
    assert!(
        !head
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("grip-"))
    );
    let event = "event: message\ndata: hello sse\n\n";
    proxy.publish(&items(vec![stream_item("events", event)]));
    next_line_with("data: hello sse");
    proxy.publish(&items(vec![stream_item("events", "data: second\n\n")]));
    next_line_with("data: second");
    proxy.publish(&items(vec![close_item("events")]));
    let status = wait_child(&mut curl, Duration::from_secs(5));
    assert!(
        status.success(),
        "curl ended with {status} (stream not ended cleanly)"
    );
    reader.join().unwrap();
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keep_alive_data_arrives_when_idle() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Content-Type", "text/event-stream"),
            ("Grip-Hold", "stream"),
            ("Grip-Channel", "ka"),
            ("Grip-Keep-Alive", ":ka\\n\\n; format=cstring; timeout=1"),
        ],
        b"open\n",
    ));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.subscribe("/ka", b"open\n");
    let start = Instant::now();
    assert_eq!(client.next_text(), ":ka\n\n");
    let first = start.elapsed();
    assert!(
        first >= Duration::from_millis(700) && first < Duration::from_millis(2500),
        "first keep-alive after {first:?}"
    );
    // Published data counts as activity; keep-alives continue after it.
    proxy.publish(&items(vec![stream_item("ka", "data\n")]));
    assert_eq!(client.next_text(), "data\n");
    assert_eq!(client.next_text(), ":ka\n\n");
}

#[test]
fn grip_instruct_json_stream() {
    let instruct = json!({
        "hold": {"mode": "stream", "channels": [{"name": "j"}]},
        "response": {"code": 200, "headers": {"Content-Type": "text/plain", "X-J": "1"},
                     "body": "json-init\n"}
    });
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[("Content-Type", "application/grip-instruct")],
        instruct.to_string().as_bytes(),
    ));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/json", &[], b""));
    let head = client.read_stream_head();
    assert_eq!(head.header("x-j"), Some("1"));
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(client.next_text(), "json-init\n");
    proxy.publish(&items(vec![stream_item("j", "via json\n")]));
    assert_eq!(client.next_text(), "via json\n");
}

#[test]
fn grip_instruct_json_long_poll() {
    let instruct = json!({
        "hold": {"mode": "response", "channels": [{"name": "jl"}]},
        "response": {"code": 200, "body": "json timeout\n"}
    });
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[("Content-Type", "application/grip-instruct")],
        instruct.to_string().as_bytes(),
    ));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/json-lp", &[], b""));
    origin.wait_for(1);
    let item = json!({"channel": "jl", "formats": {"http-response": {"body": "answer\n"}}});
    let r = publish_until_answered(&proxy, &mut client, &items(vec![item]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"answer\n");
}

#[test]
fn grip_status_sets_stream_status() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Grip-Hold", "stream"),
            ("Grip-Channel", "st"),
            ("Grip-Status", "299 Custom Thing"),
        ],
        b"x",
    ));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/", &[], b""));
    let head = client.read_stream_head();
    assert_eq!((head.status, head.reason.as_str()), (299, "Custom Thing"));
    assert_eq!(client.next_text(), "x");
}

#[test]
fn grip_status_sets_long_poll_timeout_status() {
    let origin = long_poll_origin(&[("Grip-Status", "404 Nothing Yet")]);
    let proxy = Proxy::with(&origin, |c| c.grip.hold_timeout_default_secs = 1);
    let r = proxy.client().get("/lp");
    assert_eq!((r.status, r.reason.as_str()), (404, "Nothing Yet"));
    assert_eq!(r.body, b"timeout\n");
}

#[test]
fn invalid_grip_hold_gives_502() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[("Grip-Hold", "forever"), ("Grip-Channel", "x")],
        b"",
    ));
    let proxy = Proxy::to(&origin);
    assert_eq!(proxy.client().get("/").status, 502);
}

#[test]
fn client_leaving_while_held_is_cleaned_up() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/lp" => Reply::Send(response(
            200,
            "OK",
            &[("Grip-Hold", "response"), ("Grip-Channel", "d")],
            b"timeout\n",
        )),
        _ => Reply::Send(stream_hold("d", b"init\n")),
    });
    let proxy = Proxy::to(&origin);
    let leaver = proxy.subscribe("/s", b"init\n");
    let mut lp_leaver = proxy.client();
    lp_leaver.send(&request("GET", "/lp", &[], b""));
    let mut stayer = proxy.subscribe("/s", b"init\n");
    origin.wait_for(3);
    drop(leaver);
    drop(lp_leaver);
    for i in 0..20 {
        let msg = format!("after {i}\n");
        proxy.publish(&items(vec![stream_item("d", &msg)]));
        assert_eq!(stayer.next_text(), msg);
    }
    // A new subscriber still works after the departures.
    let mut late = proxy.subscribe("/s", b"init\n");
    proxy.publish(&items(vec![stream_item("d", "late\n")]));
    assert_eq!(late.next_text(), "late\n");
    assert_eq!(stayer.next_text(), "late\n");
}

#[test]
fn stream_hold_on_legacy_driver() {
    let origin = Origin::fixed(stream_hold("leg", b"init\n"));
    let proxy = Proxy::with(&origin, |c| {
        c.server.driver = holdfast::config::DriverChoice::Legacy;
    });
    let mut client = proxy.subscribe("/", b"init\n");
    proxy.publish(&items(vec![stream_item("leg", "epoll\n")]));
    assert_eq!(client.next_text(), "epoll\n");
}

#[test]
fn chunked_grip_response_is_read_whole() {
    let mut bytes = chunked_head(&[
        ("Content-Type", "text/plain"),
        ("Grip-Hold", "stream"),
        ("Grip-Channel", "ch"),
    ]);
    bytes.extend(chunk(b"in "));
    bytes.extend(chunk(b"pieces\n"));
    bytes.extend_from_slice(b"0\r\n\r\n");
    let origin = Origin::fixed(bytes);
    let proxy = Proxy::to(&origin);
    let mut client = proxy.subscribe("/", b"in pieces\n");
    proxy.publish(&items(vec![stream_item("ch", "more\n")]));
    assert_eq!(client.next_text(), "more\n");
}

#[test]
fn several_channels_on_one_hold() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Grip-Hold", "stream"),
            ("Grip-Channel", "one, two"),
            ("Grip-Channel", "three"),
        ],
        b"init\n",
    ));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.subscribe("/", b"init\n");
    for ch in ["three", "one", "two", "four"] {
        proxy.publish(&items(vec![stream_item(ch, &format!("{ch}\n"))]));
    }
    proxy.publish(&items(vec![stream_item("one", "end\n")]));
    for want in ["three\n", "one\n", "two\n", "end\n"] {
        assert_eq!(client.next_text(), want);
    }
}

#[test]
fn formats_go_to_matching_holds_only() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/lp" => Reply::Send(response(
            200,
            "OK",
            &[("Grip-Hold", "response"), ("Grip-Channel", "f")],
            b"timeout\n",
        )),
        _ => Reply::Send(stream_hold("f", b"init\n")),
    });
    let proxy = Proxy::to(&origin);
    let mut stream = proxy.subscribe("/s", b"init\n");
    let mut lp = proxy.client();
    lp.send(&request("GET", "/lp", &[], b""));
    origin.wait_for(2);
    let only_response = json!({"channel": "f", "formats": {"http-response": {"body": "lp\n"}}});
    let r = publish_until_answered(&proxy, &mut lp, &items(vec![only_response]));
    assert_eq!(r.body, b"lp\n");
    // The stream ignored every http-response item; its next chunk is the stream item.
    proxy.publish(&items(vec![stream_item("f", "s\n")]));
    assert_eq!(stream.next_text(), "s\n");
}

#[test]
fn http10_stream_is_close_delimited() {
    let origin = Origin::fixed(stream_hold("old", b"init\n"));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n");
    let head = client.wire.read_head().expect("head");
    assert!(!head.has("transfer-encoding"), "{head:?}");
    assert!(!head.has("content-length"), "{head:?}");
    while client.wire.buf.len() < 5 {
        client.wire.fill().unwrap();
    }
    assert_eq!(client.wire.buf, b"init\n");
    client.wire.buf.clear();
    proxy.publish(&items(vec![stream_item("old", "raw\n")]));
    while client.wire.buf.len() < 4 {
        client.wire.fill().unwrap();
    }
    assert_eq!(client.wire.buf, b"raw\n");
    proxy.publish(&items(vec![close_item("old")]));
    let (rest, _) = client.wait_closed(Duration::from_secs(3));
    assert!(rest.is_empty() || rest == b"raw\n", "{rest:?}");
}

#[test]
fn slow_consumer_is_closed_and_others_keep_up() {
    // 400 messages of 16 KB (6.4 MB) overflow the kernel buffers and then the 1 MiB soft limit of
    // a subscriber that never reads; with no progress for the stall timeout it is cut. The
    // reading subscriber keeps up but, on a loaded machine, may lag the unthrottled publisher.
    const POSTS: usize = 400;
    const PER_POST: usize = 1;
    const SIZE: usize = 16 * 1024;
    const STALL_TIMEOUT_MS: u64 = 1_000;
    let origin = Origin::fixed(stream_hold("slow", b"init\n"));
    let proxy = Proxy::with(&origin, |c| {
        c.hold.outbox_bytes_max = 1024 * 1024;
        c.hold.stall_timeout_ms = STALL_TIMEOUT_MS;
    });
    // A subscriber that never reads, with a tiny receive window.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&proxy.http.into()).unwrap();
    let mut slow = Client::from_stream(socket.into());
    slow.send(&request("GET", "/", &[], b""));
    slow.read_stream_head();
    assert_eq!(slow.next_text(), "init\n");
    let mut fast = proxy.subscribe("/", b"init\n");
    let reader = std::thread::spawn(move || {
        (0..POSTS * PER_POST)
            .map(|_| fast.read_chunk().map_or(0, |c| c.len()))
            .collect::<Vec<_>>()
    });
    let content = "z".repeat(SIZE);
    for _ in 0..POSTS {
        let batch = (0..PER_POST)
            .map(|_| stream_item("slow", &content))
            .collect();
        proxy.publish(&items(batch));
    }
    let sizes = reader.join().expect("the reading subscriber kept up");
    assert!(
        sizes.iter().all(|&n| n == SIZE),
        "the reading subscriber lost data"
    );
    // The slow one is cut off: once holdfast counted it as stalled (reading earlier would be
    // progress), it sees the end of the connection before all the data.
    let cut = common::binary::wait_for_metric(
        proxy.publish,
        "holdfast_slow_consumer_cuts_total",
        &["reason=\"stalled\""],
        1,
        Duration::from_secs(10),
    );
    assert!(cut.is_some(), "the never-reader was not cut as stalled");
    let (got, _) = slow.wait_closed(Duration::from_secs(5));
    assert!(
        got.len() < POSTS * PER_POST * SIZE,
        "slow consumer got everything ({} bytes): never cut off",
        got.len()
    );
}
