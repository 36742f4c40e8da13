//! GRIP control messages from the origin (a TEXT message `c:{json}` once the `grip` extension is
//! on), parsed as Pushpin's handler reads them, with channel and meta names checked against the
//! identifier rules. Private child of `wsoh.rs` (included with `#[path]`).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD_INDIFFERENT};
use serde_json::{Map, Value};

use super::super::names::{self, NameLimits};
use super::{KEEP_ALIVE_TIMEOUT_DEFAULT_SECS, SEND_DELAYED_TIMEOUT_DEFAULT_SECS, WsohError};

/// Qt's `fromBase64` ignores padding and stray bits; characters outside the alphabet are dropped
/// before decoding ([`decode_base64_lenient`]).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// `keep-alive` mode: after idle time, or at a fixed interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// Send when nothing went to the client for the timeout (timer restarts on every message).
    Idle,
    /// Send every timeout, whatever else is sent.
    Interval,
}

/// Kind of WebSocket message a control message asks to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Text message.
    Text,
    /// Binary message.
    Binary,
    /// Ping frame.
    Ping,
    /// Pong frame.
    Pong,
}

/// A GRIP control message, as Pushpin's handler reads it (`wscontrolmessage.cpp`,
/// `handlerengine.cpp`). Pushpin logs and ignores one that fails to parse; the connection goes on.
/// JSON `null` counts as absent, except that `content`/`content-bin` must be strings when present.
/// Defaults are applied here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Subscribe to `channel` (route channel prefix prepended by the caller). `filters` default
    /// empty. Over `connection_subscription_max` the message is ignored; more filters than the
    /// filter-stack limit close the client with 1011.
    Subscribe {
        /// Channel name, never empty.
        channel: String,
        /// Filter names.
        filters: Vec<String>,
    },
    /// Unsubscribe (implicit `sub=` subscriptions cannot be removed).
    Unsubscribe {
        /// Channel name, never empty.
        channel: String,
    },
    /// Stop relaying between client and origin: the origin side is closed, client frames are
    /// dropped from then on, published messages still reach the client.
    Detach,
    /// Set the session id used for `Grip-Last` recovery; empty (or absent) clears it.
    Session {
        /// Session id.
        id: String,
    },
    /// Set subscription meta used by filters; `None` (absent, null or empty) deletes the key.
    SetMeta {
        /// Meta key, never empty.
        name: String,
        /// New value.
        value: Option<String>,
    },
    /// Keep-alive sent to the client; `content: None` disables it. With content, `timeout_secs`
    /// is `Some` (default 55) and the proxy fires up to 1 s early (random jitter).
    KeepAlive {
        /// Bytes to send (`content-bin` base64 wins over `content`).
        content: Option<Vec<u8>>,
        /// Default text, even for `content-bin` (a Pushpin quirk kept on purpose).
        message_type: MessageType,
        /// Seconds; `None` only when disabled.
        timeout_secs: Option<u32>,
        /// `interval` when so named, anything else is idle.
        mode: KeepAliveMode,
    },
    /// holdfast extension, not in Pushpin (its handler rejects `close` as an unknown type, and
    /// the client libraries close with a CLOSE event instead): close the client.
    Close {
        /// Close code.
        code: Option<u16>,
        /// Close reason (default empty).
        reason: String,
    },
    /// Send `content` after `timeout_secs` (default 1) unless replaced or flushed first; a new one
    /// flushes the pending one.
    SendDelayed {
        /// Bytes to send (empty when absent).
        content: Vec<u8>,
        /// As for `KeepAlive`.
        message_type: MessageType,
        /// Seconds.
        timeout_secs: u32,
    },
    /// Send the pending `send-delayed` message now.
    FlushDelayed,
}

type Object = Map<String, Value>;

/// Parses the JSON after the `c:` prefix of a control message; channel and meta names and
/// values are checked against `limits`.
pub fn parse_control(json: &[u8], limits: &NameLimits) -> Result<Control, WsohError> {
    let control = parse_control_json(json)?;
    check_names(&control, limits)?;
    Ok(control)
}

fn check_names(control: &Control, limits: &NameLimits) -> Result<(), WsohError> {
    match control {
        Control::Subscribe { channel, .. } | Control::Unsubscribe { channel } => {
            names::check_channel(channel, limits).map_err(|e| WsohError::BadName("channel", e))
        }
        Control::SetMeta { name, value } => check_meta(name, value.as_deref(), limits),
        _ => Ok(()),
    }
}

/// A meta entry from a `set-meta` message or a `Set-Meta-*` header.
pub(super) fn check_meta(
    name: &str,
    value: Option<&str>,
    limits: &NameLimits,
) -> Result<(), WsohError> {
    names::check_meta_name(name, limits).map_err(|e| WsohError::BadName("meta name", e))?;
    match value {
        Some(v) => {
            names::check_meta_value(v, limits).map_err(|e| WsohError::BadName("meta value", e))
        }
        None => Ok(()),
    }
}

