//! The one HTTP/1 head encoder, `HeadWriter`, driven with arbitrary names, values, methods,
//! targets and reasons, as any client, origin, publisher or cluster peer could supply them.
//!
//! The framing invariant: a head the encoder returns parses back (httparse, independently) as
//! exactly one message of exactly its length, with the same method and target (or code and
//! reason) and the same headers in order, values compared without surrounding blanks (RFC 9110
//! §5.5 optional whitespace). It refuses only what breaks that (checked against the RFC's rules
//! written out here): a non-token method or name, a control character or DEL in a value or reason,
//! a space or control character in the target, a code outside 100..=999.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::http1::{EncodeError, HeadWriter, Version};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    request: bool,
    http10: bool,
    method: Vec<u8>,
    target: Vec<u8>,
    code: u16,
    reason: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(tchar)
}

fn field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn blank(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trimmed(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !blank(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

fuzz_target!(|input: Input| {
    let headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .take(32)
        .map(|(n, v)| (text(n), v.clone()))
        .collect();
    let (method, target, reason) = (text(&input.method), text(&input.target), text(&input.reason));
    let mut w = if input.request {
        HeadWriter::request(&method, &target, 0)
    } else {
        let version = if input.http10 { Version::Http10 } else { Version::Http11 };
        HeadWriter::response(version, input.code, &reason, 0)
    };
    for (n, v) in &headers {
        w.header(n, v);
    }
    let start_ok = if input.request {
        token(&method) && !target.is_empty() && target.bytes().all(|b| b > 0x20 && b != 0x7f)
    } else {
        (100..=999).contains(&input.code) && field_value(reason.as_bytes())
    };
    let headers_ok = headers.iter().all(|(n, v)| token(n) && field_value(v));
    match w.finish() {
        Ok(bytes) => {
            assert!(start_ok && headers_ok, "accepted what breaks a line: {input:?}");
            if input.request {
                check_request(&bytes, &method, &target, &headers);
            } else {
                check_response(&bytes, input.code, &reason, &headers);
            }
        }
        Err(e) => {
            assert!(!(start_ok && headers_ok), "refused a valid head ({e}): {input:?}");
            if let EncodeError::HeaderName(n) | EncodeError::HeaderValue(n) = &e {
                assert!(n.chars().count() <= 64, "error text is bounded");
            }
        }
    }
});

fn same_headers(parsed: &[httparse::Header<'_>], want: &[(String, Vec<u8>)]) {
    let got: Vec<(&str, &[u8])> = parsed.iter().map(|h| (h.name, trimmed(h.value))).collect();
    let want: Vec<(&str, &[u8])> = want.iter().map(|(n, v)| (n.as_str(), trimmed(v))).collect();
    assert_eq!(got, want);
}

fn check_request(bytes: &[u8], method: &str, target: &str, want: &[(String, Vec<u8>)]) {
    let mut slots = vec![httparse::EMPTY_HEADER; want.len() + 1];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, bytes.len(), "more than one message"),
        other => panic!("encoded request does not parse: {other:?} {:?}", text(bytes)),
    }
    assert_eq!(req.method, Some(method));
    assert_eq!(req.path, Some(target));
    same_headers(req.headers, want);
}

fn check_response(bytes: &[u8], code: u16, reason: &str, want: &[(String, Vec<u8>)]) {
    let mut slots = vec![httparse::EMPTY_HEADER; want.len() + 1];
    let mut resp = httparse::Response::new(&mut slots);
    match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, bytes.len(), "more than one message"),
        other => panic!("encoded response does not parse: {other:?} {:?}", text(bytes)),
    }
    assert_eq!(resp.code, Some(code));
    // httparse reports a reason holding obs-text (non-ASCII) as empty; the line still parsed.
    if !reason.is_empty() && reason.is_ascii() {
        let got = resp.reason.map(str::as_bytes).map(trimmed);
        assert_eq!(got, Some(trimmed(reason.as_bytes())));
    }
    same_headers(resp.headers, want);
}
