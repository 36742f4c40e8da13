//! Header form of GRIP instructions: parameter syntax and per-header value parsers (sans-IO).
//!
//! Private child of `grip.rs` (included with `#[path]`; do not declare it in `proto/mod.rs`).
//! Owns what Pushpin's `HttpHeaders` (`src/core/httpheaders.cpp`) does to a header value — split a
//! list on commas outside double quotes ([`split_list`]), split an element into `;`-separated
//! `name[=value]` parameters with quoted strings ([`parse_params`]) — and, on top of that, the
//! parsing of each `Grip-*` value as `Instruct::fromResponse` (`src/handler/instruct.cpp`) does,
//! plus the value decoders shared with the JSON form (Qt `toInt`, `cstring`, lenient base64).
//! It never sees the header list, only one value at a time.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD_INDIFFERENT};

use super::{
    ChannelSub, DEFAULT_KEEP_ALIVE_TIMEOUT_SECS, FILTERS_MAX, GripError, HoldMode, Instruct,
    KeepAlive, KeepAliveMode, Link, Status,
};

/// Bad values are quoted in error messages up to this many characters.
const SHOW_CHARS_MAX: usize = 80;

/// The value cannot be split: a quoted string is not terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// One `;`-separated parameter: `name` alone, or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Param<'a> {
    /// The name, trimmed; may be empty (e.g. after a trailing `;`).
    pub name: &'a [u8],
    /// `None` when there was no `=`; quotes removed and escapes decoded when quoted.
    pub value: Option<Cow<'a, [u8]>>,
}

