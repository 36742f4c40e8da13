//! ZeroMQ messages: `tnetstring::decode`/`encode`, `zmq::parse_item_message` (PULL and SUB),
//! `zmq::parse_request` and `parse_publish_args` (the command socket), on arbitrary bytes.
//!
//! Properties: no panic; a decoded tnetstring re-encodes to bytes that decode to the same value;
//! an accepted item keeps the HTTP API's guarantees (channel and ids pass `names`, content within
//! its limit); a `J` + JSON object item gives exactly what the HTTP API gives for that object;
//! on the SUB socket a non-empty channel part is the item's channel.
#![no_main]
use holdfast::proto::names::{self, NameLimits};
use holdfast::proto::publish::{PublishLimits, parse_body};
use holdfast::proto::{tnetstring, zmq};
use libfuzzer_sys::fuzz_target;

const TIGHT: PublishLimits = PublishLimits {
    items_max: 2,
    names: NameLimits {
        channel_bytes_max: 8,
        id_bytes_max: 4,
        meta_value_bytes_max: 8,
    },
    content_bytes_max: 16,
    body_patch_ops_max: 2,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = tnetstring::decode(data) {
        let again = tnetstring::to_vec(&value);
        assert_eq!(tnetstring::decode(&again).as_ref(), Ok(&value), "round trip");
        if let Ok(req) = zmq::parse_request(data) {
            for limits in [PublishLimits::default(), TIGHT] {
                if let Ok(items) = zmq::parse_publish_args(&req.args, &limits) {
                    assert!(items.len() <= limits.items_max);
                    items.iter().for_each(|i| check(i, &limits));
                }
            }
        }
    }
    for limits in [PublishLimits::default(), TIGHT] {
        if let Ok(item) = zmq::parse_item_message(data, None, &limits) {
            check(&item, &limits);
        }
        // The SUB socket: the first byte's worth of input as the channel part.
        let (channel, rest) = data.split_at(data.len().min(3));
        if let Ok(item) = zmq::parse_item_message(rest, Some(channel), &limits) {
            check(&item, &limits);
            if !channel.is_empty() {
                assert_eq!(item.channel.as_bytes(), channel);
            }
        }
        json_is_the_http_apis(data, &limits);
    }
});

fn check(item: &holdfast::proto::publish::Item, limits: &PublishLimits) {
    assert!(names::check_channel(&item.channel, &limits.names).is_ok());
    for id in [&item.id, &item.prev_id].into_iter().flatten() {
        assert!(names::check_id(id, &limits.names).is_ok(), "{id:?}");
    }
    let max = limits.content_bytes_max;
    assert!(item.http_stream.as_ref().is_none_or(|s| s.content.len() <= max));
    assert!(item.ws_message.as_ref().is_none_or(|w| w.content.len() <= max));
    let body = item.http_response.as_ref().and_then(|r| r.body.as_ref());
    assert!(body.is_none_or(|b| b.len() <= max));
}

/// `J` + a JSON object is parsed exactly as that object in a publish body.
fn json_is_the_http_apis(data: &[u8], limits: &PublishLimits) {
    let Some(json) = data.strip_prefix(b"J") else {
        return;
    };
    let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_slice(json) else {
        return;
    };
    // serde_json may read a re-serialised float one ulp off (see publish_body).
    if has_float(&value) {
        return;
    }
    let body = serde_json::json!({ "items": [value] }).to_string();
    let http = parse_body(body.as_bytes(), limits).map(|mut items| items.remove(0));
    let zmq = zmq::parse_item_message(data, None, limits);
    assert_eq!(zmq.ok(), http.ok());
}

fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(a) => a.iter().any(has_float),
        serde_json::Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
