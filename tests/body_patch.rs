//! `body-patch` on held long-polls: applied to each held request's own body, within
//! `publish.body_patch_ops_max` and `publish.body_patch_bytes_max` (issue 15).
//!
//! The memory test measures this test process's peak RSS (VmHWM), holdfast running in it: keep it
//! the only test here that publishes a large patch.

mod common;

use serde_json::{Value, json};

use common::*;

/// A long-poll on channel `bp` whose timeout answer is `body`.
fn long_poll_origin(body: &'static [u8]) -> Origin {
    Origin::fixed(response(
        200,
        "OK",
        &[
            ("Content-Type", "application/json"),
            ("Grip-Hold", "response"),
            ("Grip-Channel", "bp"),
        ],
        body,
    ))
}

fn patch_item(patch: Value) -> Value {
    items(vec![json!({
        "channel": "bp",
        "formats": {"http-response": {"body-patch": patch}}
    })])
}

/// `n` operations, each copying the whole document into a new member: the body doubles each time.
fn doubling_patch(n: usize) -> Value {
    let op = |i| json!({"op": "copy", "from": "", "path": format!("/{i}")});
    Value::Array((0..n).map(op).collect())
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn body_patch_applies_to_the_held_body() {
    let origin = long_poll_origin(b"{\"count\":1,\"items\":[\"a\"]}\n");
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/", &[], b""));
    let patch = json!([
        {"op": "replace", "path": "/count", "value": 2},
        {"op": "add", "path": "/items/-", "value": "b"}
    ]);
    let r = publish_until_answered(&proxy, &mut client, &patch_item(patch));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"count\":2,\"items\":[\"a\",\"b\"]}\n");
}

/// Before: this 803-byte publish (a patch that doubles the body 20 times) grew a held
/// long-poll's 22-byte body to 23 MB, the patched JSON tree in memory to several times that, and
/// the process's RSS with it (four more operations: 16 times as much). Now the patch stops at the
/// operation that would pass `publish.body_patch_bytes_max` (1 MB) and the long-poll is answered
/// with an empty body.
#[test]
fn a_doubling_patch_leaves_memory_bounded_and_the_long_poll_an_empty_body() {
    let origin = long_poll_origin(b"{\"greeting\":\"hello\"}\n");
    let proxy = Proxy::to(&origin);
    let mut client = proxy.client();
    client.send(&request("GET", "/", &[], b""));
    let body = patch_item(doubling_patch(20));
    assert_eq!(body.to_string().len(), 803);
    origin.wait_for(1);
    let before = peak_rss_kib();
    let r = publish_until_answered(&proxy, &mut client, &body);
    let growth = peak_rss_kib().saturating_sub(before);
    println!("peak RSS grew {growth} KiB while the patch was applied");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty(), "{} bytes", r.body.len());
    // The document stops near 1 MB of JSON (tens of MB as a tree of small values at most).
    assert!(growth < 64 * 1024, "peak RSS grew {growth} KiB");
    let m = publish_request(proxy.publish, "GET", "/metrics", &[], b"").text();
    let cut: u64 = m
        .lines()
        .filter(|l| l.starts_with("holdfast_content_over_limit_total{") && l.contains("body_patch"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(cut, 1, "{m}");
}

/// A patch with more operations than `publish.body_patch_ops_max` is refused at the publish API,
/// where its length is known, with nothing published.
#[test]
fn a_patch_with_too_many_operations_is_refused_with_400() {
    let origin = long_poll_origin(b"{}\n");
    let proxy = Proxy::with(&origin, |c| c.publish.body_patch_ops_max = 5);
    let test = json!({"op": "test", "path": "", "value": {}});
    let body = patch_item(Value::Array(vec![test.clone(); 6])).to_string();
    let r = post_publish(proxy.publish, &[], body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("body-patch") && error.contains("limit of 5"),
        "{error}"
    );
    let ok = patch_item(Value::Array(vec![test; 5])).to_string();
    assert_eq!(post_publish(proxy.publish, &[], ok.as_bytes()).status, 200);
}
