//! The bundled demo origin: an ordinary HTTP app that speaks GRIP, as a user's app would.
//!
//! It implements Fastly's starter-kit endpoints, each subscribed to channel `test`:
//! `/stream` (HTTP streaming, text/plain), `/sse` (Server-Sent Events), `/response` (long-poll),
//! and `/ws` (a WebSocket, over HTTP: echoes what it receives).
//! holdfast reaches it over plain HTTP like any origin; nothing in the proxy knows it exists.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Request, Response, Server};

use crate::proto::wsoh::{self, Event};

/// Threads answering requests (each answer is immediate, so a few suffice).
const THREADS: usize = 4;

pub struct DemoOrigin {
    pub addr: SocketAddr,
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
}

impl DemoOrigin {
    /// Starts the demo origin on `addr` (port 0 picks a free port).
    pub fn start(addr: SocketAddr) -> io::Result<DemoOrigin> {
        let server = Server::http(addr).map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("demo origin has no IP address"))?;
        let server = Arc::new(server);
        let threads = (0..THREADS)
            .map(|i| {
                let server = server.clone();
                std::thread::Builder::new()
                    .name(format!("demo-origin-{i}"))
                    .spawn(move || {
                        for request in server.incoming_requests() {
                            answer(request);
                        }
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(DemoOrigin {
            addr,
            server,
            threads,
        })
    }

    pub fn stop(self) {
        self.server.unblock();
        for _ in 1..THREADS {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: Request, body: &str, headers: &[(&str, &str)]) {
    let mut response = Response::from_string(body);
    for (name, value) in headers {
        if let Some(h) = header(name, value) {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!("demo origin: cannot answer: {e}");
    }
}

/// `/ws` over WebSocket-over-HTTP: accept, subscribe to `test`, echo every message.
fn websocket(mut request: Request) {
    let mut body = Vec::new();
    if std::io::Read::read_to_end(request.as_reader(), &mut body).is_err() {
        return;
    }
    let events = match wsoh::decode_events(&body) {
        Ok(events) => events,
        Err(e) => {
            let r = Response::from_string(format!("bad events: {e}\n")).with_status_code(400);
            let _ = request.respond(r);
            return;
        }
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
    let mut response = Response::from_data(out);
    for (name, value) in [
        ("Content-Type", wsoh::CONTENT_TYPE),
        ("Sec-WebSocket-Extensions", "grip"),
    ] {
        if let Some(h) = header(name, value) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}

fn answer(request: Request) {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    match path.as_str() {
        "/stream" => respond(
            request,
            "Stream open. Publish to channel 'test' and watch it arrive here.\n",
            &[
                ("Content-Type", "text/plain"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", "test"),
            ],
        ),
        "/sse" => respond(
            request,
            ": stream open, publish to channel 'test'\n\n",
            &[
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("Grip-Hold", "stream"),
                ("Grip-Channel", "test"),
                ("Grip-Keep-Alive", ":\\n\\n; format=cstring; timeout=20"),
            ],
        ),
        "/response" => respond(
            request,
            "timeout\n",
            &[
                ("Content-Type", "text/plain"),
                ("Grip-Hold", "response"),
                ("Grip-Channel", "test"),
                ("Grip-Timeout", "55"),
            ],
        ),
        "/ws" => websocket(request),
        "/" => respond(request, INDEX, &[("Content-Type", "text/plain")]),
        _ => {
            let r = Response::from_string("not found\n").with_status_code(404);
            let _ = request.respond(r);
        }
    }
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
