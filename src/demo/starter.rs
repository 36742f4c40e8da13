//! Fastly's starter-kit endpoints, each subscribed to channel `test`: `/stream` (HTTP streaming,
//! text/plain), `/sse` (Server-Sent Events), `/response` (long-poll) and `/ws` (a WebSocket,
//! over HTTP: echoes what it receives). The smallest GRIP examples there are.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::with_headers;
use crate::proto::wsoh::{self, Event};

pub async fn stream() -> Response {
    with_headers(
        "Stream open. Publish to channel 'test' and watch it arrive here.\n",
        &[
            ("content-type", "text/plain"),
            ("grip-hold", "stream"),
            ("grip-channel", "test"),
        ],
    )
}

pub async fn sse() -> Response {
    with_headers(
        ": stream open, publish to channel 'test'\n\n",
        &[
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("grip-hold", "stream"),
            ("grip-channel", "test"),
            ("grip-keep-alive", ":\\n\\n; format=cstring; timeout=20"),
        ],
    )
}

pub async fn long_poll() -> Response {
    with_headers(
        "timeout\n",
        &[
            ("content-type", "text/plain"),
            ("grip-hold", "response"),
            ("grip-channel", "test"),
            ("grip-timeout", "55"),
        ],
    )
}

/// `/ws` over WebSocket-over-HTTP: accept, subscribe to `test`, echo every message.
pub async fn websocket(body: Bytes) -> Response {
    let events = match wsoh::decode_events(&body) {
        Ok(events) => events,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad events: {e}\n")).into_response(),
    };
    let mut out = Vec::new();
    for event in events {
        let reply = match event {
            Event::Open => {
                wsoh::encode_event(&mut out, &Event::Open);
                let sub = br#"c:{"type":"subscribe","channel":"test"}"#;
                Some(Event::Text(sub.to_vec()))
            }
            // With the grip extension on, messages to the client carry the "m:" prefix.
            Event::Text(t) => Some(Event::Text([b"m:".as_slice(), &t].concat())),
            Event::Binary(b) => Some(Event::Binary([b"m:".as_slice(), &b].concat())),
            Event::Close { code, reason } => Some(Event::Close { code, reason }),
            Event::Ping(_) | Event::Pong(_) | Event::Disconnect => None,
        };
        if let Some(r) = reply {
            wsoh::encode_event(&mut out, &r);
        }
    }
    super::events_response(out)
}
