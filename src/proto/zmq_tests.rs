use super::*;
use crate::proto::publish::{StreamAction, WsMessageKind};

fn limits() -> PublishLimits {
    PublishLimits::default()
}

fn tnet(v: &Value<'_>) -> Vec<u8> {
    tnetstring::to_vec(v)
}

fn map<'a>(entries: Vec<(&'a str, Value<'a>)>) -> Value<'a> {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes(), v))
            .collect(),
    )
}

fn stream_item<'a>(channel: &'a str, content: &'a [u8]) -> Value<'a> {
    map(vec![
        ("channel", Value::Bytes(channel.as_bytes())),
        (
            "formats",
            map(vec![(
                "http-stream",
                map(vec![("content", Value::Bytes(content))]),
            )]),
        ),
    ])
}

#[test]
fn a_tnetstring_item_on_the_pull_socket_is_the_http_apis_item() {
    let bytes = tnet(&stream_item("test", b"hello\n"));
    let item = parse_item_message(&bytes, None, &limits()).unwrap();
    let json =
        br#"{"items": [{"channel": "test", "formats": {"http-stream": {"content": "hello\n"}}}]}"#;
    let http = publish::parse_body(json, &limits()).unwrap();
    assert_eq!(item, http[0]);
    // With Pushpin's optional 'T' prefix, the same.
    let prefixed = [b"T".as_slice(), &bytes].concat();
    assert_eq!(parse_item_message(&prefixed, None, &limits()), Ok(item));
}

#[test]
fn a_json_item_prefixed_j_and_the_sub_sockets_channel_part() {
    let msg = br#"J{"formats": {"ws-message": {"content": "hi"}}}"#;
    let item = parse_item_message(msg, Some(b"room"), &limits()).unwrap();
    assert_eq!(item.channel, "room");
    assert_eq!(item.ws_message.unwrap().content, b"hi");
    // The channel part wins over the item's own, as in Pushpin; an empty part leaves it.
    let bytes = tnet(&stream_item("own", b"x"));
    let on = |c: &[u8]| parse_item_message(&bytes, Some(c), &limits()).map(|i| i.channel);
    assert_eq!(on(b"part"), Ok("part".into()));
    assert_eq!(on(b""), Ok("own".into()));
    assert!(on(b"\xff").unwrap_err().contains("not UTF-8"));
}

#[test]
fn raw_bytes_in_content_survive_as_they_are() {
    let raw = b"\x00\xff\xfe binary";
    let item = parse_item_message(&tnet(&stream_item("c", raw)), None, &limits()).unwrap();
    assert_eq!(item.http_stream.unwrap().content, raw);
    let ws = map(vec![
        ("channel", Value::Bytes(b"c")),
        (
            "formats",
            map(vec![(
                "ws-message",
                map(vec![("content-bin", Value::Bytes(raw))]),
            )]),
        ),
    ]);
    let ws = parse_item_message(&tnet(&ws), None, &limits())
        .unwrap()
        .ws_message
        .unwrap();
    assert_eq!(
        (ws.kind, ws.content.as_slice()),
        (WsMessageKind::Binary, &raw[..])
    );
    let resp = map(vec![
        ("channel", Value::Bytes(b"c")),
        ("http-response", map(vec![("body", Value::Bytes(raw))])),
    ]);
    let body = parse_item_message(&tnet(&resp), None, &limits())
        .unwrap()
        .http_response;
    assert_eq!(body.unwrap().body.as_deref(), Some(&raw[..]));
}

#[test]
fn base64_fields_of_the_json_form_are_ignored_in_a_tnetstring_as_pushpin_does() {
    let item = map(vec![
        ("channel", Value::Bytes(b"c")),
        (
            "formats",
            map(vec![(
                "http-stream",
                map(vec![("content-bin", Value::Bytes(b"aGk="))]),
            )]),
        ),
    ]);
    let err = parse_item_message(&tnet(&item), None, &limits()).unwrap_err();
    assert!(err.contains("must contain \"content\""), "{err}");
}

