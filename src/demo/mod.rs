//! The bundled demo origin: an ordinary HTTP app that speaks GRIP, as a user's app would.
//!
//! Two apps and the starter endpoints, all reached through holdfast like any origin (nothing in
//! the proxy knows this exists):
//! - the live Q&A board (`/qa/`, `qa`): a WebSocket per window, over HTTP, subscribed to the
//!   room's channel; every change is stored, then published to that channel;
//! - the chat (`/chat/`, `chat`): messages POSTed, delivered over Server-Sent Events with
//!   `Last-Event-ID` resume (prev-id and next links);
//! - Fastly's starter endpoints (`starter`) on channel `test`.
//!
//! The apps' data lives in SQLite (`store`); changes are published to holdfast's publish API
//! over HTTP (`publish`). The browser pages are static files embedded in the binary. It runs
//! on its own small tokio runtime (axum), on threads of its own, never on holdfast's workers.

mod chat;
pub mod publish;
mod qa;
mod starter;
pub mod store;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::oneshot;

pub use publish::{PublishAuth, Publisher};
use store::Store;

/// Runtime threads of the demo origin.
const THREADS: usize = 2;
/// Largest WebSocket-over-HTTP request body the echo endpoint reads (Autobahn sends 16 MiB
/// messages; axum's default limit is 2 MB).
const WS_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest request body of the apps' endpoints: their messages are a few hundred bytes, but
/// holdfast batches a window's queued WebSocket messages into one request.
const APP_BODY_BYTES_MAX: usize = 1024 * 1024;

/// How to start the demo origin.
#[derive(Default, Clone)]
pub struct DemoOptions {
    /// The SQLite database file; None keeps the data in memory (gone when it stops).
    pub db_path: Option<PathBuf>,
    /// holdfast's publish API (may also be set after start with `set_publish`).
    pub publish_addr: Option<SocketAddr>,
    pub publish_auth: PublishAuth,
}

/// What the apps' handlers share.
pub struct App {
    pub store: Store,
    pub publisher: Publisher,
    /// Held across "change the database, then publish the change", so that the publishes of
    /// one channel leave in the order of its changes (the Q&A room versions and the chat ids
    /// count up in that order).
    order: tokio::sync::Mutex<()>,
    /// Chat messages by the sending window's id, so a send retried after a lost answer is not
    /// stored twice (held under `order`).
    chat_sent: std::sync::Mutex<chat::SentMessages>,
}

impl App {
    /// Publishes items, logging a refusal; the error says why for the caller to pass on.
    async fn publish(&self, items: Vec<Value>) -> Result<(), String> {
        let result = self.publisher.publish(items).await;
        if let Err(e) = &result {
            tracing::warn!("demo origin: {e}");
        }
        result
    }
}

