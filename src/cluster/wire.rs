//! What one NATS message between holdfast nodes holds. Sans-IO.
//!
//! ```text
//! HF1 <node> <instance, 16 hex digits> <seq>\n
//! {"items":[<one item, in the publish API's JSON>]}
//! ```
//!
//! The body is an ordinary publish body, so the receiving node validates it with the same parser
//! as `POST /publish/` (a node never trusts what arrives over the network more than a publisher).
//! `seq` counts the messages one node instance sent on one channel, from 1; a receiver that sees
//! seq jump knows how many messages of that sender it missed (a NATS reconnect, a slow consumer)
//! and says so. `instance` is random per process (and changes when the sender's counter table is
//! reset), so a restarted node starting again at 1 is not a gap.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::proto::publish::{
    HttpResponseFormat, HttpStreamFormat, Item, ResponseAction, StreamAction, WsAction,
    WsMessageFormat, WsMessageKind,
};

/// The first bytes of every message.
const MAGIC: &[u8] = b"HF1 ";
/// Longest header line, in bytes.
const HEADER_BYTES_MAX: usize = 128;

/// Who sent a message, and its place in the sender's sequence for the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub node: &'a str,
    pub instance: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a holdfast cluster message")]
    Magic,
    #[error("malformed header line")]
    Header,
}

/// One item as a publish body (`{"items":[...]}`).
pub fn publish_body(item: &Item) -> Vec<u8> {
    let mut obj = Map::new();
    obj.insert("channel".into(), item.channel.clone().into());
    if let Some(id) = &item.id {
        obj.insert("id".into(), id.clone().into());
    }
    if let Some(prev) = &item.prev_id {
        obj.insert("prev-id".into(), prev.clone().into());
    }
    if item.no_seq {
        obj.insert("no-seq".into(), true.into());
    }
    if !item.meta.is_empty() {
        let meta: Map<String, Value> = item
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        obj.insert("meta".into(), meta.into());
    }
    let mut formats = Map::new();
    if let Some(f) = &item.http_response {
        formats.insert("http-response".into(), response_json(f));
    }
    if let Some(f) = &item.http_stream {
        formats.insert("http-stream".into(), stream_json(f));
    }
    if let Some(f) = &item.ws_message {
        formats.insert("ws-message".into(), ws_json(f));
    }
    if formats.is_empty() {
        // Only formats holdfast does not know were published: the item reaches no subscriber but
        // still counts in its channel's id/prev-id chain. An unknown name keeps it a valid item.
        formats.insert("none".into(), Value::Object(Map::new()));
    }
    obj.insert("formats".into(), formats.into());
    json!({ "items": [obj] }).to_string().into_bytes()
}

/// `content` as text when it is UTF-8 (smaller), else `content-bin` as base64.
fn put_content(obj: &mut Map<String, Value>, text_key: &str, bin_key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(text_key.into(), s.into()),
        Err(_) => obj.insert(bin_key.into(), STANDARD.encode(bytes).into()),
    };
}

fn response_json(f: &HttpResponseFormat) -> Value {
    let mut obj = Map::new();
    if f.action == ResponseAction::Hint {
        obj.insert("action".into(), "hint".into());
        return obj.into();
    }
    if let Some(code) = f.code {
        obj.insert("code".into(), code.into());
    }
    if let Some(reason) = &f.reason {
        obj.insert("reason".into(), reason.clone().into());
    }
    if !f.headers.is_empty() {
        // A list of pairs keeps the order (and repeated names).
        let pairs: Vec<Value> = f.headers.iter().map(|(n, v)| json!([n, v])).collect();
        obj.insert("headers".into(), pairs.into());
    }
    match (&f.body, &f.body_patch) {
        (Some(body), _) => put_content(&mut obj, "body", "body-bin", body),
        (None, Some(patch)) => {
            obj.insert("body-patch".into(), patch.clone());
        }
        (None, None) => {}
    }
    obj.into()
}

fn stream_json(f: &HttpStreamFormat) -> Value {
    let mut obj = Map::new();
    match f.action {
        StreamAction::Send => put_content(&mut obj, "content", "content-bin", &f.content),
        StreamAction::Close => {
            obj.insert("action".into(), "close".into());
        }
        StreamAction::Hint => {
            obj.insert("action".into(), "hint".into());
        }
    }
    obj.into()
}