/// `value` without leading and trailing whitespace as Qt's `trimmed` sees it (`\t\n\v\f\r `).
pub(super) fn trim(value: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = value
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Split on commas outside double quotes; each element is trimmed. A trailing comma yields no
/// element, but an empty one between two commas (or before the first) is kept, as in Pushpin's
/// `headerSplit`. An unterminated quote is an error (Pushpin keeps the rest as one element).
pub(super) fn split_list(value: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let (mut parts, mut start, mut in_quote, mut i) = (Vec::new(), 0, false, 0);
    while i < value.len() {
        match value[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b',' if !in_quote => {
                parts.push(trim(&value[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    // `i > len` means a backslash was the last byte inside a quote.
    if in_quote || i > value.len() {
        return Err(Malformed);
    }
    if start < value.len() {
        parts.push(trim(&value[start..]));
    }
    Ok(parts)
}

/// Split one list element into parameters.
///
/// With `parse_first == false` (Pushpin's `NoParseFirstParameter`: channel, keep-alive, link) the
/// first parameter is everything before the first `;`, verbatim (no `=` or quote handling), so it
/// is always present. With `parse_first == true` (`ParseAllParameters`: set-meta) every parameter
/// is `name[=value]` and an empty element yields none. A quoted value that is not terminated is
/// an error (Pushpin silently drops the element).
pub(super) fn parse_params(elem: &[u8], parse_first: bool) -> Result<Vec<Param<'_>>, Malformed> {
    let mut out = Vec::new();
    let mut pos = 0;
    if !parse_first {
        let end = find(elem, b';', 0).unwrap_or(elem.len());
        out.push(Param {
            name: trim(&elem[..end]),
            value: None,
        });
        pos = end + 1;
    }
    while pos < elem.len() {
        let (param, next) = parse_one(elem, pos)?;
        out.push(param);
        pos = next;
    }
    Ok(out)
}

/// Parse the parameter starting at `pos`; returns it and the position after its `;`.
fn parse_one(elem: &[u8], pos: usize) -> Result<(Param<'_>, usize), Malformed> {
    let at = elem[pos..].iter().position(|&b| b == b'=' || b == b';');
    let Some(at) = at.map(|i| pos + i) else {
        let name = trim(&elem[pos..]);
        return Ok((Param { name, value: None }, elem.len()));
    };
    let name = trim(&elem[pos..at]);
    if elem[at] == b';' {
        return Ok((Param { name, value: None }, at + 1));
    }
    let vstart = at + 1;
    if elem.get(vstart) == Some(&b'"') {
        let (value, after) = parse_quoted(elem, vstart + 1)?;
        // Anything between the closing quote and the next `;` is ignored, as in Pushpin.
        let next = find(elem, b';', after).map_or(elem.len(), |i| i + 1);
        return Ok((
            Param {
                name,
                value: Some(value),
            },
            next,
        ));
    }
    let end = find(elem, b';', vstart).unwrap_or(elem.len());
    let value = Some(Cow::Borrowed(trim(&elem[vstart..end])));
    Ok((Param { name, value }, end + 1))
}

/// The quoted string whose opening quote is just before `start`, unescaped, and the position after
/// its closing quote. Borrows unless it contains a backslash escape.
fn parse_quoted(elem: &[u8], start: usize) -> Result<(Cow<'_, [u8]>, usize), Malformed> {
    let rest = &elem[start..];
    match rest.iter().position(|&b| b == b'"' || b == b'\\') {
        Some(i) if rest[i] == b'"' => return Ok((Cow::Borrowed(&rest[..i]), start + i + 1)),
        None => return Err(Malformed),
        Some(_) => {}
    }
    let (mut out, mut i) = (Vec::with_capacity(rest.len()), 0);
    while i < rest.len() {
        match rest[i] {
            b'\\' => {
                out.push(*rest.get(i + 1).ok_or(Malformed)?);
                i += 2;
            }
            b'"' => return Ok((Cow::Owned(out), start + i + 1)),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err(Malformed)
}

fn find(hay: &[u8], needle: u8, from: usize) -> Option<usize> {
    let pos = hay.get(from..)?.iter().position(|&b| b == needle);
    pos.map(|i| from + i)
}

/// The first parameter after the leading element whose name matches `key` (ASCII
/// case-insensitive). Pushpin also looks at the leading element, so a channel named `prev-id`
/// could shadow a real `prev-id=`; skipping it avoids that accident.
pub(super) fn lookup<'p, 'a>(params: &'p [Param<'a>], key: &str) -> Option<&'p Param<'a>> {
    let key = key.as_bytes();
    params
        .iter()
        .skip(1)
        .find(|p| p.name.eq_ignore_ascii_case(key))
}

fn value_of<'p>(params: &'p [Param<'_>], key: &str) -> Option<&'p [u8]> {
    lookup(params, key).and_then(|p| p.value.as_deref())
}

/// `Grip-Hold`: `response` or `stream`, case-sensitive.
pub(super) fn parse_hold(value: &[u8]) -> Result<HoldMode, GripError> {
    match trim(value) {
        b"response" => Ok(HoldMode::Response),
        b"stream" => Ok(HoldMode::Stream),
        other => Err(unknown_mode("Grip-Hold", other)),
    }
}

/// `Grip-Channel`: `name[; prev-id=ID][; filter=F]*`, comma-separated.
pub(super) fn parse_channels(value: &[u8], out: &mut Vec<ChannelSub>) -> Result<(), GripError> {
    const FIELD: &str = "Grip-Channel";
    for elem in split_list(value).map_err(|_| malformed(FIELD, value))? {
        let params = parse_params(elem, false).map_err(|_| malformed(FIELD, value))?;
        let name = params.first().map_or(&b""[..], |p| p.name);
        if name.is_empty() {
            let field = FIELD.to_owned();
            return Err(GripError::EmptyChannelName { field });
        }
        let prev_id = value_of(&params, "prev-id").filter(|v| !v.is_empty());
        // Pushpin matches `filter` case-sensitively (but looks `prev-id` up case-insensitively).
        let filters = params.iter().skip(1).filter(|p| p.name == b"filter");
        let channel = ChannelSub {
            name: lossy(name),
            prev_id: prev_id.map(lossy),
            filters: filters
                .map(|p| lossy(p.value.as_deref().unwrap_or_default()))
                .collect(),
        };
        check_filters(FIELD.to_owned(), &channel)?;
        out.push(channel);
    }
    Ok(())
}

/// At most [`FILTERS_MAX`] filters per channel (Pushpin `MESSAGEFILTERSTACK_SIZE_MAX`).
pub(super) fn check_filters(field: String, channel: &ChannelSub) -> Result<(), GripError> {
    if channel.filters.len() <= FILTERS_MAX {
        return Ok(());
    }
    Err(GripError::TooManyFilters {
        field,
        channel: quote(channel.name.as_bytes()),
        count: channel.filters.len(),
        max: FILTERS_MAX,
    })
}

/// `Grip-Keep-Alive`: `DATA; format=raw|cstring|base64; timeout=N; mode=idle|interval`. Not
/// comma-split: DATA may hold commas, but not `;`.
pub(super) fn parse_keep_alive(value: &[u8]) -> Result<KeepAlive, GripError> {
    const FIELD: &str = "Grip-Keep-Alive";
    let params = parse_params(value, false).map_err(|_| malformed(FIELD, value))?;
    let data = params.first().map_or(&b""[..], |p| p.name);
    if data.is_empty() {
        return Err(GripError::EmptyKeepAlive {
            value: quote(value),
        });
    }
    let mode = match value_of(&params, "mode") {
        None | Some(b"" | b"idle") => KeepAliveMode::Idle,
        Some(b"interval") => KeepAliveMode::Interval,
        Some(other) => return Err(unknown_mode("Grip-Keep-Alive mode", other)),
    };
    let timeout_secs = match lookup(&params, "timeout") {
        None => DEFAULT_KEEP_ALIVE_TIMEOUT_SECS,
        Some(p) => header_secs("Grip-Keep-Alive timeout", p.value.as_deref())?.max(1),
    };
    let data = match value_of(&params, "format") {
        None | Some(b"" | b"raw") => data.to_vec(),
        Some(b"cstring") => {
            unescape_cstring(data).ok_or_else(|| GripError::BadEscape { value: quote(data) })?
        }
        Some(b"base64") => decode_base64_lenient(data),
        Some(other) => {
            return Err(GripError::UnknownFormat {
                value: quote(other),
            });
        }
    };
    Ok(KeepAlive {
        data,
        timeout_secs,
        mode,
    })
}

/// `Grip-Set-Meta`: `k=v, k2="v 2"`; the first parameter of each element is the pair, a key
/// without `=` gets "", a repeated key the later value, an empty element is an error.
pub(super) fn parse_set_meta(
    value: &[u8],
    meta: &mut Vec<(String, String)>,
) -> Result<(), GripError> {
    const FIELD: &str = "Grip-Set-Meta";
    for elem in split_list(value).map_err(|_| malformed(FIELD, value))? {
        let params = parse_params(elem, true).map_err(|_| malformed(FIELD, value))?;
        let Some(first) = params.first() else {
            return Err(GripError::EmptyMeta {
                value: quote(value),
            });
        };
        let val = lossy(first.value.as_deref().unwrap_or_default());
        upsert(meta, lossy(first.name), val);
    }
    Ok(())
}

/// Set `key` in first-seen order; a repeated key takes the later value.
pub(super) fn upsert(meta: &mut Vec<(String, String)>, key: String, value: String) {
    match meta.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => meta.push((key, value)),
    }
}

/// `Grip-Status`: `CODE[ reason]`, code 100..=999; an empty value is ignored, as in Pushpin.
pub(super) fn parse_status(value: &[u8]) -> Result<Option<Status>, GripError> {
    let v = trim(value);
    if v.is_empty() {
        return Ok(None);
    }
    let (code, reason) = match v.iter().position(|&b| b == b' ') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let code = qt_to_int(code).and_then(|c| u16::try_from(c).ok());
    let code = code
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| GripError::BadStatus {
            field: "Grip-Status",
            value: quote(v),
        })?;
    let reason = (!reason.is_empty()).then(|| lossy(reason));
    Ok(Some(Status { code, reason }))
}

/// `Grip-Link`: `<url>; rel=next[; timeout=N]` or `<url>; rel=gone`, comma-separated. An element
/// without parameters is skipped and an unknown `rel` ignored, but the URL is checked first
/// (Pushpin). The last link of each kind wins.
pub(super) fn parse_links(value: &[u8], out: &mut Instruct) -> Result<(), GripError> {
    const FIELD: &str = "Grip-Link";
    for elem in split_list(value).map_err(|_| malformed(FIELD, value))? {
        let params = parse_params(elem, false).map_err(|_| malformed(FIELD, value))?;
        if params.len() < 2 {
            continue;
        }
        let url = link_url(params[0].name)?;
        match value_of(&params, "rel") {
            Some(b"next") => {
                let timeout = lookup(&params, "timeout").map(|p| p.value.as_deref());
                let timeout_secs = match timeout {
                    None => None,
                    Some(t) => Some(header_secs("Grip-Link timeout", t)?),
                };
                out.next_link = Some(Link { url, timeout_secs });
            }
            Some(b"gone") => {
                out.gone_link = Some(Link {
                    url,
                    timeout_secs: None,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// `<URL>` with a non-empty, visible-ASCII URL (Pushpin's tolerant `QUrl` would percent-encode
/// other bytes; an origin sending them is broken).
fn link_url(raw: &[u8]) -> Result<String, GripError> {
    let inner = raw.strip_prefix(b"<").and_then(|r| r.strip_suffix(b">"));
    match inner.filter(|u| !u.is_empty() && u.iter().all(|b| (0x21..=0x7e).contains(b))) {
        Some(u) => Ok(lossy(u)),
        // The error reaches a log line and the client's 502: the query (tokens) stays out.
        None => Err(GripError::BadLink {
            value: quote(crate::redact::target(&lossy(raw)).as_bytes()),
        }),
    }
}

/// A non-negative seconds value from a header; a missing value is "not an integer".
pub(super) fn header_secs(field: &str, value: Option<&[u8]>) -> Result<u32, GripError> {
    let raw = value.unwrap_or_default();
    match qt_to_int(raw) {
        Some(n) => secs_in_range(field, n),
        None => Err(GripError::NotAnInteger {
            field: field.to_owned(),
            value: quote(raw),
        }),
    }
}

/// 0..=`i32::MAX` (Qt `int`), else out of range.
pub(super) fn secs_in_range(field: &str, n: i64) -> Result<u32, GripError> {
    match u32::try_from(n) {
        Ok(secs) if n <= i64::from(i32::MAX) => Ok(secs),
        _ => Err(GripError::OutOfRange {
            field: field.to_owned(),
            value: n,
        }),
    }
}

/// Qt `QByteArray::toInt` (base 10): optional sign, digits, surrounding whitespace. Values past
/// `i32` are returned (saturating) so the caller can call them out of range.
pub(super) fn qt_to_int(raw: &[u8]) -> Option<i64> {
    let v = trim(raw);
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if neg { -n } else { n })
}

/// Pushpin's `cstring` format: `\\`, `\r`, `\n` and `\xHH`. A backslash at the end or a bad
/// `\x` is an error (`None`); any other escaped character is dropped with its backslash.
pub(super) fn unescape_cstring(input: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: &u8| (*b as char).to_digit(16).map(|d| d as u8);
    let (mut out, mut i) = (Vec::with_capacity(input.len()), 0);
    while i < input.len() {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        match *input.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b'x' => {
                let hi = hex(input.get(i + 2)?)?;
                let lo = hex(input.get(i + 3)?)?;
                out.push((hi << 4) | lo);
                i += 2;
            }
            _ => {}
        }
        i += 2;
    }
    Some(out)
}

/// Qt `QByteArray::fromBase64` without options: bytes outside the standard alphabet (padding
/// included) are skipped and leftover bits dropped, so it never fails.
pub(super) fn decode_base64_lenient(input: &[u8]) -> Vec<u8> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
    );
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let mut clean: Vec<u8> = input.iter().copied().filter(alphabet).collect();
    if clean.len() % 4 == 1 {
        clean.pop(); // six bits make no byte
    }
    ENGINE.decode(&clean).unwrap_or_default()
}

/// UTF-8 with replacement characters, like Qt `QString::fromUtf8`.
pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bad value for an error message: lossy UTF-8, truncated, quoted.
pub(super) fn quote(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    match s.char_indices().nth(SHOW_CHARS_MAX) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

pub(super) fn unknown_mode(field: &'static str, value: &[u8]) -> GripError {
    let value = quote(value);
    GripError::UnknownMode { field, value }
}

pub(super) fn malformed(field: &'static str, value: &[u8]) -> GripError {
    GripError::Malformed {
        field,
        value: quote(value),
    }
}

#[cfg(test)]
mod tests {
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
}
