//! WebSocket opening handshake: `validate_handshake` on arbitrary header sets.
//!
//! Header names come mostly from the handshake's own (in any letter case) so that the fuzzer
//! reaches the checks behind `Upgrade`/`Connection`; values are arbitrary bytes or near-valid ones.
//! Properties: no panic; an accepted handshake is a GET over HTTP/1.1 that asks for an upgrade,
//! with version 13, a key that is base64 of exactly 16 bytes, protocols that are non-empty tokens;
//! the result does not depend on header order (beyond the order of protocols and extensions);
//! headers other than the handshake's never change it; `accept_key` is base64 of 20 bytes; the 101
//! response parses back as an HTTP/1.1 101 with that accept key, the protocol and every extra
//! header that holds no line break.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::http1::{HeadLimits, Parsed, header_value, parse_response};
use holdfast::proto::ws::{
    HandshakeError, accept_key, is_upgrade_request, response_101, validate_handshake,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    get: bool,
    http11: bool,
    headers: Vec<(Name, Value)>,
    extra: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known { which: u8, case: u64 },
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    /// A valid-looking key: base64 of these 16 bytes.
    Key([u8; 16]),
    Thirteen,
    Words(Vec<u8>),
}

const KNOWN: [&str; 7] = [
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Host",
];
const WORDS: [&str; 8] = [
    "websocket",
    "WebSocket",
    "upgrade",
    "Upgrade",
    "keep-alive",
    ",",
    " ",
    "13",
];

fn name(n: &Name) -> String {
    match n {
        Name::Known { which, case } => KNOWN[usize::from(*which) % KNOWN.len()]
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        Name::Other(s) => text(s),
    }
}

fn value(v: &Value) -> Vec<u8> {
    match v {
        Value::Raw(b) => b.clone(),
        Value::Key(k) => base64_std(k).into_bytes(),
        Value::Thirteen => b"13".to_vec(),
        Value::Words(w) => w
            .iter()
            .map(|&i| WORDS[usize::from(i) % WORDS.len()])
            .collect::<String>()
            .into_bytes(),
    }
}

/// Plain base64 with padding, written out here so the check does not trust the code under test.
fn base64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decoded_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    if pad > 2 || !bytes[..bytes.len() - pad].iter().all(alphabet) {
        return None;
    }
    Some(bytes.len() / 4 * 3 - pad)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn outcome(
    r: &Result<holdfast::proto::ws::Handshake, HandshakeError>,
) -> Result<(String, u8), HandshakeError> {
    r.as_ref()
        .map(|h| (h.key.clone(), h.version))
        .map_err(|e| *e)
}

fuzz_target!(|input: Input| {
    let method = if input.get { "GET" } else { "POST" };
    let owned: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .map(|(n, v)| (name(n), value(v)))
        .collect();
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let result = validate_handshake(method, input.http11, headers.iter().copied());
    if let Err(e) = &result {
        assert!(matches!(e.status(), 400 | 426));
    }

    // Order does not matter, and neither do headers the handshake does not read.
    let reversed: Vec<(&str, &[u8])> = headers.iter().rev().copied().collect();
    let again = validate_handshake(method, input.http11, reversed.iter().copied());
    assert_eq!(outcome(&result), outcome(&again));
    let relevant: Vec<(&str, &[u8])> = headers
        .iter()
        .copied()
        .filter(|(n, _)| KNOWN[..6].iter().any(|k| k.eq_ignore_ascii_case(n)))
        .collect();
    let filtered = validate_handshake(method, input.http11, relevant.iter().copied());
    assert_eq!(result, filtered);

    let Ok(hs) = result else { return };
    assert!(input.get && input.http11);
    assert!(is_upgrade_request(headers.iter().copied()));
    assert_eq!(hs.version, 13);
    assert_eq!(hs.key.len(), 24);
    assert_eq!(base64_decoded_len(&hs.key), Some(16), "key {:?}", hs.key);
    assert!(
        hs.protocols.iter().all(|p| is_token(p)),
        "{:?}",
        hs.protocols
    );
    assert!(
        hs.extensions
            .iter()
            .all(|e| !e.is_empty() && e.as_bytes().trim_ascii() == e.as_bytes())
    );

    let accept = accept_key(&hs.key);
    assert_eq!(accept.len(), 28);
    assert_eq!(base64_decoded_len(&accept), Some(20));
    let protocol = hs.protocols.first().map(String::as_str);
    let extra_owned: Vec<(String, &[u8])> = input
        .extra
        .iter()
        .map(|(n, v)| (text(n), v.as_slice()))
        .collect();
    let extra: Vec<(&str, &[u8])> = extra_owned
        .iter()
        .filter(|(n, v)| is_token(n) && v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .map(|(n, v)| (n.as_str(), v.trim_ascii()))
        .collect();
    // A header that would break a line fails the whole head: nothing of it is written.
    let breaking: Vec<(&str, &[u8])> = extra_owned
        .iter()
        .map(|(n, v)| (n.as_str(), *v))
        .filter(|(n, v)| n.contains(['\r', '\n']) || v.contains(&b'\r') || v.contains(&b'\n'))
        .collect();
    if !breaking.is_empty() {
        let all: Vec<(&str, &[u8])> = extra.iter().chain(&breaking).copied().collect();
        assert!(response_101(&accept, protocol, &all).is_err());
    }
    let head = response_101(&accept, protocol, &extra).expect("valid headers encode");
    let limits = HeadLimits {
        bytes_max: usize::MAX,
        headers_max: 4 + extra.len(),
    };
    let Ok(Parsed::Complete(resp, used)) = parse_response(&head, limits, "GET") else {
        panic!("101 does not parse: {:?}", String::from_utf8_lossy(&head));
    };
    assert_eq!(used, head.len());
    assert_eq!(resp.code, 101);
    assert_eq!(
        header_value(&resp.headers, "sec-websocket-accept"),
        Some(accept.as_bytes())
    );
    if let Some(p) = protocol {
        assert_eq!(resp.headers[3].name, "Sec-WebSocket-Protocol");
        assert_eq!(resp.headers[3].value, p.as_bytes());
    }
    let kept: Vec<(&str, &[u8])> = extra
        .iter()
        .copied()
        .filter(|(n, v)| !n.contains(['\r', '\n']) && !v.contains(&b'\r') && !v.contains(&b'\n'))
        .collect();
    let skip = 3 + usize::from(protocol.is_some());
    assert_eq!(resp.headers.len(), skip + kept.len());
    for (h, (n, v)) in resp.headers[skip..].iter().zip(kept) {
        assert_eq!((h.name.as_str(), h.value.as_slice()), (n, v));
    }
});

/// Fuzzer bytes as text. `String` fields are avoided in the input types: `arbitrary` reads their
/// lengths from the end of the input, which makes seed files hard to write by hand.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
