//! The bundled demo origin: an ordinary HTTP app that speaks GRIP, as a user's app would.
//!
//! It implements Fastly's starter-kit endpoints, each subscribed to channel `test`:
//! `/stream` (HTTP streaming, text/plain), `/sse` (Server-Sent Events), `/response` (long-poll),
//! and `/ws` (a WebSocket, over HTTP: echoes what it receives). holdfast reaches it over plain
//! HTTP like any origin; nothing in the proxy knows it exists. It runs on its own small tokio
//! runtime (axum), on threads of its own, never on holdfast's workers.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;

use crate::proto::wsoh::{self, Event};

/// Runtime threads of the demo origin.
const THREADS: usize = 2;
/// Largest WebSocket-over-HTTP request body the echo endpoint reads (Autobahn sends 16 MiB
/// messages; axum's default limit is 2 MB).
const WS_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

pub struct DemoOrigin {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DemoOrigin {
    /// Starts the demo origin on `addr` (port 0 picks a free port).
    pub fn start(addr: SocketAddr) -> io::Result<DemoOrigin> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("demo-origin")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("demo-origin".into())
            .spawn(move || {
                let serve = axum::serve(listener, router()).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = runtime.block_on(async { serve.await }) {
                    tracing::error!("demo origin stopped: {e}");
                }
            })?;
        Ok(DemoOrigin {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/stream", get(stream))
        .route("/sse", get(sse))
        .route("/response", get(long_poll))
        .route(
            "/ws",
            post(websocket).layer(DefaultBodyLimit::max(WS_BODY_BYTES_MAX)),
        )
}

/// A response with the given headers (static names and values, all valid).
fn with_headers(body: &'static str, headers: &[(&'static str, &'static str)]) -> Response {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    (map, body).into_response()
}

async fn index() -> Response {
    with_headers(INDEX, &[("content-type", "text/plain")])
}

async fn stream() -> Response {
    with_headers(
        "Stream open. Publish to channel 'test' and watch it arrive here.\n",
        &[
            ("content-type", "text/plain"),
            ("grip-hold", "stream"),
            ("grip-channel", "test"),
        ],
    )
}

async fn sse() -> Response {
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

async fn long_poll() -> Response {
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
async fn websocket(body: Bytes) -> Response {
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
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static(wsoh::CONTENT_TYPE),
    );
    map.insert(
        HeaderName::from_static("sec-websocket-extensions"),
        HeaderValue::from_static("grip"),
    );
    (map, out).into_response()
}

const INDEX: &str = "\
holdfast demo origin. Endpoints, each subscribed to channel 'test':
  /stream    HTTP streaming (text/plain)
  /sse       Server-Sent Events
  /response  long-poll (answers 'timeout' after 55 s)
  /ws        WebSocket (over HTTP): echoes what you send
Publish with:
  curl -d '{\"items\":[{\"channel\":\"test\",\"formats\":{\"http-stream\":{\"content\":\"hello\\n\"}}}]}' \\
    http://127.0.0.1:5561/publish/
";
