//! A reload (SIGHUP) that reorders and shrinks the routes while sessions are open: every open
//! session keeps the route it started on (origin and signing key), nothing panics, and new
//! requests use the new routes. Before requests and sessions owned their route, a
//! WebSocket-over-HTTP session kept an index into the routes table and, after such a reload,
//! indexed the new table with it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use holdfast::proto::wsoh::Event;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;

/// Whether a request carries a Grip-Sig signed with `key`.
fn signed_with(req: &Request, key: &[u8]) -> bool {
    let Some(token) = req.header("grip-sig") else {
        return false;
    };
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_secret(key), &v).is_ok()
}

/// Tenant B: a stream with a next link, a long-poll, and an echoing WebSocket-over-HTTP.
fn tenant_b(polls: Arc<AtomicUsize>) -> Origin {
    Origin::start(move |req| match req.path.as_str() {
        "/b/stream" => Reply::Send(response(
            200,
            "OK",
            &[
                ("Content-Type", "text/plain"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", "s"),
                ("Grip-Link", "</b/next>; rel=next"),
            ],
            b"first page\n",
        )),
        "/b/next" => Reply::Send(ok(b"next page\n")),
        "/b/poll" if polls.fetch_add(1, Ordering::SeqCst) == 0 => Reply::Send(response(
            200,
            "OK",
            &[("Grip-Hold", "response"), ("Grip-Channel", "p")],
            b"timeout\n",
        )),
        "/b/poll" => Reply::Send(ok(b"polled again\n")),
        "/b/ws" => Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &echo_events(&request_events(req)),
        )),
        _ => Reply::Send(ok(b"tenant b")),
    })
}

#[test]
fn a_reload_that_reorders_and_shrinks_the_routes_leaves_open_sessions_on_their_route() {
    let polls = Arc::new(AtomicUsize::new(0));
    let b = tenant_b(polls.clone());
    let c = Origin::fixed(ok(b"tenant c"));
    let before = format!(
        "*,path_beg=/a,sig_key=key-a 127.0.0.1:{c}\n\
         *,path_beg=/b,proto=ws,sig_key=key-b 127.0.0.1:{b},over_http\n\
         *,path_beg=/b,sig_key=key-b 127.0.0.1:{b}\n\
         * 127.0.0.1:{c}\n",
        b = b.port(),
        c = c.port()
    );
    let proxy = Proxy::start(config(&before));

    // A WebSocket-over-HTTP session, a stream and a long-poll, all on route /b.
    let mut ws = ws_connect(proxy.http, "/b/ws");
    ws_send_text(&mut ws, "before");
    assert_eq!(ws_recv_text(&mut ws), "before");
    let mut stream = proxy.subscribe("/b/stream", b"first page\n");
    let mut poll = proxy.client();
    poll.send(&request("GET", "/b/poll", &[], b""));
    b.wait_for(3);
    std::thread::sleep(Duration::from_millis(100));

    // The new routes: tenant B is gone, and the one route left has another key.
    let mut after = config(&format!("*,sig_key=key-c 127.0.0.1:{}\n", c.port()));
    after.server.listen = vec![proxy.http];
    after.publish.listen = proxy.publish;
    let server = proxy.server().expect("a server");
    server.reload(after).expect("the new routes load");

    // Every session still reaches tenant B, signed with B's key.
    let seen = b.requests().len();
    ws_send_text(&mut ws, "after");
    assert_eq!(ws_recv_text(&mut ws), "after");
    proxy.publish(&items(vec![
        json!({"channel": "s", "formats": {"http-stream": {"action": "hint"}}}),
        json!({"channel": "p", "formats": {"http-response": {"action": "hint"}}}),
    ]));
    assert_eq!(stream.next_text(), "next page\n", "the stream's next link");
    assert!(
        stream.read_chunk().is_none(),
        "the last page ends the stream"
    );
    let answer = poll.read_response();
    assert_eq!(answer.text(), "polled again\n", "the long-poll's retry");
    let later = &b.wait_for(seen + 3)[seen..];
    let paths: Vec<&str> = later.iter().map(|r| r.path.as_str()).collect();
    for want in ["/b/ws", "/b/next", "/b/poll"] {
        assert!(
            paths.contains(&want),
            "{want} reached tenant B after the reload: {paths:?}"
        );
    }
    for r in later {
        assert!(signed_with(r, b"key-b"), "{} signed with B's key", r.path);
    }
    let ws_events: Vec<Event> = later
        .iter()
        .filter(|r| r.path == "/b/ws")
        .flat_map(request_events)
        .collect();
    assert!(ws_events.contains(&Event::Text(b"after".to_vec())));

    // A new request takes the new routes.
    let mut fresh = proxy.client();
    let r = fresh.get("/b/anything");
    assert_eq!(r.text(), "tenant c");
    let to_c = c.requests();
    assert!(signed_with(to_c.last().expect("C got it"), b"key-c"));
    assert_eq!(b.requests().len(), seen + 3, "nothing new went to tenant B");
}
