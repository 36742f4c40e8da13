//! The publish API: answers, validation (all-or-nothing), binary content, authentication.

mod common;

use std::net::SocketAddr;

use base64::Engine;
use common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

fn origin_and_proxy() -> (Origin, Proxy) {
    let origin = Origin::fixed(stream_hold("p", b"init\n"));
    let proxy = Proxy::to(&origin);
    (origin, proxy)
}

fn valid_body() -> Vec<u8> {
    items(vec![stream_item("p", "x\n")])
        .to_string()
        .into_bytes()
}

/// Asserts a 400 whose JSON body mentions `needle`.
fn assert_rejected(addr: SocketAddr, body: &[u8], needle: &str) {
    let r = post_publish(addr, &[], body);
    assert_eq!(r.status, 400, "{}", r.text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.to_lowercase().contains(&needle.to_lowercase()),
        "error {error:?} should name {needle:?}"
    );
}

#[test]
fn publish_answers_published() {
    let (_origin, proxy) = origin_and_proxy();
    let r = post_publish(proxy.publish, &[], &valid_body());
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Published\n");
    // The trailing slash is optional.
    let r = publish_request(proxy.publish, "POST", "/publish", &[], &valid_body());
    assert_eq!(r.status, 200);
}

#[test]
fn publish_answers_json_when_asked() {
    let (_origin, proxy) = origin_and_proxy();
    let r = post_publish(
        proxy.publish,
        &[("Accept", "application/json")],
        &valid_body(),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.json(), json!({"message": "Published"}));
}

#[test]
fn get_on_publish_is_405_with_allow() {
    let (_origin, proxy) = origin_and_proxy();
    let r = publish_request(proxy.publish, "GET", "/publish/", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn publish_api_keeps_the_connection_alive() {
    let (_origin, proxy) = origin_and_proxy();
    let mut c = Client::connect(proxy.publish);
    for _ in 0..3 {
        let r = c.send_and_read(&request("POST", "/publish/", &[], &valid_body()));
        assert_eq!(r.status, 200);
    }
}

#[test]
fn body_not_json_is_400() {
    let (_origin, proxy) = origin_and_proxy();
    let r = post_publish(proxy.publish, &[], b"{not json");
    assert_eq!(r.status, 400);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("not valid JSON"), "{error}");
}

#[test]
fn empty_channel_is_400() {
    let (_origin, proxy) = origin_and_proxy();
    let body = items(vec![stream_item("", "x")]).to_string();
    assert_rejected(proxy.publish, body.as_bytes(), "channel");
}

#[test]
fn missing_items_is_400() {
    let (_origin, proxy) = origin_and_proxy();
    assert_rejected(proxy.publish, br#"{"itemz": []}"#, "items");
}

#[test]
fn item_without_formats_is_400() {
    let (_origin, proxy) = origin_and_proxy();
    assert_rejected(
        proxy.publish,
        br#"{"items": [{"channel": "p"}]}"#,
        "formats",
    );
}

#[test]
fn invalid_item_in_batch_rejects_all() {
    let (_origin, proxy) = origin_and_proxy();
    let mut sub = proxy.subscribe("/", b"init\n");
    let bad = json!({"channel": "p", "formats": {"http-stream": {"content-bin": "***"}}});
    let body = items(vec![
        stream_item("p", "early\n"),
        bad,
        stream_item("p", "late\n"),
    ]);
    let r = post_publish(proxy.publish, &[], body.to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("item 1"),
        "error names the item: {}",
        r.text()
    );
    // Nothing from the rejected batch arrives: the next chunk is the next valid publish.
    proxy.publish(&items(vec![stream_item("p", "after\n")]));
    assert_eq!(sub.next_text(), "after\n");
}

#[test]
fn content_bin_is_delivered_as_bytes() {
    let (_origin, proxy) = origin_and_proxy();
    let mut sub = proxy.subscribe("/", b"init\n");
    let bytes = [0u8, 1, 2, 0xfe, 0xff, b'\r', b'\n'];
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let item = json!({"channel": "p", "formats": {"http-stream": {"content-bin": b64}}});
    proxy.publish(&items(vec![item]));
    assert_eq!(sub.read_chunk().as_deref(), Some(&bytes[..]));
}

fn jwt(key: &[u8], exp_offset: i64) -> String {
    let exp = unix_now() as i64 + exp_offset;
    let claims = json!({"iss": "publisher", "exp": exp});
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
}

fn basic(userpass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(userpass)
    )
}

#[test]
fn publish_auth_basic_and_bearer() {
    let origin = Origin::fixed(stream_hold("p", b"init\n"));
    let proxy = Proxy::with(&origin, |c| {
        c.publish.basic_auth = Some("u:p".into());
        c.publish.jwt_key = Some("publish-key".into());
    });
    let mut sub = proxy.subscribe("/", b"init\n");
    let body = valid_body();
    let status = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        post_publish(proxy.publish, &headers, &body).status
    };
    assert_eq!(status(None), 401, "no credentials");
    assert_eq!(status(Some(&basic("u:wrong"))), 401, "wrong password");
    assert_eq!(status(Some(&basic("x:p"))), 401, "wrong user");
    assert_eq!(status(Some("Basic !!notbase64")), 401);
    let wrong_key = format!("Bearer {}", jwt(b"other-key", 600));
    assert_eq!(status(Some(&wrong_key)), 401, "JWT with the wrong key");
    let expired = format!("Bearer {}", jwt(b"publish-key", -3600));
    assert_eq!(status(Some(&expired)), 401, "expired JWT");
    assert_eq!(status(Some("Bearer not.a.jwt")), 401);
    assert_eq!(status(Some("Digest abc")), 401, "unknown scheme");
    // None of the refused publishes was delivered.
    assert_eq!(status(Some(&basic("u:p"))), 200, "right Basic credentials");
    assert_eq!(sub.next_text(), "x\n");
    let good = format!("Bearer {}", jwt(b"publish-key", 600));
    assert_eq!(status(Some(&good)), 200, "valid JWT");
    assert_eq!(sub.next_text(), "x\n");
}

