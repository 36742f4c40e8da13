//! WebSocket-over-HTTP (sans-IO): the event body codec, GRIP control messages (`c:{json}`), the
//! `grip` extension's message prefix and the response headers that steer a connection.
//!
//! Owns bytes only. It never opens a socket, keeps no per-connection state and sets no timer;
//! batching, retries and timers belong to `origin/` and the runtime. Behaviour follows Pushpin:
//! `src/proxy/websocketoverhttp.cpp` (codec, exchange), `src/proxy/wsproxysession.cpp` (extension,
//! prefixes), `src/handler/wscontrolmessage.cpp` and `src/handler/handlerengine.cpp` (control
//! messages), cross-checked with `@fanoutio/grip` (`webSocketEvents.ts`, `WebSocketContext.ts`) and
//! `gripcontrol` (`gripcontrol.py`, whose tests give the decode vectors below).
//!
//! # The exchange, as Pushpin runs it (`websocketoverhttp.cpp`, `wsproxysession.cpp`)
//! Every exchange is one `POST` to the target URL (`ws`→`http`, `wss`→`https`), at most one in
//! flight per connection. Request headers:
//! - the client's handshake headers (`Host` rewritten for the target, `Sec-WebSocket-Key`,
//!   `-Version`, `-Protocol`, `Origin`, `Cookie`, ... pass), **less** `Connection`, `Keep-Alive`,
//!   `Accept-Encoding`, `Content-Encoding`, `Transfer-Encoding`, `Expect` (`proxyutil.cpp`),
//!   every `Grip-*` unless the client is a trusted upstream proxy, `Sec-WebSocket-Extensions`,
//!   `Upgrade`, `Accept`, `Connection-Id`, `Content-Length` and every `Meta-*` (case-insensitive);
//! - `Sec-WebSocket-Extensions: grip` (exactly, no parameters; not on `no_grip` routes), a fresh
//!   `Grip-Sig` per request when a key is set, `Grip-Feature`, and `X-Forwarded-For`/`-Proto` as
//!   configured;
//! - `Accept: application/websocket-events`, `Connection-Id: <id>` (same for the whole
//!   connection), `Content-Type: application/websocket-events`, `Content-Length: <n>`, then
//!   newer Pushpin `Content-Bytes-Replayed: <n>` when resending content not accepted before, then
//!   one `Meta-<name>: <value>` per stored meta entry.
//!
//! Opening: the first body is `OPEN\r\n` alone. The answer must be status 200 with `Content-Type`
//! byte-equal to `application/websocket-events` (no parameters); anything else rejects the
//! handshake and the client gets the origin's status, reason, headers and body (body cut to
//! 100 000 bytes). A 200 whose body does not decode, or is empty without a `Keep-Alive-Interval`,
//! or whose first event is not `OPEN`, rejects with `502 Bad Gateway` and body
//! `Error while proxying to origin.\n`; a connect/TLS failure tries the next target (no retry while
//! opening). On success the client gets `101 Switching Protocols` with the origin's headers less
//! `Content-Length`, `Content-Type`, `Keep-Alive-Interval`, `Set-Meta-*` and
//! `Sec-WebSocket-Extensions`; the `grip` extension ([`grip_extension`]) is read from that same
//! response. Events after `OPEN` in it are delivered at once.
//!
//! Afterwards: client messages go out as events (whole messages only, up to 200 000 content bytes
//! per request; one event per request on `one_event` targets). A non-200 or wrong content type,
//! an undecodable body, a body over 1 000 000 bytes, `OPEN` again or `DISCONNECT` drops the client
//! without a close handshake. `CLOSE` from the origin closes the client with its code/reason.
//! Having sent `CLOSE`, a response without `CLOSE` and no keep-alive interval is an unclean end.
//! Each response's `Set-Meta-*` ([`set_meta_updates`]) and `Keep-Alive-Interval`
//! ([`keep_alive_interval`]) apply before its events; with an interval set, an empty-bodied POST
//! goes out that long after the last response. A client closing sends `CLOSE` with its code and
//! reason; a client that vanishes gets one last `DISCONNECT\r\n` request. Connect and TLS errors
//! retry, other errors only if the body was not fully sent: at most 5 times, waiting
//! 1 s · 2^n + 0–1 s. Messages from the origin are cut into frames of at most 16 384 bytes.

