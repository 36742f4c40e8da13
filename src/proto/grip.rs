//! GRIP instructions from an origin response (sans-IO).
//!
//! Owns turning the `Grip-*` response headers ([`from_headers`]) and the
//! `application/grip-instruct` JSON body ([`from_json`]) into an [`Instruct`]. It does no I/O, keeps
//! no state, resolves no URLs and leaves session defaults (55 s hold timeout, 120 s next-link
//! timeout, reason phrases) to the caller; the constants are exported here. The header form's
//! parameter syntax and per-header parsers live in the private child module `grip_params.rs`.
//!
//! Behaviour follows Pushpin's `Instruct::fromResponse` (`src/handler/instruct.cpp`) and
//! `HttpHeaders` (`src/core/httpheaders.cpp`):
//! - `Grip-Hold`, `Grip-Timeout`, `Grip-Keep-Alive`, `Grip-Status`: the first header counts.
//!   `Grip-Channel`, `Grip-Link`, `Grip-Set-Meta`, `Grip-Expose-Headers` may repeat and are
//!   comma-separated lists; commas inside quoted strings do not split.
//! - Integers are Qt `toInt`: optional sign, decimal digits, surrounding whitespace, `i32` range.
//!   Anything else is an error, negative values too. A hold timeout under 5 s is raised to 5 and a
//!   keep-alive timeout of 0 to 1, as Pushpin does while parsing; a next-link timeout of 0 stays.
//! - More channels than [`GripLimits::channels_max`] are truncated, not rejected (Pushpin
//!   `httpsession.cpp` keeps the first `connection_subscription_max` and logs); more than
//!   [`FILTERS_MAX`] filters on one channel is an error.
//! - Header strings are decoded as UTF-8 with replacement characters (Qt `fromUtf8`); base64 as Qt
//!   `fromBase64` does: bytes outside the alphabet are skipped, so it never fails.
//!
//! Stricter than Pushpin, where it goes on with something the origin cannot have meant (each an
//! error here): an unterminated quoted string (Pushpin drops the list element), an empty channel
//! name (Pushpin subscribes to `""`), an empty `Grip-Keep-Alive` (Pushpin ignores it), a status
//! code outside 100..=999 (Pushpin: 0..=999), a `Grip-Link` URL with bytes outside visible ASCII, a
//! JSON response header that is not a valid field (CR/LF injection), more than [`FILTERS_MAX`]
//! filters in the JSON form, a fractional number, string or boolean where a JSON integer is
//! expected (Qt would coerce it). Also: an empty `prev-id` counts as absent, JSON `null` as an
//! absent field, and the JSON keep-alive `mode` (which Pushpin ignores) is honoured.

#[path = "grip_params.rs"]
mod grip_params;

use serde_json::{Map, Value};

use super::http1::{is_field_value, is_token};
use super::names::{self, NameError, NameLimits};

use grip_params::{
    check_filters, decode_base64_lenient, quote, secs_in_range, trim, unknown_mode, upsert,
};

/// `Content-Type` of a response whose body is JSON GRIP instructions.
pub const INSTRUCT_CONTENT_TYPE: &str = "application/grip-instruct";
/// Hold timeout the caller applies when [`Instruct::timeout_secs`] is `None`.
pub const DEFAULT_RESPONSE_TIMEOUT_SECS: u32 = 55;
/// Smallest hold timeout; smaller values from the origin are raised to it.
pub const MIN_RESPONSE_TIMEOUT_SECS: u32 = 5;
/// Keep-alive timeout when the origin gives none.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_SECS: u32 = 55;
/// Next-link timeout the caller applies when a `rel=next` link has none.
pub const DEFAULT_NEXT_LINK_TIMEOUT_SECS: u32 = 120;
/// Most filters one channel may have (Pushpin's `MESSAGEFILTERSTACK_SIZE_MAX`).
pub const FILTERS_MAX: usize = 5;
/// Default of [`GripLimits::channels_max`] (Pushpin's `connection_subscription_max`).
pub const DEFAULT_CHANNELS_MAX: usize = 20;

/// How the client's request is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMode {
    /// Long-poll: one published `http-response` (or the timeout) answers the request.
    Response,
    /// Streaming: the origin's body goes out at once, then each `http-stream` publish follows.
    Stream,
}

/// One channel subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSub {
    /// Channel name, never empty (the route's channel prefix is not applied here).
    pub name: String,
    /// Last item id the origin has seen; turns on reliable delivery. Never empty.
    pub prev_id: Option<String>,
    /// Filter names in order, at most [`FILTERS_MAX`].
    pub filters: Vec<String>,
}

