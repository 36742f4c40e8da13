//! Pushpin's ZeroMQ message formats, sans-IO: published items (PULL and SUB sockets), command
//! requests and responses (Pushpin's "zrpc", on the command socket) and stats messages.
//!
//! Follows Pushpin's handler (`handlerengine.cpp`: `inPull_readyRead`, `inSub_readyRead`,
//! `parseJsonOrTnetstring`, `controlServer_requestReady`; `zrpcrequestpacket.cpp`,
//! `zrpcresponsepacket.cpp`, `statsmanager.cpp`):
//! - An item is a tnetstring map (optionally prefixed `T`), or a JSON object prefixed `J`, with
//!   the fields of an item of the HTTP publish API. On the SUB socket the message has two parts,
//!   `[channel, item]`, and a non-empty channel part replaces the item's `channel`.
//! - In a tnetstring, content is raw bytes: `body` (http-response), `content` (http-stream,
//!   ws-message) and ws-message `content-bin` carry them as they are, and `body-bin` /
//!   http-stream `content-bin` (base64 in JSON only) are ignored, as in Pushpin.
//!
//! Every item is then converted to the JSON the HTTP API takes (bytes that are not UTF-8 become
//! the `-bin` base64 fields) and parsed by `publish::parse_item_value`: the limits, identifier
//! checks and error texts are the HTTP API's own. Stricter than Pushpin where the HTTP API is: a
//! ws text message must be UTF-8, strings in other fields must be UTF-8.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value as Json};

use super::publish::{self, Item, PublishLimits};
use super::tnetstring::{self, Value};

/// The format names an item may carry (in `formats`, or on the item itself).
const FORMATS: [&str; 3] = ["http-response", "http-stream", "ws-message"];

/// Parses one published item: the PULL socket's single part (`channel` is `None`), or the SUB
/// socket's second part with the first as `channel`.
pub fn parse_item_message(
    payload: &[u8],
    channel: Option<&[u8]>,
    limits: &PublishLimits,
) -> Result<Item, String> {
    let mut json = match payload.split_first() {
        Some((b'J', rest)) => json_item(rest)?,
        Some((b'T', rest)) => tnetstring_item(rest)?,
        _ => tnetstring_item(payload)?,
    };
    if let Some(channel) = channel.filter(|c| !c.is_empty()) {
        let channel = std::str::from_utf8(channel).map_err(|_| "the channel part is not UTF-8")?;
        if let Json::Object(map) = &mut json {
            map.insert("channel".into(), Json::String(channel.into()));
        }
    }
    publish::parse_item_value(&json, limits)
}

fn json_item(text: &[u8]) -> Result<Json, String> {
    match serde_json::from_slice::<Json>(text) {
        Ok(v @ Json::Object(_)) => Ok(v),
        Ok(_) => Err("invalid format (not a valid json object)".into()),
        Err(_) => Err("invalid format (json parse failed)".into()),
    }
}

fn tnetstring_item(bytes: &[u8]) -> Result<Json, String> {
    let value = tnetstring::decode(bytes)
        .map_err(|e| format!("invalid format (tnetstring parse failed: {e})"))?;
    item_to_json(&value)
}

/// A tnetstring item as the JSON the HTTP API takes.
pub fn item_to_json(value: &Value<'_>) -> Result<Json, String> {
    let Value::Map(entries) = value else {
        return Err("the item is not an object".into());
    };
    let mut out = Map::new();
    for (key, v) in entries {
        let key = utf8_key(key, "")?;
        let converted = match (key, v) {
            ("formats", Value::Map(formats)) => {
                let mut map = Map::new();
                for (name, f) in formats {
                    let name = utf8_key(name, "formats")?;
                    let path = format!("formats.{name}");
                    map.insert(name.into(), format_to_json(name, f, &path)?);
                }
                Json::Object(map)
            }
            (name, f) if FORMATS.contains(&name) => format_to_json(name, f, name)?,
            (_, v) => to_json(v, key)?,
        };
        out.insert(key.into(), converted);
    }
    Ok(Json::Object(out))
}

/// One format object: its content fields carry raw bytes.
fn format_to_json(name: &str, value: &Value<'_>, path: &str) -> Result<Json, String> {
    let Value::Map(entries) = value else {
        return to_json(value, path);
    };
    let has = |k: &str| value.get(k).is_some();
    let mut out = Map::new();
    for (key, v) in entries {
        let key = utf8_key(key, path)?;
        let at = format!("{path}.{key}");
        match (name, key, v) {
            // base64 fields of the JSON form only: Pushpin ignores them in a tnetstring.
            ("http-response", "body-bin", _) | ("http-stream", "content-bin", _) => {}
            ("http-response", "body", Value::Bytes(b)) => insert_bytes(&mut out, "body", b),
            ("http-stream", "content", Value::Bytes(b)) => insert_bytes(&mut out, "content", b),
            ("ws-message", "content-bin", Value::Bytes(b)) => {
                out.insert("content-bin".into(), Json::String(STANDARD.encode(b)));
            }
            ("ws-message", "content", _) if has("content-bin") => {}
            ("ws-message", "content", Value::Bytes(b)) => {
                if std::str::from_utf8(b).is_err() && !has("type") {
                    return Err(format!(
                        "\"{at}\" is not valid UTF-8, as a text message needs"
                    ));
                }
                insert_bytes(&mut out, "content", b);
            }
            _ => {
                out.insert(key.into(), to_json(v, &at)?);
            }
        }
    }
    Ok(Json::Object(out))
}

