//! A published item, encoded once per format and shared by every worker and subscriber.
//!
//! The publish listener turns each validated [`Item`] into one `Arc<Delivery>`. The bytes a
//! streaming subscriber receives (raw and chunk-framed) are built here once; workers only clone
//! `Bytes` handles into outboxes. A long-poll response needs the hold's own headers, so its parts
//! stay separate and the connection composes the head (the body is still shared).

use bytes::Bytes;

use crate::proto::http1;
use crate::proto::publish::{
    HttpResponseFormat, HttpStreamFormat, Item, ResponseAction, StreamAction, WsMessageFormat,
};

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
    pub ws: Option<WsMessageFormat>,
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
            ws: item.ws_message,
        }
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
    fn close_and_hint_actions() {
        let mut i = item();
        i.http_stream = Some(HttpStreamFormat {
            action: StreamAction::Close,
            content: vec![],
        });
        assert_eq!(Delivery::encode(i, 1).stream, Some(StreamPayload::Close));
    }
}
