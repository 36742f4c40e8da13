//! Prometheus metrics.
//!
//! Each worker owns one [`WorkerMetrics`] and is the only writer of it (relaxed atomics: no lock,
//! no cache line written by two cores); the publish listener reads them all to render
//! `GET /metrics` in the Prometheus text format. Names follow the conventions: `holdfast_*_total`
//! for counters, `_seconds` for durations.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the publish → write latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram with fixed buckets, written by one thread.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

/// One worker's counters and gauges.
#[derive(Default)]
pub struct WorkerMetrics {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Client request heads read (Pushpin's `request_received`).
    pub requests: AtomicU64,
    /// Open connections integrated over time, sampled every timer tick (Pushpin's
    /// `connection_minute`, in milliseconds).
    pub connection_ms: AtomicU64,
    /// TLS handshakes completed, and failed (bad client hello, timeout, closed midway).
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Open client connections, and those held by kind.
    pub connections: AtomicU64,
    pub held_stream: AtomicU64,
    pub held_response: AtomicU64,
    pub websockets: AtomicU64,
    pub subscriptions: AtomicU64,
    pub channels: AtomicU64,
    /// Messages queued to subscribers, and bytes written to them by the fan-out.
    pub delivered: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Subscribers cut by the slow-consumer policy, by reason (`slow_consumer::Reason` order:
    /// stalled, hard cap, worker budget).
    pub slow_consumer_cuts: [AtomicU64; 3],
    /// Messages not queued for a subscriber past its soft limit (`drop_messages`).
    pub slow_consumer_dropped: AtomicU64,
    /// Bytes queued in all of the worker's outboxes (sampled after each flush pass and tick).
    pub outbox_bytes: AtomicU64,
    pub origin_requests: AtomicU64,
    pub origin_errors: AtomicU64,
    /// Pooled origin connections closed at reuse because bytes or an EOF had arrived unasked.
    pub origin_pool_unquiet: AtomicU64,
    /// Heads the validating encoder refused (a control character or bad name from a client,
    /// origin, publisher or peer): each became an error status instead of bytes on the wire.
    pub heads_refused: AtomicU64,
    /// Request bodies cut off by `http.body_timeout_ms` or the pause between reads (408).
    pub body_timeouts: AtomicU64,
    /// Per-subscriber content over its limit: a `body-patch` result over
    /// `publish.body_patch_bytes_max` (sent empty), a `var-subst`/`build-id` output over
    /// `grip.filter_output_bytes_max` (not sent).
    pub patch_over_limit: AtomicU64,
    pub filter_over_limit: AtomicU64,
    /// Items waiting in the inbox (sampled when the worker drains it).
    pub inbox_depth: AtomicU64,
    /// From the publish listener accepting an item to the worker having written it out.
    pub publish_to_write: Histogram,
}

impl WorkerMetrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn dec(gauge: &AtomicU64) {
        // Saturating: a gauge never wraps below zero even if a decrement were doubled.
        let _ = gauge.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }

    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Relaxed);
    }
}

/// Counters of the publish listener.
#[derive(Default)]
pub struct PublishMetrics {
    pub requests: AtomicU64,
    pub items: AtomicU64,
    pub rejected: AtomicU64,
    pub unauthorized: AtomicU64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A per-worker metric: one sample per worker, labelled.
fn per_worker(
    out: &mut String,
    workers: &[&WorkerMetrics],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&WorkerMetrics) -> &AtomicU64,
) {
    family(out, name, kind, help);
    for (i, w) in workers.iter().enumerate() {
        let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", value(w).load(Relaxed));
    }
}

fn connections(out: &mut String, workers: &[&WorkerMetrics]) {
    let name = "holdfast_connections";
    family(out, name, "gauge", "Open client connections by kind.");
    for (i, w) in workers.iter().enumerate() {
        let open = w.connections.load(Relaxed);
        let stream = w.held_stream.load(Relaxed);
        let response = w.held_response.load(Relaxed);
        let ws = w.websockets.load(Relaxed);
        let http = open.saturating_sub(stream + response + ws);
        for (kind, v) in [
            ("http", http),
            ("stream", stream),
            ("response", response),
            ("websocket", ws),
        ] {
            let _ = writeln!(out, "{name}{{worker=\"{i}\",kind=\"{kind}\"}} {v}");
        }
    }
}

