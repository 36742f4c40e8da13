//! Security regressions, through the `holdfast` binary: each test is an attack a review
//! reproduced against an earlier main, and fails there.
//!
//! - a published id (or prev-id, or channel) with CR/LF, which became a `Grip-Last` header and
//!   split the next-link request (request smuggling on a pooled origin connection);
//! - a grip-instruct `response.reason` or `prev-id` with CR/LF (response splitting);
//! - next links that reached another route's origin, signed with that route's key;
//! - absolute-form request targets that bypassed path routes and the route's path rewrite;
//! - client-sent `Connection-Id`, `Meta-*` and `Grip-*` headers reaching the origin, so a plain
//!   request could pose as a WebSocket-over-HTTP exchange signed by holdfast;
//! - a pooled origin connection reused although unsolicited bytes had arrived on it, so one
//!   client got the answer meant for no one (or for someone else).

mod common;

use std::time::Duration;

use common::binary::Holdfast;
use common::*;
use serde_json::json;

fn publish_status(publish: std::net::SocketAddr, item: serde_json::Value) -> (u16, String) {
    let body = items(vec![item]).to_string();
    let r = post_publish(publish, &[], body.as_bytes());
    (r.status, r.text())
}

#[test]
fn identifiers_with_line_breaks_are_refused_at_the_publish_api() {
    let origin = Origin::fixed(ok(b"unused"));
    let hf = Holdfast::with_routes("sec-ids", 1, &route_to(&origin), "");
    let publish = hf.publish;
    let smuggled = "1\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: internal";
    let cases = [
        json!({"channel": "c", "id": smuggled, "formats": {"http-stream": {"content": "x"}}}),
        json!({"channel": "c", "prev-id": smuggled, "formats": {"http-stream": {"content": "x"}}}),
        json!({"channel": "c\r\nX-Evil: 1", "formats": {"http-stream": {"content": "x"}}}),
        json!({"channel": "c", "id": "a\u{0}b", "formats": {"http-stream": {"content": "x"}}}),
        json!({"channel": "c", "id": "i".repeat(513), "formats": {"http-stream": {"content": "x"}}}),
    ];
    for item in cases {
        let (status, text) = publish_status(publish, item.clone());
        assert_eq!(status, 400, "{item}: {text}");
        assert!(
            text.contains("control characters") || text.contains("longer than 512"),
            "{text}"
        );
    }
    let fine = json!({"channel": "c", "id": "a-1", "prev-id": "a-0",
                      "formats": {"http-stream": {"content": "x"}}});
    assert_eq!(publish_status(publish, fine).0, 200);
    assert!(
        hf.bin
            .wait_log("publish rejected", Duration::from_secs(2))
            .is_some(),
        "each refusal is logged"
    );
}

#[test]
fn grip_instruct_reason_or_prev_id_with_a_line_break_is_a_502() {
    let bodies = [
        r#"{"hold":{"mode":"stream","channels":[{"name":"c"}]},"response":{"code":200,"reason":"OK\r\nSet-Cookie: session=attacker","body":"x"}}"#,
        r#"{"hold":{"mode":"stream","channels":[{"name":"c","prev-id":"1\r\nGET /admin HTTP/1.1"}]},"response":{"body":"x"}}"#,
        r#"{"hold":{"mode":"stream","channels":[{"name":"c"}],"meta":{"user":"x\r\nMeta-Admin: 1"}},"response":{"body":"x"}}"#,
    ];
    for body in bodies {
        let reply = response(
            200,
            "OK",
            &[("Content-Type", "application/grip-instruct")],
            body.as_bytes(),
        );
        let origin = Origin::fixed(reply);
        let hf = Holdfast::with_routes("sec-instruct", 1, &route_to(&origin), "");
        let http = hf.http;
        let mut c = Client::connect(http);
        let r = c.send_and_read(&request("GET", "/events", &[], b""));
        assert_eq!(r.status, 502, "{body}: {:?}", r.head);
        assert!(r.header("Set-Cookie").is_none(), "{:?}", r.head);
        assert!(
            r.text().contains("Invalid GRIP instructions"),
            "{}",
            r.text()
        );
    }
}

/// Routes by path: `/b` goes to origin B (whose key differs), the rest to origin A.
fn two_tenants(a: &Origin, b: &Origin) -> String {
    format!(
        "*,path_beg=/b,sig_key=key-of-b 127.0.0.1:{}\n*,sig_key=key-of-a 127.0.0.1:{}\n",
        b.port(),
        a.port()
    )
}

#[test]
fn a_next_link_is_fetched_from_the_route_the_request_took() {
    let tenant_b = Origin::fixed(ok(b"tenant b's secret"));
    // Tenant A pages: the first answer links to a path that route B would match.
    let tenant_a = Origin::start(|req| {
        if req.path == "/feed" {
            Reply::Send(response(
                200,
                "OK",
                &[
                    ("Content-Type", "text/plain"),
                    ("Grip-Link", "</b/steal>; rel=next"),
                ],
                b"page 1\n",
            ))
        } else {
            Reply::Send(ok(b"page 2\n"))
        }
    });
    let hf = Holdfast::with_routes("sec-links", 1, &two_tenants(&tenant_a, &tenant_b), "");
    let mut c = Client::connect(hf.http);
    c.send(&request("GET", "/feed", &[], b""));
    let head = c.read_stream_head();
    assert_eq!(head.status, 200);
    let mut body = String::new();
    while let Some(chunk) = c.read_chunk() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(body, "page 1\npage 2\n", "both pages come from tenant A");
    let reqs = tenant_a.wait_for(2);
    assert_eq!(reqs[1].path, "/b/steal");
    assert!(reqs[1].header("Grip-Sig").is_some(), "signed with A's key");
    assert_eq!(tenant_b.requests().len(), 0, "tenant B was never asked");
}

