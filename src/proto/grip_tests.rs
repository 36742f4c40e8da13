//! Unit tests of `proto::grip` (a sibling file: the module and its tests pass 800 lines).

use super::HoldMode::{Response, Stream};
use super::KeepAliveMode::{Idle, Interval};
use super::*;

fn hdrs(list: &[(&str, &str)]) -> Instruct {
    try_hdrs(list, DEFAULT_CHANNELS_MAX).unwrap()
}

fn try_hdrs(list: &[(&str, &str)], channels_max: usize) -> Result<Instruct, GripError> {
    let limits = GripLimits {
        channels_max,
        ..GripLimits::default()
    };
    from_headers(list.iter().map(|(n, v)| (*n, v.as_bytes())), &limits)
}

fn hdr_err(list: &[(&str, &str)]) -> String {
    err(try_hdrs(list, DEFAULT_CHANNELS_MAX))
}

fn json(body: &str) -> Result<Instruct, GripError> {
    from_json(body.as_bytes(), &GripLimits::default())
}

fn err<T: std::fmt::Debug>(r: Result<T, GripError>) -> String {
    r.unwrap_err().to_string()
}

fn names(i: &Instruct) -> Vec<&str> {
    i.channels.iter().map(|c| c.name.as_str()).collect()
}

fn chan(name: &str, prev_id: Option<&str>, filters: &[&str]) -> ChannelSub {
    let filters = filters.iter().map(|f| f.to_string()).collect();
    let (name, prev_id) = (name.into(), prev_id.map(Into::into));
    ChannelSub {
        name,
        prev_id,
        filters,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn st(code: u16, reason: Option<&str>) -> Option<Status> {
    let reason = reason.map(Into::into);
    Some(Status { code, reason })
}

fn ka(data: &[u8], timeout_secs: u32, mode: KeepAliveMode) -> Option<KeepAlive> {
    let data = data.to_vec();
    Some(KeepAlive {
        data,
        timeout_secs,
        mode,
    })
}

/// The `response` object of every Pushpin JSON vector.
const TEXT_RESPONSE: &str =
    r#""response":{"code": 200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}"#;

/// Parse `{<hold>TEXT_RESPONSE}` and check the response part.
fn json_text(hold: &str) -> Instruct {
    let i = json(&format!("{{{hold}{TEXT_RESPONSE}}}")).unwrap();
    let r = i.response.clone().unwrap();
    assert_eq!((r.code, r.reason), (Some(200), None));
    let content_type = ("Content-Type".to_owned(), b"text/plain".to_vec());
    assert_eq!(r.headers, [content_type]);
    assert_eq!(r.body, b"hello world");
    i
}

// --- Pushpin instructtest.cpp, re-expressed ---

#[test]
fn pushpin_no_hold() {
    let h = [("Content-Type", "text/plain"), ("Grip-Channel", "test")];
    let i = hdrs(&h);
    assert_eq!((i.hold, names(&i)), (None, vec!["test"]));
    assert_eq!((i.status, i.response), (None, None));
    let kept: Vec<_> = h.iter().filter(|(n, _)| !is_grip_header(n)).collect();
    assert_eq!(kept, [&("Content-Type", "text/plain")]);

    let i = hdrs(&[("Grip-Channel", "test"), ("Grip-Status", "404")]);
    assert_eq!((i.hold, i.status), (None, st(404, None)));
    let i = hdrs(&[("Grip-Status", "404 Nothing To See Here")]);
    assert_eq!(i.status, st(404, Some("Nothing To See Here")));

    assert_eq!(json_text("").hold, None);
}

#[test]
fn pushpin_response_hold() {
    let i = hdrs(&[
        ("Content-Type", "text/plain"),
        ("Grip-Hold", "response"),
        ("Grip-Channel", "apple"),
        ("Grip-Channel", "banana, cherry"),
        ("Grip-Timeout", "120"),
        ("Grip-Set-Meta", "foo=bar, bar=baz"),
    ]);
    assert_eq!((i.hold, i.timeout_secs), (Some(Response), Some(120)));
    assert_eq!(names(&i), ["apple", "banana", "cherry"]);
    assert_eq!(i.meta, pairs(&[("foo", "bar"), ("bar", "baz")]));

    let i = json_text(
        r#""hold":{"mode":"response","channels":[{"name":"test"}],"timeout":120,"meta":{"foo":"bar","bar":"baz"}},"#,
    );
    assert_eq!((i.hold, i.timeout_secs), (Some(Response), Some(120)));
    assert_eq!(names(&i), ["test"]);
    // A JSON object comes sorted by key.
    assert_eq!(i.meta, pairs(&[("bar", "baz"), ("foo", "bar")]));
}

#[test]
fn pushpin_response_hold_channel_params() {
    let want = vec![
        chan("apple", Some("item1"), &["f1"]),
        chan("banana", None, &["f2"]),
        chan("cherry", None, &["f1", "f2"]),
    ];
    let i = hdrs(&[
        ("Grip-Hold", "response"),
        ("Grip-Channel", "apple; prev-id=item1; filter=f1"),
        (
            "Grip-Channel",
            "banana; filter=f2, cherry; filter=f1; filter=f2",
        ),
    ]);
    assert_eq!(i.hold, Some(Response));
    assert_eq!(i.channels, want);

    let i = json_text(
        r#""hold":{"mode":"response","channels":[{"name":"apple","prev-id":"item1","filters":["f1"]},{"name":"banana","filters":["f2"]},{"name":"cherry","filters":["f1","f2"]}]},"#,
    );
    assert_eq!(i.hold, Some(Response));
    assert_eq!(i.channels, want);
}

#[test]
fn pushpin_stream_hold() {
    let i = hdrs(&[
        ("Grip-Hold", "stream"),
        ("Grip-Channel", "apple"),
        ("Grip-Channel", "banana, cherry"),
    ]);
    assert_eq!((i.hold, i.timeout_secs), (Some(Stream), None));
    assert_eq!(names(&i), ["apple", "banana", "cherry"]);

    let i = json_text(r#""hold":{"mode":"stream","channels":[{"name":"test"}]},"#);
    assert_eq!((i.hold, names(&i)), (Some(Stream), vec!["test"]));
}

#[test]
fn pushpin_stream_hold_keep_alive() {
    let with = |v: Option<&str>| {
        let mut h = vec![("Grip-Hold", "stream"), ("Grip-Channel", "test")];
        h.extend(v.map(|v| ("Grip-Keep-Alive", v)));
        hdrs(&h).keep_alive
    };
    assert_eq!(with(None), None);
    let k = with(Some(r"ping1\n; timeout=10"));
    assert_eq!(k, ka(br"ping1\n", 10, Idle));
    let k = with(Some(r"ping2\n; format=cstring"));
    assert_eq!(k, ka(b"ping2\n", 55, Idle));
    let k = with(Some("cGluZzMK; format=base64"));
    assert_eq!(k, ka(b"ping3\n", 55, Idle));
    let k = with(Some(r"ping4\n; mode=interval"));
    assert_eq!(k, ka(br"ping4\n", 55, Interval));
}

// --- header form as a whole ---

#[test]
fn no_grip_headers_is_default() {
    assert_eq!(hdrs(&[]), Instruct::default());
    let plain = [("Content-Type", "text/plain"), ("X-Grip-Hold", "x")];
    assert_eq!(hdrs(&plain), Instruct::default());
    // Grip-* headers that are not instructions are ignored (but still stripped).
    let other = [
        ("Grip-Sig", "jwt"),
        ("Grip-Last", "a; last-id=1"),
        ("Grip-", ""),
    ];
    assert_eq!(hdrs(&other), Instruct::default());
}

#[test]
fn header_and_content_type_detection() {
    for yes in ["Grip-Hold", "grip-channel", "GRIP-X", "Grip-"] {
        assert!(is_grip_header(yes), "{yes}");
    }
    for no in ["Grip", "X-Grip-Hold", "Gripe", "", "Grïp-"] {
        assert!(!is_grip_header(no), "{no}");
    }
    let ct = |v: &str| is_instruct_content_type(v.as_bytes());
    assert!(ct("application/grip-instruct"));
    assert!(ct(" Application/GRIP-Instruct ; charset=utf-8"));
    assert!(!ct("application/json") && !ct(""));
}

#[test]
fn names_case_insensitive_and_first_single_header_wins() {
    let i = hdrs(&[
        ("grip-hold", "stream"),
        ("GRIP-HOLD", "bogus"),
        ("gRiP-tImEoUt", "0"),
        ("Grip-Timeout", "x"),
        ("GRIP-STATUS", "201"),
        ("Grip-Status", "202"),
        ("grip-keep-alive", "a"),
        ("Grip-Keep-Alive", "b"),
        ("GRIP-CHANNEL", "c1"),
        ("grip-channel", "c2"),
        ("grip-expose-headers", "Content-Type, X-Foo"),
        ("Grip-Expose-Headers", "X-Bar,"),
    ]);
    assert_eq!(i.hold, Some(Stream));
    // A hold timeout under 5 s is raised to 5.
    assert_eq!(i.timeout_secs, Some(MIN_RESPONSE_TIMEOUT_SECS));
    assert_eq!(i.status, st(201, None));
    assert_eq!(i.keep_alive, ka(b"a", 55, Idle));
    assert_eq!(names(&i), ["c1", "c2"]);
    assert_eq!(i.expose_headers, ["Content-Type", "X-Foo", "X-Bar"]);
}

#[test]
fn channels_truncated_to_limit() {
    let v: Vec<String> = (0..25).map(|n| format!("c{n}")).collect();
    let i = hdrs(&[("Grip-Channel", &v.join(", "))]);
    assert_eq!(i.channels.len(), DEFAULT_CHANNELS_MAX);
    assert_eq!(i.channels[19].name, "c19");
    let h = [("Grip-Channel", "a"), ("Grip-Channel", "b, c")];
    assert_eq!(names(&try_hdrs(&h, 2).unwrap()), ["a", "b"]);
    assert_eq!(GripLimits::default().channels_max, 20);
}

#[test]
fn first_error_follows_pushpin_order() {
    let first = |h: &[(&str, &str)]| hdr_err(h).split(':').next().unwrap().to_owned();
    let h = [("Grip-Link", "<>; rel=next"), ("Grip-Hold", "x")];
    assert_eq!(first(&h), "Grip-Hold");
    assert_eq!(
        first(&[("Grip-Status", "x"), ("Grip-Timeout", "x")]),
        "Grip-Timeout"
    );
    let h = [("Grip-Set-Meta", ","), ("Grip-Keep-Alive", "")];
    assert_eq!(first(&h), "Grip-Keep-Alive");
}

#[test]
fn long_values_are_cut_in_messages() {
    let msg = hdr_err(&[("Grip-Hold", &"x".repeat(500))]);
    assert!(msg.len() < 120 && msg.ends_with("\"..."), "{msg}");
    let msg = err(json(&format!(r#"{{"hold":"{}"}}"#, "y".repeat(500))));
    assert!(msg.len() < 120 && msg.ends_with("..."), "{msg}");
}

// --- JSON form ---

#[test]
fn json_defaults_and_nulls() {
    let response = Some(InstructResponse::default());
    let empty = Instruct {
        response,
        ..Default::default()
    };
    assert_eq!(json("{}").unwrap(), empty);
    let nulls = json(r#"{"hold":null,"response":null,"other":1}"#);
    assert_eq!(nulls.unwrap(), empty);
    let i = json(r#"{"hold":{"channels":[{"name":"a"}]}}"#).unwrap();
    assert_eq!((i.hold, i.timeout_secs), (Some(Response), None));
    assert_eq!(i.keep_alive, None);
    let body = r#"{"hold":{"mode":null,"channels":[{"name":"a","prev-id":"","filters":null}]}}"#;
    assert_eq!(json(body).unwrap().channels, [chan("a", None, &[])]);
}

#[test]
fn json_timeouts() {
    let t = |v: &str| {
        let body = format!(r#"{{"hold":{{"channels":[],"timeout":{v}}}}}"#);
        json(&body).unwrap().timeout_secs
    };
    assert_eq!((t("30"), t("30.0"), t("0")), (Some(30), Some(30), Some(5)));
}

#[test]
fn json_keep_alive() {
    let k = |v: &str| {
        let hold = r#"{"hold":{"mode":"stream","channels":[],"keep-alive":"#;
        json(&format!("{hold}{v}}}}}")).unwrap().keep_alive
    };
    let got = k(r#"{"content":"ping\n","timeout":20}"#);
    assert_eq!(got, ka(b"ping\n", 20, Idle));
    let both = r#"{"content":"x","content-bin":"cGluZzMK","mode":"interval","timeout":0}"#;
    assert_eq!(k(both), ka(b"ping3\n", 1, Interval));
    assert_eq!(k("{}"), ka(b"", 55, Idle));
}

#[test]
fn identifiers_that_would_split_a_header_are_refused() {
    let e = err(try_hdrs(&[("Grip-Channel", "a; prev-id=\"1\\\u{7}\"")], 5));
    assert!(e.contains("must not contain control characters"), "{e}");
    let e = err(try_hdrs(&[("Grip-Set-Meta", "bad name=1")], 5));
    assert!(e.contains("meta name"), "{e}");
    let long = "c".repeat(513);
    let e = err(try_hdrs(&[("Grip-Channel", long.as_str())], 5));
    assert!(e.contains("is longer than 512 bytes"), "{e}");
    let bodies = [
        r#"{"hold":{"channels":[{"name":"a\r\nX-Evil: 1"}]}}"#,
        r#"{"hold":{"channels":[{"name":"a","prev-id":"1\r\nGET /admin HTTP/1.1"}]}}"#,
        r#"{"hold":{"channels":[],"meta":{"user":"x\r\nMeta-Admin: 1"}}}"#,
        r#"{"hold":{"channels":[],"meta":{"us er":"x"}}}"#,
    ];
    for body in bodies {
        assert!(
            matches!(json(body), Err(GripError::BadName { .. })),
            "{body}"
        );
    }
}

#[test]
fn reasons_that_would_split_the_status_line_are_refused() {
    let e = err(json(
        r#"{"response":{"code":200,"reason":"OK\r\nSet-Cookie: a=b"}}"#,
    ));
    assert_eq!(
        e,
        "response.reason: reason must not contain control characters"
    );
    let e = err(try_hdrs(&[("Grip-Status", "200 O\u{1}K")], 5));
    assert_eq!(e, "Grip-Status: reason must not contain control characters");
    assert!(json(r#"{"response":{"code":200,"reason":"Fine\tThanks"}}"#).is_ok());
}

#[test]
fn json_response_body_bin_header_list_and_reason() {
    let body = r#"{"response":{"code":404,"reason":"Gone Fishing","headers":[["X-A","1"],["X-A","2"]],"body":"no","body-bin":"AAEC/w=="}}"#;
    let r = json(body).unwrap().response.unwrap();
    assert_eq!(
        (r.code, r.reason.as_deref()),
        (Some(404), Some("Gone Fishing"))
    );
    let x_a = |v: &[u8]| ("X-A".to_owned(), v.to_vec());
    assert_eq!(r.headers, [x_a(b"1"), x_a(b"2")]);
    assert_eq!(r.body, [0, 1, 2, 255]);
    let body = r#"{"response":{"code":201.0,"reason":"","body":"h\u00e9"}}"#;
    let r = json(body).unwrap().response.unwrap();
    assert_eq!((r.code, r.reason), (Some(201), None));
    assert_eq!(r.body, "hé".as_bytes());
}

/// One case per line: `body => message`.
const JSON_ERRORS: &str = r#"
[1] => instruct: expected an object, got [1]
{"hold":1} => hold: expected an object, got 1
{"hold":{}} => hold.channels: missing
{"hold":{"mode":"poll","channels":[]}} => hold.mode: unknown mode "poll"
{"hold":{"mode":1,"channels":[]}} => hold.mode: expected a string, got 1
{"hold":{"channels":{}}} => hold.channels: expected a list, got {}
{"hold":{"channels":["a"]}} => hold.channels[0]: expected an object, got "a"
{"hold":{"channels":[{"name":"a"},{}]}} => hold.channels[1].name: missing
{"hold":{"channels":[{"name":""}]}} => hold.channels[0].name: empty channel name
{"hold":{"channels":[{"name":"a","prev-id":1}]}} => hold.channels[0].prev-id: expected a string, got 1
{"hold":{"channels":[{"name":"a","filters":"f"}]}} => hold.channels[0].filters: expected a list, got "f"
{"hold":{"channels":[{"name":"a","filters":[1]}]}} => hold.channels[0].filters[0]: expected a string, got 1
{"hold":{"channels":[{"name":"a","filters":["1","2","3","4","5","6"]}]}} => hold.channels[0].filters: channel "a" has 6 filters, at most 5 allowed
{"hold":{"channels":[],"timeout":-1}} => hold.timeout: value -1 out of range
{"hold":{"channels":[],"timeout":1e12}} => hold.timeout: value 1000000000000 out of range
{"hold":{"channels":[],"timeout":1.5}} => hold.timeout: not an integer: 1.5
{"hold":{"channels":[],"timeout":"30"}} => hold.timeout: expected an integer, got "30"
{"hold":{"channels":[],"timeout":true}} => hold.timeout: expected an integer, got true
{"hold":{"channels":[],"meta":{"user":1}}} => hold.meta.user: expected a string, got 1
{"hold":{"channels":[],"meta":[]}} => hold.meta: expected an object, got []
{"hold":{"channels":[],"keep-alive":[]}} => hold.keep-alive: expected an object, got []
{"hold":{"channels":[],"keep-alive":{"mode":"often"}}} => hold.keep-alive.mode: unknown mode "often"
{"hold":{"channels":[],"keep-alive":{"content":5}}} => hold.keep-alive.content: expected a string, got 5
{"hold":{"channels":[],"keep-alive":{"content-bin":5}}} => hold.keep-alive.content-bin: expected a string, got 5
{"hold":{"channels":[],"keep-alive":{"timeout":-2}}} => hold.keep-alive.timeout: value -2 out of range
{"response":[]} => response: expected an object, got []
{"response":{"code":"200"}} => response.code: invalid status code "200"
{"response":{"code":1000}} => response.code: invalid status code 1000
{"response":{"code":0}} => response.code: invalid status code 0
{"response":{"code":99.5}} => response.code: invalid status code 99.5
{"response":{"reason":1}} => response.reason: expected a string, got 1
{"response":{"body":[]}} => response.body: expected a string, got []
{"response":{"body-bin":1}} => response.body-bin: expected a string, got 1
{"response":{"headers":"x"}} => response.headers: expected an object or a list, got "x"
{"response":{"headers":{"A":1}}} => response.headers.A: expected a string, got 1
{"response":{"headers":[["A"]]}} => response.headers[0]: expected a [name, value] pair of strings, got ["A"]
{"response":{"headers":[["A",1]]}} => response.headers[0]: expected a [name, value] pair of strings, got ["A",1]
{"response":{"headers":{"X":"a\r\nSet-Cookie: x"}}} => response.headers.X: invalid header "X: a\r\nSet-Cookie: x"
{"response":{"headers":[["Bad Name","v"]]}} => response.headers[0]: invalid header "Bad Name: v"
{"response":{"headers":[["","v"]]}} => response.headers[0]: invalid header ": v"
"#;

#[test]
fn json_errors() {
    for line in JSON_ERRORS.lines().filter(|l| !l.is_empty()) {
        let (body, want) = line.split_once(" => ").unwrap();
        assert_eq!(err(json(body)), want, "{line}");
    }
    let msg = err(json("not json"));
    assert!(msg.starts_with("application/grip-instruct: invalid JSON: "));
    assert!(matches!(json(""), Err(GripError::Json(_))));
}

#[test]
fn json_channels_truncated_to_limit() {
    let chans: Vec<String> = (0..30).map(|n| format!(r#"{{"name":"c{n}"}}"#)).collect();
    let body = format!(r#"{{"hold":{{"channels":[{}]}}}}"#, chans.join(","));
    assert_eq!(json(&body).unwrap().channels.len(), 20);
    let i = from_json(
        body.as_bytes(),
        &GripLimits {
            channels_max: 3,
            ..GripLimits::default()
        },
    )
    .unwrap();
    assert_eq!(names(&i), ["c0", "c1", "c2"]);
}

#[test]
fn merge_headers_with_json() {
    let mut i = hdrs(&[
        ("Grip-Hold", "response"),
        ("Grip-Channel", "h1"),
        ("Grip-Timeout", "30"),
        ("Grip-Keep-Alive", "k"),
        ("Grip-Set-Meta", "a=1, b=2"),
        ("Grip-Status", "202"),
        ("Grip-Link", "</n>; rel=next"),
    ]);
    let body = r#"{"hold":{"mode":"stream","channels":[{"name":"j1"},{"name":"j2"}],"meta":{"b":"3"}},"response":{"body":"x"}}"#;
    i.merge_json(
        json(body).unwrap(),
        &GripLimits {
            channels_max: 2,
            ..GripLimits::default()
        },
    );
    assert_eq!((i.hold, i.timeout_secs), (Some(Stream), Some(30)));
    assert_eq!(names(&i), ["h1", "j1"]);
    assert_eq!(i.meta, pairs(&[("a", "1"), ("b", "3")]));
    assert_eq!(i.keep_alive, ka(b"k", 55, Idle));
    assert_eq!(i.status, st(202, None));
    assert!(i.next_link.is_some());
    assert_eq!(i.response.unwrap().body, b"x");
}

#[test]
fn public_types_are_comparable_and_cloneable() {
    let i = hdrs(&[("Grip-Hold", "stream"), ("Grip-Keep-Alive", "k")]);
    assert_eq!(i.clone(), i);
    assert!(format!("{i:?}").contains("Stream"));
    let e = GripError::Missing { field: "x".into() };
    assert!(format!("{e:?}").contains("Missing"));
}
