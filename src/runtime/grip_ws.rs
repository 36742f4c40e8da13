//! What the origin steers on a client WebSocket through GRIP, in either mode (over HTTP or
//! passthrough): the `grip` extension's message prefix, `c:` control messages (subscribe,
//! unsubscribe, detach, set-meta, keep-alive, close), the connection's meta, and keep-alive
//! messages to the client. Also the helpers that queue frames for the client behind publishes.

use bytes::Bytes;

use super::client::ClientConn;
use super::conns::Sink;
use crate::proto::ws::{self, Opcode};
use crate::proto::wsoh::{self, Control, KeepAliveMode, MessageType, OriginText};

/// Keep-alive messages to the client, set by the `keep-alive` control message.
struct ClientKeepAlive {
    frame: Bytes,
    every_ms: u64,
    interval_mode: bool,
    next_ms: u64,
}

pub struct GripWs {
    /// The `grip` extension's message prefix when the origin enabled it.
    prefix: Option<String>,
    /// The route's channel prefix.
    channel_prefix: String,
    /// Meta set by `Set-Meta-*` headers and `set-meta` control messages.
    pub meta: Vec<(String, String)>,
    /// After `detach` the origin hears nothing more from the client.
    pub detached: bool,
    keep_alive: Option<ClientKeepAlive>,
}

impl GripWs {
    pub fn new(prefix: Option<String>, channel_prefix: String) -> GripWs {
        GripWs {
            prefix,
            channel_prefix,
            meta: Vec::new(),
            detached: false,
            keep_alive: None,
        }
    }

    /// Sets (Some) or deletes (None or empty) one meta entry. A new name past `entries_max`
    /// entries is refused (logged): every entry rides on each request to the origin as a
    /// `Meta-*` header, so their number is bounded like their size.
    pub fn set_meta(&mut self, name: String, value: Option<String>, entries_max: usize) {
        self.meta.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            if self.meta.len() >= entries_max {
                tracing::info!("websocket: meta {name:?} refused: {entries_max} entries already");
                return;
            }
            self.meta.push((name, v));
        }
    }

    /// A text message from the origin: a control message is applied, a message is sent to the
    /// client. Returns a close the origin asked for.
    pub fn origin_text(&mut self, conn: &ClientConn, payload: &[u8]) -> Option<(u16, String)> {
        let message = match self.prefix.as_deref() {
            None => payload,
            Some(prefix) => match wsoh::classify_text(payload, prefix) {
                OriginText::Message(m) => m,
                OriginText::Control(json) => {
                    let limits = super::settings::name_limits(&conn.w.settings().config.grip);
                    return match wsoh::parse_control(json, &limits) {
                        Ok(c) => self.on_control(conn, c),
                        Err(e) => {
                            tracing::info!("websocket: control message ignored: {e}");
                            None
                        }
                    };
                }
                OriginText::Dropped => {
                    tracing::debug!("websocket: origin message without prefix dropped");
                    return None;
                }
            },
        };
        if std::str::from_utf8(message).is_err() {
            tracing::warn!("websocket: origin sent invalid UTF-8 text: dropped");
            return None;
        }
        queue_frame(conn, Opcode::Text, message);
        None
    }

    /// A binary message from the origin (with the grip extension it carries the prefix too).
    pub fn origin_binary(&self, conn: &ClientConn, payload: &[u8]) {
        match self.prefix.as_deref() {
            Some(prefix) => {
                if let OriginText::Message(m) = wsoh::classify_binary(payload, prefix) {
                    queue_frame(conn, Opcode::Binary, m);
                }
            }
            None => queue_frame(conn, Opcode::Binary, payload),
        }
    }

    fn on_control(&mut self, conn: &ClientConn, c: Control) -> Option<(u16, String)> {
        let w = &conn.w;
        match c {
            Control::Subscribe { channel, .. } => {
                let max = w.settings().config.grip.channels_max;
                if w.subscription_count(conn.id) >= max {
                    tracing::info!(
                        "websocket: subscription limit ({max}) reached, {channel} ignored"
                    );
                } else {
                    let full = format!("{}{channel}", self.channel_prefix);
                    w.subscribe(conn.id, &[full], Sink::WebSocket);
                }
            }
            Control::Unsubscribe { channel } => {
                w.unsubscribe(conn.id, &format!("{}{channel}", self.channel_prefix));
            }
            Control::Detach => self.detached = true,
            Control::SetMeta { name, value } => {
                self.set_meta(name, value, w.settings().config.grip.meta_entries_max);
                w.set_subscription_meta(conn.id, &self.meta);
            }
            Control::KeepAlive {
                content,
                message_type,
                timeout_secs,
                mode,
            } => {
                let now = w.now_ms();
                self.keep_alive = content.map(|data| {
                    let secs = timeout_secs.unwrap_or(wsoh::KEEP_ALIVE_TIMEOUT_DEFAULT_SECS);
                    let every_ms = u64::from(secs.max(1)) * 1000;
                    let mut frame = Vec::with_capacity(data.len() + ws::HEADER_BYTES_MAX);
                    ws::encode_frame(&mut frame, true, opcode_of(message_type), &data, None);
                    ClientKeepAlive {
                        frame: Bytes::from(frame),
                        every_ms,
                        interval_mode: mode == KeepAliveMode::Interval,
                        next_ms: now + every_ms,
                    }
                });
            }
            Control::Close { code, reason } => {
                return Some((code.unwrap_or(ws::CLOSE_NORMAL), reason));
            }
            other => tracing::debug!("websocket: control message not supported: {other:?}"),
        }
        None
    }

    /// When the next keep-alive message is due, if any.
    pub fn keep_alive_at(&self) -> Option<u64> {
        self.keep_alive.as_ref().map(|k| k.next_ms)
    }

    /// Sends a keep-alive message if one is due (idle mode counts from the last write).
    pub fn keep_alive_tick(&mut self, conn: &ClientConn) {
        let Some(k) = self.keep_alive.as_mut() else {
            return;
        };
        let now = conn.w.now_ms();
        if !k.interval_mode {
            let last_write = conn
                .w
                .conns
                .borrow()
                .get(conn.id)
                .map_or(0, |c| c.progress_ms);
            k.next_ms = k.next_ms.max(last_write + k.every_ms);
        }
        if now >= k.next_ms {
            k.next_ms = now + k.every_ms;
            let frame = k.frame.clone();
            queue_bytes(conn, frame);
        }
    }
}