fn parse_control_json(json: &[u8]) -> Result<Control, WsohError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| WsohError::BadJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(WsohError::NotAnObject);
    };
    let kind = opt_str(&obj, "type")?.ok_or(WsohError::MissingField("type"))?;
    Ok(match kind {
        "subscribe" => Control::Subscribe {
            channel: channel(&obj)?,
            filters: filters(&obj)?,
        },
        "unsubscribe" => Control::Unsubscribe {
            channel: channel(&obj)?,
        },
        "detach" => Control::Detach,
        "session" => Control::Session {
            id: opt_str(&obj, "id")?.unwrap_or_default().to_owned(),
        },
        "set-meta" => set_meta(&obj)?,
        "keep-alive" => keep_alive(&obj)?,
        "close" => close(&obj)?,
        "send-delayed" => send_delayed(&obj)?,
        "flush-delayed" => Control::FlushDelayed,
        other => return Err(WsohError::UnknownControlType(other.to_owned())),
    })
}

fn opt_str<'a>(obj: &'a Object, key: &'static str) -> Result<Option<&'a str>, WsohError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WsohError::WrongType(key)),
    }
}

fn non_empty(obj: &Object, key: &'static str) -> Result<String, WsohError> {
    match opt_str(obj, key)? {
        None => Err(WsohError::MissingField(key)),
        Some("") => Err(WsohError::InvalidValue(key)),
        Some(s) => Ok(s.to_owned()),
    }
}

fn channel(obj: &Object) -> Result<String, WsohError> {
    non_empty(obj, "channel")
}

fn filters(obj: &Object) -> Result<Vec<String>, WsohError> {
    match obj.get("filters") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(WsohError::WrongType("filters")),
        Some(_) => Err(WsohError::WrongType("filters")),
    }
}

fn set_meta(obj: &Object) -> Result<Control, WsohError> {
    let name = non_empty(obj, "name")?;
    let value = opt_str(obj, "value")?.filter(|v| !v.is_empty());
    Ok(Control::SetMeta {
        name,
        value: value.map(str::to_owned),
    })
}

fn keep_alive(obj: &Object) -> Result<Control, WsohError> {
    let message_type = message_type(obj)?;
    let content = content(obj)?;
    let timeout_secs = match content {
        Some(_) => Some(timeout_secs(obj, KEEP_ALIVE_TIMEOUT_DEFAULT_SECS)?),
        None => None,
    };
    let mode = match opt_str(obj, "mode")? {
        Some("interval") => KeepAliveMode::Interval,
        _ => KeepAliveMode::Idle,
    };
    Ok(Control::KeepAlive {
        content,
        message_type,
        timeout_secs,
        mode,
    })
}

fn send_delayed(obj: &Object) -> Result<Control, WsohError> {
    let message_type = message_type(obj)?;
    let content = content(obj)?;
    // Pushpin reads `timeout` only when there is content.
    let timeout_secs = match content {
        Some(_) => timeout_secs(obj, SEND_DELAYED_TIMEOUT_DEFAULT_SECS)?,
        None => SEND_DELAYED_TIMEOUT_DEFAULT_SECS,
    };
    Ok(Control::SendDelayed {
        content: content.unwrap_or_default(),
        message_type,
        timeout_secs,
    })
}

fn close(obj: &Object) -> Result<Control, WsohError> {
    let code = match obj.get("code") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .ok_or(WsohError::InvalidValue("code"))?,
        ),
        Some(_) => return Err(WsohError::WrongType("code")),
    };
    let reason = opt_str(obj, "reason")?.unwrap_or_default().to_owned();
    Ok(Control::Close { code, reason })
}

fn message_type(obj: &Object) -> Result<MessageType, WsohError> {
    Ok(match opt_str(obj, "message-type")? {
        None | Some("text") => MessageType::Text,
        Some("binary") => MessageType::Binary,
        Some("ping") => MessageType::Ping,
        Some("pong") => MessageType::Pong,
        Some(_) => return Err(WsohError::InvalidValue("message-type")),
    })
}

/// `content-bin` (base64) if present, else `content`; present-but-not-a-string (null included) is
/// an error, as in Pushpin.
fn content(obj: &Object) -> Result<Option<Vec<u8>>, WsohError> {
    if let Some(v) = obj.get("content-bin") {
        let text = v.as_str().ok_or(WsohError::WrongType("content-bin"))?;
        return decode_base64_lenient(text)
            .map(Some)
            .ok_or(WsohError::InvalidValue("content-bin"));
    }
    match obj.get("content") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
        Some(_) => Err(WsohError::WrongType("content")),
    }
}

/// Like Qt's `QByteArray::fromBase64`: characters outside the standard alphabet and padding are
/// skipped. `None` only for an impossible length (one stray character).
fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    LENIENT_BASE64.decode(clean).ok()
}

/// `timeout` as Qt's `QVariant::toInt` reads it (numbers, numeric strings, booleans); absent or 0
/// means `default`; negative is an error.
fn timeout_secs(obj: &Object, default: u32) -> Result<u32, WsohError> {
    let secs: i64 = match obj.get("timeout") {
        None => 0,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => i,
            // Saturating float-to-int cast; rounding as QVariant does.
            None => n.as_f64().map_or(i64::MAX, |f| f.round() as i64),
        },
        Some(Value::String(s)) => s.trim().parse::<i32>().map_or(0, i64::from),
        Some(Value::Bool(b)) => i64::from(*b),
        Some(_) => return Err(WsohError::WrongType("timeout")),
    };
    match secs {
        ..0 => Err(WsohError::InvalidValue("timeout")),
        0 => Ok(default),
        s => Ok(u32::try_from(s).unwrap_or(u32::MAX)),
    }
}
