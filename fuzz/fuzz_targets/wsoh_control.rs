//! WebSocket-over-HTTP control side: `parse_control` (the JSON after `c:`), `grip_extension` (the
//! origin's `Sec-WebSocket-Extensions`), `classify_text`/`classify_binary`, and the steering
//! response headers.
//!
//! Properties: no panic; a parsed control message keeps the documented guarantees (channel and
//! meta names non-empty, a keep-alive has a timeout exactly when it has content, timeouts are
//! positive, an empty meta value deletes); control parsing does not depend on how the JSON is
//! written (re-serialised JSON parses the same); any message prefix written as a quoted
//! `message-prefix` parameter comes back from `grip_extension` unchanged, and bare `grip` gives
//! `m:`; classification splits the payload exactly at the prefix it names; a keep-alive interval
//! is at least 20 s.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::wsoh::{
    Control, DEFAULT_MESSAGE_PREFIX, KEEP_ALIVE_INTERVAL_MIN_SECS, OriginText, classify_binary,
    classify_text, content_bytes_accepted, grip_extension, keep_alive_interval, parse_control,
    set_meta_updates,
};
use holdfast::proto::names::{self, NameLimits};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    json: Vec<u8>,
    ext_values: Vec<Vec<u8>>,
    prefix: Vec<u8>,
    other_exts: Vec<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    check_control(&input.json);
    check_extension(&input);
    check_classify(&input.payload, &text(&input.prefix));
    let owned: Vec<(String, &[u8])> = input
        .headers
        .iter()
        .map(|(n, v)| (text(n), v.as_slice()))
        .collect();
    let headers: Vec<(&str, &[u8])> = owned.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    if let Some(Some(secs)) = keep_alive_interval(headers.iter().copied()) {
        assert!(secs >= KEEP_ALIVE_INTERVAL_MIN_SECS);
    }
    let _ = content_bytes_accepted(headers.iter().copied());
    for (name, value) in set_meta_updates(headers.iter().copied(), &NameLimits::default())
        .into_iter()
        .flatten()
    {
        assert!(names::check_meta_name(&name, &NameLimits::default()).is_ok());
        assert_ne!(value.as_deref(), Some(""));
        assert!(value.is_none_or(|v| names::check_meta_value(&v, &NameLimits::default()).is_ok()));
    }
});

fn check_control(json: &[u8]) {
    let limits = NameLimits::default();
    let result = parse_control(json, &limits);
    if let Some(value) = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .filter(|v| !has_float(v))
    {
        let rewritten = serde_json::to_vec(&value).expect("a Value serialises");
        assert_eq!(
            result,
            parse_control(&rewritten, &limits),
            "same JSON, different control"
        );
    }
    let Ok(control) = result else { return };
    match control {
        Control::Subscribe { channel, .. } | Control::Unsubscribe { channel } => {
            assert!(names::check_channel(&channel, &limits).is_ok())
        }
        Control::SetMeta { name, value } => {
            assert!(names::check_meta_name(&name, &limits).is_ok());
            assert_ne!(value.as_deref(), Some(""));
            assert!(value.is_none_or(|v| names::check_meta_value(&v, &limits).is_ok()));
        }
        Control::KeepAlive {
            content,
            timeout_secs,
            ..
        } => {
            assert_eq!(content.is_some(), timeout_secs.is_some());
            assert!(timeout_secs.is_none_or(|t| t > 0));
        }
        Control::SendDelayed { timeout_secs, .. } => assert!(timeout_secs > 0),
        Control::Detach
        | Control::Session { .. }
        | Control::Close { .. }
        | Control::FlushDelayed => {}
    }
}

/// `"..."` with `\` before `"` and `\`.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn check_extension(input: &Input) {
    let values: Vec<&[u8]> = input.ext_values.iter().map(Vec::as_slice).collect();
    if let Some(prefix) = grip_extension(&values) {
        // The prefix is lossy UTF-8 of the parameter, never longer than the header values.
        let total: usize = values.iter().map(|v| v.len()).sum();
        assert!(prefix.len() <= 3 * total);
    }
    // Extensions other than grip, without quotes or commas, before `grip; message-prefix="P"`.
    let prefix = text(&input.prefix);
    let other_exts: Vec<String> = input.other_exts.iter().map(|e| text(e)).collect();
    let others: Vec<&str> = other_exts
        .iter()
        .map(|e| e.as_str())
        .filter(|e| {
            !e.contains(['"', ','])
                && e.split(';').next().unwrap_or("").trim_matches(is_qt_space) != "grip"
        })
        .collect();
    let mut value = others.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    let bare = format!("{value}grip");
    assert_eq!(
        grip_extension(&[bare.as_bytes()]).as_deref(),
        Some(DEFAULT_MESSAGE_PREFIX)
    );
    let with = format!("{value}grip; message-prefix={}", quoted(&prefix));
    assert_eq!(
        grip_extension(&[with.as_bytes()]),
        Some(prefix.clone()),
        "{with:?}"
    );
    // The same as a second header value.
    let first = others.join(", ");
    let second = format!("grip; message-prefix={}", quoted(&prefix));
    assert_eq!(
        grip_extension(&[first.as_bytes(), second.as_bytes()]),
        Some(prefix)
    );
}

fn is_qt_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn check_classify(payload: &[u8], prefix: &str) {
    match classify_text(payload, prefix) {
        OriginText::Control(json) => {
            assert_eq!([b"c:".as_slice(), json].concat(), payload);
        }
        OriginText::Message(m) => {
            assert!(!payload.starts_with(b"c:"));
            assert_eq!([prefix.as_bytes(), m].concat(), payload);
        }
        OriginText::Dropped => {
            assert!(!payload.starts_with(b"c:") && !payload.starts_with(prefix.as_bytes()));
        }
    }
    match classify_binary(payload, prefix) {
        OriginText::Message(m) => assert_eq!([prefix.as_bytes(), m].concat(), payload),
        OriginText::Dropped => assert!(!payload.starts_with(prefix.as_bytes())),
        OriginText::Control(_) => panic!("a binary message is never a control message"),
    }
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

/// Fuzzer bytes as text. `String` fields are avoided in the input types: `arbitrary` reads their
/// lengths from the end of the input, which makes seed files hard to write by hand.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