#[test]
fn the_http_apis_checks_apply() {
    let long = "x".repeat(600);
    let err = parse_item_message(&tnet(&stream_item(&long, b"x")), None, &limits()).unwrap_err();
    assert_eq!(err, "\"channel\" is longer than 512 bytes");
    let ctl = parse_item_message(&tnet(&stream_item("a\nb", b"x")), None, &limits());
    assert!(ctl.unwrap_err().contains("control characters"));
    let text = map(vec![
        ("channel", Value::Bytes(b"c")),
        ("ws-message", map(vec![("content", Value::Bytes(b"\xff"))])),
    ]);
    let err = parse_item_message(&tnet(&text), None, &limits()).unwrap_err();
    assert!(
        err.contains("not valid UTF-8, as a text message needs"),
        "{err}"
    );
    let tight = PublishLimits {
        content_bytes_max: 3,
        ..limits()
    };
    let err = parse_item_message(&tnet(&stream_item("c", b"four")), None, &tight).unwrap_err();
    assert!(err.contains("larger than 3 bytes"), "{err}");
    for junk in [&b"J[1]"[..], b"Jnope", b"5:hello,", b"", b"3:abc"] {
        assert!(
            parse_item_message(junk, None, &limits()).is_err(),
            "{junk:?}"
        );
    }
}

#[test]
fn actions_and_other_fields_convert() {
    let item = map(vec![
        ("channel", Value::Bytes(b"c")),
        ("id", Value::Bytes(b"2")),
        ("prev-id", Value::Bytes(b"1")),
        ("no-seq", Value::Bool(true)),
        ("size", Value::Int(3)),
        ("meta", map(vec![("sender", Value::Bytes(b"bob"))])),
        (
            "formats",
            map(vec![(
                "http-stream",
                map(vec![("action", Value::Bytes(b"close"))]),
            )]),
        ),
    ]);
    let item = parse_item_message(&tnet(&item), None, &limits()).unwrap();
    assert_eq!(
        (item.id.as_deref(), item.prev_id.as_deref(), item.no_seq),
        (Some("2"), Some("1"), true)
    );
    assert_eq!(item.meta, [("sender".to_string(), "bob".to_string())]);
    assert_eq!(item.http_stream.unwrap().action, StreamAction::Close);
}

#[test]
fn command_requests_and_responses() {
    let req = map(vec![
        ("id", Value::Bytes(b"7")),
        ("method", Value::Bytes(b"get-zmq-uris")),
    ]);
    let bytes = tnet(&req);
    let parsed = parse_request(&bytes).unwrap();
    assert_eq!(parsed.id, Some(&b"7"[..]));
    assert_eq!(parsed.method, b"get-zmq-uris");
    assert_eq!(parsed.args, Value::Map(vec![]));
    assert!(parse_request(b"0:~").is_err());
    assert!(parse_request(&tnet(&map(vec![("args", Value::Null)]))).is_err());
    let ok = response_ok(Some(b"7"), Value::Null);
    assert_eq!(ok, b"37:2:id,1:7,7:success,4:true!5:value,0:~}");
    let err = response_error(None, "bad-request", Some("Invalid format"));
    let err = tnetstring::decode(&err).unwrap().to_string();
    assert_eq!(
        err,
        r#"{"success": false, "condition": "bad-request", "value": "Invalid format"}"#
    );
}

#[test]
fn publish_command_items_are_all_or_nothing() {
    let good = stream_item("a", b"1");
    let bad = stream_item("", b"2");
    let args = map(vec![(
        "items",
        Value::List(vec![good.clone(), good.clone()]),
    )]);
    assert_eq!(parse_publish_args(&args, &limits()).map(|v| v.len()), Ok(2));
    let args = map(vec![("items", Value::List(vec![good, bad]))]);
    let err = parse_publish_args(&args, &limits()).unwrap_err();
    assert_eq!(err, "Invalid format: item 1: \"channel\" must not be empty");
    let missing = parse_publish_args(&map(vec![]), &limits()).unwrap_err();
    assert_eq!(missing, "Invalid format: object does not contain 'items'");
    let wrong = parse_publish_args(&map(vec![("items", Value::Int(1))]), &limits());
    assert_eq!(
        wrong.unwrap_err(),
        "Invalid format: object contains 'items' with wrong type"
    );
}

#[test]
fn stats_messages_carry_their_type_as_a_prefix() {
    let fields = map(vec![
        ("from", Value::Bytes(b"h1")),
        ("connections", Value::Int(3)),
    ]);
    let t = stats_message("report", &fields, StatsFormat::Tnetstring);
    assert_eq!(t, b"report T31:4:from,2:h1,11:connections,1:3#}");
    let j = stats_message("report", &fields, StatsFormat::Json);
    assert_eq!(j, br#"report J{"connections":3,"from":"h1"}"#);
}
