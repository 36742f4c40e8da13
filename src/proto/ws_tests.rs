//! Unit tests of `ws` (a sibling file: the module and its tests pass 800 lines).

use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn server() -> Session {
    Session::new(SessionLimits::default())
}

fn unmasked_session() -> Session {
    Session::new(SessionLimits {
        require_mask: false,
        ..SessionLimits::default()
    })
}

fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(KEY));
    out
}

/// Feeds `bytes` as the runtime would: decode while it consumes, keep the rest.
fn drive(session: &mut Session, bytes: &[u8]) -> Result<(Vec<Message>, usize), WsError> {
    let mut buf = bytes.to_vec();
    let mut pos = 0;
    let mut messages = Vec::new();
    loop {
        let (n, message) = session.decode(&mut buf[pos..])?;
        pos += n;
        messages.extend(message);
        if n == 0 {
            return Ok((messages, pos));
        }
    }
}

/// Feeds `bytes` in pieces of `piece` bytes through a caller-side buffer.
fn drive_in_pieces(
    session: &mut Session,
    bytes: &[u8],
    piece: usize,
) -> Result<Vec<Message>, WsError> {
    let mut pending = Vec::new();
    let mut messages = Vec::new();
    for chunk in bytes.chunks(piece) {
        pending.extend_from_slice(chunk);
        let (got, used) = drive(session, &pending)?;
        messages.extend(got);
        pending.drain(..used);
    }
    assert!(pending.is_empty(), "{} bytes left over", pending.len());
    Ok(messages)
}

fn decode_all(session: &mut Session, bytes: &[u8]) -> Result<Vec<Message>, WsError> {
    let (messages, used) = drive(session, bytes)?;
    assert_eq!(used, bytes.len());
    Ok(messages)
}

fn err_code(session: &mut Session, bytes: &[u8]) -> u16 {
    match drive(session, bytes) {
        Err(e) => e.code,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

fn text(s: &str) -> Message {
    Message::Text(s.as_bytes().to_vec())
}

// RFC 6455 5.7 examples, byte for byte.

#[test]
fn rfc_single_frame_unmasked_text() {
    let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut out = Vec::new();
    encode_frame(&mut out, true, Opcode::Text, b"Hello", None);
    assert_eq!(out, wire);
    let msgs = decode_all(&mut unmasked_session(), &wire).unwrap();
    assert_eq!(msgs, [text("Hello")]);
    // A server refuses it: client frames must be masked.
    assert_eq!(err_code(&mut server(), &wire), 1002);
}

#[test]
fn rfc_single_frame_masked_text() {
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(frame(true, Opcode::Text, b"Hello"), wire);
    assert_eq!(decode_all(&mut server(), &wire).unwrap(), [text("Hello")]);
}

#[test]
fn rfc_fragmented_unmasked_text() {
    let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
    let second = [0x80, 0x02, 0x6c, 0x6f];
    let mut out = Vec::new();
    encode_frame(&mut out, false, Opcode::Text, b"Hel", None);
    assert_eq!(out, first);
    out.clear();
    encode_frame(&mut out, true, Opcode::Continuation, b"lo", None);
    assert_eq!(out, second);
    let mut s = unmasked_session();
    assert_eq!(s.decode(&mut first.clone()).unwrap(), (5, None));
    assert!(s.in_message());
    assert_eq!(
        s.decode(&mut second.clone()).unwrap(),
        (4, Some(text("Hello")))
    );
    assert!(!s.in_message());
}

#[test]
fn rfc_ping_and_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut out = Vec::new();
    encode_frame(&mut out, true, Opcode::Ping, b"Hello", None);
    assert_eq!(out, ping);
    let msgs = decode_all(&mut unmasked_session(), &ping).unwrap();
    assert_eq!(msgs, [Message::Ping(b"Hello".to_vec())]);
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(frame(true, Opcode::Pong, b"Hello"), pong);
    let msgs = decode_all(&mut server(), &pong).unwrap();
    assert_eq!(msgs, [Message::Pong(b"Hello".to_vec())]);
}

#[test]
fn rfc_256_byte_binary_uses_16_bit_length() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    encode_frame(&mut out, true, Opcode::Binary, &payload, None);
    assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(out[4..], payload[..]);
    let msgs = decode_all(&mut unmasked_session(), &out).unwrap();
    assert_eq!(msgs, [Message::Binary(payload)]);
}

#[test]
fn rfc_64k_binary_uses_64_bit_length() {
    let payload: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::new();
    encode_frame(&mut out, true, Opcode::Binary, &payload, None);
    let head = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    assert_eq!(out[..10], head);
    assert_eq!(out.len(), 10 + 65536);
    let msgs = decode_all(&mut unmasked_session(), &out).unwrap();
    assert_eq!(msgs, [Message::Binary(payload)]);
}

