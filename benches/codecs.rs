//! Criterion benches of the sans-IO codecs on the hot paths: request heads, chunked bodies,
//! publish bodies to encoded deliveries.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holdfast::hub::delivery::Delivery;
use holdfast::proto::grip::{self, GripLimits};
use holdfast::proto::http1::{ChunkedDecoder, HeadLimits, HeadWriter, Parsed, parse_request};
use holdfast::proto::publish::{PublishLimits, parse_body};
use holdfast::proto::ws::{self, Opcode, Session, SessionLimits};
use std::hint::black_box;

const REQUEST: &[u8] = b"GET /sse?room=lobby HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nLast-Event-ID: 42\r\n\r\n";

fn http1(c: &mut Criterion) {
    let limits = HeadLimits {
        bytes_max: 16384,
        headers_max: 100,
    };
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("parse_request_head", |b| {
        b.iter(|| parse_request(black_box(REQUEST), limits))
    });
    // The validating encoder (every head holdfast writes), against the parse of the same head.
    let Ok(Parsed::Complete(head, _)) = parse_request(REQUEST, limits) else {
        panic!("the bench request parses");
    };
    g.bench_function("encode_request_head", |b| {
        b.iter(|| {
            let mut w = HeadWriter::request(&head.method, &head.target, 512);
            for h in &head.headers {
                w.header(&h.name, &h.value);
            }
            black_box(w.finish())
        })
    });
    let mut body = Vec::new();
    for _ in 0..64 {
        holdfast::proto::http1::encode_chunk(&mut body, &[b'x'; 1024]);
    }
    body.extend_from_slice(b"0\r\n\r\n");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_chunked_64k", |b| {
        let mut out = Vec::with_capacity(70_000);
        b.iter(|| {
            out.clear();
            ChunkedDecoder::new().decode(black_box(&body), &mut out)
        })
    });
    g.finish();
}

fn publish(c: &mut Criterion) {
    let body = br#"{"items":[{"channel":"test","id":"17","formats":{"http-stream":{"content":"data: {\"n\": 17, \"text\": \"hello world\"}\n\n"},"ws-message":{"content":"{\"n\": 17}"}}}]}"#;
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_and_encode_item", |b| {
        b.iter(|| {
            let items = parse_body(black_box(body), &PublishLimits::default()).unwrap_or_default();
            for item in items {
                black_box(Delivery::encode(item, 1));
            }
        })
    });
    g.finish();
}

fn websocket(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws");
    for size in [64usize, 16 * 1024] {
        let payload = vec![b'a'; size];
        let mut frames = Vec::new();
        for _ in 0..64 {
            ws::encode_frame(
                &mut frames,
                true,
                Opcode::Text,
                &payload,
                Some([1, 2, 3, 4]),
            );
        }
        g.throughput(Throughput::Bytes(frames.len() as u64));
        g.bench_function(format!("decode_masked_text_{size}B_x64"), |b| {
            let mut buf = frames.clone();
            b.iter(|| {
                buf.copy_from_slice(&frames);
                let mut s = Session::new(SessionLimits::default());
                let mut used = 0;
                while used < buf.len() {
                    match s.decode(&mut buf[used..]) {
                        Ok((0, _)) | Err(_) => break,
                        Ok((n, m)) => {
                            used += n;
                            black_box(m);
                        }
                    }
                }
            })
        });
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("encode_text_{size}B"), |b| {
            let mut out = Vec::with_capacity(size + 16);
            b.iter(|| {
                out.clear();
                ws::encode_frame(&mut out, true, Opcode::Text, black_box(&payload), None);
            })
        });
    }
    let mut data = vec![7u8; 64 * 1024];
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("apply_mask_64k", |b| {
        b.iter(|| ws::apply_mask(black_box(&mut data), [1, 2, 3, 4], 1))
    });
    g.finish();
}

fn grip_instructions(c: &mut Criterion) {
    let headers: Vec<(&str, &[u8])> = vec![
        ("Content-Type", b"text/event-stream"),
        ("Grip-Hold", b"stream"),
        (
            "Grip-Channel",
            b"room-42; prev-id=17, user-7; filter=skip-self",
        ),
        ("Grip-Keep-Alive", b":\\n\\n; format=cstring; timeout=20"),
        ("Grip-Set-Meta", b"user=alice"),
    ];
    let limits = GripLimits::default();
    let mut g = c.benchmark_group("grip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("from_headers_sse", |b| {
        b.iter(|| grip::from_headers(black_box(headers.iter().copied()), &limits))
    });
    g.finish();
}

criterion_group!(benches, http1, publish, websocket, grip_instructions);
criterion_main!(benches);
