//! WebSocket frames and the server `Session`.
//!
//! Three kinds of input (structured with `arbitrary`):
//! - `Raw`: arbitrary client bytes into a `Session` (server role, or client role without the mask
//!   requirement), fed whole and fed in pieces as the runtime does. Properties: no panic; a Text
//!   message is valid UTF-8, a control payload at most 125 bytes, a data message within the size
//!   limit; pieces give exactly the messages and the error that the whole feed gives; nothing is
//!   consumed after a close or an error; the session never stalls on `PENDING_BYTES_MAX` bytes.
//! - `Frames`: (fin, opcode, payload, mask) → `encode_frame` → `decode_header` gives the same
//!   header, and unmasking gives the payload back; every prefix of a header is "need more"; masking
//!   in two pieces (with the offset) equals masking at once; close frames round-trip.
//! - `Messages`: whole messages (text fragmented anywhere, even inside a UTF-8 sequence, binary,
//!   with pings and pongs between fragments, and a close) encoded as client frames, then split at
//!   arbitrary points through `Session::decode`: exactly the encoded messages come out, in order.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::ws::{
    CLOSE_REASON_BYTES_MAX, CONTROL_PAYLOAD_MAX, FrameHeader, Message, Opcode, PENDING_BYTES_MAX,
    Session, SessionLimits, apply_mask, decode_header, encode_close, encode_close_frame,
    encode_frame, encode_header, header_len, is_valid_close_code,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        require_mask: bool,
        small_limit: bool,
        cuts: Vec<u16>,
        bytes: Vec<u8>,
    },
    Frames(Vec<FrameSpec>),
    Messages {
        require_mask: bool,
        messages: Vec<Msg>,
        cuts: Vec<u16>,
    },
}

#[derive(Arbitrary, Debug)]
struct FrameSpec {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
    mask: Option<[u8; 4]>,
    big_len: u64,
    cut: u8,
    close_code: u16,
    close_reason: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Msg {
    /// A data message cut into fragments of the given sizes, with control frames between them.
    Data {
        text: Option<Vec<u8>>,
        binary: Vec<u8>,
        fragments: Vec<u8>,
        between: Vec<Control>,
        mask: Option<[u8; 4]>,
    },
    Control(Control),
    Close {
        code: u16,
        reason: Vec<u8>,
        mask: Option<[u8; 4]>,
    },
}

#[derive(Arbitrary, Debug)]
struct Control {
    pong: bool,
    payload: Vec<u8>,
    mask: Option<[u8; 4]>,
}

const OPCODES: [Opcode; 6] = [
    Opcode::Continuation,
    Opcode::Text,
    Opcode::Binary,
    Opcode::Close,
    Opcode::Ping,
    Opcode::Pong,
];

fuzz_target!(|input: Input| match input {
    Input::Raw {
        require_mask,
        small_limit,
        cuts,
        bytes,
    } => raw(require_mask, small_limit, &cuts, &bytes),
    Input::Frames(frames) => frames.iter().for_each(frame_round_trip),
    Input::Messages {
        require_mask,
        messages,
        cuts,
    } => messages_round_trip(require_mask, &messages, &cuts),
});

/// Cut points in `0..=len` from the fuzzer's `cuts`.
fn points(cuts: &[u16], len: usize) -> Vec<usize> {
    cuts.iter()
        .map(|&c| usize::from(c) * len / usize::from(u16::MAX))
        .collect()
}

/// Everything a feed produced: the messages, and the error that ended it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: Vec<Message>,
    error: Option<(u16, &'static str)>,
    closed: bool,
    left: usize,
}

/// Feeds `bytes` in pieces cut at `cuts`, the way the runtime does: append to a pending buffer,
/// decode while something is consumed, drop what was consumed. Checks the per-call contract.
fn feed(limits: SessionLimits, bytes: &[u8], mut points: Vec<usize>) -> Outcome {
    let mut session = Session::new(limits);
    points.sort_unstable();
    points.push(bytes.len());
    let mut pending = Vec::new();
    let mut messages = Vec::new();
    let mut start = 0;
    for end in points {
        pending.extend_from_slice(&bytes[start..end]);
        start = end;
        let mut pos = 0;
        loop {
            let was_closed = session.is_closed();
            match session.decode(&mut pending[pos..]) {
                Ok((n, message)) => {
                    assert!(n <= pending.len() - pos);
                    if was_closed {
                        assert_eq!((n, &message), (0, &None), "decoded after close");
                    }
                    if let Some(m) = message {
                        check_message(&m, &limits);
                        if matches!(m, Message::Close { .. }) {
                            assert!(session.is_closed());
                        }
                        messages.push(m);
                    }
                    pos += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    assert!(session.is_closed());
                    assert!(!session.in_message());
                    assert_eq!(session.decode(&mut pending[pos..]), Ok((0, None)));
                    return Outcome {
                        messages,
                        error: Some((e.code, e.reason)),
                        closed: true,
                        left: 0,
                    };
                }
            }
        }
        pending.drain(..pos);
        if !session.is_closed() {
            // The caller's buffer need only hold PENDING_BYTES_MAX bytes: with that many the
            // session always makes progress.
            assert!(
                pending.len() < PENDING_BYTES_MAX,
                "stalled with {} bytes pending",
                pending.len()
            );
        }
    }
    Outcome {
        messages,
        error: None,
        closed: session.is_closed(),
        left: pending.len(),
    }
}

fn check_message(m: &Message, limits: &SessionLimits) {
    match m {
        Message::Text(t) => {
            assert!(std::str::from_utf8(t).is_ok(), "Text message is not UTF-8");
            assert!(t.len() <= limits.message_bytes_max);
        }
        Message::Binary(b) => assert!(b.len() <= limits.message_bytes_max),
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= CONTROL_PAYLOAD_MAX),
        Message::Close { code, reason } => {
            assert!(code.is_none_or(is_valid_close_code));
            assert!(reason.len() <= CLOSE_REASON_BYTES_MAX);
            assert!(code.is_some() || reason.is_empty());
        }
    }
}