#[test]
fn a_link_to_another_host_route_is_refused() {
    let tenant_b = Origin::fixed(ok(b"tenant b's secret"));
    let tenant_a = Origin::fixed(response(
        200,
        "OK",
        &[
            ("Content-Type", "text/plain"),
            ("Grip-Link", "<http://tenant-b.example/steal>; rel=next"),
        ],
        b"page 1\n",
    ));
    let routes = format!(
        "tenant-b.example,sig_key=key-of-b 127.0.0.1:{}\n* 127.0.0.1:{}\n",
        tenant_b.port(),
        tenant_a.port()
    );
    let hf = Holdfast::with_routes("sec-host-links", 1, &routes, "");
    let http = hf.http;
    let mut c = Client::connect(http);
    c.send(&request(
        "GET",
        "/feed",
        &[("Host", "tenant-a.example")],
        b"",
    ));
    assert_eq!(c.read_stream_head().status, 200);
    let mut body = String::new();
    while let Some(chunk) = c.read_chunk() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(
        body, "page 1\n",
        "the stream ends instead of following the link"
    );
    assert!(
        hf.bin
            .wait_log("outside the route", Duration::from_secs(2))
            .is_some(),
        "{}",
        hf.bin.log_text()
    );
    assert_eq!(tenant_b.requests().len(), 0, "tenant B was never asked");
}

#[test]
fn an_absolute_form_target_is_routed_and_rewritten_like_any_request() {
    let api = Origin::fixed(ok(b"api"));
    let fallback = Origin::fixed(ok(b"fallback"));
    let routes = format!(
        "*,path_beg=/api,replace_beg=/v2 127.0.0.1:{}\n* 127.0.0.1:{}\n",
        api.port(),
        fallback.port()
    );
    let hf = Holdfast::with_routes("sec-absolute", 1, &routes, "");
    let http = hf.http;
    let mut c = Client::connect(http);
    let r = c.send_and_read(
        b"GET http://Example.COM/api/items?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "api"));
    let req = api.first_request();
    assert_eq!(
        req.path, "/v2/items?x=1",
        "origin-form, rewritten by the route"
    );
    assert_eq!(
        req.header("Host"),
        Some("example.com"),
        "the target's authority"
    );
    assert_eq!(fallback.requests().len(), 0);
    let r = c.send_and_read(b"GET ftp://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn headers_only_the_proxy_may_set_never_reach_the_origin_from_a_client() {
    let origin = Origin::fixed(ok(b"fine"));
    let hf = Holdfast::with_routes("sec-proxy-only", 1, &route_to(&origin), "");
    let http = hf.http;
    let mut c = Client::connect(http);
    let headers = [
        ("Content-Type", "application/websocket-events"),
        ("Connection-Id", "someone-elses-websocket"),
        ("Meta-User", "admin"),
        ("Grip-Last", "c; last-id=1"),
        ("Grip-Sig", "forged"),
        ("Content-Bytes-Replayed", "5"),
        ("X-Kept", "yes"),
    ];
    let r = c.send_and_read(&request("POST", "/ws", &headers, b"TEXT 2\r\nhi\r\n"));
    assert_eq!(r.status, 200);
    let req = origin.first_request();
    for name in [
        "Connection-Id",
        "Meta-User",
        "Grip-Last",
        "Content-Bytes-Replayed",
    ] {
        assert!(req.header(name).is_none(), "{name} reached the origin");
    }
    assert_eq!(req.header("X-Kept"), Some("yes"));
    assert_ne!(req.header("Grip-Sig"), Some("forged"));
}

#[test]
fn a_pooled_origin_connection_with_unsolicited_bytes_is_not_reused() {
    // The first answer is followed, a moment later, by a response no one asked for.
    let origin = Origin::start(|req| {
        if req.path == "/first" {
            Reply::Drip {
                pieces: vec![ok(b"first"), ok(b"unsolicited")],
                every: Duration::from_millis(100),
                close: false,
            }
        } else {
            Reply::Send(ok(b"second"))
        }
    });
    // One worker: the second request would take the first one's pooled connection.
    let hf = Holdfast::with_routes("sec-pool", 1, &route_to(&origin), "");
    let http = hf.http;
    let mut c = Client::connect(http);
    assert_eq!(c.get("/first").text(), "first");
    std::thread::sleep(Duration::from_millis(400));
    let mut other = Client::connect(http);
    let r = other.get("/second");
    assert_eq!(
        r.text(),
        "second",
        "another client got the unsolicited answer"
    );
    assert_eq!(
        origin.connections(),
        2,
        "the second request took a new connection"
    );
}
