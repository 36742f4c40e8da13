//! The chat, origin side: messages are POSTed and delivered over Server-Sent Events.
//!
//! - `POST /rooms/{room}/messages/` `{name, text, clientId?}`: stores the message with the room's
//!   next id (a `clientId` already seen answers the stored message again: the window's retry),
//!   answers it (with its id) and publishes it to channel `chat-{room}` as an SSE event, with `id` and `prev-id` so that
//!   holdfast delivers the channel in order and notices a gap.
//! - `GET /rooms/{room}/events/`: the stream. Where it starts, first match wins: `Grip-Last`
//!   (holdfast fetching the next link after a gap), `?after=N` (the next link itself),
//!   `Last-Event-ID` (a browser reconnecting), `?lastEventId=N` (a page that opens a new
//!   EventSource after the browser gave up, which cannot set the header), else the room's
//!   recent history. The messages
//!   after that go in the initial body; then the stream is held on the channel with
//!   `prev-id` = the last id sent and a next link, as django-eventstream does. A message
//!   published between reading the database and holding is not lost: holdfast sees its
//!   prev-id differ from the hold's and fetches the next link with `Grip-Last`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::store::ChatMessage;
use super::{App, error, room_id, text_field};

/// Messages sent to a new window (no Last-Event-ID).
const HISTORY: usize = 50;
/// Messages per response when catching up; more are fetched through the next link.
const PAGE: usize = 200;
const NAME_CHARS_MAX: usize = 40;
const TEXT_CHARS_MAX: usize = 1000;
/// The browser's reconnection delay, sent with every stream.
const RETRY_MS: u32 = 1000;

fn channel(room: &str) -> String {
    format!("chat-{room}")
}

/// One SSE event for a message (its JSON has no newline, so one `data:` line).
fn sse_event(m: &ChatMessage) -> String {
    format!("id: {}\ndata: {}\n\n", m.id, json!(m))
}

#[derive(Deserialize)]
pub struct PostRequest {
    name: String,
    text: String,
    /// The sending window's id for this message (letters, digits, `-`, `_`; at most 64): a
    /// send repeated with the same id (its first answer was lost) is answered with the stored
    /// message instead of storing it again.
    #[serde(rename = "clientId", default)]
    client_id: Option<String>,
}

/// Client ids of the chat messages posted most recently (per room), with what was stored.
#[derive(Default)]
pub struct SentMessages {
    by_key: HashMap<(String, String), ChatMessage>,
    order: VecDeque<(String, String)>,
}

/// Client ids remembered; a window retries within seconds, so this covers far more than needed.
const SENT_REMEMBERED: usize = 10_000;
const CLIENT_ID_CHARS_MAX: usize = 64;

impl SentMessages {
    fn get(&self, room: &str, client_id: &str) -> Option<ChatMessage> {
        self.by_key
            .get(&(room.to_string(), client_id.to_string()))
            .cloned()
    }

    fn remember(&mut self, room: &str, m: &ChatMessage) {
        let Some(id) = &m.client_id else {
            return;
        };
        let key = (room.to_string(), id.clone());
        if self.order.len() >= SENT_REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.by_key.remove(&old);
        }
        self.order.push_back(key.clone());
        self.by_key.insert(key, m.clone());
    }
}

fn client_id(raw: Option<String>) -> Result<Option<String>, &'static str> {
    match raw {
        None => Ok(None),
        Some(id)
            if !id.is_empty()
                && id.len() <= CLIENT_ID_CHARS_MAX
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(id))
        }
        Some(_) => Err("the client id must be 1-64 letters, digits, - or _"),
    }
}

