//! Unit tests of the HTTP/1 parsers and body decoders.

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    bytes_max: 1024,
    headers_max: 16,
};

fn req(text: &str) -> Result<Parsed<RequestHead>, Http1Error> {
    parse_request(text.as_bytes(), LIMITS)
}

fn complete(text: &str) -> (RequestHead, usize) {
    match req(text).unwrap() {
        Parsed::Complete(h, n) => (h, n),
        Parsed::NeedMore => panic!("incomplete"),
    }
}

#[test]
fn simple_get() {
    let (h, n) = complete("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nrest");
    assert_eq!(n, 32);
    assert_eq!(h.method, "GET");
    assert_eq!(h.target, "/a?b=1");
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive);
    assert_eq!(header_value(&h.headers, "HOST"), Some(&b"x"[..]));
}

#[test]
fn two_host_headers_are_400() {
    let err = req("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n").unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("Host"), "{err}");
}

#[test]
fn partial_head_needs_more() {
    assert!(matches!(
        req("GET / HTTP/1.1\r\nHost:"),
        Ok(Parsed::NeedMore)
    ));
}

#[test]
fn oversized_partial_head_is_431() {
    let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
    let err = req(&long).unwrap_err();
    assert_eq!(err.status(), 431);
}

#[test]
fn oversized_complete_head_is_431() {
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
    assert_eq!(req(&long).unwrap_err().status(), 431);
}