#[test]
fn header_round_trip_all_length_forms() {
    let sizes = [0, 1, 100, 125, 126, 127, 200, 65535, 65536, 70000];
    let opcodes = [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ];
    for &size in &sizes {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        for &opcode in &opcodes {
            for mask in [None, Some(KEY), Some([1, 2, 3, 4])] {
                for fin in [true, false] {
                    let mut out = Vec::new();
                    encode_frame(&mut out, fin, opcode, &payload, mask);
                    let (h, hl) = decode_header(&out).unwrap().unwrap();
                    let want = FrameHeader {
                        fin,
                        rsv: 0,
                        opcode,
                        mask,
                        len: size as u64,
                    };
                    assert_eq!(h, want);
                    assert_eq!(hl, header_len(size as u64, mask.is_some()));
                    assert_eq!(out.len(), hl + size);
                    let body = &mut out[hl..];
                    if let Some(key) = mask {
                        apply_mask(body, key, 0);
                    }
                    assert_eq!(body, &payload[..]);
                    // Every strict prefix of the header needs more bytes.
                    for cut in 0..hl {
                        assert_eq!(decode_header(&out[..cut]), Ok(None));
                    }
                }
            }
        }
    }
}

#[test]
fn header_round_trip_large_lengths_and_rsv() {
    for len in [65536u64, 1 << 32, (1 << 63) - 1] {
        for rsv in 0..8 {
            let h = FrameHeader {
                fin: true,
                rsv,
                opcode: Opcode::Binary,
                mask: Some(KEY),
                len,
            };
            let mut out = Vec::new();
            encode_header(&mut out, &h);
            assert_eq!(decode_header(&out), Ok(Some((h, 14))));
        }
    }
}

#[test]
fn header_errors() {
    for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        // Detected from the first byte alone.
        let err = decode_header(&[0x80 | op]).unwrap_err();
        assert_eq!(err.code, 1002);
    }
    let mut top_bit = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
    top_bit.extend_from_slice(&KEY);
    assert_eq!(decode_header(&top_bit).unwrap_err().code, 1002);
    // Non-minimal length encodings are accepted.
    let (h, hl) = decode_header(&[0x82, 0x7E, 0x00, 0x05]).unwrap().unwrap();
    assert_eq!((h.len, hl), (5, 4));
}

fn mask_reference(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

#[test]
fn apply_mask_matches_bytewise_reference() {
    let key = [0xA1, 0x5B, 0x0C, 0xF7];
    for offset in 0..8 {
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key, offset);
            mask_reference(&mut slow, key, offset);
            assert_eq!(fast, slow, "offset {offset} len {len}");
            // Unaligned start within a larger buffer too.
            let mut big = vec![0u8; len + 3];
            big[3..].copy_from_slice(&data);
            apply_mask(&mut big[3..], key, offset);
            assert_eq!(big[3..], slow[..]);
        }
    }
}

#[test]
fn apply_mask_in_pieces_equals_whole() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
    let mut whole = data.clone();
    apply_mask(&mut whole, KEY, 0);
    for split in [1, 3, 5, 8, 13, 500] {
        let mut pieces = data.clone();
        let mut pos = 0;
        while pos < pieces.len() {
            let end = (pos + split).min(pieces.len());
            apply_mask(&mut pieces[pos..end], KEY, pos);
            pos = end;
        }
        assert_eq!(pieces, whole, "split {split}");
    }
}

#[test]
fn fragmented_message_with_interleaved_ping() {
    let mut wire = frame(false, Opcode::Text, b"Hel");
    wire.extend(frame(true, Opcode::Ping, b"are you there"));
    wire.extend(frame(false, Opcode::Continuation, b""));
    wire.extend(frame(true, Opcode::Pong, b""));
    wire.extend(frame(true, Opcode::Continuation, b"lo"));
    wire.extend(frame(true, Opcode::Binary, &[0, 1, 2]));
    let want = vec![
        Message::Ping(b"are you there".to_vec()),
        Message::Pong(Vec::new()),
        text("Hello"),
        Message::Binary(vec![0, 1, 2]),
    ];
    assert_eq!(decode_all(&mut server(), &wire).unwrap(), want);
    for piece in [1, 2, 3, 7, 64] {
        assert_eq!(drive_in_pieces(&mut server(), &wire, piece).unwrap(), want);
    }
}

