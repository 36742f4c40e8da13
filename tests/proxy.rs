//! Plain proxying: framing, large bodies, request bodies, keep-alive and pipelining, forwarded
//! headers, Grip-Sig, route selection, and origin failures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

#[test]
fn get_with_content_length_body() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[("Content-Type", "text/plain"), ("X-Origin", "yes")],
        b"hello world\n",
    ));
    let proxy = Proxy::to(&origin);
    let r = proxy.client().get("/hello?x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.framing, Framing::Length(12));
    assert_eq!(r.header("x-origin"), Some("yes"));
    let req = origin.first_request();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/hello?x=1")
    );
}

#[test]
fn chunked_origin_response_is_relayed_with_valid_framing() {
    let mut bytes = chunked_head(&[("Content-Type", "text/plain")]);
    for piece in [&b"first,"[..], b"second,", &[b'x'; 3000]] {
        bytes.extend(chunk(piece));
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let origin = Origin::fixed(bytes);
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let r = client.get("/chunked");
    assert_eq!(r.status, 200);
    let mut want = b"first,second,".to_vec();
    want.extend_from_slice(&[b'x'; 3000]);
    assert_eq!(r.body, want);
    // The connection is still usable: framing ended exactly at the last chunk.
    assert_eq!(client.get("/again").body, want);
}

#[test]
fn close_delimited_origin_body_arrives_whole() {
    let origin = Origin::start(|_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec(),
        )
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let r = client.get("/close");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"until the end");
    // An HTTP/1.1 client gets a body it can delimit (chunked) or a close after it.
    assert!(
        matches!(r.framing, Framing::Chunked | Framing::UntilClose),
        "{:?}",
        r.framing
    );
}

#[test]
fn five_megabyte_body_arrives_intact() {
    let body = pattern(5 * 1024 * 1024);
    let origin = Origin::fixed(response(200, "OK", &[], &body));
    let proxy = Proxy::to(&origin);
    let start = Instant::now();
    let r = proxy.client().get("/big");
    println!("5 MB through holdfast in {:?}", start.elapsed());
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "5 MB body differs");
}

#[test]
fn five_megabyte_chunked_body_arrives_intact() {
    let body = pattern(5 * 1024 * 1024);
    let mut bytes = chunked_head(&[]);
    for piece in body.chunks(100_000) {
        bytes.extend(chunk(piece));
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let origin = Origin::fixed(bytes);
    let proxy = Proxy::to(&origin);
    let r = proxy.client().get("/big-chunked");
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "5 MB chunked body differs");
}

