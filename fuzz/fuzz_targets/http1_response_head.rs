//! Origin answers: `parse_response` on the head, then `BodyDecoder` over the bytes after it.
//!
//! Properties: no panic; the body decoder never consumes past the end of its body, consumes all
//! it is given until done, and decodes the same whether the rest arrives whole or split in two;
//! a `Content-Length` body yields exactly that many bytes when done and never more; a body that
//! runs until close takes everything; `finish_at_eof` accepts exactly a finished or until-close
//! body.
#![no_main]
use holdfast::proto::http1::{BodyDecoder, BodyKind, HeadLimits, Parsed, parse_response};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    bytes_max: 8192,
    headers_max: 64,
};

fuzz_target!(|data: &[u8]| {
    // Byte 0: request method (bit 0) and where to split the body (the rest of the byte).
    let Some((&ctl, wire)) = data.split_first() else {
        return;
    };
    let method = if ctl & 1 == 0 { "GET" } else { "HEAD" };
    let Ok(Parsed::Complete(head, used)) = parse_response(wire, LIMITS, method) else {
        return;
    };
    assert!(used <= wire.len());
    let rest = &wire[used..];
    let whole = decode(head.body, &[rest]);
    let cut = (usize::from(ctl >> 1) * rest.len()) / 127;
    let split = decode(head.body, &[&rest[..cut], &rest[cut..]]);
    assert_eq!(whole, split, "split body decodes differently");
    let Decoded {
        out,
        consumed,
        done,
        errored,
        eof_ok,
    } = whole;
    match head.body {
        BodyKind::None => {
            assert!(done && consumed == 0 && out.is_empty() && eof_ok);
        }
        BodyKind::Length(n) => {
            assert!(!errored);
            assert!(out.len() as u64 <= n);
            assert_eq!(done, out.len() as u64 == n);
            assert_eq!(out, rest[..consumed]);
            assert_eq!(eof_ok, done);
        }
        BodyKind::UntilClose => {
            assert!(!errored && !done && eof_ok);
            assert_eq!(out, rest);
        }
        BodyKind::Chunked => {
            assert!(out.len() <= consumed);
            if !errored {
                assert_eq!(eof_ok, done);
            }
        }
    }
});

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    out: Vec<u8>,
    consumed: usize,
    done: bool,
    errored: bool,
    eof_ok: bool,
}

fn decode(kind: BodyKind, pieces: &[&[u8]]) -> Decoded {
    let mut dec = BodyDecoder::new(kind);
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
                }
            }
            // Where an error stops depends on the pieces: only the error itself is compared.
            Err(_) => {
                let (out, consumed) = (Vec::new(), 0);
                return Decoded {
                    out,
                    consumed,
                    done: false,
                    errored: true,
                    eof_ok: false,
                };
            }
        }
    }
    let done = dec.is_done();
    let eof_ok = dec.finish_at_eof().is_ok();
    Decoded {
        out,
        consumed,
        done,
        errored: false,
        eof_ok,
    }
}
