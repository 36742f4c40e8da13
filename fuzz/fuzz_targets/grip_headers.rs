//! GRIP instructions from response headers: `grip::from_headers` on arbitrary (name, value) lists.
//!
//! Names are mostly the `Grip-*` ones in any letter case, values arbitrary bytes. Properties: no
//! panic; what comes out keeps the documented guarantees (non-empty channel names, at most
//! `channels_max` channels and `FILTERS_MAX` filters each, no empty `prev-id`, hold timeout at
//! least 5 s, keep-alive timeout at least 1 s, status 100..=999, link URLs non-empty visible ASCII,
//! no `response`); headers that are not `Grip-*` change nothing; a larger `channels_max` only adds
//! channels at the end. Round trips: channels (name, prev-id, filters) written as `Grip-Channel`
//! with quoted parameters, and keep-alive data written as `format=cstring` or `format=base64`,
//! parse back to themselves.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::grip::{
    ChannelSub, FILTERS_MAX, GripError, GripLimits, Instruct, MIN_RESPONSE_TIMEOUT_SECS,
    from_headers, is_grip_header,
};
use holdfast::proto::names;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<(Name, Vec<u8>)>,
    channels_max: u8,
    channels: Vec<Chan>,
    keep_alive: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known { which: u8, case: u64 },
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Chan {
    name: Vec<u8>,
    prev_id: Vec<u8>,
    filters: Vec<Vec<u8>>,
}

const KNOWN: [&str; 10] = [
    "Grip-Hold",
    "Grip-Channel",
    "Grip-Timeout",
    "Grip-Expose-Headers",
    "Grip-Keep-Alive",
    "Grip-Set-Meta",
    "Grip-Status",
    "Grip-Link",
    "Grip-Sig",
    "Content-Type",
];

fn name(n: &Name) -> String {
    match n {
        Name::Known { which, case } => KNOWN[usize::from(*which) % KNOWN.len()]
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        Name::Other(s) => text(s),
    }
}

fn show(r: &Result<Instruct, holdfast::proto::grip::GripError>) -> String {
    format!("{r:?}")
}

fuzz_target!(|input: Input| {
    let owned: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .map(|(n, v)| (name(n), v.clone()))
        .collect();
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let limits = GripLimits {
        channels_max: usize::from(input.channels_max),
        ..GripLimits::default()
    };
    let result = from_headers(headers.iter().copied(), &limits);

    let grip_only: Vec<(&str, &[u8])> = headers
        .iter()
        .copied()
        .filter(|(n, _)| is_grip_header(n))
        .collect();
    assert_eq!(
        show(&result),
        show(&from_headers(grip_only.iter().copied(), &limits))
    );
    if grip_only.is_empty() {
        assert_eq!(result.as_ref().ok(), Some(&Instruct::default()));
    }
    let wide = GripLimits {
        channels_max: 1000,
        ..GripLimits::default()
    };
    let wide_result = from_headers(headers.iter().copied(), &wide);
    assert_eq!(result.is_ok(), wide_result.is_ok());
    if let (Ok(i), Ok(w)) = (&result, &wide_result) {
        assert!(w.channels.starts_with(&i.channels));
        check(i, &limits);
    }

    round_trip_channels(&input.channels);
    round_trip_keep_alive(&input.keep_alive);
});