#[test]
fn slow_body_is_streamed_not_buffered() {
    let mut pieces = vec![chunked_head(&[])];
    for i in 0..5 {
        pieces.push(chunk(format!("drip {i}\n").as_bytes()));
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    let origin = Origin::start(move |_| Reply::Drip {
        pieces: pieces.clone(),
        every: Duration::from_millis(200),
        close: false,
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let start = Instant::now();
    client.send(&request("GET", "/drip", &[], b""));
    client.read_stream_head();
    assert_eq!(client.next_text(), "drip 0\n");
    let first = start.elapsed();
    let mut rest = String::new();
    while let Some(c) = client.read_chunk() {
        rest.push_str(&String::from_utf8(c).unwrap());
    }
    assert_eq!(rest, "drip 1\ndrip 2\ndrip 3\ndrip 4\n");
    // The whole drip takes ~1 s; the first piece must not wait for the rest.
    assert!(
        first < Duration::from_millis(700),
        "first piece after {first:?}"
    );
}

#[test]
fn post_body_with_content_length_reaches_origin() {
    let origin = Origin::fixed(ok(b"got it"));
    let proxy = Proxy::to(&origin);
    let body = pattern(200_000);
    let r = proxy.client().send_and_read(&request(
        "POST",
        "/upload",
        &[("Content-Type", "application/octet-stream")],
        &body,
    ));
    assert_eq!(r.status, 200);
    let req = origin.first_request();
    assert_eq!(req.method, "POST");
    assert!(req.body == body, "POST body differs at the origin");
    assert_eq!(req.header("content-type"), Some("application/octet-stream"));
}

#[test]
fn chunked_request_body_reaches_origin() {
    let origin = Origin::fixed(ok(b"got it"));
    let proxy = Proxy::to(&origin);
    let mut raw =
        b"POST /chunked-upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut want = Vec::new();
    for piece in [&b"abc"[..], &[b'z'; 5000], b"end"] {
        raw.extend(chunk(piece));
        want.extend_from_slice(piece);
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = proxy.client().send_and_read(&raw);
    assert_eq!(r.status, 200);
    let req = origin.first_request();
    assert_eq!(req.body, want);
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let origin = Origin::start(|req| Reply::Send(ok(req.path.as_bytes())));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    assert_eq!(client.get("/one").body, b"/one");
    assert_eq!(client.get("/two").body, b"/two");
    // holdfast pools the origin connection too.
    assert_eq!(origin.connections(), 1, "origin connection not reused");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::start(|req| {
        // The first answer is slower, so answering out of order would show.
        if req.path == "/first" {
            std::thread::sleep(Duration::from_millis(200));
        }
        Reply::Send(ok(req.path.as_bytes()))
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let mut both = request("GET", "/first", &[], b"");
    both.extend(request("GET", "/second", &[], b""));
    client.send(&both);
    assert_eq!(client.read_response().body, b"/first");
    assert_eq!(client.read_response().body, b"/second");
}

#[test]
fn x_forwarded_for_is_appended() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::to(&origin);
    proxy.client().send_and_read(&request(
        "GET",
        "/",
        &[("X-Forwarded-For", "10.0.0.1")],
        b"",
    ));
    let req = origin.first_request();
    assert_eq!(req.head.all("x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
}

#[test]
fn hop_by_hop_request_headers_are_removed() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::to(&origin);
    let headers = [
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Connection", "keep-alive"),
        ("X-End-To-End", "kept"),
    ];
    proxy
        .client()
        .send_and_read(&request("GET", "/", &headers, b""));
    let req = origin.first_request();
    for gone in ["x-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !req.head.has(gone),
            "{gone} reached the origin: {:?}",
            req.head
        );
    }
    if let Some(c) = req.header("connection") {
        assert!(!c.to_ascii_lowercase().contains("x-hop"), "Connection: {c}");
    }
    assert_eq!(req.header("x-end-to-end"), Some("kept"));
}

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let origin = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Connection", "X-Resp-Hop"),
            ("X-Resp-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Kept", "yes"),
        ],
        b"body",
    ));
    let proxy = Proxy::to(&origin);
    let r = proxy.client().get("/");
    assert_eq!(r.body, b"body");
    assert!(!r.head.has("keep-alive"), "{:?}", r.head);
    assert_eq!(r.header("x-kept"), Some("yes"));
    // RFC 9110 §7.6.1: headers named in Connection are hop-by-hop too.
    assert!(
        !r.head.has("x-resp-hop"),
        "X-Resp-Hop relayed: {:?}",
        r.head
    );
}

#[test]
fn client_grip_sig_is_not_forwarded_without_key() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::to(&origin);
    proxy.client().send_and_read(&request(
        "GET",
        "/",
        &[("Grip-Sig", "forged.token.here")],
        b"",
    ));
    let req = origin.first_request();
    assert!(!req.head.has("grip-sig"), "{:?}", req.head);
}

#[test]
fn grip_sig_is_valid_when_sig_key_is_set() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| {
        c.grip.sig_key = Some("sekrit".into());
        c.grip.sig_iss = "holdfast-test".into();
    });
    proxy.client().send_and_read(&request(
        "GET",
        "/",
        &[("Grip-Sig", "forged.token.here")],
        b"",
    ));
    let req = origin.first_request();
    let sigs = req.head.all("grip-sig");
    assert_eq!(sigs.len(), 1, "exactly one Grip-Sig: {:?}", req.head);
    assert_ne!(sigs[0], "forged.token.here");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "iss"]);
    v.set_issuer(&["holdfast-test"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        sigs[0],
        &DecodingKey::from_secret(b"sekrit"),
        &v,
    )
    .expect("Grip-Sig verifies with the key");
    let claims = data.claims.as_object().unwrap();
    let mut keys: Vec<&str> = claims.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["exp", "iss"], "claims exactly iss + exp");
    let exp = claims["exp"].as_u64().unwrap();
    let want = unix_now() + 3600;
    assert!(exp.abs_diff(want) <= 70, "exp {exp}, expected about {want}");
}

#[test]
fn grip_sig_with_base64_key() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| {
        c.grip.sig_key = Some("base64:AAEC/w==".into());
    });
    proxy.client().get("/");
    let req = origin.first_request();
    let token = req.header("grip-sig").expect("Grip-Sig");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp"]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_secret(&[0, 1, 2, 255]),
        &v,
    )
    .expect("signed with the decoded binary key");
}

#[test]
fn route_selection_by_path() {
    let a = Origin::start(|req| Reply::Send(ok(format!("A {}", req.path).as_bytes())));
    let b = Origin::start(|req| Reply::Send(ok(format!("B {}", req.path).as_bytes())));
    let routes = format!(
        "*,path_beg=/a 127.0.0.1:{}\n* 127.0.0.1:{}\n",
        a.port(),
        b.port()
    );
    let proxy = Proxy::start(config(&routes));
    let mut client = proxy.client();
    assert_eq!(client.get("/a/thing").text(), "A /a/thing");
    assert_eq!(client.get("/other").text(), "B /other");
    assert_eq!(client.get("/a").text(), "A /a");
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 1);
}

