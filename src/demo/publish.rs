//! Publishing to holdfast's publish API (`POST /publish/`), as any app would: a small HTTP/1.1
//! client on a tokio `TcpStream`, one short connection per publish.

use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::http::connectable as reachable;
use crate::proto::http1::HeadWriter;

/// A publish that takes longer than this is given up (and logged).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of the publish API's answer that are read.
const ANSWER_BYTES_MAX: usize = 16 * 1024;

/// How the demo apps authenticate to the publish API, when it asks for it.
pub use crate::auth::Credentials as PublishAuth;

/// Where and how to publish. The address may be set after start (holdfast's publish listener is
/// bound after the demo origin's).
#[derive(Default)]
pub struct Publisher {
    addr: RwLock<Option<SocketAddr>>,
    auth: RwLock<PublishAuth>,
}

impl Publisher {
    pub fn new(addr: Option<SocketAddr>, auth: PublishAuth) -> Publisher {
        Publisher {
            addr: RwLock::new(addr.map(reachable)),
            auth: RwLock::new(auth),
        }
    }

    /// Where publishes go, once known.
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.addr.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_addr(&self, addr: SocketAddr) {
        *self.addr.write().unwrap_or_else(|e| e.into_inner()) = Some(reachable(addr));
    }

    pub fn set_auth(&self, auth: PublishAuth) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = auth;
    }

    /// Publishes `items` (a list of GRIP items); an error says why it was not accepted.
    pub async fn publish(&self, items: Vec<Value>) -> Result<(), String> {
        let addr = (*self.addr.read().unwrap_or_else(|e| e.into_inner()))
            .ok_or("no publish address configured")?;
        let auth = self
            .auth
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .authorization()?;
        let body = serde_json::json!({ "items": items }).to_string();
        // The head through the validating encoder, as every head holdfast writes.
        let mut head = HeadWriter::request("POST", "/publish/", 256);
        head.header("Host", addr.to_string().as_bytes())
            .header("Content-Type", b"application/json")
            .header("Content-Length", body.len().to_string().as_bytes())
            .header("Connection", b"close");
        if let Some(a) = auth {
            head.header("Authorization", a.as_bytes());
        }
        let mut req = head
            .finish()
            .map_err(|e| format!("cannot encode the publish request: {e}"))?;
        req.extend_from_slice(body.as_bytes());
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(&req).await?;
            let mut answer = Vec::with_capacity(256);
            let mut buf = [0u8; 2048];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 || answer.len() >= ANSWER_BYTES_MAX {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("publish to {addr} timed out"))?
            .map_err(|e| format!("publish to {addr}: {e}"))?;
        let text = String::from_utf8_lossy(&answer);
        let status = text.split(' ').nth(1).unwrap_or("");
        if status == "200" {
            Ok(())
        } else {
            let line = text.lines().next().unwrap_or("no answer");
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
            Err(format!("publish to {addr} refused: {line}: {body}"))
        }
    }
}