#[test]
fn too_many_headers_is_431() {
    let many: String = (0..20).map(|i| format!("H{i}: v\r\n")).collect();
    let err = req(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err();
    assert_eq!(err, Http1Error::TooManyHeaders(16));
}

#[test]
fn garbage_is_400() {
    assert_eq!(req("\x01\x02 garbage\r\n\r\n").unwrap_err().status(), 400);
    assert_eq!(req("GET / HTTP/2.0\r\n\r\n").unwrap_err().status(), 400);
    assert_eq!(
        req("GET nopath HTTP/1.1\r\n\r\n").unwrap_err().status(),
        400
    );
}

#[test]
fn body_framing() {
    let (h, _) = complete("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(5));
    let (h, _) = complete("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let (h, _) = complete("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(5));
}

#[test]
fn bad_framing_is_rejected() {
    let both = "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(req(both).unwrap_err().status(), 400);
    let conflict = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(req(conflict).unwrap_err().status(), 400);
    let neg = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
    assert_eq!(req(neg).unwrap_err().status(), 400);
    let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(req(gzip).unwrap_err().status(), 501);
}

#[test]
fn keep_alive_rules() {
    assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
    assert!(
        complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .0
            .keep_alive
    );
    assert!(
        !complete("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
            .0
            .keep_alive
    );
}

#[test]
fn expect_continue() {
    let (h, _) = complete("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
}

fn resp(text: &str, method: &str) -> ResponseHead {
    match parse_response(text.as_bytes(), LIMITS, method).unwrap() {
        Parsed::Complete(h, _) => h,
        Parsed::NeedMore => panic!("incomplete"),
    }
}

#[test]
fn response_framing() {
    assert_eq!(
        resp("HTTP/1.1 200 OK\r\n\r\n", "GET").body,
        BodyKind::UntilClose
    );
    assert!(!resp("HTTP/1.1 200 OK\r\n\r\n", "GET").keep_alive);
    let h = resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET");
    assert_eq!(h.body, BodyKind::Length(3));
    assert!(h.keep_alive);
    assert_eq!(
        resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD").body,
        BodyKind::None
    );
    assert_eq!(
        resp("HTTP/1.1 204 No Content\r\n\r\n", "GET").body,
        BodyKind::None
    );
    assert_eq!(
        resp("HTTP/1.1 304 Not Modified\r\n\r\n", "GET").body,
        BodyKind::None
    );
    let h = resp(
        "HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET",
    );
    assert_eq!(
        (h.code, h.reason.as_str(), h.body),
        (404, "Nope", BodyKind::Chunked)
    );
}

#[test]
fn response_status_code_below_100_is_rejected() {
    // Fuzz finding: "011" parsed as code 11, which encode_status_line writes as "11".
    let r = parse_response(b"HTTP/1.0 011 Unknown\r\n\r\n", LIMITS, "GET");
    assert_eq!(
        r.err(),
        Some(Http1Error::Malformed("status code below 100"))
    );
    assert_eq!(resp("HTTP/1.1 100 Continue\r\n\r\n", "GET").code, 100);
}

fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), Http1Error> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in input.chunks(step) {
        let p = d.decode(piece, &mut out)?;
        used += p.consumed;
        if p.done {
            return Ok((out, true, used));
        }
    }
    Ok((out, false, used))
}

#[test]
fn chunked_decoding_any_split() {
    let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, 100] {
        let (out, done, used) = dechunk(body, step).unwrap();
        assert_eq!(out, b"hello world");
        assert!(done);
        assert_eq!(used, body.len() - 4, "step {step}");
    }
}

#[test]
fn chunked_accepts_bare_lf_and_upper_hex() {
    let (out, done, _) = dechunk(b"A\nabcdefghij\n0\n\n", 4).unwrap();
    assert_eq!(out, b"abcdefghij");
    assert!(done);
}

#[test]
fn chunked_errors() {
    assert!(dechunk(b"zz\r\n", 10).is_err());
    assert!(dechunk(b"\r\n", 10).is_err());
    assert!(dechunk(b"3\r\nabcX\r\n", 10).is_err());
    assert!(dechunk(b"fffffffffffffffffff\r\n", 100).is_err());
    let long_ext = format!("1;{}\r\n", "e".repeat(5000));
    assert!(dechunk(long_ext.as_bytes(), 100).is_err());
}

#[test]
fn body_decoder_length_leaves_the_rest() {
    let mut d = BodyDecoder::new(BodyKind::Length(3));
    let mut out = Vec::new();
    let p = d.decode(b"abcGET", &mut out).unwrap();
    assert_eq!((p.consumed, p.done, &out[..]), (3, true, &b"abc"[..]));
    assert_eq!(d.decode(b"more", &mut out).unwrap().consumed, 0);
}

#[test]
fn body_decoder_until_close_and_truncation() {
    let mut d = BodyDecoder::new(BodyKind::UntilClose);
    let mut out = Vec::new();
    assert!(!d.decode(b"abc", &mut out).unwrap().done);
    assert!(d.finish_at_eof().is_ok() && d.is_done());
    let mut d = BodyDecoder::new(BodyKind::Length(5));
    d.decode(b"ab", &mut out).unwrap();
    assert!(d.finish_at_eof().is_err());
    assert!(BodyDecoder::new(BodyKind::None).is_done());
}

#[test]
fn hop_by_hop() {
    assert!(is_hop_by_hop("Connection"));
    assert!(is_hop_by_hop("transfer-encoding"));
    assert!(!is_hop_by_hop("content-type"));
}

#[test]
fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
    let (h, _) = complete("GET http://Example.com:8080/api/x?y=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.target, "/api/x?y=1");
    let hosts: Vec<_> = h
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value.clone())
        .collect();
    assert_eq!(hosts, vec![b"example.com:8080".to_vec()]);
    let (h, _) = complete("GET https://a.example HTTP/1.1\r\n\r\n");
    assert_eq!(h.target, "/");
    assert_eq!(header_value(&h.headers, "host"), Some(&b"a.example"[..]));
}

#[test]
fn absolute_form_that_cannot_be_routed_is_400() {
    for target in [
        "ftp://a/b",
        "http://u:p@a/b",
        "file:///etc/passwd",
        "http://[::1/x",
    ] {
        let text = format!("GET {target} HTTP/1.1\r\n\r\n");
        assert_eq!(req(&text).unwrap_err().status(), 400, "{target}");
    }
}

#[test]
fn an_origin_form_target_holding_a_scheme_separator_stays_as_it_is() {
    // Found by fuzz/http1_request: `http:o/x.co://` became `/x.co://`, which was then taken
    // for an absolute-form target again (the test was "contains ://" instead of "not /").
    let (h, _) = complete("GET /x.co:// HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.target, "/x.co://");
    let (h, _) = complete("GET http:o/x.co:// HTTP/1.1\r\n\r\n");
    assert_eq!(h.target, "/x.co://");
    assert_eq!(header_value(&h.headers, "host"), Some(&b"o"[..]));
}
