//! WebSocket passthrough (a route without `over_http`): the client's WebSocket is proxied to a
//! WebSocket origin (tungstenite's server, not holdfast code). With the grip extension accepted,
//! the origin's `c:` control messages subscribe the connection and its `m:` prefix is stripped.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use serde_json::json;
use tungstenite::Message;
use tungstenite::handshake::server::{Request as WsRequest, Response as WsResponse};

/// What the origin saw of one connection: the grip extension offered, the messages received.
#[derive(Default)]
struct Seen {
    extensions: Option<String>,
    grip_sig: bool,
    messages: Vec<String>,
}

/// A WebSocket origin: accepts one connection, enables grip, subscribes it to `pt`, echoes.
// tungstenite's handshake callback type fixes its (large) error type.
#[allow(clippy::result_large_err)]
fn ws_origin(seen: Arc<Mutex<Seen>>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let record = seen.clone();
        let callback = move |req: &WsRequest, mut resp: WsResponse| {
            let mut s = record.lock().unwrap();
            s.extensions = req
                .headers()
                .get("sec-websocket-extensions")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            s.grip_sig = req.headers().contains_key("grip-sig");
            resp.headers_mut()
                .insert("Sec-WebSocket-Extensions", "grip".parse().unwrap());
            Ok(resp)
        };
        let mut ws = tungstenite::accept_hdr(stream, callback).unwrap();
        ws.send(Message::text(r#"c:{"type":"subscribe","channel":"pt"}"#))
            .unwrap();
        ws.send(Message::text("not prefixed: dropped")).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    seen.lock().unwrap().messages.push(t.to_string());
                    ws.send(Message::text(format!("m:{t}"))).unwrap();
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    (addr, handle)
}

fn read_text<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>) -> String {
    match ws.read() {
        Ok(Message::Text(t)) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[test]
fn passthrough_echo_subscribe_publish_close() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (origin, origin_thread) = ws_origin(seen.clone());
    let mut cfg = config(&format!("* {origin}\n"));
    cfg.grip.sig_key = Some("secret".into());
    let proxy = Proxy::start(cfg);
    let url = format!("ws://{}/chat", proxy.http);
    let (mut ws, response) = tungstenite::connect(url).expect("handshake through holdfast");
    assert_eq!(response.status(), 101);
    assert!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "the grip extension is between holdfast and the origin only"
    );
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(read_text(&mut ws), "hello", "echo with m: stripped");
    // The subscribe came before the echo, so the connection is subscribed by now.
    let body = items(vec![
        json!({"channel": "pt", "formats": {"ws-message": {"content": "pub"}}}),
    ]);
    proxy.publish(&body);
    assert_eq!(read_text(&mut ws), "pub");
    ws.send(Message::text("again")).unwrap();
    assert_eq!(read_text(&mut ws), "again");
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("unexpected after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake failed: {e}"),
        }
    }
    origin_thread.join().unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(
        s.extensions.as_deref(),
        Some("grip"),
        "holdfast offers grip"
    );
    assert!(s.grip_sig, "the upgrade request is signed");
    assert_eq!(s.messages, ["hello", "again"]);
}

#[test]
fn passthrough_origin_refusal_reaches_the_client() {
    let origin = Origin::fixed(response(
        403,
        "Forbidden",
        &[("Content-Type", "text/plain")],
        b"no\n",
    ));
    let proxy = Proxy::to(&origin);
    let url = format!("ws://{}/chat", proxy.http);
    match tungstenite::connect(url) {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            assert_eq!(resp.body().as_deref(), Some(&b"no\n"[..]));
        }
        other => panic!("expected the origin's 403, got {other:?}"),
    }
}