/// Open connections integrated over time (Pushpin's `connection_minute`, here in seconds).
fn connection_seconds(out: &mut String, workers: &[&WorkerMetrics]) {
    let name = "holdfast_connection_seconds_total";
    family(
        out,
        name,
        "counter",
        "Seconds client connections have been open, summed over connections.",
    );
    for (i, w) in workers.iter().enumerate() {
        let secs = w.connection_ms.load(Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {secs}");
    }
}

fn content_over_limit(out: &mut String, workers: &[&WorkerMetrics]) {
    let name = "holdfast_content_over_limit_total";
    family(
        out,
        name,
        "counter",
        "Per-subscriber content over its size limit: body-patch results (sent empty), \
         var-subst/build-id output (not sent).",
    );
    for (i, w) in workers.iter().enumerate() {
        for (kind, v) in [
            ("body_patch", &w.patch_over_limit),
            ("filter", &w.filter_over_limit),
        ] {
            let v = v.load(Relaxed);
            let _ = writeln!(out, "{name}{{worker=\"{i}\",kind=\"{kind}\"}} {v}");
        }
    }
}

fn slow_consumers(out: &mut String, workers: &[&WorkerMetrics]) {
    use crate::hub::slow_consumer::Reason;
    let name = "holdfast_slow_consumer_cuts_total";
    family(
        out,
        name,
        "counter",
        "Subscribers cut by the slow-consumer policy, by reason.",
    );
    for (i, w) in workers.iter().enumerate() {
        for (reason, v) in Reason::ALL.iter().zip(&w.slow_consumer_cuts) {
            let reason = reason.as_str();
            let v = v.load(Relaxed);
            let _ = writeln!(out, "{name}{{worker=\"{i}\",reason=\"{reason}\"}} {v}");
        }
    }
    per_worker(
        out,
        workers,
        "holdfast_slow_consumer_dropped_messages_total",
        "counter",
        "Messages not sent to a subscriber past its soft limit (slow_consumer = drop_messages).",
        |m| &m.slow_consumer_dropped,
    );
    per_worker(
        out,
        workers,
        "holdfast_outbox_bytes",
        "gauge",
        "Bytes queued for subscribers, counted per subscriber.",
        |m| &m.outbox_bytes,
    );
}

fn histogram(out: &mut String, workers: &[&WorkerMetrics]) {
    let name = "holdfast_publish_to_write_seconds";
    family(
        out,
        name,
        "histogram",
        "From a publish being accepted to its bytes being written, per worker.",
    );
    for (i, w) in workers.iter().enumerate() {
        let h = &w.publish_to_write;
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{i}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{worker=\"{i}\",le=\"+Inf\"}} {count}");
        let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{worker=\"{i}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{worker=\"{i}\"}} {count}");
    }
}

/// Renders every metric in the Prometheus text format.
pub fn render(workers: &[&WorkerMetrics], publish: &PublishMetrics) -> String {
    let mut out = String::with_capacity(4096);
    connections(&mut out, workers);
    let w = workers;
    per_worker(
        &mut out,
        w,
        "holdfast_accepted_connections_total",
        "counter",
        "Client connections accepted.",
        |m| &m.accepted,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_requests_received_total",
        "counter",
        "Client requests read (HTTP requests and WebSocket handshakes).",
        |m| &m.requests,
    );
    connection_seconds(&mut out, w);
    per_worker(
        &mut out,
        w,
        "holdfast_rejected_connections_total",
        "counter",
        "Client connections refused at the connection limit.",
        |m| &m.rejected,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_tls_handshakes_total",
        "counter",
        "TLS handshakes completed on the TLS listeners.",
        |m| &m.tls_handshakes,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or timed out.",
        |m| &m.tls_handshake_failures,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_subscriptions",
        "gauge",
        "Channel subscriptions held.",
        |m| &m.subscriptions,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_channels",
        "gauge",
        "Channels with at least one subscriber.",
        |m| &m.channels,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_messages_delivered_total",
        "counter",
        "Published messages queued to subscribers.",
        |m| &m.delivered,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_delivered_bytes_total",
        "counter",
        "Bytes written to subscribers by the fan-out.",
        |m| &m.bytes_written,
    );
    slow_consumers(&mut out, w);
    per_worker(
        &mut out,
        w,
        "holdfast_origin_requests_total",
        "counter",
        "Requests sent to origins.",
        |m| &m.origin_requests,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_origin_errors_total",
        "counter",
        "Origin requests that failed.",
        |m| &m.origin_errors,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_origin_pool_unquiet_total",
        "counter",
        "Pooled origin connections closed at reuse: bytes or EOF had arrived unasked.",
        |m| &m.origin_pool_unquiet,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_heads_refused_total",
        "counter",
        "HTTP heads refused by the validating encoder (control characters, bad names).",
        |m| &m.heads_refused,
    );
    per_worker(
        &mut out,
        w,
        "holdfast_request_body_timeouts_total",
        "counter",
        "Request bodies not received in time (408).",
        |m| &m.body_timeouts,
    );
    content_over_limit(&mut out, workers);
    per_worker(
        &mut out,
        w,
        "holdfast_inbox_depth",
        "gauge",
        "Published items waiting in the worker's inbox.",
        |m| &m.inbox_depth,
    );
    histogram(&mut out, workers);
    for (name, help, v) in [
        (
            "holdfast_publish_requests_total",
            "Publish API requests.",
            &publish.requests,
        ),
        (
            "holdfast_publishes_received_total",
            "Items accepted by the publish API.",
            &publish.items,
        ),
        (
            "holdfast_publish_rejected_total",
            "Publish requests refused as invalid.",
            &publish.rejected,
        ),
        (
            "holdfast_publish_unauthorized_total",
            "Publish requests refused for authentication.",
            &publish.unauthorized,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", v.load(Relaxed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_a_cumulative_histogram() {
        let w = WorkerMetrics::default();
        WorkerMetrics::add(&w.connections, 5);
        WorkerMetrics::add(&w.held_stream, 2);
        WorkerMetrics::inc(&w.websockets);
        WorkerMetrics::add(&w.delivered, 7);
        w.publish_to_write.observe(Duration::from_micros(300));
        w.publish_to_write.observe(Duration::from_millis(20));
        let p = PublishMetrics::default();
        WorkerMetrics::inc(&p.items);
        let text = render(&[&w], &p);
        assert!(
            text.contains("holdfast_connections{worker=\"0\",kind=\"http\"} 2"),
            "{text}"
        );
        assert!(text.contains("holdfast_connections{worker=\"0\",kind=\"stream\"} 2"));
        assert!(text.contains("holdfast_messages_delivered_total{worker=\"0\"} 7"));
        assert!(
            text.contains("holdfast_publish_to_write_seconds_bucket{worker=\"0\",le=\"0.0005\"} 1")
        );
        assert!(
            text.contains("holdfast_publish_to_write_seconds_bucket{worker=\"0\",le=\"0.025\"} 2")
        );
        assert!(text.contains("holdfast_publish_to_write_seconds_count{worker=\"0\"} 2"));
        assert!(text.contains("holdfast_publishes_received_total 1"));
        WorkerMetrics::add(&w.connection_ms, 90_500);
        WorkerMetrics::inc(&w.requests);
        let text = render(&[&w], &p);
        assert!(text.contains("holdfast_connection_seconds_total{worker=\"0\"} 90.5"));
        assert!(text.contains("holdfast_requests_received_total{worker=\"0\"} 1"));
        assert!(text.contains("# TYPE holdfast_origin_errors_total counter"));
        assert!(text.contains(
            "holdfast_slow_consumer_cuts_total{worker=\"0\",reason=\"worker_budget\"} 0"
        ));
    }

    #[test]
    fn gauges_do_not_wrap() {
        let g = AtomicU64::new(0);
        WorkerMetrics::dec(&g);
        assert_eq!(g.load(Relaxed), 0);
    }
}
