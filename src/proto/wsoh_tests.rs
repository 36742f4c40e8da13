//! Unit tests of `proto::wsoh` (a sibling file: the module and its tests pass 800 lines).

use super::Event::{Binary, Close, Disconnect, Open, Ping, Pong, Text};
use super::*;

/// `input => expected` pairs as an array, one per line (kept out of rustfmt's tuple layout).
macro_rules! table {
    ($($input:expr => $want:expr),* $(,)?) => { [$(($input, $want)),*] };
}

fn enc(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    events.iter().for_each(|e| encode_event(&mut out, e));
    out
}

fn close(code: Option<u16>, reason: &[u8]) -> Event {
    let reason = reason.to_vec();
    Close { code, reason }
}

fn ctl(json: &str) -> Result<Control, WsohError> {
    parse_control(json.as_bytes(), &NameLimits::default())
}

#[test]
fn pushpin_wire_vectors() {
    let cases: [(Event, &[u8]); 8] = table! {
        Open => b"OPEN\r\n",
        Text(b"hi from client".to_vec()) => b"TEXT e\r\nhi from client\r\n",
        close(Some(1000), b"bye") => b"CLOSE 5\r\n\x03\xe8bye\r\n",
        // websocketoverhttptest convertFrames: "hello" + " world" become one TEXT event.
        Text(b"hello world".to_vec()) => b"TEXT b\r\nhello world\r\n",
        // Pushpin omits empty payloads, and a reason without a code.
        Text(vec![]) => b"TEXT\r\n",
        Ping(vec![]) => b"PING\r\n",
        close(None, b"dropped") => b"CLOSE\r\n",
        Disconnect => b"DISCONNECT\r\n",
    };
    for (event, wire) in cases {
        assert_eq!(enc(std::slice::from_ref(&event)), wire, "{event:?}");
    }
    assert!(enc(&[Binary(vec![0; 0x1a])]).starts_with(b"BINARY 1a\r\n"));
}

#[test]
fn gripcontrol_decode_vectors() {
    let body = b"OPEN\r\nTEXT 5\r\nHello\r\nTEXT 0\r\n\r\nCLOSE\r\nTEXT\r\nCLOSE\r\n";
    let bare = close(None, b"");
    let hello = Text(b"Hello".to_vec());
    let want = [Open, hello, Text(vec![]), bare.clone(), Text(vec![]), bare];
    assert_eq!(decode_events(body), Ok(want.to_vec()));
    assert_eq!(decode_events(b""), Ok(vec![]));
    assert!(decode_events(b"TEXT 5").is_err());
    assert!(decode_events(b"OPEN\r\nTEXT").is_err());
    let upper = decode_events(b"TEXT B\r\nhello world\r\n");
    assert_eq!(upper, Ok(vec![Text(b"hello world".to_vec())]));
    let wire = decode_events(b"CLOSE 5\r\n\x03\xe8bye\r\n");
    assert_eq!(wire, Ok(vec![close(Some(1000), b"bye")]));
    // Lenient where Pushpin is: content on OPEN/DISCONNECT, a CLOSE too short for a code.
    let odd = decode_events(b"OPEN 2\r\nxx\r\nDISCONNECT 0\r\n\r\nCLOSE 1\r\n\x03\r\n");
    assert_eq!(odd, Ok(vec![Open, Disconnect, close(None, b"")]));
}

#[test]
fn round_trip_and_encoded_len() {
    let events = vec![
        Open,
        Text(b"hi".to_vec()),
        Text(vec![]),
        Binary(b"a\r\nb\rc\n\r\n\x00\xff".to_vec()),
        Binary(vec![]),
        Binary(vec![b'x'; 0x1234]),
        Ping(b"p".to_vec()),
        Ping(vec![]),
        Pong(b"\r\n".to_vec()),
        Pong(vec![]),
        close(Some(1000), b"bye"),
        close(Some(1001), b""),
        close(None, b""),
        Disconnect,
    ];
    assert_eq!(decode_events(&enc(&events)), Ok(events.clone()));
    for e in &events {
        assert_eq!(encoded_len(e), enc(std::slice::from_ref(e)).len(), "{e:?}");
    }
}