/// When keep-alive data is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// After `timeout_secs` with nothing sent to the client.
    Idle,
    /// Every `timeout_secs`, whatever else is sent.
    Interval,
}

/// Data sent on a held stream to keep it open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAlive {
    /// Bytes to send, already decoded from their `format`.
    pub data: Vec<u8>,
    /// Period in seconds, at least 1.
    pub timeout_secs: u32,
    /// Idle or interval.
    pub mode: KeepAliveMode,
}

/// A `Grip-Link` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URL between `<` and `>`, maybe relative to the request URL (the caller resolves it).
    pub url: String,
    /// `timeout` of a `rel=next` link; `None` when absent (the caller applies
    /// [`DEFAULT_NEXT_LINK_TIMEOUT_SECS`]) and always for `rel=gone`.
    pub timeout_secs: Option<u32>,
}

/// Status from `Grip-Status` for the held or streamed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Status code, 100..=999.
    pub code: u16,
    /// Reason phrase; `None` means the standard one for `code`.
    pub reason: Option<String>,
}

/// The response the client is sent, from the JSON form's `response` object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstructResponse {
    /// Status code, 100..=999; `None` keeps the `Grip-Status` code, else 200.
    pub code: Option<u16>,
    /// Reason phrase; `None` means the standard one for the final code.
    pub reason: Option<String>,
    /// Headers in order (an object's keys come sorted, a list of pairs keeps its order).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes (`body-bin` decoded, else `body` as UTF-8).
    pub body: Vec<u8>,
}

/// GRIP instructions found in one origin response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instruct {
    /// Hold mode; `None` passes the response through (channels may still be set).
    pub hold: Option<HoldMode>,
    /// Subscriptions in order, truncated to [`GripLimits::channels_max`].
    pub channels: Vec<ChannelSub>,
    /// Hold timeout, at least [`MIN_RESPONSE_TIMEOUT_SECS`]; `None` when the origin gave none.
    pub timeout_secs: Option<u32>,
    /// Stream keep-alive.
    pub keep_alive: Option<KeepAlive>,
    /// From `Grip-Status`.
    pub status: Option<Status>,
    /// `rel=next` link.
    pub next_link: Option<Link>,
    /// `rel=gone` link, POSTed to when the client goes away.
    pub gone_link: Option<Link>,
    /// Subscription meta in first-seen key order; a repeated key takes the later value.
    pub meta: Vec<(String, String)>,
    /// If not empty, only these origin headers (case-insensitive) reach the client.
    pub expose_headers: Vec<String>,
    /// Only from the JSON form, where it is always `Some`: the origin's own headers and body are
    /// never forwarded then; this (possibly empty) response replaces them.
    pub response: Option<InstructResponse>,
}

/// Limits on what one response may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GripLimits {
    /// Most channels kept per connection; extra ones are dropped, as Pushpin does with its
    /// `connection_subscription_max` (default [`DEFAULT_CHANNELS_MAX`]).
    pub channels_max: usize,
    /// Channel names, prev-ids and meta: bounded, no control characters, meta names tokens.
    pub names: NameLimits,
}

impl Default for GripLimits {
    fn default() -> Self {
        Self {
            channels_max: DEFAULT_CHANNELS_MAX,
            names: NameLimits::default(),
        }
    }
}