fn raw(require_mask: bool, small_limit: bool, cuts: &[u16], bytes: &[u8]) {
    let limits = SessionLimits {
        message_bytes_max: if small_limit { 64 } else { 1 << 20 },
        require_mask,
    };
    let whole = feed(limits, bytes, Vec::new());
    let split = feed(limits, bytes, points(cuts, bytes.len()));
    assert_eq!(whole, split, "pieces decode differently from the whole");
    if bytes.len() <= 1024 {
        let singles = (1..bytes.len()).collect();
        assert_eq!(
            whole,
            feed(limits, bytes, singles),
            "byte-at-a-time differs"
        );
    }
}

fn frame_round_trip(spec: &FrameSpec) {
    let opcode = OPCODES[usize::from(spec.opcode) % OPCODES.len()];
    let mut wire = Vec::new();
    encode_frame(&mut wire, spec.fin, opcode, &spec.payload, spec.mask);
    let len = spec.payload.len() as u64;
    let hl = header_len(len, spec.mask.is_some());
    assert_eq!(wire.len(), hl + spec.payload.len());
    let want = FrameHeader {
        fin: spec.fin,
        rsv: 0,
        opcode,
        mask: spec.mask,
        len,
    };
    assert_eq!(decode_header(&wire), Ok(Some((want, hl))));
    for cut in 0..hl {
        assert_eq!(
            decode_header(&wire[..cut]),
            Ok(None),
            "prefix {cut} of a header"
        );
    }
    let mut payload = wire[hl..].to_vec();
    if let Some(key) = spec.mask {
        apply_mask(&mut payload, key, 0);
    }
    assert_eq!(payload, spec.payload);

    // Masking in two pieces, the second with its offset, equals masking at once.
    let key = spec.mask.unwrap_or([0x12, 0x34, 0x56, 0x78]);
    let offset = usize::from(spec.cut);
    let mut once = spec.payload.clone();
    apply_mask(&mut once, key, offset);
    let mut twice = spec.payload.clone();
    let k = usize::from(spec.cut).min(twice.len());
    apply_mask(&mut twice[..k], key, offset);
    apply_mask(&mut twice[k..], key, offset + k);
    assert_eq!(once, twice);

    // Any length below 2^63 round-trips through the header alone.
    let big = FrameHeader {
        len: spec.big_len >> 1,
        rsv: spec.opcode >> 5,
        ..want
    };
    let mut head = Vec::new();
    encode_header(&mut head, &big);
    let hl = header_len(big.len, big.mask.is_some());
    assert_eq!(head.len(), hl);
    assert_eq!(decode_header(&head), Ok(Some((big, hl))));

    // Close frames: the payload encode_close writes, and what a session reads from it.
    let close_reason = lossy(&spec.close_reason);
    let mut frame = Vec::new();
    encode_close_frame(&mut frame, spec.close_code, &close_reason, spec.mask);
    let mut payload = Vec::new();
    encode_close(&mut payload, spec.close_code, &close_reason);
    let hl = header_len(payload.len() as u64, spec.mask.is_some());
    assert!(payload.len() <= CONTROL_PAYLOAD_MAX);
    let mut body = frame[hl..].to_vec();
    if let Some(key) = spec.mask {
        apply_mask(&mut body, key, 0);
    }
    assert_eq!(body, payload);
    let reason = truncated(&close_reason);
    assert!(close_reason.starts_with(reason));
    let mut session = Session::new(SessionLimits {
        require_mask: spec.mask.is_some(),
        ..SessionLimits::default()
    });
    let got = session.decode(&mut frame);
    if is_valid_close_code(spec.close_code) {
        let close = Message::Close {
            code: Some(spec.close_code),
            reason: reason.to_owned(),
        };
        assert_eq!(got, Ok((frame.len(), Some(close))));
    } else {
        assert!(
            got.is_err(),
            "invalid close code {} accepted",
            spec.close_code
        );
    }
}