use super::names::{NameError, NameLimits};

#[path = "wsoh_control.rs"]
mod control;

use control::check_meta;
pub use control::{Control, KeepAliveMode, MessageType, parse_control};

/// `Content-Type` (and `Accept`) of every WebSocket-over-HTTP request and response.
pub const CONTENT_TYPE: &str = "application/websocket-events";
/// Message prefix when the origin enables `grip` without a `message-prefix` parameter.
pub const DEFAULT_MESSAGE_PREFIX: &str = "m:";
/// Prefix of a control message in an origin TEXT message.
pub const CONTROL_PREFIX: &[u8] = b"c:";
/// Smallest `Keep-Alive-Interval` honoured; lower positive values are raised to it.
pub const KEEP_ALIVE_INTERVAL_MIN_SECS: u32 = 20;
/// `keep-alive` control timeout when none (or 0) is given (handlerengine.cpp).
pub const KEEP_ALIVE_TIMEOUT_DEFAULT_SECS: u32 = 55;
/// `send-delayed` control timeout when none (or 0) is given (handlerengine.cpp).
pub const SEND_DELAYED_TIMEOUT_DEFAULT_SECS: u32 = 1;

/// One WebSocket-over-HTTP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Handshake request (proxy) or acceptance (origin).
    Open,
    /// A whole text message.
    Text(Vec<u8>),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong with its payload.
    Pong(Vec<u8>),
    /// Close; without a code it is the bare `CLOSE\r\n` and any reason is dropped (as Pushpin).
    Close {
        /// Status code, sent as 2 big-endian bytes.
        code: Option<u16>,
        /// Reason bytes after the code (UTF-8 by contract; not checked here).
        reason: Vec<u8>,
    },
    /// The peer went away without a close handshake.
    Disconnect,
}

/// Errors of this module; event errors carry the byte offset into the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsohError {
    /// The type line at this offset has no terminating CRLF.
    #[error("event at byte {0}: type line has no CRLF")]
    MissingLineEnd(usize),
    /// The length at this offset is not a hex number.
    #[error("event length at byte {0}: not a hex number")]
    BadLength(usize),
    /// The payload at this offset runs past the end of the body.
    #[error("payload at byte {0}: length exceeds the body")]
    Truncated(usize),
    /// No CRLF at this offset, where the payload ends.
    #[error("payload end at byte {0}: no CRLF")]
    MissingPayloadEnd(usize),
    /// The event at this offset is none of OPEN, TEXT, BINARY, PING, PONG, CLOSE, DISCONNECT
    /// (type as sent, lossy UTF-8; matched case-sensitively).
    #[error("event at byte {0}: unknown type {1:?}")]
    UnknownEvent(usize, String),
    /// The control message is not valid JSON.
    #[error("control message is not valid JSON: {0}")]
    BadJson(String),
    /// The control message is JSON but not an object.
    #[error("control message is not an object")]
    NotAnObject,
    /// `type` names no known control message (Pushpin logs and ignores these).
    #[error("unknown control message type {0:?}")]
    UnknownControlType(String),
    /// A required field is absent.
    #[error("control message lacks {0:?}")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("control message field {0:?} has the wrong type")]
    WrongType(&'static str),
    /// A field has an unacceptable value.
    #[error("control message field {0:?} has an invalid value")]
    InvalidValue(&'static str),
    /// A channel name or meta name or value that breaks the identifier rules
    /// ([`crate::proto::names`]).
    #[error("{0} {1}")]
    BadName(&'static str, NameError),
}

/// The payload part of an event on the wire, without allocating for CLOSE.
enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    Close(u16, &'a [u8]),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::None => 0,
            Payload::Bytes(b) => b.len(),
            Payload::Close(_, r) => 2 + r.len(),
        }
    }
}