#[test]
fn large_frame_payload_is_consumed_piecewise() {
    let payload = vec![b'x'; 100_000];
    let wire = frame(true, Opcode::Text, &payload);
    let mut s = server();
    let mut buf = wire[..1000].to_vec();
    // Header (14 bytes) and the 986 payload bytes present are consumed.
    assert_eq!(s.decode(&mut buf).unwrap(), (1000, None));
    assert_eq!(s.decode(&mut []).unwrap(), (0, None));
    let mut rest = wire[1000..].to_vec();
    assert_eq!(
        s.decode(&mut rest).unwrap(),
        (wire.len() - 1000, Some(text(&"x".repeat(100_000))))
    );
}

#[test]
fn incomplete_control_frame_is_not_consumed() {
    let wire = frame(true, Opcode::Ping, b"ping payload");
    let mut s = server();
    for cut in 0..wire.len() {
        let mut buf = wire[..cut].to_vec();
        assert_eq!(s.decode(&mut buf).unwrap(), (0, None), "cut {cut}");
        assert_eq!(buf, wire[..cut], "left masked");
    }
    let msgs = decode_all(&mut s, &wire).unwrap();
    assert_eq!(msgs, [Message::Ping(b"ping payload".to_vec())]);
}

#[test]
fn protocol_errors_and_their_codes() {
    let mut unmasked = Vec::new();
    encode_frame(&mut unmasked, true, Opcode::Binary, b"x", None);
    assert_eq!(err_code(&mut server(), &unmasked), 1002);

    for rsv in [1u8, 2, 4, 7] {
        let mut wire = frame(true, Opcode::Text, b"x");
        wire[0] |= rsv << 4;
        assert_eq!(err_code(&mut server(), &wire), 1002, "rsv {rsv}");
    }
    for op in [3u8, 7, 11, 15] {
        let mut wire = frame(true, Opcode::Binary, b"x");
        wire[0] = 0x80 | op;
        assert_eq!(err_code(&mut server(), &wire), 1002, "opcode {op}");
    }
    for op in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
        assert_eq!(err_code(&mut server(), &frame(false, op, b"")), 1002);
        assert_eq!(
            err_code(&mut server(), &frame(true, op, &[b'a'; 126])),
            1002
        );
    }
    let lone = frame(true, Opcode::Continuation, b"x");
    assert_eq!(err_code(&mut server(), &lone), 1002);

    let mut nested = frame(false, Opcode::Text, b"a");
    nested.extend(frame(true, Opcode::Binary, b"b"));
    assert_eq!(err_code(&mut server(), &nested), 1002);
    let mut nested = frame(false, Opcode::Binary, b"a");
    nested.extend(frame(true, Opcode::Text, b"b"));
    assert_eq!(err_code(&mut server(), &nested), 1002);
}

#[test]
fn control_frame_of_125_bytes_is_fine() {
    let wire = frame(true, Opcode::Ping, &[7; 125]);
    let msgs = decode_all(&mut server(), &wire).unwrap();
    assert_eq!(msgs, [Message::Ping(vec![7; 125])]);
    // The same with a non-minimal 64-bit length: the largest frame decode waits for whole.
    let mut wire = vec![0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 125];
    wire.extend_from_slice(&KEY);
    let start = wire.len();
    wire.extend_from_slice(&[7; 125]);
    apply_mask(&mut wire[start..], KEY, 0);
    assert_eq!(wire.len(), PENDING_BYTES_MAX);
    let mut s = server();
    assert_eq!(
        s.decode(&mut wire[..PENDING_BYTES_MAX - 1].to_vec()),
        Ok((0, None))
    );
    assert_eq!(
        decode_all(&mut s, &wire).unwrap(),
        [Message::Ping(vec![7; 125])]
    );
}

#[test]
fn session_is_closed_after_an_error() {
    let mut s = server();
    let mut lone = frame(true, Opcode::Continuation, b"x");
    assert!(s.decode(&mut lone).is_err());
    assert!(s.is_closed());
    let mut good = frame(true, Opcode::Text, b"x");
    assert_eq!(s.decode(&mut good).unwrap(), (0, None));
}

fn limited(max: usize) -> Session {
    Session::new(SessionLimits {
        message_bytes_max: max,
        require_mask: true,
    })
}

