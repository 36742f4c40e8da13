//! A published item, encoded once per format and shared by every worker and subscriber.
//!
//! The publish listener turns each validated [`Item`] into one `Arc<Delivery>`. The bytes a
//! streaming subscriber receives (raw and chunk-framed) are built here once; workers only clone
//! `Bytes` handles into outboxes. A long-poll response needs the hold's own headers, so its parts
//! stay separate and the connection composes the head (the body is still shared).

use bytes::Bytes;

use crate::proto::http1;
use crate::proto::publish::{
    HttpResponseFormat, HttpStreamFormat, Item, ResponseAction, StreamAction, WsAction,
    WsMessageFormat, WsMessageKind,
};
use crate::proto::ws::{self, Opcode};

/// What a streaming (`Grip-Hold: stream`) subscriber does with this item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPayload {
    /// Append `raw` (or `chunked`, the same bytes in one HTTP chunk) to the response.
    Send { raw: Bytes, chunked: Bytes },
    /// End the response.
    Close,
    /// Re-fetch from the origin (handled by the full-GRIP layer).
    Hint,
}

/// What a long-poll (`Grip-Hold: response`) subscriber answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePayload {
    Send(PublishedResponse),
    Hint,
}

/// The parts of a published `http-response`; the head is composed per connection because the
/// hold's original headers are inherited (Pushpin `httpsession.cpp` does the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedResponse {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub body_patch: Option<serde_json::Value>,
}

/// What a WebSocket subscriber does with this item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsPayload {
    /// Send this frame (header and payload, unmasked), encoded once for every subscriber.
    Send(Bytes),
    /// Send this close frame and close the connection.
    Close(Bytes),
    /// Trigger a WebSocket-over-HTTP request to the origin (handled by the full-GRIP layer).
    Refresh,
}

/// One published item as every worker sees it.
#[derive(Debug)]
pub struct Delivery {
    pub channel: Box<str>,
    pub id: Option<Box<str>>,
    pub prev_id: Option<Box<str>>,
    /// Position in the global publish order (assigned by the single ingest thread).
    pub seq: u64,
    pub stream: Option<StreamPayload>,
    pub response: Option<ResponsePayload>,
    pub ws: Option<WsPayload>,
    /// Publish meta (e.g. `sender`), read by subscription filters.
    pub meta: Vec<(String, String)>,
    /// When the publish listener accepted the item (for the publish → write latency metric).
    pub published_at: std::time::Instant,
}

impl Delivery {
    /// Encodes an item once. `seq` is the item's place in the publish order.
    pub fn encode(item: Item, seq: u64) -> Delivery {
        Delivery {
            channel: item.channel.into_boxed_str(),
            id: item.id.map(String::into_boxed_str),
            prev_id: item.prev_id.map(String::into_boxed_str),
            seq,
            stream: item.http_stream.map(encode_stream),
            response: item.http_response.map(encode_response),
            ws: item.ws_message.map(encode_ws),
            meta: item.meta,
            published_at: std::time::Instant::now(),
        }
    }

    /// The long-poll answer with another body (a filter changed the content for one subscriber).
    pub fn with_response_body(&self, body: Vec<u8>) -> Option<Delivery> {
        let Some(ResponsePayload::Send(r)) = &self.response else {
            return None;
        };
        let mut r = r.clone();
        r.body = Bytes::from(body);
        r.body_patch = None;
        Some(Delivery {
            channel: self.channel.clone(),
            id: self.id.clone(),
            prev_id: self.prev_id.clone(),
            seq: self.seq,
            stream: None,
            response: Some(ResponsePayload::Send(r)),
            ws: None,
            meta: Vec::new(),
            published_at: self.published_at,
        })
    }

    /// Bytes this item adds to a streaming subscriber's queue, for accounting.
    pub fn stream_len(&self) -> usize {
        match &self.stream {
            Some(StreamPayload::Send { chunked, .. }) => chunked.len(),
            _ => 0,
        }
    }
}

fn encode_stream(f: HttpStreamFormat) -> StreamPayload {
    match f.action {
        StreamAction::Send => {
            let mut chunked = Vec::with_capacity(f.content.len() + 12);
            http1::encode_chunk(&mut chunked, &f.content);
            StreamPayload::Send {
                raw: Bytes::from(f.content),
                chunked: Bytes::from(chunked),
            }
        }
        StreamAction::Close => StreamPayload::Close,
        StreamAction::Hint => StreamPayload::Hint,
    }
}