fn check(i: &Instruct, limits: &GripLimits) {
    assert!(i.channels.len() <= limits.channels_max);
    for c in &i.channels {
        assert!(!c.name.is_empty());
        assert!(c.filters.len() <= FILTERS_MAX);
        assert_ne!(c.prev_id.as_deref(), Some(""));
        // Identifiers that travel in Grip-Last / Meta-* headers keep to the name rules.
        assert!(names::check_channel(&c.name, &limits.names).is_ok());
        assert!(c.prev_id.as_deref().is_none_or(|p| names::check_id(p, &limits.names).is_ok()));
    }
    for (k, v) in &i.meta {
        assert!(names::check_meta_name(k, &limits.names).is_ok());
        assert!(names::check_meta_value(v, &limits.names).is_ok());
    }
    assert!(
        i.timeout_secs
            .is_none_or(|t| t >= MIN_RESPONSE_TIMEOUT_SECS)
    );
    if let Some(ka) = &i.keep_alive {
        assert!(ka.timeout_secs >= 1);
    }
    if let Some(s) = &i.status {
        assert!((100..=999).contains(&s.code));
        assert_ne!(s.reason.as_deref(), Some(""));
    }
    for link in [&i.next_link, &i.gone_link].into_iter().flatten() {
        assert!(!link.url.is_empty() && link.url.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
    assert!(
        i.gone_link
            .as_ref()
            .is_none_or(|l| l.timeout_secs.is_none())
    );
    assert!(i.expose_headers.iter().all(|h| !h.is_empty()));
    assert!(i.response.is_none());
}

/// `"..."` with `\` before `"` and `\`.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn round_trip_channels(chans: &[Chan]) {
    // A channel name is the verbatim text before the first `;`: keep to characters that neither
    // split nor quote, and that trimming leaves alone.
    let name_ok = |c: char| {
        !matches!(c, ',' | ';' | '"' | '\\')
            && !c.is_ascii_whitespace()
            && c != '\x0b'
            && !c.is_control()
    };
    let mut want = Vec::new();
    let mut elems = Vec::new();
    for c in chans.iter().take(20) {
        let name: String = text(&c.name).chars().filter(|&ch| name_ok(ch)).collect();
        if name.is_empty() {
            continue;
        }
        let filters: Vec<String> = c
            .filters
            .iter()
            .take(FILTERS_MAX)
            .map(|f| text(f))
            .collect();
        let prev_id = text(&c.prev_id);
        let mut elem = name.clone();
        if !prev_id.is_empty() {
            elem.push_str(&format!("; prev-id={}", quoted(&prev_id)));
        }
        for f in &filters {
            elem.push_str(&format!(";filter={}", quoted(f)));
        }
        elems.push(elem);
        want.push(ChannelSub {
            name,
            prev_id: (!prev_id.is_empty()).then_some(prev_id),
            filters,
        });
    }
    let value = elems.join(", ");
    let limits = GripLimits {
        channels_max: 20,
        ..GripLimits::default()
    };
    // Names and prev-ids that break the identifier rules fail the whole header.
    let valid = want.iter().all(|c| {
        names::check_channel(&c.name, &limits.names).is_ok()
            && c.prev_id.as_deref().is_none_or(|p| names::check_id(p, &limits.names).is_ok())
    });
    let got = from_headers([("Grip-Channel", value.as_bytes())], &limits);
    match got {
        Ok(i) => assert_eq!(i.channels, want, "{value:?}"),
        Err(GripError::BadName { .. }) if !valid => {}
        Err(e) => panic!("{value:?}: {e}"),
    }
}

fn round_trip_keep_alive(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // cstring: everything but letters and digits as \xHH, newline and CR also as \n and \r.
    let mut cstring = String::new();
    for &b in data {
        match b {
            b'\n' => cstring.push_str("\\n"),
            b'\r' => cstring.push_str("\\r"),
            b'\\' => cstring.push_str("\\\\"),
            b if b.is_ascii_alphanumeric() => cstring.push(char::from(b)),
            b => cstring.push_str(&format!("\\x{b:02x}")),
        }
    }
    let value = format!("{cstring}; format=cstring; timeout=7; mode=interval");
    let got = from_headers(
        [("Grip-Keep-Alive", value.as_bytes())],
        &GripLimits::default(),
    );
    let ka = got
        .expect("cstring keep-alive")
        .keep_alive
        .expect("keep-alive set");
    assert_eq!(ka.data, data);
    assert_eq!(ka.timeout_secs, 7);

    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            b64.push(if i <= chunk.len() {
                char::from(A[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    let value = format!("{b64}; format=base64");
    let got = from_headers(
        [("Grip-Keep-Alive", value.as_bytes())],
        &GripLimits::default(),
    );
    let ka = got
        .expect("base64 keep-alive")
        .keep_alive
        .expect("keep-alive set");
    assert_eq!(ka.data, data);
}

/// Fuzzer bytes as text. `String` fields are avoided in the input types: `arbitrary` reads their
/// lengths from the end of the input, which makes seed files hard to write by hand.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