/// Type name and payload as Pushpin writes them: empty message payloads are omitted.
fn wire_parts(event: &Event) -> (&'static str, Payload<'_>) {
    fn bytes(b: &[u8]) -> Payload<'_> {
        if b.is_empty() {
            Payload::None
        } else {
            Payload::Bytes(b)
        }
    }
    match event {
        Event::Open => ("OPEN", Payload::None),
        Event::Text(b) => ("TEXT", bytes(b)),
        Event::Binary(b) => ("BINARY", bytes(b)),
        Event::Ping(b) => ("PING", bytes(b)),
        Event::Pong(b) => ("PONG", bytes(b)),
        Event::Close {
            code: Some(c),
            reason,
        } => ("CLOSE", Payload::Close(*c, reason)),
        Event::Close { code: None, .. } => ("CLOSE", Payload::None),
        Event::Disconnect => ("DISCONNECT", Payload::None),
    }
}

fn hex_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 16 {
        n /= 16;
        digits += 1;
    }
    digits
}

/// Appends one event in Pushpin's exact wire format: `TYPE\r\n` when there is no payload (also for
/// empty TEXT/BINARY/PING/PONG), else `TYPE <lowercase hex length>\r\n<payload>\r\n`.
pub fn encode_event(out: &mut Vec<u8>, event: &Event) {
    let (name, payload) = wire_parts(event);
    out.extend_from_slice(name.as_bytes());
    let len = payload.len();
    if let Payload::None = payload {
        out.extend_from_slice(b"\r\n");
        return;
    }
    out.push(b' ');
    for i in (0..hex_digits(len)).rev() {
        out.push(b"0123456789abcdef"[(len >> (4 * i)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
    match payload {
        Payload::Bytes(b) => out.extend_from_slice(b),
        Payload::Close(code, reason) => {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason);
        }
        Payload::None => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Bytes `encode_event` would append (for batch size limits without encoding).
pub fn encoded_len(event: &Event) -> usize {
    let (name, payload) = wire_parts(event);
    match payload {
        Payload::None => name.len() + 2,
        p => name.len() + 1 + hex_digits(p.len()) + 2 + p.len() + 2,
    }
}

/// Parses a whole response body into events; an unknown event type or malformed length is an
/// error naming the offset. Hex lengths may be upper or lower case. Stricter than Pushpin, which
/// ignores unknown types and tolerates a short last payload or a missing CRLF after a payload.
/// `TEXT\r\n` (no length) is an empty message; content on OPEN/DISCONNECT is ignored; a CLOSE
/// payload shorter than 2 bytes carries no code.
pub fn decode_events(body: &[u8]) -> Result<Vec<Event>, WsohError> {
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let (event, next) = decode_one(body, pos)?;
        debug_assert!(next > pos);
        events.push(event);
        pos = next;
    }
    Ok(events)
}

/// Decodes the event starting at `start`; returns it and the offset after it.
fn decode_one(body: &[u8], start: usize) -> Result<(Event, usize), WsohError> {
    let rest = &body[start..];
    let line_len = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(WsohError::MissingLineEnd(start))?;
    let line = &rest[..line_len];
    let mut next = start + line_len + 2;
    let (name, payload) = match line.iter().position(|&b| b == b' ') {
        None => (line, None),
        Some(sp) => {
            let len = parse_hex(&line[sp + 1..]).ok_or(WsohError::BadLength(start + sp + 1))?;
            let end = next
                .checked_add(len)
                .filter(|&end| end <= body.len())
                .ok_or(WsohError::Truncated(next))?;
            if body.get(end..end + 2) != Some(b"\r\n".as_slice()) {
                return Err(WsohError::MissingPayloadEnd(end));
            }
            let payload = &body[next..end];
            next = end + 2;
            (&line[..sp], Some(payload))
        }
    };
    let event = make_event(name, payload).ok_or_else(|| {
        WsohError::UnknownEvent(start, String::from_utf8_lossy(name).into_owned())
    })?;
    Ok((event, next))
}

fn parse_hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |acc, &b| {
        let d = char::from(b).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(d as usize)
    })
}

fn make_event(name: &[u8], payload: Option<&[u8]>) -> Option<Event> {
    let data = || payload.unwrap_or_default().to_vec();
    Some(match name {
        b"OPEN" => Event::Open,
        b"TEXT" => Event::Text(data()),
        b"BINARY" => Event::Binary(data()),
        b"PING" => Event::Ping(data()),
        b"PONG" => Event::Pong(data()),
        b"CLOSE" => match payload {
            Some([hi, lo, reason @ ..]) => Event::Close {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: reason.to_vec(),
            },
            _ => Event::Close {
                code: None,
                reason: Vec::new(),
            },
        },
        b"DISCONNECT" => Event::Disconnect,
        _ => return None,
    })
}

/// The grip extension from the origin's `Sec-WebSocket-Extensions` response header value(s): None
/// if `grip` is absent, else the message prefix (default "m:", or the `message-prefix` parameter,
/// possibly empty). As `wsproxysession.cpp`: values are split on commas outside quotes, the name is
/// matched case-sensitively, parameters are `;`-separated `name[=value]` with `"..."` and `\`
/// escapes; unparsable parameters (an unterminated quote, or `=` as the very last character, e.g.
/// `grip; message-prefix=`) make Pushpin treat `grip` as absent. `message-prefix` alone gives "".
pub fn grip_extension(values: &[&[u8]]) -> Option<String> {
    let ext = values
        .iter()
        .flat_map(|v| split_list(v))
        .find(|e| extension_name(e) == b"grip")?;
    let Some(semi) = ext.iter().position(|&b| b == b';') else {
        return Some(DEFAULT_MESSAGE_PREFIX.to_owned());
    };
    let params = parse_ext_params(&ext[semi + 1..])?;
    let prefix = params
        .into_iter()
        .rev()
        .find(|(k, _)| k == b"message-prefix");
    Some(prefix.map_or_else(
        || DEFAULT_MESSAGE_PREFIX.to_owned(),
        |(_, v)| String::from_utf8_lossy(&v).into_owned(),
    ))
}

/// Qt's `trimmed`: strips `\t\n\v\f\r ` at both ends.
fn trim(s: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = s.iter().position(|b| !space(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !space(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn extension_name(ext: &[u8]) -> &[u8] {
    match ext.iter().position(|&b| b == b';') {
        Some(i) => trim(&ext[..i]),
        None => ext,
    }
}

/// Pushpin's `headerSplit`: commas inside quotes do not split; a broken quote keeps the rest as
/// one element; elements are trimmed; a trailing comma adds nothing.
fn split_list(value: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut i, mut in_quote) = (0, 0, false);
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
    if start < value.len() {
        parts.push(trim(&value[start..]));
    }
    parts
}

type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// `parseParams` of `wsproxysession.cpp`; `None` where it fails.
fn parse_ext_params(s: &[u8]) -> Option<Params> {
    let mut out = Params::new();
    let mut start = 0;
    while start < s.len() {
        let Some(at) = s[start..].iter().position(|&b| b == b'=' || b == b';') else {
            out.push((trim(&s[start..]).to_vec(), Vec::new()));
            break;
        };
        let at = start + at;
        let name = trim(&s[start..at]).to_vec();
        if s[at] == b';' {
            out.push((name, Vec::new()));
            start = at + 1;
            continue;
        }
        let vstart = at + 1;
        if vstart >= s.len() {
            return None;
        }
        let (value, end) = if s[vstart] == b'"' {
            let (value, after) = parse_quoted(s, vstart + 1)?;
            (value, find_semi(s, after))
        } else {
            let end = find_semi(s, vstart);
            (trim(&s[vstart..end]).to_vec(), end)
        };
        out.push((name, value));
        start = end + 1;
    }
    Some(out)
}

fn find_semi(s: &[u8], from: usize) -> usize {
    s[from..]
        .iter()
        .position(|&b| b == b';')
        .map_or(s.len(), |i| from + i)
}

/// Reads a quoted string whose content starts at `from`; returns it unescaped and the offset
/// after the closing quote.
fn parse_quoted(s: &[u8], from: usize) -> Option<(Vec<u8>, usize)> {
    let mut value = Vec::new();
    let mut i = from;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                value.push(*s.get(i + 1)?);
                i += 2;
            }
            b'"' => return Some((value, i + 1)),
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    None
}

/// What an origin text message from a grip-enabled origin means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginText<'a> {
    /// The JSON after `c:`, for [`parse_control`]. Pushpin accepts a control message only as a
    /// single frame, so over WebSocket-over-HTTP one above 16 384 bytes is dropped.
    Control(&'a [u8]),
    /// The message after the prefix, to deliver.
    Message(&'a [u8]),
    /// Neither: Pushpin drops it.
    Dropped,
}

/// Classifies a TEXT message from a grip-enabled origin: `c:` wins over the message prefix.
pub fn classify_text<'a>(payload: &'a [u8], prefix: &str) -> OriginText<'a> {
    if let Some(json) = payload.strip_prefix(CONTROL_PREFIX) {
        OriginText::Control(json)
    } else {
        classify_binary(payload, prefix)
    }
}

/// Classifies a BINARY message from a grip-enabled origin: Pushpin requires the message prefix on
/// binary messages too, and never reads control messages from them. Pings, pongs and closes pass
/// unprefixed.
pub fn classify_binary<'a>(payload: &'a [u8], prefix: &str) -> OriginText<'a> {
    match payload.strip_prefix(prefix.as_bytes()) {
        Some(message) => OriginText::Message(message),
        None => OriginText::Dropped,
    }
}

/// Meta: request headers `Meta-<name>: value` for the stored meta; response headers
/// `Set-Meta-<name>: value` update it (empty value deletes). Returns the updates in header order;
/// apply them in turn, matching stored names case-insensitively (Pushpin keeps meta as headers).
/// `Set-Meta-` with no name is ignored. Values are read as lossy UTF-8. An entry that breaks the
/// identifier rules comes back as an error, for the caller to log and skip.
pub fn set_meta_updates<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    limits: &NameLimits,
) -> Vec<Result<(String, Option<String>), WsohError>> {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            let prefix = name.get(..9)?;
            let meta = name.get(9..).filter(|m| !m.is_empty())?;
            if !prefix.eq_ignore_ascii_case("Set-Meta-") {
                return None;
            }
            let value = (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
            Some(check_meta(meta, value.as_deref(), limits).map(|()| (meta.to_owned(), value)))
        })
        .collect()
}

