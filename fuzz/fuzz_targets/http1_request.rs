//! HTTP/1 head parsers over the same bytes, read as a client request and as an origin response.
//!
//! Properties: no panic; a complete head claims at least one and at most `bytes_max` of the given
//! bytes; the head is self-delimiting (parsing exactly its bytes gives the same result, and any
//! shorter prefix is "need more"); body framing follows RFC 9112 §6.3 (a request never reads until
//! close, a 1xx/204/304/HEAD response has no body, keep-alive never with a read-until-close body);
//! and re-encoding the parsed head parses back to the same head.
#![no_main]
use holdfast::proto::http1::{
    BodyKind, HeadLimits, HeadWriter, Parsed, RequestHead, ResponseHead, Version, header_value,
    parse_request, parse_response,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    bytes_max: 8192,
    headers_max: 64,
};

fuzz_target!(|data: &[u8]| {
    check_request(data);
    for method in ["GET", "HEAD"] {
        check_response(data, method);
    }
});

/// A cut point strictly inside `used`, derived from the input so every length gets exercised.
fn cut_inside(data: &[u8], used: usize) -> usize {
    let seed = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b.into()));
    seed % used
}

fn check_request(data: &[u8]) {
    let Ok(Parsed::Complete(head, used)) = parse_request(data, LIMITS) else {
        return;
    };
    assert!(used > 0 && used <= data.len() && used <= LIMITS.bytes_max);
    assert_ne!(
        head.body,
        BodyKind::UntilClose,
        "a request body never runs until close"
    );
    assert_ne!(
        head.body,
        BodyKind::Length(0),
        "an empty body is BodyKind::None"
    );
    if header_value(&head.headers, "transfer-encoding").is_some() {
        assert_eq!(head.body, BodyKind::Chunked);
    }
    // Self-delimiting: exactly the head's bytes parse the same; a shorter prefix needs more.
    match parse_request(&data[..used], LIMITS) {
        Ok(Parsed::Complete(again, n)) => {
            assert_eq!(n, used);
            assert_same_request(&head, &again);
        }
        other => panic!("head alone does not parse: {other:?}"),
    }
    let cut = cut_inside(data, used);
    assert!(
        matches!(parse_request(&data[..cut], LIMITS), Ok(Parsed::NeedMore)),
        "prefix of {cut} bytes of a {used}-byte head is not NeedMore"
    );
    // Re-encoded, the head parses back to itself: the validating encoder refuses nothing a
    // parsed request holds (it is HTTP/1.1 from the encoder; the version is put back to compare).
    let mut w = HeadWriter::request(&head.method, &head.target, 0);
    for h in &head.headers {
        w.header(&h.name, &h.value);
    }
    let mut out = w.finish().expect("a parsed request head encodes");
    if head.version == Version::Http10 {
        let at = out.iter().position(|&b| b == b'\r').expect("a request line");
        out[at - 1] = b'0';
    }
    let big = HeadLimits {
        bytes_max: usize::MAX,
        ..LIMITS
    };
    match parse_request(&out, big) {
        Ok(Parsed::Complete(again, n)) => {
            assert_eq!(n, out.len());
            assert_same_request(&head, &again);
        }
        other => panic!("re-encoded request does not parse: {other:?}\n{out:?}"),
    }
}

fn assert_same_request(a: &RequestHead, b: &RequestHead) {
    assert_eq!(a.method, b.method);
    assert_eq!(a.target, b.target);
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.body, b.body);
    assert_eq!(a.keep_alive, b.keep_alive);
    assert_eq!(a.expect_continue, b.expect_continue);
}

fn check_response(data: &[u8], method: &str) {
    let Ok(Parsed::Complete(head, used)) = parse_response(data, LIMITS, method) else {
        return;
    };
    assert!(used > 0 && used <= data.len() && used <= LIMITS.bytes_max);
    assert!((100..=999).contains(&head.code));
    let bodiless =
        method == "HEAD" || (100..200).contains(&head.code) || [204, 304].contains(&head.code);
    if bodiless {
        assert_eq!(head.body, BodyKind::None);
    }
    if head.keep_alive {
        assert_ne!(head.body, BodyKind::UntilClose);
    }
    match parse_response(&data[..used], LIMITS, method) {
        Ok(Parsed::Complete(again, n)) => {
            assert_eq!(n, used);
            assert_same_response(&head, &again, true);
        }
        other => panic!("head alone does not parse: {other:?}"),
    }
    let cut = cut_inside(data, used);
    assert!(
        matches!(
            parse_response(&data[..cut], LIMITS, method),
            Ok(Parsed::NeedMore)
        ),
        "prefix of {cut} bytes of a {used}-byte head is not NeedMore"
    );
    let mut w = HeadWriter::response(head.version, head.code, &head.reason, 0);
    for h in &head.headers {
        w.header(&h.name, &h.value);
    }
    let out = w.finish().expect("a parsed response head encodes");
    let big = HeadLimits {
        bytes_max: usize::MAX,
        ..LIMITS
    };
    match parse_response(&out, big, method) {
        Ok(Parsed::Complete(again, n)) => {
            assert_eq!(n, out.len());
            // An empty reason is re-encoded as the standard one.
            assert_same_response(&head, &again, !head.reason.is_empty());
        }
        other => panic!("re-encoded response does not parse: {other:?}\n{out:?}"),
    }
}

fn assert_same_response(a: &ResponseHead, b: &ResponseHead, same_reason: bool) {
    assert_eq!(a.code, b.code);
    if same_reason {
        assert_eq!(a.reason, b.reason);
    }
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.body, b.body);
    assert_eq!(a.keep_alive, b.keep_alive);
}
