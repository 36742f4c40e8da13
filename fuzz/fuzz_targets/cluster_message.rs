//! A message from another holdfast node over NATS (`cluster::wire`), and channel subjects
//! (`cluster::subject`), on arbitrary bytes.
//!
//! Properties: no panic; a header that decodes has a non-empty node and its body follows the
//! header line; every item the body yields survives `wire::publish_body` unchanged (what a node
//! sends is what the other nodes deliver); a subject made from a channel gives the channel back,
//! and any subject decodes to at most one channel.
#![no_main]
use holdfast::cluster::{subject, wire};
use holdfast::proto::publish::{PublishLimits, parse_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, body)) = wire::decode(data) {
        assert!(!header.node.is_empty());
        assert!(data.ends_with(body));
        if let Ok(items) = parse_body(body, &PublishLimits::default()) {
            for item in items {
                // serde_json may read a re-serialised float one ulp off (see publish_body).
                if item
                    .http_response
                    .as_ref()
                    .and_then(|r| r.body_patch.as_ref())
                    .is_some_and(has_float)
                {
                    continue;
                }
                let again = parse_body(&wire::publish_body(&item), &PublishLimits::default())
                    .expect("a re-encoded item parses");
                assert_eq!(again, vec![item]);
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    if !text.is_empty() {
        let s = subject::for_channel("holdfast", &text);
        assert_eq!(subject::channel_of("holdfast", &s).as_deref(), Some(&*text));
    }
    let _ = subject::channel_of("holdfast", &text);
});

fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(a) => a.iter().any(has_float),
        serde_json::Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