/// Qt's `toInt` (base 10, surrounding whitespace allowed) of the first header named `wanted`:
/// `None` if absent, `Some(None)` if unparsable.
fn int_header<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    wanted: &str,
) -> Option<Option<i32>> {
    let (_, value) = headers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted))?;
    Some(
        std::str::from_utf8(trim(value))
            .ok()
            .and_then(|s| s.parse().ok()),
    )
}

/// `Keep-Alive-Interval: N` from a response: None if absent; Some(None) if ≤ 0 or not a number
/// (disable); values under 20 raised to 20 (as Pushpin).
pub fn keep_alive_interval<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Option<Option<u32>> {
    let secs = int_header(headers, "Keep-Alive-Interval")?;
    Some(
        secs.and_then(|s| u32::try_from(s).ok())
            .filter(|&s| s > 0)
            .map(|s| s.max(KEEP_ALIVE_INTERVAL_MIN_SECS)),
    )
}

/// Newer Pushpin's `Content-Bytes-Accepted: N`: how many content bytes (message payloads plus the
/// CLOSE payload, not the encoded body) of the request the origin took; `None` (absent, not a
/// number, negative) means all. More than was offered is an error for the caller; the rest is
/// resent next time with `Content-Bytes-Replayed`.
pub fn content_bytes_accepted<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Option<u32> {
    int_header(headers, "Content-Bytes-Accepted")?.and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
#[path = "wsoh_tests.rs"]
mod tests;
