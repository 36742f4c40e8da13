//! `GET /metrics` on the publish listener: the Prometheus text moves with what holdfast does.

mod common;

use std::time::Duration;

use common::*;

/// Sums every sample of a metric (over workers and labels) whose labels contain `label`.
fn sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metrics(proxy: &Proxy) -> String {
    let mut c = Client::connect(proxy.publish);
    let resp = c.get("/metrics");
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    resp.text()
}

#[test]
fn metrics_follow_connections_publishes_and_deliveries() {
    let origin = Origin::fixed(stream_hold("m", b"start\n"));
    let proxy = Proxy::to(&origin);
    let before = metrics(&proxy);
    assert_eq!(sum(&before, "holdfast_connections", "kind=\"stream\""), 0.0);
    let mut sub = proxy.subscribe("/", b"start\n");
    sub.set_timeout(Duration::from_secs(5));
    let held = metrics(&proxy);
    assert_eq!(sum(&held, "holdfast_connections", "kind=\"stream\""), 1.0);
    assert_eq!(sum(&held, "holdfast_subscriptions", ""), 1.0);
    assert_eq!(sum(&held, "holdfast_channels", ""), 1.0);
    for n in 0..3 {
        proxy.publish(&items(vec![stream_item("m", &format!("{n}\n"))]));
        assert_eq!(sub.next_text(), format!("{n}\n"));
    }
    let after = metrics(&proxy);
    assert_eq!(sum(&after, "holdfast_publishes_received_total", ""), 3.0);
    assert_eq!(sum(&after, "holdfast_messages_delivered_total", ""), 3.0);
    assert!(sum(&after, "holdfast_delivered_bytes_total", "") >= 3.0 * 6.0);
    assert!(sum(&after, "holdfast_origin_requests_total", "") >= 1.0);
    // Each worker observes each item once it has drained its inbox; the worker without the
    // subscriber may still be catching up.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut observed = sum(&after, "holdfast_publish_to_write_seconds_count", "");
    while observed < 6.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        observed = sum(
            &metrics(&proxy),
            "holdfast_publish_to_write_seconds_count",
            "",
        );
    }
    assert_eq!(observed, 6.0, "3 items x 2 workers");
    assert!(after.contains("# TYPE holdfast_publish_to_write_seconds histogram"));
    drop(sub);
    std::thread::sleep(Duration::from_millis(300));
    let gone = metrics(&proxy);
    assert_eq!(sum(&gone, "holdfast_connections", "kind=\"stream\""), 0.0);
    assert_eq!(sum(&gone, "holdfast_subscriptions", ""), 0.0);
}
