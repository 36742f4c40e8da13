//! Unit tests of `grip_params` (a sibling file: the module and its tests pass 800 lines).

use super::super::{GripLimits, from_headers};
use super::*;
use KeepAliveMode::{Idle, Interval};

fn params(v: &str, parse_first: bool) -> Vec<(String, Option<String>)> {
    let ps = parse_params(v.as_bytes(), parse_first).unwrap();
    ps.iter()
        .map(|p| (lossy(p.name), p.value.as_deref().map(lossy)))
        .collect()
}

fn p(name: &str, value: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), value.map(str::to_owned))
}

fn split(v: &str) -> Result<Vec<&str>, Malformed> {
    let parts = split_list(v.as_bytes())?;
    Ok(parts
        .into_iter()
        .map(|b| std::str::from_utf8(b).unwrap())
        .collect())
}

fn err<T: std::fmt::Debug>(r: Result<T, GripError>) -> String {
    r.unwrap_err().to_string()
}

fn chans(v: &str) -> Vec<ChannelSub> {
    let mut out = Vec::new();
    parse_channels(v.as_bytes(), &mut out).unwrap();
    out
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

fn ka(v: &str) -> (Vec<u8>, u32, KeepAliveMode) {
    let k = parse_keep_alive(v.as_bytes()).unwrap();
    (k.data, k.timeout_secs, k.mode)
}

fn links(v: &str) -> Instruct {
    let mut out = Instruct::default();
    parse_links(v.as_bytes(), &mut out).unwrap();
    out
}

fn link(url: &str, timeout_secs: Option<u32>) -> Option<Link> {
    Some(Link {
        url: url.into(),
        timeout_secs,
    })
}

fn status(v: &str) -> Option<(u16, Option<String>)> {
    let s = parse_status(v.as_bytes()).unwrap();
    s.map(|s| (s.code, s.reason))
}

#[test]
fn trim_uses_qt_whitespace() {
    assert_eq!(trim(b" \t\x0b a b \r\n"), b"a b");
    assert_eq!(trim(b"   "), b"");
}

// Pushpin httpheaderstest.cpp `parseParameters`, re-expressed.
#[test]
fn pushpin_parse_parameters() {
    let fruit = split("apple, banana, cherry").unwrap();
    assert_eq!(fruit, ["apple", "banana", "cherry"]);
    let v = r#"apple; type="granny, smith", banana; type="\"yellow\"""#;
    let parts = split(v).unwrap();
    let (apple, banana) = (params(parts[0], false), params(parts[1], false));
    assert_eq!(apple, [p("apple", None), p("type", Some("granny, smith"))]);
    assert_eq!(banana, [p("banana", None), p("type", Some("\"yellow\""))]);
    // Pushpin keeps `"apple` and `"apple\` whole and drops the element with the unterminated
    // quote; holdfast reports all three as malformed.
    assert_eq!(split("\"apple"), Err(Malformed));
    assert_eq!(split("\"apple\\"), Err(Malformed));
    let v = r#"apple; type=gala, banana; type="yellow, cherry"#;
    assert_eq!(split(v), Err(Malformed));
}

#[test]
fn split_keeps_inner_empty_elements_but_not_trailing() {
    assert_eq!(split("a,,b").unwrap(), ["a", "", "b"]);
    assert_eq!(split(", a").unwrap(), ["", "a"]);
    assert_eq!(split("a, b,").unwrap(), ["a", "b"]);
    assert_eq!(split("a=b, ").unwrap(), ["a=b", ""]);
    assert!(split("").unwrap().is_empty());
}

#[test]
fn parameter_syntax() {
    let got = params("a; flag; e=; s= x ; t=\"q\"junk; u=v=w; ", false);
    let want = [
        p("a", None),
        p("flag", None),
        p("e", Some("")),
        p("s", Some("x")),
        p("t", Some("q")),
        p("u", Some("v=w")),
        p("", None),
    ];
    assert_eq!(got, want);
    // The quote must follow `=` directly to start a quoted string.
    assert_eq!(params("a; n= \"x\"", false)[1], p("n", Some("\"x\"")));
    assert_eq!(params("a;", false), [p("a", None)]);
    assert_eq!(params(r#"a; b="x\"""#, false)[1], p("b", Some("x\"")));
    assert_eq!(parse_params(br#"a; b="x"#, false), Err(Malformed));
    assert_eq!(parse_params(br#"a; b="x\"#, false), Err(Malformed));
}

#[test]
fn first_parameter_modes() {
    let link = params("<http://x/?a=b>; rel=next", false);
    assert_eq!(link, [p("<http://x/?a=b>", None), p("rel", Some("next"))]);
    assert_eq!(params(r#""quoted" ; x"#, false)[0], p("\"quoted\"", None));
    let all = params("foo=bar; x", true);
    assert_eq!(all, [p("foo", Some("bar")), p("x", None)]);
    assert!(params("", true).is_empty());
    assert_eq!(params("", false), [p("", None)]);
}

#[test]
fn lookup_is_case_insensitive_and_skips_leading_element() {
    let ps = parse_params(b"prev-id; PREV-ID=7; prev-id=8", false).unwrap();
    assert_eq!(value_of(&ps, "prev-id"), Some(&b"7"[..]));
    assert_eq!(value_of(&ps, "filter"), None);
}

#[test]
fn qt_integers() {
    let ok = [("12", 12), (" +7 ", 7), ("-3", -3), ("007", 7)];
    for (s, want) in ok {
        assert_eq!(qt_to_int(s.as_bytes()), Some(want), "{s}");
    }
    for s in ["", "-", "+", "1.5", "0x10", "1 2", "abc", "1e3"] {
        assert_eq!(qt_to_int(s.as_bytes()), None, "{s}");
    }
    assert_eq!(qt_to_int(b"99999999999999999999999"), Some(i64::MAX));
    assert!(secs_in_range("t", i64::from(i32::MAX)).is_ok());
    assert!(secs_in_range("t", i64::from(i32::MAX) + 1).is_err());
    assert!(secs_in_range("t", -1).is_err());
}

#[test]
fn cstring_escapes() {
    let ok = [
        (r"a\\b\r\n", &b"a\\b\r\n"[..]),
        (r"\x41\x6a\x4A\x00", b"AjJ\0"),
        (r"\xff", b"\xff"),
        (r":\n", b":\n"),
        // Unknown escapes are dropped with their backslash, as in Pushpin.
        (r"a\tb\q", b"ab"),
    ];
    for (s, want) in ok {
        assert_eq!(unescape_cstring(s.as_bytes()).as_deref(), Some(want), "{s}");
    }
    for s in [r"abc\", r"\x4", r"\x", r"\xZZ", r"\x4g"] {
        assert_eq!(unescape_cstring(s.as_bytes()), None, "{s}");
    }
}

#[test]
fn base64_is_lenient_like_qt() {
    let cases = [
        ("cGluZzMK", &b"ping3\n"[..]),
        ("aGk=", b"hi"),
        ("aGk", b"hi"),
        ("a G*k==", b"hi"),
        ("aGkx2", b"hi1"), // a dangling six-bit group is dropped
        ("AAEC/w==", b"\x00\x01\x02\xff"),
        ("!!!", b""),
    ];
    for (s, want) in cases {
        assert_eq!(decode_base64_lenient(s.as_bytes()), want, "{s}");
    }
}

#[test]
fn quote_truncates_long_values() {
    assert_eq!(quote(b"a\"b"), r#""a\"b""#);
    let q = quote("é".repeat(100).as_bytes());
    assert_eq!(q.chars().count(), SHOW_CHARS_MAX + 5);
    assert!(q.ends_with("\"..."));
}

// --- per-header parsers ---

#[test]
fn hold_values() {
    assert_eq!(parse_hold(b" response ").unwrap(), HoldMode::Response);
    assert_eq!(parse_hold(b"stream").unwrap(), HoldMode::Stream);
    assert!(parse_hold(b"Stream").is_err()); // case-sensitive, as in Pushpin
}

#[test]
fn channel_lists_and_parameters() {
    let abc = ["a", "b", "c"].map(|n| chan(n, None, &[]));
    assert_eq!(chans("a, b,c ,"), abc);
    let v = r#"a; filter="x, y"; PREV-ID="id;1"; Filter=no; filter=z; other=1"#;
    assert_eq!(chans(v), [chan("a", Some("id;1"), &["x, y", "z"])]);
    // An empty or valueless prev-id is absent.
    let none = chans("a; prev-id=, b; prev-id=\"\", c; prev-id");
    assert!(none.iter().all(|c| c.prev_id.is_none()));
    // A valueless filter is an empty filter name (the filter stack rejects it later).
    assert_eq!(chans("a; filter"), [chan("a", None, &[""])]);
    // Non-UTF-8 is replaced, as Qt fromUtf8 does.
    let mut out = Vec::new();
    parse_channels(b"caf\xe9; prev-id=\xff", &mut out).unwrap();
    assert_eq!(out, [chan("caf\u{fffd}", Some("\u{fffd}"), &[])]);
    // An empty header has no elements, so no channels (as in Pushpin).
    assert!(chans("").is_empty());
}

#[test]
fn channel_filters_limit() {
    let five = "a; filter=1; filter=2; filter=3; filter=4; filter=5";
    assert_eq!(chans(five)[0].filters.len(), FILTERS_MAX);
    let mut out = Vec::new();
    let six = parse_channels(format!("{five}; filter=6").as_bytes(), &mut out);
    let want = r#"Grip-Channel: channel "a" has 6 filters, at most 5 allowed"#;
    assert_eq!(err(six), want);
}

#[test]
fn keep_alive_forms() {
    assert_eq!(
        ka(r":\n; format=cstring; timeout=20"),
        (b":\n".to_vec(), 20, Idle)
    );
    assert_eq!(ka(" ping , pong "), (b"ping , pong".to_vec(), 55, Idle));
    assert_eq!(
        ka("x; format=raw; mode=idle; timeout=0"),
        (b"x".to_vec(), 1, Idle)
    );
    assert_eq!(
        ka("x; format=; mode=; TIMEOUT=\"7\""),
        (b"x".to_vec(), 7, Idle)
    );
    assert_eq!(
        ka("aGk=; format=base64; mode=interval"),
        (b"hi".to_vec(), 55, Interval)
    );
}

#[test]
fn set_meta_forms() {
    let mut meta = vec![("user".to_owned(), "old".to_owned())];
    let v = r#"user=alice, note="a, b; c", flag, user=bob; ignored=1"#;
    parse_set_meta(v.as_bytes(), &mut meta).unwrap();
    let want = [("user", "bob"), ("note", "a, b; c"), ("flag", "")];
    assert_eq!(meta, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
}

#[test]
fn status_forms() {
    assert_eq!(status(""), None);
    assert_eq!(status("200 "), Some((200, None)));
    let custom = Some((299, Some("Custom  Reason".to_owned())));
    assert_eq!(status("299 Custom  Reason"), custom);
    assert_eq!(status("999"), Some((999, None)));
}

#[test]
fn link_forms() {
    let v = "</next?x=1>; rel=next; timeout=30, <http://h/gone>; rel=gone, </p>; rel=prev";
    let i = links(v);
    assert_eq!(i.next_link, link("/next?x=1", Some(30)));
    assert_eq!(i.gone_link, link("http://h/gone", None));
    // The last one wins; `rel` is found case-insensitively; 0 is kept.
    let i = links("</a>; REL=next, </b>; rel=next; timeout=0");
    assert_eq!(i.next_link, link("/b", Some(0)));
    // No timeout: the caller applies DEFAULT_NEXT_LINK_TIMEOUT_SECS.
    assert_eq!(links("</a>; rel=next").next_link, link("/a", None));
    // Without parameters an element is skipped unchecked; rel values are case-sensitive.
    assert_eq!(links("garbage, </a>; rel=Next"), Instruct::default());
}

/// One case per line: `Header-Name: value => message` (an empty value is `Name:  =>`).
const HEADER_ERRORS: &str = r#"
Grip-Hold: foo => Grip-Hold: unknown mode "foo"
Grip-Hold:  => Grip-Hold: unknown mode ""
Grip-Channel: a,,b => Grip-Channel: empty channel name
Grip-Channel: ; filter=x => Grip-Channel: empty channel name
Grip-Channel: a; filter="x => Grip-Channel: unterminated quoted string in "a; filter=\"x"
Grip-Timeout: -1 => Grip-Timeout: value -1 out of range
Grip-Timeout: 2147483648 => Grip-Timeout: value 2147483648 out of range
Grip-Timeout: 1.5 => Grip-Timeout: not an integer: "1.5"
Grip-Timeout:  => Grip-Timeout: not an integer: ""
Grip-Expose-Headers: "a => Grip-Expose-Headers: unterminated quoted string in "\"a"
Grip-Keep-Alive:  => Grip-Keep-Alive: empty data in ""
Grip-Keep-Alive: ; timeout=3 => Grip-Keep-Alive: empty data in "; timeout=3"
Grip-Keep-Alive: x; mode=often => Grip-Keep-Alive mode: unknown mode "often"
Grip-Keep-Alive: x; format=hex => Grip-Keep-Alive: unknown format "hex"
Grip-Keep-Alive: x; timeout=-5 => Grip-Keep-Alive timeout: value -5 out of range
Grip-Keep-Alive: x; timeout=2.5 => Grip-Keep-Alive timeout: not an integer: "2.5"
Grip-Keep-Alive: x; timeout => Grip-Keep-Alive timeout: not an integer: ""
Grip-Keep-Alive: abc\; format=cstring => Grip-Keep-Alive: bad cstring escape in "abc\\"
Grip-Keep-Alive: \xZZ; format=cstring => Grip-Keep-Alive: bad cstring escape in "\\xZZ"
Grip-Keep-Alive: x; format="cstring => Grip-Keep-Alive: unterminated quoted string in "x; format=\"cstring"
Grip-Set-Meta: a=b,,c=d => Grip-Set-Meta: empty element in "a=b,,c=d"
Grip-Set-Meta: a="b => Grip-Set-Meta: unterminated quoted string in "a=\"b"
Grip-Status: abc => Grip-Status: invalid status code "abc"
Grip-Status: 99 => Grip-Status: invalid status code "99"
Grip-Status: 1000 => Grip-Status: invalid status code "1000"
Grip-Status: -200 => Grip-Status: invalid status code "-200"
Grip-Status: 20x OK => Grip-Status: invalid status code "20x OK"
Grip-Link: <>; rel=next => Grip-Link: invalid link "<>"
Grip-Link: /a; rel=next => Grip-Link: invalid link "/a"
Grip-Link: </a b>; rel=next => Grip-Link: invalid link "</a b>"
Grip-Link: </é>; rel=next => Grip-Link: invalid link "</é>"
Grip-Link: <>; rel=other => Grip-Link: invalid link "<>"
Grip-Link: </a>; rel=next; timeout=-1 => Grip-Link timeout: value -1 out of range
Grip-Link: </a>; rel=next; timeout=soon => Grip-Link timeout: not an integer: "soon"
Grip-Link: </a>; rel="next => Grip-Link: unterminated quoted string in "</a>; rel=\"next"
"#;

#[test]
fn header_value_errors() {
    let limits = GripLimits::default();
    for line in HEADER_ERRORS.lines().filter(|l| !l.is_empty()) {
        let (input, want) = line.split_once(" => ").unwrap();
        let (name, value) = input.split_once(':').unwrap();
        let value = value.strip_prefix(' ').unwrap_or(value);
        let got = from_headers([(name, value.as_bytes())], &limits);
        assert_eq!(err(got), want, "{line}");
    }
}