/// Why GRIP instructions were rejected (the origin's fault). In every variant `field` is the header
/// name or JSON field path and `value` the bad value, quoted and cut at 80 characters.
#[derive(Debug, thiserror::Error)]
pub enum GripError {
    /// A hold or keep-alive mode that does not exist.
    #[error("{field}: unknown mode {value}")]
    UnknownMode { field: &'static str, value: String },
    /// A `Grip-Keep-Alive` `format` that does not exist.
    #[error("Grip-Keep-Alive: unknown format {value}")]
    UnknownFormat { value: String },
    /// A value that must be an integer is not one.
    #[error("{field}: not an integer: {value}")]
    NotAnInteger { field: String, value: String },
    /// An integer that is negative or larger than an `i32`.
    #[error("{field}: value {value} out of range")]
    OutOfRange { field: String, value: i64 },
    /// An unterminated quoted string (or a backslash ending one).
    #[error("{field}: unterminated quoted string in {value}")]
    Malformed { field: &'static str, value: String },
    /// A channel with an empty name.
    #[error("{field}: empty channel name")]
    EmptyChannelName { field: String },
    /// A channel with more than [`FILTERS_MAX`] filters.
    #[error("{field}: channel {channel} has {count} filters, at most {max} allowed")]
    TooManyFilters {
        field: String,
        channel: String,
        count: usize,
        max: usize,
    },
    /// `Grip-Keep-Alive` with no data before the first `;`.
    #[error("Grip-Keep-Alive: empty data in {value}")]
    EmptyKeepAlive { value: String },
    /// A `format=cstring` keep-alive with a trailing backslash or a bad `\xHH`.
    #[error("Grip-Keep-Alive: bad cstring escape in {value}")]
    BadEscape { value: String },
    /// An empty element in `Grip-Set-Meta`.
    #[error("Grip-Set-Meta: empty element in {value}")]
    EmptyMeta { value: String },
    /// A status code that is not an integer in 100..=999.
    #[error("{field}: invalid status code {value}")]
    BadStatus { field: &'static str, value: String },
    /// A `Grip-Link` value that is not `<URL>` with a visible-ASCII URL.
    #[error("Grip-Link: invalid link {value}")]
    BadLink { value: String },
    /// A JSON response header whose name is not a token or whose value has a control character.
    #[error("{field}: invalid header {value}")]
    BadHeader { field: String, value: String },
    /// A status reason with a control character (it would split the client's response).
    #[error("{field}: reason must not contain control characters")]
    BadReason { field: &'static str },
    /// A channel name, prev-id or meta name or value that breaks the identifier rules.
    #[error("{field}: {value} {error}")]
    BadName {
        field: String,
        value: String,
        error: NameError,
    },
    /// The grip-instruct body is not JSON.
    #[error("application/grip-instruct: invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON field of the wrong type.
    #[error("{field}: expected {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: String,
    },
    /// A required JSON field is absent.
    #[error("{field}: missing")]
    Missing { field: String },
}

/// True for any header whose name starts with "Grip-" (case-insensitive): these are stripped
/// before the client sees the response.
pub fn is_grip_header(name: &str) -> bool {
    let prefix = name.as_bytes().get(..5);
    prefix.is_some_and(|p| p.eq_ignore_ascii_case(b"grip-"))
}

/// Request headers that only the proxy sets toward the origin. A client's own are dropped on
/// every path (plain HTTP, WebSocket passthrough, WebSocket-over-HTTP), so a plain request can
/// neither carry a `Grip-Last` or `Grip-Sig` of its choosing nor pose as a WebSocket-over-HTTP
/// exchange (`Connection-Id`, `Meta-*`, `Content-Bytes-Replayed`) signed by holdfast.
pub fn is_proxy_only_request_header(name: &str) -> bool {
    let has_prefix = |p: &[u8]| {
        name.as_bytes()
            .get(..p.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(p))
    };
    has_prefix(b"grip-")
        || has_prefix(b"meta-")
        || name.eq_ignore_ascii_case("connection-id")
        || name.eq_ignore_ascii_case("content-bytes-replayed")
}

/// True when a `Content-Type` value is [`INSTRUCT_CONTENT_TYPE`]: parameters ignored, compared
/// ASCII case-insensitively (media types are; Pushpin compares exactly).
pub fn is_instruct_content_type(value: &[u8]) -> bool {
    let media = value.split(|&b| b == b';').next().unwrap_or_default();
    trim(media).eq_ignore_ascii_case(INSTRUCT_CONTENT_TYPE.as_bytes())
}

/// Values of the headers named `name` among the `Grip-*` ones, in order.
fn values<'a, 'g>(grip: &'g [(&str, &'a [u8])], name: &'g str) -> impl Iterator<Item = &'a [u8]> {
    let named = grip
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name));
    named.map(|&(_, v)| v)
}

