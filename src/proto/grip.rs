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
mod tests {
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
        let body =
            r#"{"hold":{"mode":null,"channels":[{"name":"a","prev-id":"","filters":null}]}}"#;
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
}