#[test]
fn malformed_bodies() {
    use WsohError as E;
    let cases: [(&[u8], WsohError); 11] = table! {
        b"OPEN\r\nTEXT zz\r\n" => E::BadLength(11),
        b"TEXT \r\n\r\n" => E::BadLength(5),
        b"TEXT -1\r\n" => E::BadLength(5),
        b"TEXT ffffffffffffffffff\r\n" => E::BadLength(5),
        b"TEXT 5\r\nab\r\n" => E::Truncated(8),
        b"TEXT 2\r\nabcd" => E::MissingPayloadEnd(10),
        b"TEXT 2\r\nab" => E::MissingPayloadEnd(10),
        b"OPEN\r\nOPEN" => E::MissingLineEnd(6),
        b"OPEN\r\nFOO 1\r\nx\r\n" => E::UnknownEvent(6, "FOO".into()),
        b"open\r\n" => E::UnknownEvent(0, "open".into()),
        b"\r\n" => E::UnknownEvent(0, String::new()),
    };
    for (body, err) in cases {
        assert_eq!(decode_events(body), Err(err), "{body:?}");
    }
    assert!(E::Truncated(8).to_string().contains("byte 8"));
}

#[test]
fn control_messages() {
    use Control as C;
    use MessageType::Binary as Bin;
    let sub = |c: &str, f: &[&str]| C::Subscribe {
        channel: c.into(),
        filters: f.iter().map(|s| s.to_string()).collect(),
    };
    let meta = |v: Option<&str>| C::SetMeta {
        name: "user".into(),
        value: v.map(Into::into),
    };
    let close = |code, reason: &str| C::Close {
        code,
        reason: reason.into(),
    };
    let delayed = |content: &[u8], message_type, timeout_secs| C::SendDelayed {
        content: content.to_vec(),
        message_type,
        timeout_secs,
    };
    let cases = table! {
        r#"{"type":"subscribe","channel":"test"}"# => sub("test", &[]),
        r#"{"channel":"c","type":"subscribe","filters":["f","g"]}"# => sub("c", &["f", "g"]),
        r#"{"type":"subscribe","channel":"c","filters":null}"# => sub("c", &[]),
        r#"{"type":"unsubscribe","channel":"c"}"# => C::Unsubscribe { channel: "c".into() },
        // Fields irrelevant to the type are not checked, as in Pushpin.
        r#"{"type":"detach","channel":5}"# => C::Detach,
        r#"{"type":"session","id":"abc"}"# => C::Session { id: "abc".into() },
        r#"{"type":"session"}"# => C::Session { id: String::new() },
        r#"{"type":"set-meta","name":"user","value":"alice"}"# => meta(Some("alice")),
        r#"{"type":"set-meta","name":"user"}"# => meta(None),
        r#"{"type":"set-meta","name":"user","value":null}"# => meta(None),
        r#"{"type":"set-meta","name":"user","value":""}"# => meta(None),
        r#"{"type":"close","code":4000,"reason":"bye"}"# => close(Some(4000), "bye"),
        r#"{"type":"close"}"# => close(None, ""),
        r#"{"type":"send-delayed","content":"x","message-type":"binary"}"#
            => delayed(b"x", Bin, 1),
        r#"{"type":"send-delayed","timeout":-5}"# => delayed(b"", MessageType::Text, 1),
        r#"{"type":"flush-delayed"}"# => C::FlushDelayed,
    };
    for (json, want) in cases {
        assert_eq!(ctl(json), Ok(want), "{json}");
    }
}