/// Instructions from response headers. `headers` yields (name, raw value) pairs in order, names in
/// any case. Returns `Ok(Instruct::default())` when there are no GRIP headers.
///
/// Headers are checked in Pushpin's order (hold, channel, timeout, expose, keep-alive, meta,
/// status, link), so the first error reported is the one Pushpin would report.
pub fn from_headers<'a, I>(headers: I, limits: &GripLimits) -> Result<Instruct, GripError>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    // Only `Grip-*` headers are kept, so the lookups below scan a handful of entries.
    let grip: Vec<(&str, &[u8])> = headers
        .into_iter()
        .filter(|(n, _)| is_grip_header(n))
        .collect();
    let first = |name| values(&grip, name).next();
    let mut out = Instruct::default();
    if let Some(v) = first("Grip-Hold") {
        out.hold = Some(grip_params::parse_hold(v)?);
    }
    for v in values(&grip, "Grip-Channel") {
        grip_params::parse_channels(v, &mut out.channels)?;
    }
    check_channels(&out.channels, &limits.names)?;
    out.channels.truncate(limits.channels_max);
    if let Some(v) = first("Grip-Timeout") {
        let secs = grip_params::header_secs("Grip-Timeout", Some(v))?;
        out.timeout_secs = Some(secs.max(MIN_RESPONSE_TIMEOUT_SECS));
    }
    for v in values(&grip, "Grip-Expose-Headers") {
        let names = grip_params::split_list(v);
        let names = names.map_err(|_| grip_params::malformed("Grip-Expose-Headers", v))?;
        let names = names.into_iter().filter(|n| !n.is_empty());
        out.expose_headers.extend(names.map(grip_params::lossy));
    }
    if let Some(v) = first("Grip-Keep-Alive") {
        out.keep_alive = Some(grip_params::parse_keep_alive(v)?);
    }
    for v in values(&grip, "Grip-Set-Meta") {
        grip_params::parse_set_meta(v, &mut out.meta)?;
    }
    if let Some(v) = first("Grip-Status") {
        out.status = grip_params::parse_status(v)?;
    }
    for v in values(&grip, "Grip-Link") {
        grip_params::parse_links(v, &mut out)?;
    }
    out.check_meta(&limits.names)?;
    if let Some(reason) = out.status.as_ref().and_then(|s| s.reason.as_deref()) {
        check_reason("Grip-Status", reason)?;
    }
    Ok(out)
}

fn bad_name(field: &str, value: &str, error: NameError) -> GripError {
    GripError::BadName {
        field: field.to_owned(),
        value: quote(value.as_bytes()),
        error,
    }
}

/// Channel names and prev-ids against the identifier rules (they name channels in every worker's
/// table and travel in `Grip-Last` headers). Checked before the list is cut to `channels_max`,
/// so whether an answer is valid does not depend on that limit.
fn check_channels(channels: &[ChannelSub], limits: &NameLimits) -> Result<(), GripError> {
    for c in channels {
        names::check_channel(&c.name, limits).map_err(|e| bad_name("channel", &c.name, e))?;
        if let Some(p) = &c.prev_id {
            names::check_id(p, limits).map_err(|e| bad_name("channel prev-id", p, e))?;
        }
    }
    Ok(())
}

/// A reason phrase the client's status line can carry (the publish API's rule).
fn check_reason(field: &'static str, reason: &str) -> Result<(), GripError> {
    if is_field_value(reason.as_bytes()) {
        Ok(())
    } else {
        Err(GripError::BadReason { field })
    }
}

/// Instructions from an `application/grip-instruct` JSON body.
///
/// The caller checks the content type ([`is_instruct_content_type`]) and that the origin's status
/// is 200 (Pushpin rejects other codes), then combines the result with [`from_headers`] through
/// [`Instruct::merge_json`]. `hold.mode` defaults to `response`; `hold.channels` is required;
/// `response` is always `Some`. A keep-alive's `mode` defaults to `idle` (Pushpin ignores `mode`
/// and in effect repeats JSON keep-alives on an interval).
pub fn from_json(body: &[u8], limits: &GripLimits) -> Result<Instruct, GripError> {
    let doc: Value = serde_json::from_slice(body)?;
    let root = doc
        .as_object()
        .ok_or_else(|| wrong_type("instruct", OBJ, &doc))?;
    let mut out = Instruct::default();
    if let Some(hold) = get(root, "", "hold", OBJ, Value::as_object)? {
        json_hold(hold, limits, &mut out)?;
    }
    let response = get(root, "", "response", OBJ, Value::as_object)?;
    out.response = Some(response.map(json_response).transpose()?.unwrap_or_default());
    out.check_meta(&limits.names)?;
    Ok(out)
}

type JsonObj = Map<String, Value>;

const OBJ: &str = "an object";
const STR: &str = "a string";
const LIST: &str = "a list";

