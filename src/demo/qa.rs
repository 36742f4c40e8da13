//! The live Q&A board, origin side.
//!
//! - `POST /api/join` `{room, name, userId, host}`: creates the user and, on first join, the
//!   room (its creator is a host; `host: true` makes anyone a host). Answers the room's id and
//!   the user's public id (`me`). The `userId` a page makes is its secret: the page acts with
//!   it, and everyone else only ever sees the public id (as author, voter, answerer).
//! - `GET /api/rooms/{id}`: the room and its questions (what a page shows after a reload).
//! - `POST /api/websocket?roomId=..&userId=..` (WebSocket-over-HTTP): OPEN subscribes the socket
//!   to the room's channel `qa-{id}`; each TEXT message is an action (`ask`, `vote`, `answer`,
//!   `delete`, `room`, `rename`) that is stored, then published to the channels of the rooms it
//!   changes. The actor gets its own change like everyone else, from the publish; only a refused
//!   action is answered directly (`{"type":"error"}`).
//!
//! Every published change carries the room's `version` after it: a page applies the next one,
//! ignores older ones and refetches the state when it sees a gap.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{DbResult, Question, Room};
use super::{App, error, events_response, room_id, text_field};
use crate::proto::wsoh::{self, Event};

/// Room colour themes (the page has a palette for each).
pub const THEMES: &[&str] = &["indigo", "teal", "rose", "amber", "emerald", "slate"];
const NAME_CHARS_MAX: usize = 40;
const ROOM_NAME_CHARS_MAX: usize = 60;
const QUESTION_CHARS_MAX: usize = 500;
const ANSWER_CHARS_MAX: usize = 2000;
/// User ids are made by the page (random); they are kept short and plain.
const USER_ID_BYTES_MAX: usize = 64;

fn channel(room: &str) -> String {
    format!("qa-{room}")
}

fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= USER_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn db_error(e: rusqlite::Error) -> Response {
    tracing::error!("demo database: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    room: String,
    name: String,
    user_id: String,
    #[serde(default)]
    host: bool,
}

pub async fn join(State(app): State<Arc<App>>, Json(req): Json<JoinRequest>) -> Response {
    let Some(id) = room_id(&req.room) else {
        return error(StatusCode::BAD_REQUEST, "the room name is empty");
    };
    let room_name = match text_field(&req.room, "the room name", ROOM_NAME_CHARS_MAX) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let name = match text_field(&req.name, "your name", NAME_CHARS_MAX) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !valid_user_id(&req.user_id) {
        return error(StatusCode::BAD_REQUEST, "bad user id");
    }
    let _order = app.order.lock().await;
    let renamed = match app.store.upsert_user(&req.user_id, &name) {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let joined = match app
        .store
        .join_room(&id, &room_name, THEMES[0], &req.user_id, req.host)
    {
        Ok(j) => j,
        Err(e) => return db_error(e),
    };
    if renamed {
        // Joining under a new name renames the user everywhere, as the menu does.
        let items = match rename_items(&app, &req.user_id, &name) {
            Ok(items) => items,
            Err(e) => return db_error(e),
        };
        // A refusal is logged; the rooms show the new name on their next load.
        let _ = app.publish(items).await;
    }
    let me = match app.store.public_id(&req.user_id) {
        Ok(Some(id)) => id,
        Ok(None) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the user was not stored"),
        Err(e) => return db_error(e),
    };
    Json(json!({
        "me": me,
        "roomId": joined.room.id,
        "created": joined.created,
        "host": joined.host,
        "room": joined.room,
    }))
    .into_response()
}

pub async fn state(State(app): State<Arc<App>>, Path(room): Path<String>) -> Response {
    match app.store.room_state(&room) {
        Ok(Some((room, questions))) => {
            Json(json!({ "room": room, "questions": questions })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such room"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
pub struct SocketQuery {
    #[serde(rename = "roomId")]
    room_id: String,
    #[serde(rename = "userId")]
    user_id: String,
}

/// The board's WebSocket, over HTTP.
pub async fn websocket(
    State(app): State<Arc<App>>,
    Query(q): Query<SocketQuery>,
    body: Bytes,
) -> Response {
    if room_id(&q.room_id).as_deref() != Some(q.room_id.as_str()) || !valid_user_id(&q.user_id) {
        return error(StatusCode::BAD_REQUEST, "bad roomId or userId");
    }
    let events = match wsoh::decode_events(&body) {
        Ok(events) => events,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad events: {e}")),
    };
    let mut out = Vec::new();
    for event in events {
        match event {
            Event::Open => {
                wsoh::encode_event(&mut out, &Event::Open);
                let sub = json!({"type": "subscribe", "channel": channel(&q.room_id)});
                wsoh::encode_event(&mut out, &Event::Text(format!("c:{sub}").into_bytes()));
            }
            Event::Text(t) => {
                if let Err(e) = act(&app, &q.room_id, &q.user_id, &t).await {
                    let msg = json!({"type": "error", "message": e});
                    wsoh::encode_event(&mut out, &Event::Text(format!("m:{msg}").into_bytes()));
                }
            }
            Event::Close { code, .. } => {
                wsoh::encode_event(
                    &mut out,
                    &Event::Close {
                        code,
                        reason: Vec::new(),
                    },
                );
            }
            Event::Binary(_) | Event::Ping(_) | Event::Pong(_) | Event::Disconnect => {}
        }
    }
    events_response(out)
}

/// What a page asks for over its socket.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Action {
    Ask { text: String },
    Vote { id: i64 },
    Answer { id: i64, text: String },
    Delete { id: i64 },
    Room { name: String, theme: String },
    Rename { name: String },
}

/// Applies one action and publishes what changed; an error is for the actor only.
async fn act(app: &App, room: &str, user: &str, message: &[u8]) -> Result<(), String> {
    let action: Action =
        serde_json::from_slice(message).map_err(|e| format!("not an action: {e}"))?;
    let _order = app.order.lock().await;
    let Some(host) = app.store.membership(room, user).map_err(db)? else {
        return Err("join the room first".into());
    };
    let host_only = matches!(
        action,
        Action::Answer { .. } | Action::Delete { .. } | Action::Room { .. }
    );
    if host_only && !host {
        return Err("only a host can do that".into());
    }
    let items = change(app, room, user, action)?;
    app.publish(items)
        .await
        .map_err(|e| format!("saved, but not published: {e}"))
}

fn db(e: rusqlite::Error) -> String {
    tracing::error!("demo database: {e}");
    "database error".to_string()
}

/// Stores the change an action makes (permissions already checked); the items to publish.
fn change(app: &App, room: &str, user: &str, action: Action) -> Result<Vec<Value>, String> {
    let ch = channel(room);
    Ok(match action {
        Action::Ask { text } => {
            let text = text_field(&text, "the question", QUESTION_CHARS_MAX)?;
            if app.store.room(room).map_err(db)?.is_none() {
                return Err("no such room".into());
            }
            let (q, version) = app.store.ask(room, user, &text).map_err(db)?;
            vec![question_item(&ch, &q, version)]
        }
        Action::Vote { id } => {
            let (q, version) = app
                .store
                .toggle_vote(room, user, id)
                .map_err(db)?
                .ok_or("no such question")?;
            vec![question_item(&ch, &q, version)]
        }
        Action::Answer { id, text } => {
            let text = text_field(&text, "the answer", ANSWER_CHARS_MAX)?;
            let (q, version) = app
                .store
                .answer(room, user, id, &text)
                .map_err(db)?
                .ok_or("no such question")?;
            vec![question_item(&ch, &q, version)]
        }
        Action::Delete { id } => {
            let version = app
                .store
                .delete_question(room, id)
                .map_err(db)?
                .ok_or("no such question")?;
            let event = json!({"type": "deleted", "version": version, "id": id});
            vec![ws_item(&ch, &event)]
        }
        Action::Room { name, theme } => {
            let name = text_field(&name, "the room name", ROOM_NAME_CHARS_MAX)?;
            if !THEMES.contains(&theme.as_str()) {
                return Err(format!("no theme {theme:?}"));
            }
            let r = app
                .store
                .update_room(room, &name, &theme)
                .map_err(db)?
                .ok_or("no such room")?;
            vec![room_item(&ch, &r)]
        }
        Action::Rename { name } => {
            let name = text_field(&name, "your name", NAME_CHARS_MAX)?;
            rename_items(app, user, &name).map_err(db)?
        }
    })
}

/// Renames `user`; one item per room they belong to (each room shows their new name).
fn rename_items(app: &App, user: &str, name: &str) -> DbResult<Vec<Value>> {
    let rooms = app.store.rename_user(user, name)?;
    let public = app.store.public_id(user)?.unwrap_or_default();
    Ok(rooms
        .iter()
        .map(|(room, version)| {
            let event = json!({"type": "user", "version": version, "userId": public, "name": name});
            ws_item(&channel(room), &event)
        })
        .collect())
}

fn question_item(channel: &str, q: &Question, version: i64) -> Value {
    ws_item(
        channel,
        &json!({"type": "question", "version": version, "question": q}),
    )
}

fn room_item(channel: &str, room: &Room) -> Value {
    ws_item(
        channel,
        &json!({"type": "room", "version": room.version, "room": room}),
    )
}

fn ws_item(channel: &str, event: &Value) -> Value {
    json!({"channel": channel, "formats": {"ws-message": {"content": event.to_string()}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_short_and_plain() {
        assert!(valid_user_id("u-1f3a_9"));
        assert!(!valid_user_id(""));
        assert!(!valid_user_id("a b"));
        assert!(!valid_user_id(&"a".repeat(65)));
    }

    #[test]
    fn actions_parse_and_bad_ones_are_refused() {
        let a: Action = serde_json::from_str(r#"{"type":"vote","id":3}"#).unwrap();
        assert!(matches!(a, Action::Vote { id: 3 }));
        assert!(serde_json::from_str::<Action>(r#"{"type":"vote"}"#).is_err());
        assert!(serde_json::from_str::<Action>(r#"{"type":"nuke"}"#).is_err());
    }
}