fn encode_ws(f: WsMessageFormat) -> WsPayload {
    match f.action {
        WsAction::Send => {
            let opcode = match f.kind {
                WsMessageKind::Text => Opcode::Text,
                WsMessageKind::Binary => Opcode::Binary,
                WsMessageKind::Ping => Opcode::Ping,
                WsMessageKind::Pong => Opcode::Pong,
            };
            let mut frame = Vec::with_capacity(f.content.len() + ws::HEADER_BYTES_MAX);
            ws::encode_frame(&mut frame, true, opcode, &f.content, None);
            WsPayload::Send(Bytes::from(frame))
        }
        WsAction::Close => {
            // A reason needs a code; a bare close (no code) is an empty close frame.
            let mut frame = Vec::with_capacity(ws::HEADER_BYTES_MAX + 125);
            match (f.close_code, f.close_reason.as_deref()) {
                (Some(code), reason) => {
                    ws::encode_close_frame(&mut frame, code, reason.unwrap_or(""), None)
                }
                (None, Some(reason)) => {
                    ws::encode_close_frame(&mut frame, ws::CLOSE_NORMAL, reason, None)
                }
                (None, None) => ws::encode_frame(&mut frame, true, Opcode::Close, &[], None),
            }
            WsPayload::Close(Bytes::from(frame))
        }
        WsAction::Refresh => WsPayload::Refresh,
    }
}

fn encode_response(f: HttpResponseFormat) -> ResponsePayload {
    match f.action {
        ResponseAction::Hint => ResponsePayload::Hint,
        ResponseAction::Send => {
            let code = f.code.unwrap_or(200);
            let reason = f
                .reason
                .unwrap_or_else(|| http1::reason_phrase(code).to_string());
            ResponsePayload::Send(PublishedResponse {
                code,
                reason,
                headers: f.headers,
                body: Bytes::from(f.body.unwrap_or_default()),
                body_patch: f.body_patch,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            channel: "test".into(),
            id: Some("1".into()),
            prev_id: None,
            no_seq: false,
            meta: vec![],
            http_response: None,
            http_stream: None,
            ws_message: None,
        }
    }

    #[test]
    fn stream_content_is_encoded_raw_and_chunked_once() {
        let mut i = item();
        i.http_stream = Some(HttpStreamFormat {
            action: StreamAction::Send,
            content: b"hello\n".to_vec(),
        });
        let d = Delivery::encode(i, 7);
        assert_eq!(d.seq, 7);
        assert_eq!(&*d.channel, "test");
        match d.stream {
            Some(StreamPayload::Send { raw, chunked }) => {
                assert_eq!(&raw[..], b"hello\n");
                assert_eq!(&chunked[..], b"6\r\nhello\n\r\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_defaults_to_200_ok() {
        let mut i = item();
        i.http_response = Some(HttpResponseFormat {
            action: ResponseAction::Send,
            code: None,
            reason: None,
            headers: vec![("X-A".into(), "1".into())],
            body: Some(b"hi".to_vec()),
            body_patch: None,
        });
        match Delivery::encode(i, 1).response {
            Some(ResponsePayload::Send(r)) => {
                assert_eq!(
                    (r.code, r.reason.as_str(), &r.body[..]),
                    (200, "OK", &b"hi"[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ws_message_is_one_shared_frame() {
        let mut i = item();
        i.ws_message = Some(WsMessageFormat {
            action: WsAction::Send,
            kind: WsMessageKind::Text,
            content: b"Hello".to_vec(),
            close_code: None,
            close_reason: None,
        });
        // RFC 6455 5.7: a single-frame unmasked text message.
        let expected = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            Delivery::encode(i, 1).ws,
            Some(WsPayload::Send(Bytes::copy_from_slice(&expected)))
        );
    }

    #[test]
    fn ws_close_frames() {
        let mut i = item();
        i.ws_message = Some(WsMessageFormat {
            action: WsAction::Close,
            kind: WsMessageKind::Text,
            content: vec![],
            close_code: Some(4000),
            close_reason: Some("bye".into()),
        });
        let expected = [0x88, 0x05, 0x0f, 0xa0, b'b', b'y', b'e'];
        assert_eq!(
            Delivery::encode(i.clone(), 1).ws,
            Some(WsPayload::Close(Bytes::copy_from_slice(&expected)))
        );
        if let Some(f) = i.ws_message.as_mut() {
            f.close_code = None;
            f.close_reason = None;
        }
        assert_eq!(
            Delivery::encode(i, 1).ws,
            Some(WsPayload::Close(Bytes::from_static(&[0x88, 0x00])))
        );
    }

    #[test]
    fn close_and_hint_actions() {
        let mut i = item();
        i.http_stream = Some(HttpStreamFormat {
            action: StreamAction::Close,
            content: vec![],
        });
        assert_eq!(Delivery::encode(i, 1).stream, Some(StreamPayload::Close));
    }
}