fn ws_json(f: &WsMessageFormat) -> Value {
    let mut obj = Map::new();
    match f.action {
        WsAction::Send => {
            let kind = match f.kind {
                WsMessageKind::Text => "text",
                WsMessageKind::Binary => "binary",
                WsMessageKind::Ping => "ping",
                WsMessageKind::Pong => "pong",
            };
            obj.insert("type".into(), kind.into());
            // Binary content always goes as base64: text content in a binary message would
            // otherwise come back as a text message.
            if f.kind == WsMessageKind::Text {
                put_content(&mut obj, "content", "content-bin", &f.content);
            } else {
                obj.insert("content-bin".into(), STANDARD.encode(&f.content).into());
            }
        }
        WsAction::Close => {
            obj.insert("action".into(), "close".into());
            if let Some(code) = f.close_code {
                obj.insert("code".into(), code.into());
            }
            if let Some(reason) = &f.close_reason {
                obj.insert("reason".into(), reason.clone().into());
            }
        }
        WsAction::Refresh => {
            obj.insert("action".into(), "refresh".into());
        }
    }
    obj.into()
}

/// The header line (with its newline) for a message.
pub fn header_line(h: &Header<'_>) -> String {
    format!("HF1 {} {:016x} {}\n", h.node, h.instance, h.seq)
}

/// Splits a message into its header and its publish body.
pub fn decode(payload: &[u8]) -> Result<(Header<'_>, &[u8]), WireError> {
    if !payload.starts_with(MAGIC) {
        return Err(WireError::Magic);
    }
    let window = &payload[..payload.len().min(HEADER_BYTES_MAX)];
    let end = window
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(WireError::Header)?;
    let line = std::str::from_utf8(&payload[MAGIC.len()..end]).map_err(|_| WireError::Header)?;
    let mut parts = line.split(' ');
    let (Some(node), Some(instance), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::Header);
    };
    if node.is_empty() || instance.len() != 16 {
        return Err(WireError::Header);
    }
    let instance = u64::from_str_radix(instance, 16).map_err(|_| WireError::Header)?;
    let seq = seq.parse::<u64>().map_err(|_| WireError::Header)?;
    Ok((
        Header {
            node,
            instance,
            seq,
        },
        &payload[end + 1..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::publish::{PublishLimits, parse_body};

    fn round_trip(body: serde_json::Value) {
        let items = parse_body(body.to_string().as_bytes(), &PublishLimits::default()).unwrap();
        for item in items {
            let again = parse_body(&publish_body(&item), &PublishLimits::default()).unwrap();
            assert_eq!(again, vec![item]);
        }
    }

    #[test]
    fn every_format_survives_the_trip() {
        round_trip(json!({"items": [
            {"channel": "a b.c", "id": "2", "prev-id": "1", "meta": {"sender": "x", "k": "v"},
             "formats": {
                "http-stream": {"content": "hi\n"},
                "ws-message": {"content": "text"},
                "http-response": {"code": 201, "reason": "Made", "headers": [["X-A", "1"], ["X-A", "2"]],
                                  "body": "done"}}},
            {"channel": "b", "no-seq": true, "formats": {
                "http-stream": {"content-bin": "AP8="},
                "ws-message": {"content-bin": "aGk="},
                "http-response": {"body-bin": "AP8="}}},
            {"channel": "c", "formats": {
                "http-stream": {"action": "close"},
                "ws-message": {"action": "close", "code": 4000, "reason": "bye"},
                "http-response": {"action": "hint"}}},
            {"channel": "d", "formats": {
                "http-stream": {"action": "hint"},
                "ws-message": {"action": "refresh"},
                "http-response": {"body-patch": [{"op": "add", "path": "/a", "value": 1}]}}},
            {"channel": "e", "formats": {"ws-message": {"type": "ping", "content": "p"}}},
            {"channel": "f", "formats": {"ws-message": {"type": "binary", "content": "t"}}},
            {"channel": "g", "formats": {"ws-message": {"action": "close"}}},
            {"channel": "h", "id": "3", "prev-id": "2", "formats": {"http-e": {"body": "x"}}},
        ]}));
    }

    #[test]
    fn header_round_trips_and_bad_ones_are_refused() {
        let h = Header {
            node: "eu-1",
            instance: 0xabcdef,
            seq: 42,
        };
        let mut msg = header_line(&h).into_bytes();
        msg.extend_from_slice(b"{}");
        assert_eq!(decode(&msg), Ok((h, &b"{}"[..])));
        assert_eq!(decode(b"{}"), Err(WireError::Magic));
        for bad in [
            &b"HF1 n 0000000000000001 1"[..],
            b"HF1 n 01 1\n",
            b"HF1 n 000000000000000g 1\n",
            b"HF1 n 0000000000000001 x\n",
            b"HF1 n 0000000000000001 1 extra\n",
            b"HF1  0000000000000001 1\n",
            b"HF1 \xff 0000000000000001 1\n",
        ] {
            assert_eq!(decode(bad), Err(WireError::Header), "{bad:?}");
        }
        let long = [b"HF1 ".as_slice(), &[b'n'; 200], b" 0000000000000001 1\n"].concat();
        assert_eq!(decode(&long), Err(WireError::Header));
    }
}
