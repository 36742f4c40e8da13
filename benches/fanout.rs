//! In-memory fan-out: one published item handed to N local subscribers of one channel (queue
//! push of a shared `Bytes` per subscriber, no sockets), and the publish path from JSON body to
//! the encoded, shared WebSocket frame.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use holdfast::config::Config;
use holdfast::hub::delivery::Delivery;
use holdfast::hub::inbox::Inbox;
use holdfast::origin::targets::RoutePlan;
use holdfast::proto::publish::{PublishLimits, parse_body};
use holdfast::routes::RouteTable;
use holdfast::runtime::Shared;
use holdfast::runtime::conns::Sink;
use holdfast::runtime::fanout;
use holdfast::runtime::worker::Worker;

fn worker() -> Worker {
    let mut config = Config::default();
    config.hold.outbox_bytes_max = usize::MAX / 2;
    config.hold.outbox_hard_bytes_max = usize::MAX / 2;
    config.hold.outbox_bytes_max_per_worker = usize::MAX / 2;
    let shared = Arc::new(Shared {
        initial: holdfast::runtime::settings::Settings {
            config: config.clone(),
            routes: RoutePlan::resolve(RouteTable::default()).expect("empty routes"),
            tls: None,
            origin_tls: None,
        },
        config,
        inboxes: vec![Arc::new(Inbox::new(1))],
        commands: vec![Arc::default()],
        metrics: vec![Arc::default()],
        publish_metrics: Arc::default(),
        admission: holdfast::runtime::admission::Admission::new(0, 0),
        cluster: None,
        zmq: None,
    });
    Worker::new(0, shared)
}

fn delivery(format: &str) -> Arc<Delivery> {
    let body = format!(r#"{{"items":[{{"channel":"bench","formats":{{{format}}}}}]}}"#);
    let items = parse_body(body.as_bytes(), &PublishLimits::default()).expect("valid body");
    let item = items.into_iter().next().expect("one item");
    Arc::new(Delivery::encode(item, 1))
}

fn fan_out(c: &mut Criterion) {
    let payload = "x".repeat(64);
    let ws = delivery(&format!(r#""ws-message":{{"content":"{payload}"}}"#));
    let stream = delivery(&format!(r#""http-stream":{{"content":"{payload}"}}"#));
    let mut g = c.benchmark_group("fanout");
    for n in [1_000usize, 10_000] {
        let w = worker();
        // fd -1: nothing is ever written; this measures the per-subscriber user-space cost.
        let ids: Vec<_> = (0..n).map(|_| w.conns.borrow_mut().insert(-1)).collect();
        for (i, id) in ids.iter().enumerate() {
            let sink = if i % 2 == 0 {
                Sink::WebSocket
            } else {
                Sink::Stream { chunked: true }
            };
            w.subscribe(*id, &["bench".to_string()], sink);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("deliver_64B", n), &n, |b, _| {
            b.iter(|| {
                fanout::deliver(&w, black_box(&ws));
                fanout::deliver(&w, black_box(&stream));
                for id in &ids {
                    if let Some(slot) = w.conns.borrow_mut().get_mut(*id) {
                        slot.outbox.clear();
                        slot.dirty = false;
                    }
                }
            })
        });
    }
    g.finish();
}

fn publish_to_frame(c: &mut Criterion) {
    let body = br#"{"items":[{"channel":"room-42","id":"17","formats":{"ws-message":{"content":"{\"n\":17,\"text\":\"hello world, a short chat message\"}"}}}]}"#;
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_to_ws_frame", |b| {
        b.iter(|| {
            let items = parse_body(black_box(body), &PublishLimits::default()).unwrap_or_default();
            for item in items {
                black_box(Delivery::encode(item, 1));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, fan_out, publish_to_frame);
criterion_main!(benches);
