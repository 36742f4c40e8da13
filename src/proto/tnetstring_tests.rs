use super::*;

#[test]
fn decodes_every_type() {
    assert_eq!(decode(b"0:~"), Ok(Value::Null));
    assert_eq!(decode(b"4:true!"), Ok(Value::Bool(true)));
    assert_eq!(decode(b"5:false!"), Ok(Value::Bool(false)));
    assert_eq!(decode(b"3:-42#"), Ok(Value::Int(-42)));
    assert_eq!(decode(b"3:1.5^"), Ok(Value::Float(1.5)));
    // Python's tnetstring writes exponents with a sign.
    assert_eq!(decode(b"5:1e+30^"), Ok(Value::Float(1e30)));
    assert_eq!(decode(b"5:hello,"), Ok(Value::Bytes(b"hello")));
    assert_eq!(decode(b"0:,"), Ok(Value::Bytes(b"")));
    assert_eq!(
        decode(b"8:1:1#1:a,]"),
        Ok(Value::List(vec![Value::Int(1), Value::Bytes(b"a")]))
    );
    assert_eq!(
        decode(b"15:1:a,1:1#1:b,0:~}"),
        Ok(Value::Map(vec![
            (&b"a"[..], Value::Int(1)),
            (b"b", Value::Null)
        ]))
    );
}

#[test]
fn a_pushpin_publish_item_decodes() {
    // What pubcontrol's ZmqPubControlClient sends to the PULL socket (tnetstring.dumps).
    let msg =
        b"82:7:formats,51:11:http-stream,32:7:content,18:hello from zeromq\n,}}7:channel,4:test,}";
    let v = decode(msg).unwrap();
    assert_eq!(v.get("channel"), Some(&Value::Bytes(b"test")));
    let content = v
        .get("formats")
        .and_then(|f| f.get("http-stream"))
        .and_then(|s| s.get("content"));
    assert_eq!(content, Some(&Value::Bytes(b"hello from zeromq\n")));
}

#[test]
fn bytes_may_hold_anything_including_tags() {
    let raw = b"\x00\xff:,]}~#";
    let mut buf = Vec::new();
    encode(&Value::Bytes(raw), &mut buf);
    assert_eq!(decode(&buf), Ok(Value::Bytes(raw)));
}

#[test]
fn round_trips_nested_values() {
    let v = Value::Map(vec![
        (b"id", Value::Bytes(b"x")),
        (
            b"args",
            Value::Map(vec![(
                b"items",
                Value::List(vec![
                    Value::Bool(false),
                    Value::Float(-0.25),
                    Value::Float(1e30),
                    Value::Int(i64::MIN),
                    Value::Null,
                    Value::List(vec![]),
                    Value::Map(vec![]),
                ]),
            )]),
        ),
    ]);
    let bytes = to_vec(&v);
    assert_eq!(decode(&bytes), Ok(v));
}

#[test]
fn refuses_malformed_input_with_a_reason() {
    use DecodeError::*;
    let cases: &[(&[u8], DecodeError)] = &[
        (b"", Empty),
        (b"5:abc,", Truncated),
        (b"3:abc", Truncated),
        (b"12", Truncated),
        (b"x:abc,", BadLength),
        (b"-1:,", BadLength),
        (b"+1:a,", BadLength),
        (b":a,", BadLength),
        (b"1234567890:a,", BadLength),
        (b"3:abc?", BadTag),
        (b"2:1x#", BadScalar("integer")),
        (b"0:#", BadScalar("integer")),
        (b"20:99999999999999999999#", BadScalar("integer")),
        (b"3:inf^", BadScalar("float")),
        (b"3:nan^", BadScalar("float")),
        (b"5:1e999^", BadScalar("float")),
        (b"3:yes!", BadScalar("boolean")),
        (b"1:x~", BadScalar("null")),
        (b"8:1:1#1:2#}", KeyNotString),
        (b"4:1:a,}", Truncated),
        (b"0:~0:~", TrailingBytes),
        (b"3:abc,\n", TrailingBytes),
    ];
    for (input, want) in cases {
        assert_eq!(
            decode(input),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let mut deep = b"0:]".to_vec();
    for _ in 0..DEPTH_MAX {
        deep = format!("{}:", deep.len())
            .into_bytes()
            .into_iter()
            .chain(deep)
            .chain([b']'])
            .collect();
    }
    assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
    // One level less is fine.
    let inner = &deep[deep.iter().position(|&b| b == b':').unwrap() + 1..deep.len() - 1];
    assert!(decode(inner).is_ok());
}

#[test]
fn lookups_take_the_last_repeated_key_and_render_for_logs() {
    let v = decode(b"16:1:a,1:1#1:a,1:2#}").unwrap();
    assert_eq!(v.get("a"), Some(&Value::Int(2)));
    assert_eq!(v.get("b"), None);
    assert_eq!(Value::Int(1).get("a"), None);
    let shown = decode(b"14:1:k,7:4:a\"\n\x01,]}").unwrap().to_string();
    assert_eq!(shown, r#"{"k": ["a\"\n\x01"]}"#);
}