#[test]
fn unreachable_origin_gives_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = Proxy::start(config(&format!("* 127.0.0.1:{port}\n")));
    let mut client = proxy.client();
    let r = client.get("/");
    assert_eq!(r.status, 502);
}

#[test]
fn silent_origin_gives_504_within_response_timeout() {
    let origin = Origin::start(|_| Reply::Hang);
    let proxy = Proxy::with(&origin, |c| c.origin.response_timeout_ms = 500);
    let start = Instant::now();
    let r = proxy.client().get("/slow");
    let took = start.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "504 after {took:?}"
    );
}

#[test]
fn origin_reset_mid_response_closes_client() {
    let origin = Origin::start(|req| {
        if req.path == "/reset" {
            let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
            bytes.extend_from_slice(&[b'r'; 1000]);
            Reply::Reset(bytes)
        } else {
            Reply::Send(ok(b"fine"))
        }
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/reset", &[], b""));
    let (got, took) = client.wait_closed(Duration::from_secs(3));
    assert!(
        got.len() < 100_000,
        "a truncated body must not look complete"
    );
    println!("client closed {took:?} after the origin reset");
    // holdfast is still fine, and did not pool the broken connection.
    assert_eq!(proxy.client().get("/after").body, b"fine");
}

#[test]
fn http10_client_gets_close_delimited_body() {
    let origin = Origin::start(|_| {
        let mut bytes = chunked_head(&[]);
        bytes.extend(chunk(b"ten"));
        bytes.extend_from_slice(b"0\r\n\r\n");
        Reply::Send(bytes)
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n");
    let (raw, _) = client.wait_closed(Duration::from_secs(3));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert_eq!(body, "ten");
}

#[test]
fn head_request_gets_no_body() {
    let origin = Origin::start(|req| {
        if req.method == "HEAD" {
            Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec())
        } else {
            Reply::Send(ok(b"after head"))
        }
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let mut both = request("HEAD", "/h", &[], b"");
    both.extend(request("GET", "/g", &[], b""));
    client.send(&both);
    let head = client.wire.read_head().expect("HEAD response");
    assert!(head.start.starts_with("HTTP/1.1 200"), "{head:?}");
    assert_eq!(head.header("content-length"), Some("1000"));
    // The next bytes are the GET's response, not a body for the HEAD.
    assert_eq!(client.read_response().body, b"after head");
}

#[test]
fn no_content_response_has_no_body() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/204" => Reply::Send(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec()),
        _ => Reply::Send(ok(b"next")),
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    let r = client.get("/204");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(!r.head.has("transfer-encoding"), "{:?}", r.head);
    assert_eq!(client.get("/next").body, b"next");
}

#[test]
fn expect_100_continue() {
    let origin = Origin::fixed(ok(b"stored"));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client
        .send(b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    let interim = client.wire.read_head().expect("100 Continue");
    assert!(interim.start.starts_with("HTTP/1.1 100"), "{interim:?}");
    client.send(b"hello world");
    let r = client.read_response();
    assert_eq!(r.body, b"stored");
    let req = origin.first_request();
    assert_eq!(req.body, b"hello world");
    assert!(!req.head.has("expect"), "Expect reached the origin");
}

#[test]
fn connection_close_request_is_answered_then_closed() {
    let origin = Origin::fixed(ok(b"bye"));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/", &[("Connection", "close")], b""));
    let r = client.read_response();
    assert_eq!(r.body, b"bye");
    assert_eq!(
        r.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close")
    );
    client.wait_closed(Duration::from_secs(2));
}

#[test]
fn stale_pooled_origin_connection_is_retried() {
    // The origin closes every connection right after a complete response, without saying so:
    // the pooled connection holdfast kept is dead when the next request comes.
    let origin = Origin::start(|req| Reply::SendAndClose(ok(req.path.as_bytes())));
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    assert_eq!(client.get("/one").body, b"/one");
    // Let the origin's FIN reach holdfast's idle pooled connection.
    std::thread::sleep(Duration::from_millis(100));
    let r = client.get("/two");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"/two"[..]));
    assert_eq!(
        origin.requests().len(),
        2,
        "each request reached the origin once"
    );
}

#[test]
fn x_forwarded_proto_is_set() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::to(&origin);
    proxy
        .client()
        .send_and_read(&request("GET", "/", &[("X-Forwarded-Proto", "https")], b""));
    let req = origin.first_request();
    assert_eq!(req.head.all("x-forwarded-proto"), ["http"]);
}

#[test]
fn origin_error_statuses_are_relayed() {
    let origin = Origin::start(|req| {
        let code: u16 = req.path[1..].parse().unwrap_or(500);
        Reply::Send(response(code, "Whatever", &[], b"err body"))
    });
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    for code in [404, 500, 503] {
        let r = client.get(&format!("/{code}"));
        assert_eq!((r.status, r.body.as_slice()), (code, &b"err body"[..]));
    }
}
