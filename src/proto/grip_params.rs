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
#[path = "grip_params_tests.rs"]
mod tests;