/// The longest prefix of `reason` within CLOSE_REASON_BYTES_MAX ending on a char boundary.
fn truncated(reason: &str) -> &str {
    let mut end = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A client frame: masked as given, or with a fixed key where the session requires a mask.
fn put(
    wire: &mut Vec<u8>,
    require_mask: bool,
    fin: bool,
    op: Opcode,
    p: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mask = if require_mask {
        Some(mask.unwrap_or([1, 2, 3, 4]))
    } else {
        mask
    };
    encode_frame(wire, fin, op, p, mask);
}

fn put_control(wire: &mut Vec<u8>, expected: &mut Vec<Message>, require_mask: bool, c: &Control) {
    let payload = &c.payload[..c.payload.len().min(CONTROL_PAYLOAD_MAX)];
    let (op, message) = if c.pong {
        (Opcode::Pong, Message::Pong(payload.to_vec()))
    } else {
        (Opcode::Ping, Message::Ping(payload.to_vec()))
    };
    put(wire, require_mask, true, op, payload, c.mask);
    expected.push(message);
}

fn messages_round_trip(require_mask: bool, messages: &[Msg], cuts: &[u16]) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut closed = false;
    for msg in messages {
        match msg {
            Msg::Data {
                text,
                binary,
                fragments,
                between,
                mask,
            } => {
                let text = text.as_deref().map(lossy);
                let (first_op, payload) = match &text {
                    Some(t) => (Opcode::Text, t.as_bytes()),
                    None => (Opcode::Binary, binary.as_slice()),
                };
                let mut rest = payload;
                let mut op = first_op;
                let mut sizes = fragments.iter();
                let mut controls = between.iter();
                loop {
                    // A fragment per size while payload is left; the last one takes the rest.
                    let take = sizes
                        .next()
                        .map_or(rest.len(), |&s| usize::from(s).min(rest.len()));
                    let fin = take == rest.len();
                    put(&mut wire, require_mask, fin, op, &rest[..take], *mask);
                    rest = &rest[take..];
                    op = Opcode::Continuation;
                    if fin {
                        break;
                    }
                    if let Some(c) = controls.next() {
                        put_control(&mut wire, &mut expected, require_mask, c);
                    }
                }
                expected.push(match text {
                    Some(t) => Message::Text(t.as_bytes().to_vec()),
                    None => Message::Binary(binary.clone()),
                });
            }
            Msg::Control(c) => put_control(&mut wire, &mut expected, require_mask, c),
            Msg::Close { code, reason, mask } => {
                let mask = if require_mask {
                    Some(mask.unwrap_or([9, 8, 7, 6]))
                } else {
                    *mask
                };
                if is_valid_close_code(*code) {
                    let reason = lossy(reason);
                    encode_close_frame(&mut wire, *code, &reason, mask);
                    let reason = truncated(&reason).to_owned();
                    expected.push(Message::Close {
                        code: Some(*code),
                        reason,
                    });
                } else {
                    encode_frame(&mut wire, true, Opcode::Close, b"", mask);
                    expected.push(Message::Close {
                        code: None,
                        reason: String::new(),
                    });
                }
                closed = true;
                break;
            }
        }
    }
    let limits = SessionLimits {
        require_mask,
        ..SessionLimits::default()
    };
    let got = feed(limits, &wire, points(cuts, wire.len()));
    let want = Outcome {
        messages: expected,
        error: None,
        closed,
        left: 0,
    };
    assert_eq!(got, want);
}

/// Fuzzer bytes as text. `String` fields are avoided in the input types: `arbitrary` reads their
/// lengths from the end of the input, which makes seed files hard to write by hand.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
