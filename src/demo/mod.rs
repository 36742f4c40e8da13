//! The bundled demo origin: an ordinary HTTP app that speaks GRIP, as a user's app would.
//!
//! It implements Fastly's starter-kit endpoints, each subscribed to channel `test`:
//! `/stream` (HTTP streaming, text/plain), `/sse` (Server-Sent Events), `/response` (long-poll).
//! holdfast reaches it over plain HTTP like any origin; nothing in the proxy knows it exists.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Request, Response, Server};

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
Publish with:
  curl -d '{\"items\":[{\"channel\":\"test\",\"formats\":{\"http-stream\":{\"content\":\"hello\\n\"}}}]}' \\
    http://127.0.0.1:5561/publish/
";