pub struct DemoOrigin {
    pub addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DemoOrigin {
    /// Starts the demo origin on `addr` (port 0 picks a free port) with its data in memory.
    pub fn start(addr: SocketAddr) -> io::Result<DemoOrigin> {
        DemoOrigin::start_with(addr, DemoOptions::default())
    }

    pub fn start_with(addr: SocketAddr, options: DemoOptions) -> io::Result<DemoOrigin> {
        let store = Store::open(options.db_path.as_deref()).map_err(|e| {
            let place = options
                .db_path
                .as_ref()
                .map_or("memory".to_string(), |p| p.display().to_string());
            io::Error::other(format!("demo database ({place}): {e}"))
        })?;
        let app = Arc::new(App {
            store,
            publisher: Publisher::new(options.publish_addr, options.publish_auth),
            order: tokio::sync::Mutex::new(()),
            chat_sent: std::sync::Mutex::new(chat::SentMessages::default()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("demo-origin")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = router(app.clone());
        let thread = std::thread::Builder::new()
            .name("demo-origin".into())
            .spawn(move || {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = runtime.block_on(async { serve.await }) {
                    tracing::error!("demo origin stopped: {e}");
                }
            })?;
        Ok(DemoOrigin {
            addr,
            app,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where the apps publish their changes (holdfast's publish listener, bound after this).
    pub fn set_publish(&self, addr: SocketAddr, auth: PublishAuth) {
        self.app.publisher.set_addr(addr);
        self.app.publisher.set_auth(auth);
    }

    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DemoOrigin {
    fn drop(&mut self) {
        self.shut();
    }
}

fn router(app: Arc<App>) -> Router {
    let apps = Router::new()
        .route("/api/join", post(qa::join))
        .route("/api/rooms/{room}", get(qa::state))
        .route("/api/websocket", post(qa::websocket))
        .route("/rooms/{room}/events/", get(chat::events))
        .route("/rooms/{room}/messages/", post(chat::post))
        .layer(DefaultBodyLimit::max(APP_BODY_BYTES_MAX))
        .route("/", get(index))
        .with_state(app);
    Router::new()
        .route("/favicon.ico", get(|| page("favicon.svg")))
        .route("/qa/", get(|| page("qa.html")))
        .route("/chat/", get(|| page("chat.html")))
        .route("/static/{file}", get(|Path(f): Path<String>| page_owned(f)))
        .route("/stream", get(starter::stream))
        .route("/sse", get(starter::sse))
        .route("/response", get(starter::long_poll))
        .route(
            "/ws",
            post(starter::websocket).layer(DefaultBodyLimit::max(WS_BODY_BYTES_MAX)),
        )
        .merge(apps)
}

/// The browser side: static files, embedded at build time (no build step, nothing to install).
const FILES: &[(&str, &str, &str)] = &[
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("static/favicon.svg"),
    ),
    (
        "qa.html",
        "text/html; charset=utf-8",
        include_str!("static/qa.html"),
    ),
    (
        "chat.html",
        "text/html; charset=utf-8",
        include_str!("static/chat.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("static/style.css"),
    ),
    (
        "qa.js",
        "text/javascript; charset=utf-8",
        include_str!("static/qa.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("static/chat.js"),
    ),
];

/// The landing page, with the publish address this demo really uses in its curl example.
async fn index(axum::extract::State(app): axum::extract::State<Arc<App>>) -> Response {
    let body = include_str!("static/index.html");
    let body = match app.publisher.addr() {
        Some(addr) => body.replace("127.0.0.1:5561", &addr.to_string()),
        None => body.to_string(),
    };
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

async fn page(name: &'static str) -> Response {
    page_owned(name.to_string()).await
}

async fn page_owned(name: String) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => with_headers(
            body,
            &[
                ("content-type", content_type),
                ("cache-control", "no-cache"),
            ],
        ),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
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

/// A WebSocket-over-HTTP answer carrying `events` (already encoded), grip extension on.
fn events_response(events: Vec<u8>) -> Response {
    let mut map = HeaderMap::new();
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::proto::wsoh::CONTENT_TYPE),
    );
    map.insert(
        HeaderName::from_static("sec-websocket-extensions"),
        HeaderValue::from_static("grip"),
    );
    (map, events).into_response()
}

/// A JSON error answer `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// A room id from a name anyone typed: lowercase ASCII letters and digits, other runs of
/// characters as one `-`, at most 40 bytes. A name with no ASCII letter or digit gets an id
/// from its hash. None for an empty name. Ids go into channel names and URLs as they are.
pub fn room_id(name: &str) -> Option<String> {
    const ID_BYTES_MAX: usize = 40;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
        if id.len() >= ID_BYTES_MAX {
            break;
        }
    }
    let id = id.trim_end_matches('-');
    if !id.is_empty() {
        return Some(id.to_string());
    }
    // FNV-1a: stable across runs and builds (the id is stored).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(format!("room-{:08x}", hash as u32))
}

/// Trims `text` and checks its length in characters; the error names `what`.
fn text_field(text: &str, what: &str, chars_max: usize) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if t.chars().count() > chars_max {
        return Err(format!("{what} is longer than {chars_max} characters"));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_slugs_of_any_name() {
        assert_eq!(
            room_id("  Town Hall 2026! ").as_deref(),
            Some("town-hall-2026")
        );
        assert_eq!(room_id("Café Q&A").as_deref(), Some("caf-q-a"));
        assert_eq!(room_id("--x--").as_deref(), Some("x"));
        assert_eq!(room_id("   "), None);
        let jp = room_id("日本").unwrap();
        assert!(jp.starts_with("room-") && jp.len() == 13, "{jp}");
        assert_eq!(room_id("日本"), Some(jp));
        assert_eq!(room_id(&"a".repeat(100)).unwrap().len(), 40);
    }

    #[test]
    fn text_fields_are_trimmed_and_bounded() {
        assert_eq!(text_field(" hi ", "name", 5).as_deref(), Ok("hi"));
        assert!(text_field("  ", "name", 5).is_err());
        assert!(text_field("ééééééé", "name", 5).is_err());
        assert!(text_field("ééééé", "name", 5).is_ok());
    }
}