#[test]
fn control_keep_alive() {
    use KeepAliveMode::{Idle, Interval};
    use MessageType::{Ping, Text};
    let ka = |content: Option<&[u8]>, message_type, timeout_secs, mode| Control::KeepAlive {
        content: content.map(<[u8]>::to_vec),
        message_type,
        timeout_secs,
        mode,
    };
    let cases = table! {
        r#"{"type":"keep-alive","content":"{}"}"# => ka(Some(b"{}"), Text, Some(55), Idle),
        r#"{"type":"keep-alive","content-bin":"AAEC/w==","content":"no","message-type":"ping",
            "timeout":20,"mode":"interval"}"#
            => ka(Some(&[0, 1, 2, 255]), Ping, Some(20), Interval),
        // content-bin stays text by default (Pushpin quirk); string timeouts; other modes idle.
        r#"{"type":"keep-alive","content-bin":"AA-EC","timeout":"30","mode":"x"}"#
            => ka(Some(&[0, 1, 2]), Text, Some(30), Idle),
        r#"{"type":"keep-alive","content":"k","timeout":0}"#
            => ka(Some(b"k"), Text, Some(55), Idle),
        r#"{"type":"keep-alive","content":"k","timeout":7.6}"#
            => ka(Some(b"k"), Text, Some(8), Idle),
        // No content disables it; timeout is then not read.
        r#"{"type":"keep-alive","timeout":-1}"# => ka(None, Text, None, Idle),
    };
    for (json, want) in cases {
        assert_eq!(ctl(json), Ok(want), "{json}");
    }
}

#[test]
fn control_errors() {
    use WsohError as E;
    let cases = table! {
        r#"[{"type":"detach"}]"# => E::NotAnObject,
        "{}" => E::MissingField("type"),
        r#"{"type":1}"# => E::WrongType("type"),
        r#"{"type":"ack"}"# => E::UnknownControlType("ack".into()),
        r#"{"type":"refresh"}"# => E::UnknownControlType("refresh".into()),
        r#"{"type":"subscribe"}"# => E::MissingField("channel"),
        r#"{"type":"subscribe","channel":""}"# => E::InvalidValue("channel"),
        r#"{"type":"subscribe","channel":"c","filters":[1]}"# => E::WrongType("filters"),
        r#"{"type":"subscribe","channel":"c","filters":"f"}"# => E::WrongType("filters"),
        r#"{"type":"set-meta","value":"v"}"# => E::MissingField("name"),
        r#"{"type":"set-meta","name":"n","value":1}"# => E::WrongType("value"),
        r#"{"type":"keep-alive","content":"k","timeout":-1}"# => E::InvalidValue("timeout"),
        r#"{"type":"keep-alive","content":"k","timeout":[]}"# => E::WrongType("timeout"),
        r#"{"type":"keep-alive","content":"k","message-type":"x"}"#
            => E::InvalidValue("message-type"),
        r#"{"type":"keep-alive","content":null}"# => E::WrongType("content"),
        r#"{"type":"keep-alive","content-bin":7}"# => E::WrongType("content-bin"),
        r#"{"type":"keep-alive","content-bin":"A"}"# => E::InvalidValue("content-bin"),
        r#"{"type":"close","code":70000}"# => E::InvalidValue("code"),
    };
    for (json, err) in cases {
        assert_eq!(ctl(json), Err(err), "{json}");
    }
    assert!(matches!(ctl("{"), Err(E::BadJson(_))));
    assert!(matches!(ctl(""), Err(E::BadJson(_))));
}

