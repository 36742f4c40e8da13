//! GRIP instructions from an `application/grip-instruct` body: `grip::from_json` on arbitrary bytes.
//!
//! Properties: no panic; an accepted body always has a `response`, non-empty channel names, at most
//! `channels_max` channels and `FILTERS_MAX` filters each, no empty `prev-id`, a hold timeout of at
//! least 5 s, a keep-alive timeout of at least 1 s, a response code in 100..=999, response headers
//! whose names are tokens and whose values hold no CR, LF or NUL (no response splitting); the result
//! does not depend on how the JSON is written (re-serialised JSON gives the same); and merging it
//! into header instructions keeps the channel limit and takes the JSON's response.
#![no_main]
use holdfast::proto::grip::{
    FILTERS_MAX, GripLimits, Instruct, MIN_RESPONSE_TIMEOUT_SECS, from_headers, from_json,
};
use holdfast::proto::http1::{HeadWriter, Version};
use holdfast::proto::names;
use libfuzzer_sys::fuzz_target;

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let channels_max = usize::from(data.first().copied().unwrap_or(0) % 8);
    let limits = GripLimits {
        channels_max,
        ..GripLimits::default()
    };
    let result = from_json(data, &limits);
    if let Some(value) = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .filter(|v| !has_float(v))
    {
        let rewritten = serde_json::to_vec(&value).expect("a Value serialises");
        let again = from_json(&rewritten, &limits);
        assert_eq!(format!("{result:?}"), format!("{again:?}"));
    }
    let Ok(json) = result else { return };
    check(&json, &limits);
    let headers = [
        ("Grip-Hold", &b"stream"[..]),
        ("Grip-Channel", &b"a, b, c, d, e"[..]),
        ("Grip-Status", &b"299 Custom"[..]),
    ];
    let mut merged: Instruct = from_headers(headers, &limits).expect("fixed headers parse");
    let header_hold = merged.hold;
    let header_status = merged.status.clone();
    merged.merge_json(json.clone(), &limits);
    assert!(merged.channels.len() <= channels_max);
    assert_eq!(merged.response, json.response);
    assert_eq!(merged.hold, json.hold.or(header_hold));
    assert_eq!(
        merged.status, header_status,
        "status comes only from headers"
    );
});

fn check(i: &Instruct, limits: &GripLimits) {
    assert!(i.channels.len() <= limits.channels_max);
    for c in &i.channels {
        assert!(!c.name.is_empty());
        assert!(c.filters.len() <= FILTERS_MAX);
        assert_ne!(c.prev_id.as_deref(), Some(""));
    }
    assert!(
        i.timeout_secs
            .is_none_or(|t| t >= MIN_RESPONSE_TIMEOUT_SECS)
    );
    if let Some(ka) = &i.keep_alive {
        assert!(ka.timeout_secs >= 1);
    }
    let response = i
        .response
        .as_ref()
        .expect("the JSON form always has a response");
    assert!(response.code.is_none_or(|c| (100..=999).contains(&c)));
    assert_ne!(response.reason.as_deref(), Some(""));
    // Whatever is accepted encodes: the client's status line and headers cannot be split.
    let mut head = HeadWriter::response(Version::Http11, response.code.unwrap_or(200), "", 0);
    if let Some(reason) = &response.reason {
        head = HeadWriter::response(Version::Http11, response.code.unwrap_or(200), reason, 0);
    }
    for (name, value) in &response.headers {
        assert!(is_token(name), "header name {name:?}");
        head.header(name, value);
    }
    assert!(head.finish().is_ok(), "accepted instructions do not encode");
    for c in &i.channels {
        assert!(names::check_channel(&c.name, &limits.names).is_ok());
        assert!(c.prev_id.as_deref().is_none_or(|p| names::check_id(p, &limits.names).is_ok()));
    }
    for (k, v) in &i.meta {
        assert!(names::check_meta_name(k, &limits.names).is_ok());
        assert!(names::check_meta_value(v, &limits.names).is_ok());
    }
    assert!(i.status.is_none() && i.next_link.is_none() && i.gone_link.is_none());
    assert!(i.expose_headers.is_empty());
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
