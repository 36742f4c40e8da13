//! Chunked body decoder.
//!
//! Properties: feeding the body in any pieces (split points taken from the input) gives exactly
//! what feeding it whole gives: the same data, the same end, the same number of bytes consumed, and
//! an error exactly when the whole feed errs; while not done, a call consumes all it is given; the
//! decoder never consumes past the end of the body. And `encode_chunk` + `LAST_CHUNK` of any data,
//! cut into any chunks, decodes back to that data.
#![no_main]
use holdfast::proto::http1::{ChunkedDecoder, LAST_CHUNK, encode_chunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0: how many split points follow (0..=3); then that many bytes of split points.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 4).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    check_splits(cuts, body);
    check_encode_round_trip(cuts, body);
});

/// Feeds `input` whole; returns (data, total consumed, done, errored).
fn feed(pieces: &[&[u8]]) -> (Vec<u8>, usize, bool, bool) {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        match dec.decode(piece, &mut out) {
            Ok(p) => {
                assert!(p.consumed <= piece.len());
                assert_eq!(p.done, dec.is_done());
                consumed += p.consumed;
                if !p.done {
                    assert_eq!(
                        p.consumed,
                        piece.len(),
                        "not done, yet bytes left unconsumed"
                    );
                } else {
                    // Done is final: nothing more is consumed.
                    let again = dec
                        .decode(b"0\r\n\r\n", &mut out)
                        .expect("decode after done");
                    assert_eq!(again.consumed, 0);
                    assert!(again.done);
                    return (out, consumed, true, false);
                }
            }
            Err(_) => return (out, consumed, false, true),
        }
    }
    (out, consumed, dec.is_done(), false)
}

fn check_splits(cuts: &[u8], body: &[u8]) {
    let (whole_out, whole_used, whole_done, whole_err) = feed(&[body]);
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| (usize::from(c) * body.len()) / 255)
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for p in points {
        pieces.push(&body[start..p]);
        start = p;
    }
    pieces.push(&body[start..]);
    let (out, used, done, err) = feed(&pieces);
    assert_eq!(
        err, whole_err,
        "split feed and whole feed disagree on error"
    );
    assert_eq!(done, whole_done);
    if !err {
        assert_eq!(out, whole_out);
        assert_eq!(used, whole_used);
    }
    // Byte-at-a-time: the hardest split of all.
    let singles: Vec<&[u8]> = body.chunks(1).collect();
    let (out1, used1, done1, err1) = feed(&singles);
    assert_eq!((err1, done1), (whole_err, whole_done));
    if !err1 {
        assert_eq!((out1, used1), (whole_out, whole_used));
    }
}

fn check_encode_round_trip(cuts: &[u8], data: &[u8]) {
    let mut wire = Vec::new();
    let mut rest = data;
    let mut sizes = cuts
        .iter()
        .map(|&c| usize::from(c))
        .chain(std::iter::repeat(97));
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(1).max(1).min(rest.len());
        encode_chunk(&mut wire, &rest[..take]);
        rest = &rest[take..];
    }
    encode_chunk(&mut wire, b""); // appends nothing
    wire.extend_from_slice(LAST_CHUNK);
    let trailing = b"GET / HTTP/1.1\r\n";
    wire.extend_from_slice(trailing);
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let p = dec.decode(&wire, &mut out).expect("encoded body decodes");
    assert!(p.done);
    assert_eq!(p.consumed, wire.len() - trailing.len());
    assert_eq!(out, data);
}