fn json_hold(hold: &JsonObj, limits: &GripLimits, out: &mut Instruct) -> Result<(), GripError> {
    out.hold = Some(match get(hold, "hold", "mode", STR, Value::as_str)? {
        None | Some("response") => HoldMode::Response,
        Some("stream") => HoldMode::Stream,
        Some(other) => return Err(unknown_mode("hold.mode", other.as_bytes())),
    });
    let channels = get(hold, "hold", "channels", LIST, Value::as_array)?;
    let channels = channels.ok_or_else(|| GripError::Missing {
        field: "hold.channels".into(),
    })?;
    for (i, c) in channels.iter().enumerate() {
        out.channels
            .push(json_channel(c, &format!("hold.channels[{i}]"))?);
    }
    check_channels(&out.channels, &limits.names)?;
    out.channels.truncate(limits.channels_max);
    if let Some(t) = get_secs(hold, "hold", "timeout")? {
        out.timeout_secs = Some(t.max(MIN_RESPONSE_TIMEOUT_SECS));
    }
    if let Some(ka) = get(hold, "hold", "keep-alive", OBJ, Value::as_object)? {
        out.keep_alive = Some(json_keep_alive(ka)?);
    }
    for (k, v) in get(hold, "hold", "meta", OBJ, Value::as_object)?
        .into_iter()
        .flatten()
    {
        let s = v
            .as_str()
            .ok_or_else(|| wrong_type(&format!("hold.meta.{k}"), STR, v))?;
        upsert(&mut out.meta, k.clone(), s.to_owned());
    }
    Ok(())
}

fn json_channel(v: &Value, path: &str) -> Result<ChannelSub, GripError> {
    let obj = v.as_object().ok_or_else(|| wrong_type(path, OBJ, v))?;
    let name = get(obj, path, "name", STR, Value::as_str)?;
    let field = format!("{path}.name");
    let name = match name {
        None => return Err(GripError::Missing { field }),
        Some("") => return Err(GripError::EmptyChannelName { field }),
        Some(name) => name.to_owned(),
    };
    let prev_id = get(obj, path, "prev-id", STR, Value::as_str)?.filter(|p| !p.is_empty());
    let mut filters = Vec::new();
    for (i, f) in get(obj, path, "filters", LIST, Value::as_array)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = f
            .as_str()
            .ok_or_else(|| wrong_type(&format!("{path}.filters[{i}]"), STR, f))?;
        filters.push(s.to_owned());
    }
    let channel = ChannelSub {
        name,
        prev_id: prev_id.map(str::to_owned),
        filters,
    };
    check_filters(format!("{path}.filters"), &channel)?;
    Ok(channel)
}

fn json_keep_alive(ka: &JsonObj) -> Result<KeepAlive, GripError> {
    const PATH: &str = "hold.keep-alive";
    let data = match get(ka, PATH, "content-bin", STR, Value::as_str)? {
        Some(bin) => decode_base64_lenient(bin.as_bytes()),
        None => get(ka, PATH, "content", STR, Value::as_str)?
            .unwrap_or_default()
            .into(),
    };
    let timeout = get_secs(ka, PATH, "timeout")?;
    let timeout_secs = timeout.unwrap_or(DEFAULT_KEEP_ALIVE_TIMEOUT_SECS).max(1);
    let mode = match get(ka, PATH, "mode", STR, Value::as_str)? {
        None | Some("idle") => KeepAliveMode::Idle,
        Some("interval") => KeepAliveMode::Interval,
        Some(other) => return Err(unknown_mode("hold.keep-alive.mode", other.as_bytes())),
    };
    Ok(KeepAlive {
        data,
        timeout_secs,
        mode,
    })
}

fn json_response(r: &JsonObj) -> Result<InstructResponse, GripError> {
    let mut out = InstructResponse::default();
    if let Some(v) = r.get("code").filter(|v| !v.is_null()) {
        let code = json_int(v).and_then(|c| u16::try_from(c).ok());
        let code = code.filter(|c| (100..=999).contains(c));
        let bad = || GripError::BadStatus {
            field: "response.code",
            value: show_json(v),
        };
        out.code = Some(code.ok_or_else(bad)?);
    }
    let reason = get(r, "response", "reason", STR, Value::as_str)?;
    if let Some(reason) = reason {
        check_reason("response.reason", reason)?;
    }
    out.reason = reason.filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(h) = r.get("headers").filter(|v| !v.is_null()) {
        out.headers = json_headers(h)?;
    }
    out.body = match get(r, "response", "body-bin", STR, Value::as_str)? {
        Some(bin) => decode_base64_lenient(bin.as_bytes()),
        None => get(r, "response", "body", STR, Value::as_str)?
            .unwrap_or_default()
            .into(),
    };
    Ok(out)
}