#[test]
fn publish_without_auth_configured_needs_no_credentials() {
    let (_origin, proxy) = origin_and_proxy();
    let r = post_publish(
        proxy.publish,
        &[("Authorization", "Basic Zm9vOmJhcg==")],
        &valid_body(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn publish_body_over_limit_is_413() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.body_bytes_max = 1000);
    let big = items(vec![stream_item("p", &"x".repeat(2000))]).to_string();
    let r = post_publish(proxy.publish, &[], big.as_bytes());
    assert_eq!(r.status, 413);
}

/// Issue 15: the credentials are checked on the request head. A client without them that
/// announces a 1 MB body and sends none is answered at once, not after the request timeout
/// (before, holdfast waited to read the whole body first).
#[test]
fn unauthenticated_publish_is_refused_before_its_body() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.basic_auth = Some("u:p".into()));
    let mut c = Client::connect(proxy.publish);
    c.set_timeout(std::time::Duration::from_secs(3));
    let start = std::time::Instant::now();
    c.send(b"POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    let r = c.try_read_response().expect("an answer without the body");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    // The unread body is not taken for the next request: the connection is closed.
    let (rest, _) = c.wait_closed(std::time::Duration::from_secs(3));
    assert!(rest.is_empty(), "{rest:?}");
}

/// A refused body-less request keeps the connection (nothing is left unread on it).
#[test]
fn refused_request_without_body_keeps_the_connection() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.basic_auth = Some("u:p".into()));
    let mut c = Client::connect(proxy.publish);
    let r = c.send_and_read(&request("POST", "/recover", &[], b""));
    assert_eq!(r.status, 401);
    let r = c.send_and_read(&request(
        "POST",
        "/recover",
        &[("Authorization", &basic("u:p"))],
        b"",
    ));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Issue 15: a Bearer token is not valid before its `nbf`.
#[test]
fn bearer_token_before_its_nbf_is_401() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.jwt_key = Some("publish-key".into()));
    let token = |nbf_offset: i64| {
        let now = unix_now() as i64;
        let claims = json!({"exp": now + 3600, "nbf": now + nbf_offset});
        let key = EncodingKey::from_secret(b"publish-key");
        let t = jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap();
        format!("Bearer {t}")
    };
    let r = post_publish(
        proxy.publish,
        &[("Authorization", &token(600))],
        &valid_body(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("Immature"), "{}", r.text());
    let r = post_publish(
        proxy.publish,
        &[("Authorization", &token(-60))],
        &valid_body(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Issue 15: with publish auth configured, `/metrics` (served on the publish listener) needs the
/// same credentials unless `publish.metrics_auth = false`.
#[test]
fn metrics_need_the_publish_credentials_when_auth_is_on() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.basic_auth = Some("u:p".into()));
    let r = publish_request(proxy.publish, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 401);
    let auth = basic("u:p");
    let r = publish_request(
        proxy.publish,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("holdfast_publish_unauthorized_total 1"),
        "{}",
        r.text()
    );

    let open = Proxy::with(&origin, |c| {
        c.publish.basic_auth = Some("u:p".into());
        c.publish.metrics_auth = false;
    });
    assert_eq!(
        publish_request(open.publish, "GET", "/metrics", &[], b"").status,
        200
    );
}

/// Issue 15: one deadline for a whole publish request: a body dripped a byte at a time gets 408
/// at `publish.request_timeout_ms`, however long the drip could go on.
#[test]
fn publish_body_dripped_slowly_gets_408() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| c.publish.request_timeout_ms = 1_000);
    let mut c = Client::connect(proxy.publish);
    let body = valid_body();
    let head = format!(
        "POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    let start = std::time::Instant::now();
    let mut answer = Vec::new();
    for b in body.iter().take(body.len() - 1) {
        c.send(&[*b]);
        if c.has_data_within(std::time::Duration::from_millis(100)) {
            answer = c.read_response().body;
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(4),
            "still reading the drip after 4 s"
        );
    }
    let elapsed = start.elapsed();
    assert!(
        String::from_utf8_lossy(&answer).contains("timed out"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "{elapsed:?}"
    );
}

/// `publish.metrics_listen`: `/metrics` on a listener of its own, without credentials, and no
/// longer on the publish listener; that listener serves nothing else.
#[test]
fn metrics_on_their_own_listener() {
    let origin = Origin::fixed(ok(b""));
    let proxy = Proxy::with(&origin, |c| {
        c.publish.basic_auth = Some("u:p".into());
        c.publish.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    });
    let metrics = proxy
        .server()
        .unwrap()
        .metrics_addr
        .expect("a metrics address");
    let r = publish_request(metrics, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("holdfast_connections"), "{}", r.text());
    let r = publish_request(metrics, "POST", "/publish/", &[], &valid_body());
    assert_eq!(r.status, 404);
    let auth = basic("u:p");
    let r = publish_request(
        proxy.publish,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 404);
}