#[test]
fn message_size_limit() {
    let at_limit = frame(true, Opcode::Binary, &[1; 100]);
    let msgs = decode_all(&mut limited(100), &at_limit).unwrap();
    assert_eq!(msgs, [Message::Binary(vec![1; 100])]);

    let over = frame(true, Opcode::Binary, &[1; 101]);
    assert_eq!(err_code(&mut limited(100), &over), 1009);
    // Checked from the header alone, before any payload byte arrives.
    let hl = header_len(101, true);
    assert_eq!(
        limited(100)
            .decode(&mut over[..hl].to_vec())
            .unwrap_err()
            .code,
        1009
    );

    // The sum of fragments counts.
    let mut frags = frame(false, Opcode::Text, &[b'a'; 60]);
    frags.extend(frame(true, Opcode::Ping, b""));
    frags.extend(frame(true, Opcode::Continuation, &[b'a'; 41]));
    assert_eq!(err_code(&mut limited(100), &frags), 1009);

    // Control frames do not count toward a message.
    let mut s = limited(10);
    let mut wire = frame(false, Opcode::Binary, &[0; 10]);
    wire.extend(frame(true, Opcode::Ping, &[0; 100]));
    wire.extend(frame(true, Opcode::Continuation, b""));
    let msgs = decode_all(&mut s, &wire).unwrap();
    assert_eq!(
        msgs,
        [Message::Ping(vec![0; 100]), Message::Binary(vec![0; 10])]
    );
}

#[test]
fn utf8_split_at_every_byte_of_multibyte_chars_is_valid() {
    for s in [
        "é",
        "€",
        "𝄞",
        "a€b",
        "κόσμε",
        "x𝄞€éy",
        "\u{10FFFF}",
        "\u{FFFD}",
    ] {
        let bytes = s.as_bytes();
        for cut in 0..=bytes.len() {
            let mut wire = frame(false, Opcode::Text, &bytes[..cut]);
            wire.extend(frame(true, Opcode::Continuation, &bytes[cut..]));
            let msgs = decode_all(&mut server(), &wire).unwrap();
            assert_eq!(msgs, [text(s)], "{s:?} cut at {cut}");
            for cut2 in cut..=bytes.len() {
                let mut wire = frame(false, Opcode::Text, &bytes[..cut]);
                wire.extend(frame(false, Opcode::Continuation, &bytes[cut..cut2]));
                wire.extend(frame(true, Opcode::Continuation, &bytes[cut2..]));
                let msgs = decode_all(&mut server(), &wire).unwrap();
                assert_eq!(msgs, [text(s)], "{s:?} cut at {cut}, {cut2}");
            }
        }
        // And split inside one frame's payload by the caller's reads.
        let wire = frame(true, Opcode::Text, bytes);
        assert_eq!(drive_in_pieces(&mut server(), &wire, 1).unwrap(), [text(s)]);
    }
}

/// Text fragments where the first is not final: the error must come before the last one.
fn fails_before_final(first: &[u8], second: &[u8]) {
    let mut s = server();
    let mut wire = frame(false, Opcode::Text, first);
    wire.extend(frame(false, Opcode::Continuation, second));
    let r = drive(&mut s, &wire);
    assert_eq!(r.map_err(|e| e.code), Err(1007), "{first:x?} {second:x?}");
}

#[test]
fn invalid_utf8_detected_before_final_fragment() {
    // Autobahn 6.4.1: "κόσμε" then a UTF-16 surrogate (ED A0 80).
    let autobahn = [
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
    ];
    fails_before_final(&autobahn, b"edited");
    // Invalid inside the first fragment, with a partial char at its end.
    fails_before_final(&[0xff, 0xe2], b"");
    // The carried lead byte is not followed by a continuation byte.
    fails_before_final(&[b'a', 0xe2], &[0x28, 0xa1]);
    fails_before_final(&[0xe2, 0x82], b"(");
    // Over U+10FFFF and an overlong form, each split after the lead byte.
    fails_before_final(&[0xf4], &[0x90, 0x80, 0x80]);
    fails_before_final(&[0xe0], &[0x80, 0x80]);
    fails_before_final(&[0xf0], &[0x8f]);
    // Surrogate split after the lead byte: ED A0 is already invalid.
    fails_before_final(&[0xed], &[0xa0]);
    // Bytes that never start a sequence.
    fails_before_final(&[0xc0, 0x80], b"");
    fails_before_final(&[0xf5], b"");
    fails_before_final(b"ok", &[0x80]);
}

#[test]
fn invalid_utf8_detected_within_one_frame_as_it_arrives() {
    let mut payload = vec![b'a'; 1000];
    payload[10] = 0xff;
    let wire = frame(true, Opcode::Text, &payload);
    let mut s = server();
    // 14-byte header + the first 20 payload bytes: the bad byte is among them.
    assert_eq!(s.decode(&mut wire[..34].to_vec()).unwrap_err().code, 1007);
}