/// `{"Name": "value", ...}` or `[["Name", "value"], ...]`.
fn json_headers(v: &Value) -> Result<Vec<(String, Vec<u8>)>, GripError> {
    let mut out = Vec::new();
    match v {
        Value::Object(map) => {
            for (name, val) in map {
                let field = format!("response.headers.{name}");
                let val = val.as_str().ok_or_else(|| wrong_type(&field, STR, val))?;
                out.push(check_header(&field, name, val)?);
            }
        }
        Value::Array(list) => {
            for (i, pair) in list.iter().enumerate() {
                let field = format!("response.headers[{i}]");
                let Some([Value::String(name), Value::String(val)]) =
                    pair.as_array().map(Vec::as_slice)
                else {
                    return Err(wrong_type(&field, "a [name, value] pair of strings", pair));
                };
                out.push(check_header(&field, name, val)?);
            }
        }
        other => return Err(wrong_type("response.headers", "an object or a list", other)),
    }
    Ok(out)
}

/// A header name must be a token and a value free of CR, LF and NUL, or the client's response
/// could be split (Pushpin does not check).
fn check_header(field: &str, name: &str, value: &str) -> Result<(String, Vec<u8>), GripError> {
    if !is_token(name) || !is_field_value(value.as_bytes()) {
        return Err(GripError::BadHeader {
            field: field.to_owned(),
            value: quote(format!("{name}: {value}").as_bytes()),
        });
    }
    Ok((name.to_owned(), value.as_bytes().to_vec()))
}
/// Field `key` of `obj` converted by `conv`; absent or `null` is `None`, a value `conv` rejects is
/// a [`GripError::WrongType`] naming `parent.key`.
fn get<'v, T>(
    obj: &'v JsonObj,
    parent: &str,
    key: &str,
    expected: &'static str,
    conv: fn(&'v Value) -> Option<T>,
) -> Result<Option<T>, GripError> {
    match obj.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => match conv(v) {
            Some(t) => Ok(Some(t)),
            None => Err(wrong_type(&join(parent, key), expected, v)),
        },
    }
}

/// A non-negative integer number of seconds; integral floats such as `30.0` are accepted.
fn get_secs(obj: &JsonObj, parent: &str, key: &str) -> Result<Option<u32>, GripError> {
    let Some(v) = get(obj, parent, key, "an integer", |v| {
        v.is_number().then_some(v)
    })?
    else {
        return Ok(None);
    };
    let field = join(parent, key);
    match json_int(v) {
        Some(n) => secs_in_range(&field, n).map(Some),
        None => Err(GripError::NotAnInteger {
            field,
            value: show_json(v),
        }),
    }
}

/// An integral JSON number; large values saturate so they are reported out of range.
fn json_int(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f.fract() == 0.0).then_some(f as i64)
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn wrong_type(field: &str, expected: &'static str, got: &Value) -> GripError {
    let (field, got) = (field.to_owned(), show_json(got));
    GripError::WrongType {
        field,
        expected,
        got,
    }
}

/// A JSON value for an error message, cut at 80 characters.
fn show_json(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

impl Instruct {
    /// Every meta pair against the identifier rules (they travel in `Meta-*` headers).
    fn check_meta(&self, limits: &NameLimits) -> Result<(), GripError> {
        for (k, v) in &self.meta {
            names::check_meta_name(k, limits).map_err(|e| bad_name("meta name", k, e))?;
            names::check_meta_value(v, limits).map_err(|e| bad_name("meta value", v, e))?;
        }
        Ok(())
    }

    /// Combine header instructions (`self`) with those of a grip-instruct body, as Pushpin does
    /// when such a response also has `Grip-*` headers: the JSON hold mode, timeout and keep-alive
    /// win when given; channels are appended (then cut to `channels_max`); meta is merged, JSON
    /// winning; `response` comes from the JSON. Links, status and expose-headers exist only in
    /// headers. The client's status is then `response.code`, else `status.code`, else 200.
    pub fn merge_json(&mut self, json: Instruct, limits: &GripLimits) {
        self.hold = json.hold.or(self.hold);
        self.channels.extend(json.channels);
        self.channels.truncate(limits.channels_max);
        self.timeout_secs = json.timeout_secs.or(self.timeout_secs);
        if json.keep_alive.is_some() {
            self.keep_alive = json.keep_alive;
        }
        for (k, v) in json.meta {
            upsert(&mut self.meta, k, v);
        }
        self.response = json.response;
    }
}

#[cfg(test)]
#[path = "grip_tests.rs"]
mod tests;
