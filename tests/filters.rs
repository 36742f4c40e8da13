//! GRIP filters and meta end to end: `Grip-Set-Meta` on a hold, `filter=` on `Grip-Channel`,
//! publish `meta`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn hold_with(channel_header: &str, meta: &str) -> Vec<u8> {
    let headers = [
        ("Content-Type", "text/plain"),
        ("Grip-Hold", "stream"),
        ("Grip-Channel", channel_header),
        ("Grip-Set-Meta", meta),
    ];
    response(200, "OK", &headers, b"start\n")
}

fn say(content: &str, meta: serde_json::Value) -> serde_json::Value {
    json!({"channel": "room", "meta": meta,
        "formats": {"http-stream": {"content": content}}})
}

#[test]
fn skip_self_skips_the_sender_only() {
    let origin = Origin::fixed(hold_with("room; filter=skip-self", "user=alice"));
    let proxy = Proxy::to(&origin);
    let mut alice = proxy.subscribe("/", b"start\n");
    alice.set_timeout(Duration::from_secs(5));
    proxy.publish(&items(vec![say(
        "from alice\n",
        json!({"sender": "alice"}),
    )]));
    proxy.publish(&items(vec![say("from bob\n", json!({"sender": "bob"}))]));
    assert_eq!(
        alice.next_text(),
        "from bob\n",
        "her own message was skipped"
    );
}

#[test]
fn skip_users_and_var_subst() {
    let origin = Origin::fixed(hold_with(
        "room; filter=skip-users; filter=var-subst",
        "user=carol",
    ));
    let proxy = Proxy::to(&origin);
    let mut carol = proxy.subscribe("/", b"start\n");
    carol.set_timeout(Duration::from_secs(5));
    proxy.publish(&items(vec![say(
        "not for carol\n",
        json!({"skip_users": "dave, carol"}),
    )]));
    proxy.publish(&items(vec![say("hello %(user)s\n", json!({}))]));
    assert_eq!(carol.next_text(), "hello carol\n");
}

#[test]
fn the_proxy_announces_its_grip_features() {
    let origin = Origin::fixed(ok(b"hi\n"));
    let proxy = Proxy::with(&origin, |c| c.grip.sig_key = Some("k".into()));
    let resp = proxy.client().get("/");
    assert_eq!(resp.status, 200);
    let features = origin
        .first_request()
        .header("grip-feature")
        .unwrap_or("")
        .to_string();
    for f in [
        "status",
        "link:next",
        "filter:skip-self",
        "filter:var-subst",
    ] {
        assert!(features.contains(f), "{f} missing from {features}");
    }
}

/// Issue 15: var-subst output is bounded (`grip.filter_output_bytes_max`). Before, 108 KB of
/// `%(user)s` with an 8 000-byte `user` made a 96 MB chunk for this one subscriber.
#[test]
fn var_subst_output_over_the_limit_is_not_delivered() {
    // Within grip.meta_value_bytes_max (1 024); 1 100 copies make 1.1 MB, past the 1 MB limit.
    let user = "u".repeat(1_000);
    let origin = Origin::fixed(hold_with("room; filter=var-subst", &format!("user={user}")));
    let proxy = Proxy::to(&origin);
    let mut sub = proxy.subscribe("/", b"start\n");
    sub.set_timeout(Duration::from_secs(5));
    let amplifier = "%(user)s".repeat(1_100);
    proxy.publish(&items(vec![say(&amplifier, json!({}))]));
    proxy.publish(&items(vec![say("[%(user)s]\n", json!({}))]));
    assert_eq!(
        sub.next_text(),
        format!("[{user}]\n"),
        "the big one was skipped"
    );
    let m = publish_request(proxy.publish, "GET", "/metrics", &[], b"").text();
    let cut: u64 = m
        .lines()
        .filter(|l| l.starts_with("holdfast_content_over_limit_total{") && l.contains("filter"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(cut, 1, "{m}");
}
