//! Publish API body (`POST /publish/`): `publish::parse_body` on arbitrary bytes, then the hub's
//! one-time encoding of each accepted item.
//!
//! Properties: no panic; under default and under tight limits, accepted items keep the documented
//! guarantees (item count, channel non-empty and within its byte limit, content within its limit,
//! WebSocket text is UTF-8, ping/pong fit a control frame, close codes are sendable and reasons
//! fit, HTTP codes are 100..=999, header names are tokens and values and reasons hold no control
//! characters); the result does not depend on how the JSON is written; and what the hub encodes
//! decodes back: a WebSocket frame read by a client-role `Session` is the published message, a
//! stream chunk read by the chunked decoder is the published content.
#![no_main]
use holdfast::hub::delivery::{Delivery, StreamPayload, WsPayload};
use holdfast::proto::http1::ChunkedDecoder;
use holdfast::proto::names::{self, NameLimits};
use holdfast::proto::publish::{
    Item, PublishLimits, ResponseAction, StreamAction, WsAction, WsMessageKind, parse_body,
};
use holdfast::proto::ws::{
    CLOSE_NORMAL, CLOSE_REASON_BYTES_MAX, CONTROL_PAYLOAD_MAX, Message, Session, SessionLimits,
    is_valid_close_code,
};
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
    let value = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .filter(|v| !has_float(v));
    for limits in [PublishLimits::default(), TIGHT] {
        let result = parse_body(data, &limits);
        if let Some(value) = &value {
            let rewritten = serde_json::to_vec(value).expect("a Value serialises");
            assert_eq!(
                result,
                parse_body(&rewritten, &limits),
                "same JSON, different result"
            );
        }
        let Ok(items) = result else { continue };
        assert!(items.len() <= limits.items_max);
        for (seq, item) in items.into_iter().enumerate() {
            check_item(&item, &limits);
            check_delivery(item, seq as u64);
        }
    }
});

fn no_ctl(s: &str) -> bool {
    !s.chars().any(|c| c.is_ascii_control() && c != '\t')
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_item(item: &Item, limits: &PublishLimits) {
    assert!(names::check_channel(&item.channel, &limits.names).is_ok());
    for id in [&item.id, &item.prev_id].into_iter().flatten() {
        assert!(names::check_id(id, &limits.names).is_ok(), "{id:?}");
    }
    if let Some(r) = &item.http_response {
        assert!(r.code.is_none_or(|c| (100..=999).contains(&c)));
        assert!(
            r.reason
                .as_deref()
                .is_none_or(|s| !s.is_empty() && no_ctl(s))
        );
        for (name, value) in &r.headers {
            assert!(is_token(name), "header name {name:?}");
            assert!(no_ctl(value), "header value {value:?}");
        }
        assert!(
            r.body
                .as_ref()
                .is_none_or(|b| b.len() <= limits.content_bytes_max)
        );
        if r.action == ResponseAction::Hint {
            assert!(r.body.is_none() && r.body_patch.is_none() && r.headers.is_empty());
        } else {
            assert!(
                r.body.is_some() != r.body_patch.is_some(),
                "exactly one of body, body-patch"
            );
        }
    }
    if let Some(s) = &item.http_stream {
        assert!(s.content.len() <= limits.content_bytes_max);
        if s.action != StreamAction::Send {
            assert!(s.content.is_empty());
        }
    }
    if let Some(w) = &item.ws_message {
        assert!(w.content.len() <= limits.content_bytes_max);
        match w.action {
            WsAction::Send => match w.kind {
                WsMessageKind::Text => assert!(std::str::from_utf8(&w.content).is_ok()),
                WsMessageKind::Ping | WsMessageKind::Pong => {
                    assert!(w.content.len() <= CONTROL_PAYLOAD_MAX)
                }
                WsMessageKind::Binary => {}
            },
            WsAction::Close => {
                assert!(
                    w.close_code.is_none_or(is_valid_close_code),
                    "{:?}",
                    w.close_code
                );
                let reason = w.close_reason.as_deref();
                assert!(reason.is_none_or(|r| !r.is_empty() && r.len() <= CLOSE_REASON_BYTES_MAX));
            }
            WsAction::Refresh => {}
        }
        if w.action != WsAction::Send {
            assert!(w.content.is_empty());
        }
    }
}

fn check_delivery(item: Item, seq: u64) {
    let stream = item.http_stream.clone();
    let ws = item.ws_message.clone();
    let channel = item.channel.clone();
    let delivery = Delivery::encode(item, seq);
    assert_eq!(&*delivery.channel, channel);
    assert_eq!(delivery.seq, seq);
    if let (Some(StreamPayload::Send { raw, chunked }), Some(s)) = (&delivery.stream, &stream) {
        assert_eq!(raw.as_ref(), s.content.as_slice());
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let p = dec
            .decode(chunked, &mut out)
            .expect("a published chunk decodes");
        assert_eq!((p.consumed, p.done), (chunked.len(), false));
        assert_eq!(out, s.content);
        assert_eq!(delivery.stream_len(), chunked.len());
    }
    let (Some(payload), Some(w)) = (&delivery.ws, &ws) else {
        return;
    };
    let (frame, want) = match payload {
        WsPayload::Send(frame) => {
            let content = w.content.clone();
            let message = match w.kind {
                WsMessageKind::Text => Message::Text(content),
                WsMessageKind::Binary => Message::Binary(content),
                WsMessageKind::Ping => Message::Ping(content),
                WsMessageKind::Pong => Message::Pong(content),
            };
            (frame, message)
        }
        WsPayload::Close(frame) => {
            let code = match (w.close_code, &w.close_reason) {
                (Some(c), _) => Some(c),
                (None, Some(_)) => Some(CLOSE_NORMAL),
                (None, None) => None,
            };
            let reason = w.close_reason.clone().unwrap_or_default();
            (frame, Message::Close { code, reason })
        }
        WsPayload::Refresh => return,
    };
    // Read as the client would: unmasked server frames.
    let mut session = Session::new(SessionLimits {
        require_mask: false,
        message_bytes_max: usize::MAX,
    });
    let mut buf = frame.to_vec();
    assert_eq!(session.decode(&mut buf), Ok((buf.len(), Some(want))));
}

/// serde_json (without `float_roundtrip`) may read a re-serialised float one ulp off, so the
/// "same JSON" comparison is made only for documents without floats.
fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(a) => a.iter().any(has_float),
        serde_json::Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