#[test]
fn text_ending_inside_a_char_is_invalid() {
    let wire = frame(true, Opcode::Text, &[b'a', 0xe2, 0x82]);
    assert_eq!(err_code(&mut server(), &wire), 1007);
    let mut wire = frame(false, Opcode::Text, &[0xf0, 0x9d]);
    wire.extend(frame(true, Opcode::Continuation, &[0x84]));
    assert_eq!(err_code(&mut server(), &wire), 1007);
}

#[test]
fn binary_is_not_utf8_checked() {
    let wire = frame(true, Opcode::Binary, &[0xff, 0xfe, 0xed, 0xa0]);
    let msgs = decode_all(&mut server(), &wire).unwrap();
    assert_eq!(msgs, [Message::Binary(vec![0xff, 0xfe, 0xed, 0xa0])]);
}

fn close_frame(payload: &[u8]) -> Vec<u8> {
    frame(true, Opcode::Close, payload)
}

#[test]
fn close_payloads() {
    let msgs = decode_all(&mut server(), &close_frame(b"")).unwrap();
    let empty = Message::Close {
        code: None,
        reason: String::new(),
    };
    assert_eq!(msgs, [empty]);

    let mut payload = Vec::new();
    encode_close(&mut payload, 1000, "bye ✓");
    let msgs = decode_all(&mut server(), &close_frame(&payload)).unwrap();
    let bye = Message::Close {
        code: Some(1000),
        reason: "bye ✓".to_string(),
    };
    assert_eq!(msgs, [bye]);

    assert_eq!(err_code(&mut server(), &close_frame(&[0x03])), 1002);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let wire = close_frame(&code.to_be_bytes());
        assert_eq!(err_code(&mut server(), &wire), 1002, "code {code}");
    }
    for code in [1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
        let msgs = decode_all(&mut server(), &close_frame(&code.to_be_bytes())).unwrap();
        let want = Message::Close {
            code: Some(code),
            reason: String::new(),
        };
        assert_eq!(msgs, [want]);
    }
    let bad_reason = close_frame(&[0x03, 0xe8, b'a', 0xff]);
    assert_eq!(err_code(&mut server(), &bad_reason), 1007);
}

#[test]
fn close_mid_message_ends_the_session() {
    let mut s = server();
    let mut wire = frame(false, Opcode::Text, b"partial");
    wire.extend(close_frame(&1001u16.to_be_bytes()));
    wire.extend(frame(true, Opcode::Text, b"after close"));
    let (msgs, used) = drive(&mut s, &wire).unwrap();
    let want = Message::Close {
        code: Some(1001),
        reason: String::new(),
    };
    assert_eq!(msgs, [want]);
    assert!(s.is_closed() && !s.in_message());
    // Bytes after the close frame are left alone.
    assert_eq!(
        used,
        wire.len() - frame(true, Opcode::Text, b"after close").len()
    );
}

#[test]
fn valid_close_codes() {
    let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid_close_code(c)).collect();
    let mut want: Vec<u16> = vec![1000, 1001, 1002, 1003];
    want.extend(1007..=1014);
    want.extend(3000..=4999);
    assert_eq!(valid, want);
}

#[test]
fn encode_close_truncates_on_a_char_boundary() {
    let mut out = Vec::new();
    encode_close(&mut out, 1000, "");
    assert_eq!(out, [0x03, 0xe8]);
    // 122 ASCII bytes then a 3-byte char that would end at byte 125: dropped whole.
    let reason = format!("{}€tail", "a".repeat(122));
    out.clear();
    encode_close(&mut out, 1001, &reason);
    assert_eq!(out.len(), 2 + 122);
    assert_eq!(out[2..], reason.as_bytes()[..122]);
    let long = "é".repeat(100);
    out.clear();
    encode_close(&mut out, 1011, &long);
    assert_eq!(out.len(), 2 + 122);
    assert!(std::str::from_utf8(&out[2..]).is_ok());
    assert_eq!(out.len(), 2 + CLOSE_REASON_BYTES_MAX - 1);
}

#[test]
fn encode_close_frame_round_trips() {
    let reason = "going away ".repeat(20);
    for mask in [None, Some(KEY)] {
        let mut out = Vec::new();
        encode_close_frame(&mut out, 1001, &reason, mask);
        let mut payload = Vec::new();
        encode_close(&mut payload, 1001, &reason);
        let mut want = Vec::new();
        encode_frame(&mut want, true, Opcode::Close, &payload, mask);
        assert_eq!(out, want);
        assert_eq!(out.len(), header_len(125, mask.is_some()) + 125);
    }
}

#[test]
fn session_is_small() {
    let size = std::mem::size_of::<Session>();
    assert!(size <= 64, "Session is {size} bytes");
}