#[test]
fn grip_extension_prefix() {
    let cases: [(&[&str], Option<&str>); 16] = table! {
        &[] => None,
        &["permessage-deflate"] => None,
        &["grip"] => Some("m:"),
        &[" grip ; foo=bar"] => Some("m:"),
        &["grip; message-prefix=x:"] => Some("x:"),
        &["grip;message-prefix = y ;a=b"] => Some("y"),
        &[r#"grip; message-prefix="a;b,\"c\""; x=1"#] => Some(r#"a;b,"c""#),
        &[r#"grip; message-prefix="""#] => Some(""),
        &["grip; message-prefix=;"] => Some(""),
        &["grip; message-prefix"] => Some(""),
        // Pushpin's parameter parser fails on these, so grip counts as absent.
        &["grip; message-prefix="] => None,
        &[r#"grip; message-prefix="open"#] => None,
        &["permessage-deflate; x=\"1,2\", grip; message-prefix=z"] => Some("z"),
        &["foo", "grip; message-prefix=w"] => Some("w"),
        &["Grip"] => None,
        &["grip-x; message-prefix=w"] => None,
    };
    for (values, want) in cases {
        let values: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(grip_extension(&values).as_deref(), want, "{values:?}");
    }
}

#[test]
fn classify_origin_messages() {
    use OriginText::{Control as Ctl, Dropped, Message as Msg};
    let detach = br#"c:{"type":"detach"}"#;
    assert_eq!(classify_text(detach, "m:"), Ctl(&detach[2..]));
    assert_eq!(classify_text(b"m:hello", "m:"), Msg(b"hello"));
    assert_eq!(classify_text(b"m:", "m:"), Msg(b""));
    assert_eq!(classify_text(b"hello", "m:"), Dropped);
    assert_eq!(classify_text(b"msg:x", "msg:"), Msg(b"x"));
    assert_eq!(classify_text(b"m:x", "msg:"), Dropped);
    assert_eq!(classify_text(b"plain", ""), Msg(b"plain"));
    assert_eq!(classify_text(b"c:{}", ""), Ctl(b"{}"));
    assert_eq!(classify_binary(b"c:{}", "m:"), Dropped);
    assert_eq!(classify_binary(b"m:\x00\xff", "m:"), Msg(b"\x00\xff"));
}

#[test]
fn set_meta_headers() {
    let headers: [(&str, &[u8]); 6] = [
        ("Set-Meta-User", b"alice"),
        ("set-meta-room", b""),
        ("Set-Meta-", b"ignored"),
        ("Set-Meta", b"ignored"),
        ("Meta-User", b"not a set"),
        ("Content-Type", b"application/websocket-events"),
    ];
    let want = [
        Ok(("User".into(), Some("alice".into()))),
        Ok(("room".into(), None)),
    ];
    assert_eq!(
        set_meta_updates(headers, &NameLimits::default()),
        want.to_vec()
    );
    let long = "v".repeat(1025);
    let bad: [(&str, &[u8]); 3] = [
        ("Set-Meta-User", b"a\x01b"),
        ("Set-Meta-Ok", b"1"),
        ("Set-Meta-Big", long.as_bytes()),
    ];
    let got = set_meta_updates(bad, &NameLimits::default());
    assert_eq!(
        got[0],
        Err(WsohError::BadName("meta value", NameError::Control))
    );
    assert_eq!(got[1], Ok(("Ok".into(), Some("1".into()))));
    assert_eq!(
        got[2],
        Err(WsohError::BadName("meta value", NameError::TooLong(1024)))
    );
}

#[test]
fn control_messages_with_bad_identifiers_are_refused() {
    let cases = [
        (r#"{"type":"subscribe","channel":"a\r\nb"}"#, "channel"),
        (r#"{"type":"unsubscribe","channel":"a\u0000"}"#, "channel"),
        (
            r#"{"type":"set-meta","name":"us er","value":"x"}"#,
            "meta name",
        ),
        (
            r#"{"type":"set-meta","name":"user","value":"x\r\nMeta-Admin: 1"}"#,
            "meta value",
        ),
    ];
    for (json, field) in cases {
        match ctl(json) {
            Err(WsohError::BadName(f, _)) => assert_eq!(f, field, "{json}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    let long = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "c".repeat(513));
    assert_eq!(
        ctl(&long),
        Err(WsohError::BadName("channel", NameError::TooLong(512)))
    );
}

#[test]
fn keep_alive_and_accepted_headers() {
    let cases = table! {
        "10" => Some(20), "1" => Some(20), "20" => Some(20), " 45 " => Some(45),
        "0" => None, "-5" => None, "abc" => None, "99999999999" => None,
    };
    for (value, want) in cases {
        let header = [("keep-alive-interval", value.as_bytes())];
        assert_eq!(keep_alive_interval(header), Some(want), "{value}");
    }
    assert_eq!(keep_alive_interval([("Other", b"5".as_slice())]), None);
    let two: [(&str, &[u8]); 2] = [
        ("Keep-Alive-Interval", b"30"),
        ("Keep-Alive-Interval", b"0"),
    ];
    assert_eq!(keep_alive_interval(two), Some(Some(30)));

    let cases = table! { "12" => Some(12), "0" => Some(0), "-1" => None, "x" => None };
    for (value, want) in cases {
        let header = [("Content-Bytes-Accepted", value.as_bytes())];
        assert_eq!(content_bytes_accepted(header), want, "{value}");
    }
    assert_eq!(content_bytes_accepted([("X", b"1".as_slice())]), None);
}