fn opcode_of(t: MessageType) -> Opcode {
    match t {
        MessageType::Text => Opcode::Text,
        MessageType::Binary => Opcode::Binary,
        MessageType::Ping => Opcode::Ping,
        MessageType::Pong => Opcode::Pong,
    }
}

/// Queues bytes for the client behind everything already queued (publishes included).
pub fn queue_bytes(conn: &ClientConn, bytes: Bytes) {
    if let Some(slot) = conn.w.conns.borrow_mut().get_mut(conn.id) {
        let _ = conn.w.queue(slot, conn.id, bytes);
    }
}

/// Queues one unmasked frame for the client.
pub fn queue_frame(conn: &ClientConn, opcode: Opcode, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + ws::HEADER_BYTES_MAX);
    ws::encode_frame(&mut frame, true, opcode, payload, None);
    queue_bytes(conn, Bytes::from(frame));
}

/// Queues a close frame for the client.
pub fn queue_close(conn: &ClientConn, code: u16, reason: &str) {
    let mut frame = Vec::with_capacity(ws::HEADER_BYTES_MAX + 125);
    ws::encode_close_frame(&mut frame, code, reason, None);
    // The close handshake is holdfast's own: never dropped by the slow-consumer policy.
    if let Some(slot) = conn.w.conns.borrow_mut().get_mut(conn.id) {
        let _ = conn.w.queue_own(slot, conn.id, Bytes::from(frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_entries_are_bounded_but_existing_ones_stay_updatable() {
        let mut g = GripWs::new(None, String::new());
        g.set_meta("a".into(), Some("1".into()), 2);
        g.set_meta("b".into(), Some("2".into()), 2);
        g.set_meta("c".into(), Some("3".into()), 2);
        assert_eq!(g.meta.len(), 2, "a third name is refused");
        g.set_meta("A".into(), Some("changed".into()), 2);
        assert!(g.meta.iter().any(|(n, v)| n == "A" && v == "changed"));
        g.set_meta("b".into(), None, 2);
        g.set_meta("c".into(), Some("3".into()), 2);
        assert_eq!(g.meta.len(), 2, "a deletion makes room");
    }
}