pub async fn post(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    Json(req): Json<PostRequest>,
) -> Response {
    let Some(room) = room_id(&room) else {
        return error(StatusCode::BAD_REQUEST, "the room name is empty");
    };
    let fields = text_field(&req.name, "the name", NAME_CHARS_MAX)
        .and_then(|n| Ok((n, text_field(&req.text, "the message", TEXT_CHARS_MAX)?)));
    let (name, text) = match fields {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let client_id = match client_id(req.client_id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let _order = app.order.lock().await;
    let sent = |id: &str| app.chat_sent.lock().ok().and_then(|s| s.get(&room, id));
    if let Some(m) = client_id.as_deref().and_then(sent) {
        // A retry of a send that was stored: the same answer, nothing stored or published again.
        return Json(m).into_response();
    }
    let mut m = match app.store.chat_post(&room, &name, &text) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("demo database: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "database error");
        }
    };
    m.client_id = client_id;
    if let Ok(mut sent) = app.chat_sent.lock() {
        sent.remember(&room, &m);
    }
    let item = json!({
        "channel": channel(&room),
        "id": m.id.to_string(),
        "prev-id": (m.id - 1).to_string(),
        "formats": {"http-stream": {"content": sse_event(&m)}},
    });
    // Stored is sent: if this publish fails (it is logged), the windows still get the message,
    // in order, when the next one is published (its prev-id shows the gap and holdfast fetches
    // the next link), or when they reconnect or reload. Telling the sender to send it again
    // would store it twice.
    let _ = app.publish(vec![item]).await;
    Json(m).into_response()
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<i64>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<i64>,
}

pub async fn events(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(room) = room_id(&room) else {
        return error(StatusCode::BAD_REQUEST, "the room name is empty");
    };
    let ch = channel(&room);
    let after = grip_last(&headers, &ch)
        .or(q.after)
        .or_else(|| last_event_id(&headers))
        .or(q.last_event_id.filter(|id| *id >= 0));
    let read = match after {
        Some(after) => app.store.chat_after(&room, after, PAGE + 1),
        None => app.store.chat_recent(&room, HISTORY),
    };
    let mut messages = match read {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("demo database: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "database error");
        }
    };
    let more = messages.len() > PAGE;
    messages.truncate(PAGE);
    let last = messages.last().map(|m| m.id).or(after).unwrap_or(0);
    let mut body = format!("retry: {RETRY_MS}\n\n");
    for m in &messages {
        body.push_str(&sse_event(m));
    }
    let mut map = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            map.insert(name, v);
        }
    };
    set("content-type", "text/event-stream".into());
    set("cache-control", "no-cache".into());
    let next = format!("</rooms/{room}/events/?after={last}>; rel=next");
    if more {
        // No hold: holdfast streams this page, then fetches the next one at once.
        set("grip-link", next);
    } else {
        set("grip-hold", "stream".into());
        set("grip-channel", format!("{ch}; prev-id={last}"));
        set("grip-link", next);
        set(
            "grip-keep-alive",
            ":\\n\\n; format=cstring; timeout=20".into(),
        );
    }
    (map, body).into_response()
}

/// The id in `Grip-Last: <channel>; last-id=<id>` for `channel`, if there is one.
fn grip_last(headers: &HeaderMap, channel: &str) -> Option<i64> {
    headers
        .get_all("grip-last")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            if parts.next()? != channel {
                return None;
            }
            parts.find_map(|p| {
                let v = p.strip_prefix("last-id=")?;
                v.trim_matches('"').parse().ok()
            })
        })
}

fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|id| *id >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in list {
            map.append(*n, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn grip_last_picks_the_channel() {
        let h = headers(&[("grip-last", "other; last-id=9, chat-x; last-id=\"4\"")]);
        assert_eq!(grip_last(&h, "chat-x"), Some(4));
        assert_eq!(grip_last(&h, "chat-y"), None);
        assert_eq!(
            grip_last(&headers(&[("grip-last", "chat-x")]), "chat-x"),
            None
        );
    }

    #[test]
    fn last_event_id_must_be_a_number() {
        assert_eq!(
            last_event_id(&headers(&[("last-event-id", " 12 ")])),
            Some(12)
        );
        assert_eq!(last_event_id(&headers(&[("last-event-id", "x")])), None);
        assert_eq!(last_event_id(&headers(&[("last-event-id", "-3")])), None);
        assert_eq!(last_event_id(&headers(&[])), None);
    }

    #[test]
    fn a_message_is_one_sse_event() {
        let m = ChatMessage {
            id: 7,
            name: "a".into(),
            text: "two\nlines".into(),
            at: 1,
            client_id: Some("w1-3".into()),
        };
        let e = sse_event(&m);
        assert!(e.starts_with("id: 7\ndata: {"), "{e}");
        assert_eq!(e.matches('\n').count(), 3, "{e}");
        assert!(e.contains(r#""clientId":"w1-3""#), "{e}");
    }

    #[test]
    fn client_ids_are_checked_and_remembered_per_room() {
        assert_eq!(client_id(None), Ok(None));
        assert_eq!(client_id(Some("a-1_B".into())), Ok(Some("a-1_B".into())));
        for bad in ["", "a b", "a\nb", &"x".repeat(65)] {
            assert!(client_id(Some(bad.to_string())).is_err(), "{bad:?}");
        }
        let mut sent = SentMessages::default();
        let m = ChatMessage {
            id: 1,
            name: "a".into(),
            text: "t".into(),
            at: 1,
            client_id: Some("c1".into()),
        };
        sent.remember("lobby", &m);
        assert_eq!(sent.get("lobby", "c1").map(|m| m.id), Some(1));
        assert!(sent.get("other", "c1").is_none());
    }
}