/// `field` as a string when the bytes are UTF-8, else `field-bin` in base64 (which the HTTP
/// API's parser decodes back to the same bytes).
fn insert_bytes(out: &mut Map<String, Json>, field: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.insert(field.into(), Json::String(s.into())),
        Err(_) => out.insert(format!("{field}-bin"), Json::String(STANDARD.encode(bytes))),
    };
}

fn utf8_key<'a>(key: &'a [u8], path: &str) -> Result<&'a str, String> {
    std::str::from_utf8(key).map_err(|_| {
        let at = if path.is_empty() { "the item" } else { path };
        format!("\"{at}\" has a key that is not UTF-8")
    })
}

/// Any other value: strings must be UTF-8.
fn to_json(value: &Value<'_>, path: &str) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => Json::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Json::String(s.into()),
            Err(_) => return Err(format!("\"{path}\" is not valid UTF-8")),
        },
        Value::List(items) => {
            let items = items.iter().enumerate();
            let convert = |(i, v)| to_json(v, &format!("{path}[{i}]"));
            Json::Array(items.map(convert).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let k = utf8_key(k, path)?;
                out.insert(k.into(), to_json(v, &format!("{path}.{k}"))?);
            }
            Json::Object(out)
        }
    })
}

/// A command request (Pushpin's zrpc): `{id?, method, args?}` as a tnetstring.
#[derive(Debug, PartialEq)]
pub struct Request<'a> {
    /// Echoed in the response; REQ clients usually leave it out.
    pub id: Option<&'a [u8]>,
    pub method: &'a [u8],
    /// A map (empty when absent).
    pub args: Value<'a>,
}

/// Reads a command request. Pushpin skips a malformed one unanswered; the caller answers with
/// `bad-format` instead, so a REQ client is not left waiting.
pub fn parse_request(bytes: &[u8]) -> Result<Request<'_>, String> {
    let value = tnetstring::decode(bytes).map_err(|e| format!("not a tnetstring: {e}"))?;
    if !matches!(value, Value::Map(_)) {
        return Err("not a map".into());
    }
    let id = match value.get("id") {
        None => None,
        Some(Value::Bytes(id)) => Some(*id),
        Some(_) => return Err("'id' is not a string".into()),
    };
    let method = match value.get("method") {
        Some(Value::Bytes(m)) => *m,
        _ => return Err("no 'method' string".into()),
    };
    let args = match value.get("args") {
        None => Value::Map(Vec::new()),
        Some(args @ Value::Map(_)) => args.clone(),
        Some(_) => return Err("'args' is not a map".into()),
    };
    Ok(Request { id, method, args })
}

/// A successful response carrying `value`.
pub fn response_ok(id: Option<&[u8]>, value: Value<'_>) -> Vec<u8> {
    let mut map = Vec::with_capacity(3);
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        map.push((&b"id"[..], Value::Bytes(id)));
    }
    map.push((b"success", Value::Bool(true)));
    map.push((b"value", value));
    tnetstring::to_vec(&Value::Map(map))
}

/// A failed response: Pushpin's condition (`bad-request`, `method-not-found`, ...) and an
/// optional value (a message).
pub fn response_error(id: Option<&[u8]>, condition: &str, value: Option<&str>) -> Vec<u8> {
    let mut map = Vec::with_capacity(4);
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        map.push((&b"id"[..], Value::Bytes(id)));
    }
    map.push((b"success", Value::Bool(false)));
    map.push((b"condition", Value::Bytes(condition.as_bytes())));
    if let Some(v) = value {
        map.push((b"value", Value::Bytes(v.as_bytes())));
    }
    tnetstring::to_vec(&Value::Map(map))
}

/// The `publish` command's items (`args.items`), all-or-nothing; errors are Pushpin's texts.
pub fn parse_publish_args(args: &Value<'_>, limits: &PublishLimits) -> Result<Vec<Item>, String> {
    let items = match args.get("items") {
        None => return Err("Invalid format: object does not contain 'items'".into()),
        Some(Value::List(items)) => items,
        Some(_) => return Err("Invalid format: object contains 'items' with wrong type".into()),
    };
    if items.len() > limits.items_max {
        let (n, max) = (items.len(), limits.items_max);
        return Err(format!("Invalid format: too many items ({n}, limit {max})"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item_to_json(item)
                .and_then(|json| publish::parse_item_value(&json, limits))
                .map_err(|e| format!("Invalid format: item {i}: {e}"))
        })
        .collect()
}

/// How stats messages are written (Pushpin's `stats_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StatsFormat {
    #[default]
    Tnetstring,
    Json,
}

/// One stats message: `<type> T<tnetstring>` or `<type> J<json>` in a single part, which a SUB
/// socket can filter on by its type prefix (`report `, `sub `, ...).
pub fn stats_message(kind: &str, fields: &Value<'_>, format: StatsFormat) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(kind.as_bytes());
    match format {
        StatsFormat::Tnetstring => {
            out.extend_from_slice(b" T");
            tnetstring::encode(fields, &mut out);
        }
        StatsFormat::Json => {
            out.extend_from_slice(b" J");
            let json = to_json_lossy(fields);
            out.extend_from_slice(json.to_string().as_bytes());
        }
    }
    out
}

/// Stats fields as JSON (strings lossily decoded: they are ids and channel names).
fn to_json_lossy(value: &Value<'_>) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => Json::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) => Json::Array(items.iter().map(to_json_lossy).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json_lossy(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
#[path = "zmq_tests.rs"]
mod tests;
