//! The demo apps' data, in an embedded SQLite database (a file, or memory for tests).
//!
//! Synchronous and small: every call takes the connection's lock for a few statements. The
//! callers serialise "change, then publish" themselves (the demo's `App::order` lock), so the order of
//! changes in the database is the order of the publishes.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

pub type DbResult<T> = Result<T, rusqlite::Error>;

const SCHEMA: &str = "
-- `id` is the page's secret (it acts with it); others only ever see `public_id`.
CREATE TABLE IF NOT EXISTS users (
    id        TEXT PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    theme      TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    room_id TEXT NOT NULL REFERENCES rooms(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    host    INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE TABLE IF NOT EXISTS questions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id          TEXT NOT NULL REFERENCES rooms(id),
    author_id        TEXT NOT NULL,
    text             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    answer           TEXT,
    answer_author_id TEXT,
    answered_at      INTEGER
);
CREATE INDEX IF NOT EXISTS questions_room ON questions(room_id);
CREATE TABLE IF NOT EXISTS votes (
    question_id INTEGER NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (question_id, user_id)
);
CREATE TABLE IF NOT EXISTS chat_messages (
    room TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    at   INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
);
";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, Serialize)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub theme: String,
    /// Counts the room's changes: every published change carries the version it made, so a
    /// client can tell an old event from a new one and notice one it missed.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub id: i64,
    pub text: String,
    /// The author's public id.
    pub author_id: String,
    pub author: String,
    pub created_at: i64,
    pub votes: usize,
    /// Public ids of the voters.
    pub voters: Vec<String>,
    pub answer: Option<Answer>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub text: String,
    /// The answering host's public id.
    pub author_id: String,
    pub author: String,
    pub at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    pub id: i64,
    pub name: String,
    pub text: String,
    pub at: i64,
    /// The sending window's id for this message, when it gave one: that window matches the
    /// message it receives to the one it is sending (not stored; live messages only).
    #[serde(rename = "clientId", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What joining a room did.
#[derive(Debug)]
pub struct Joined {
    pub room: Room,
    pub created: bool,
    pub host: bool,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory one without a path.
    pub fn open(path: Option<&Path>) -> DbResult<Store> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if path.is_some() {
            // WAL: a write is one fsync-free append; readers never wait for the writer.
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        }
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // -----------------------------------------------------------------------------------------
    // Q&A board

    /// Creates or renames a user; true when the stored name changed.
    pub fn upsert_user(&self, id: &str, name: &str) -> DbResult<bool> {
        let conn = self.conn();
        let old: Option<String> = conn
            .query_row("SELECT name FROM users WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if old.as_deref() == Some(name) {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO users (id, public_id, name) VALUES (?1, lower(hex(randomblob(8))), ?2)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name",
            params![id, name],
        )?;
        Ok(old.is_some())
    }

    /// The public id of the user whose secret id is `id`.
    pub fn public_id(&self, id: &str) -> DbResult<Option<String>> {
        self.conn()
            .query_row("SELECT public_id FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
    }

    /// Joins `user` to the room `id`, creating the room (with `user` as its host) on first join.
    /// `as_host` makes the user a host of an existing room; host rights are never taken away.
    pub fn join_room(
        &self,
        id: &str,
        display_name: &str,
        default_theme: &str,
        user: &str,
        as_host: bool,
    ) -> DbResult<Joined> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let created = tx.execute(
            "INSERT OR IGNORE INTO rooms (id, name, theme, version, created_at)
             VALUES (?1, ?2, ?3, 0, ?4)",
            params![id, display_name, default_theme, now_ms()],
        )? == 1;
        let host = created || as_host;
        tx.execute(
            "INSERT INTO members (room_id, user_id, host) VALUES (?1, ?2, ?3)
             ON CONFLICT(room_id, user_id) DO UPDATE SET host = MAX(host, excluded.host)",
            params![id, user, host],
        )?;
        let host: bool = tx.query_row(
            "SELECT host FROM members WHERE room_id = ?1 AND user_id = ?2",
            params![id, user],
            |r| r.get(0),
        )?;
        let room = room_row(&tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        tx.commit()?;
        Ok(Joined {
            room,
            created,
            host,
        })
    }

    /// Whether `user` has joined `room`: None if not, else whether they are a host there.
    pub fn membership(&self, room: &str, user: &str) -> DbResult<Option<bool>> {
        self.conn()
            .query_row(
                "SELECT host FROM members WHERE room_id = ?1 AND user_id = ?2",
                params![room, user],
                |r| r.get::<_, bool>(0),
            )
            .optional()
    }

    pub fn room(&self, id: &str) -> DbResult<Option<Room>> {
        room_row(&self.conn(), id)
    }

    /// The room and its questions, read in one transaction (a consistent snapshot).
    pub fn room_state(&self, id: &str) -> DbResult<Option<(Room, Vec<Question>)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(room) = room_row(&tx, id)? else {
            return Ok(None);
        };
        let questions = questions(&tx, "q.room_id = ?1", params![id])?;
        tx.commit()?;
        Ok(Some((room, questions)))
    }

    /// Adds a question, upvoted by its author. Returns it with the room's new version.
    pub fn ask(&self, room: &str, user: &str, text: &str) -> DbResult<(Question, i64)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO questions (room_id, author_id, text, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![room, user, text, now_ms()],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO votes (question_id, user_id) VALUES (?1, ?2)",
            params![id, user],
        )?;
        let version = bump(&tx, room)?;
        let q = question(&tx, room, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        tx.commit()?;
        Ok((q, version))
    }

    /// Adds the user's vote, or takes it back if they had voted. None: no such question.
    pub fn toggle_vote(
        &self,
        room: &str,
        user: &str,
        id: i64,
    ) -> DbResult<Option<(Question, i64)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if question(&tx, room, id)?.is_none() {
            return Ok(None);
        }
        let removed = tx.execute(
            "DELETE FROM votes WHERE question_id = ?1 AND user_id = ?2",
            params![id, user],
        )?;
        if removed == 0 {
            tx.execute(
                "INSERT INTO votes (question_id, user_id) VALUES (?1, ?2)",
                params![id, user],
            )?;
        }
        let version = bump(&tx, room)?;
        let q = question(&tx, room, id)?;
        tx.commit()?;
        Ok(q.map(|q| (q, version)))
    }

    /// Sets (or replaces) the answer. None: no such question.
    pub fn answer(
        &self,
        room: &str,
        user: &str,
        id: i64,
        text: &str,
    ) -> DbResult<Option<(Question, i64)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE questions SET answer = ?1, answer_author_id = ?2, answered_at = ?3
             WHERE id = ?4 AND room_id = ?5",
            params![text, user, now_ms(), id, room],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let version = bump(&tx, room)?;
        let q = question(&tx, room, id)?;
        tx.commit()?;
        Ok(q.map(|q| (q, version)))
    }

    /// Deletes a question and its votes; the room's new version, or None if it did not exist.
    pub fn delete_question(&self, room: &str, id: i64) -> DbResult<Option<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM questions WHERE id = ?1 AND room_id = ?2",
            params![id, room],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let version = bump(&tx, room)?;
        tx.commit()?;
        Ok(Some(version))
    }

    /// Sets the room's display name and theme; the room as it is now.
    pub fn update_room(&self, id: &str, name: &str, theme: &str) -> DbResult<Option<Room>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE rooms SET name = ?1, theme = ?2 WHERE id = ?3",
            params![name, theme, id],
        )?;
        if n == 0 {
            return Ok(None);
        }
        bump(&tx, id)?;
        let room = room_row(&tx, id)?;
        tx.commit()?;
        Ok(room)
    }

    /// Renames a user; each room they belong to, with its new version (those rooms show the
    /// new name).
    pub fn rename_user(&self, user: &str, name: &str) -> DbResult<Vec<(String, i64)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE users SET name = ?1 WHERE id = ?2",
            params![name, user],
        )?;
        let rooms: Vec<String> = {
            let mut stmt = tx.prepare("SELECT room_id FROM members WHERE user_id = ?1")?;
            stmt.query_map([user], |r| r.get(0))?
                .collect::<DbResult<_>>()?
        };
        let mut out = Vec::with_capacity(rooms.len());
        for room in rooms {
            let v = bump(&tx, &room)?;
            out.push((room, v));
        }
        tx.commit()?;
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Chat

    /// Appends a message; its id is the room's next sequence number (1, 2, ...).
    pub fn chat_post(&self, room: &str, name: &str, text: &str) -> DbResult<ChatMessage> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE room = ?1",
            [room],
            |r| r.get(0),
        )?;
        let at = now_ms();
        tx.execute(
            "INSERT INTO chat_messages (room, seq, name, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![room, seq, name, text, at],
        )?;
        tx.commit()?;
        Ok(ChatMessage {
            id: seq,
            name: name.to_string(),
            text: text.to_string(),
            at,
            client_id: None,
        })
    }

    /// The id of the room's newest message (0 when it has none).
    pub fn chat_last_id(&self, room: &str) -> DbResult<i64> {
        self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE room = ?1",
            [room],
            |r| r.get(0),
        )
    }

    /// Up to `limit` messages after `after`, oldest first.
    pub fn chat_after(&self, room: &str, after: i64, limit: usize) -> DbResult<Vec<ChatMessage>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, name, text, at FROM chat_messages WHERE room = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )?;
        stmt.query_map(params![room, after, limit as i64], chat_row)?
            .collect()
    }

    /// The newest `limit` messages, oldest first.
    pub fn chat_recent(&self, room: &str, limit: usize) -> DbResult<Vec<ChatMessage>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, name, text, at FROM chat_messages WHERE room = ?1
             ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut rows: Vec<ChatMessage> = stmt
            .query_map(params![room, limit as i64], chat_row)?
            .collect::<DbResult<_>>()?;
        rows.reverse();
        Ok(rows)
    }
}

fn chat_row(r: &rusqlite::Row<'_>) -> DbResult<ChatMessage> {
    Ok(ChatMessage {
        id: r.get(0)?,
        name: r.get(1)?,
        text: r.get(2)?,
        at: r.get(3)?,
        client_id: None,
    })
}

fn room_row(conn: &Connection, id: &str) -> DbResult<Option<Room>> {
    conn.query_row(
        "SELECT id, name, theme, version FROM rooms WHERE id = ?1",
        [id],
        |r| {
            Ok(Room {
                id: r.get(0)?,
                name: r.get(1)?,
                theme: r.get(2)?,
                version: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Counts a change to the room; its new version.
fn bump(conn: &Connection, room: &str) -> DbResult<i64> {
    conn.query_row(
        "UPDATE rooms SET version = version + 1 WHERE id = ?1 RETURNING version",
        [room],
        |r| r.get(0),
    )
}

fn question(conn: &Connection, room: &str, id: i64) -> DbResult<Option<Question>> {
    Ok(
        questions(conn, "q.room_id = ?1 AND q.id = ?2", params![room, id])?
            .into_iter()
            .next(),
    )
}

/// Questions matching `filter` (over `questions q`), most votes first, then oldest first.
fn questions(
    conn: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> DbResult<Vec<Question>> {
    let sql = format!(
        "SELECT q.id, q.text, COALESCE(u.public_id, ''), COALESCE(u.name, '?'), q.created_at,
                q.answer, a.public_id, COALESCE(a.name, '?'), q.answered_at,
                (SELECT group_concat(vu.public_id, ' ') FROM votes v
                 JOIN users vu ON vu.id = v.user_id WHERE v.question_id = q.id)
         FROM questions q
         LEFT JOIN users u ON u.id = q.author_id
         LEFT JOIN users a ON a.id = q.answer_author_id
         WHERE {filter}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut out: Vec<Question> = stmt
        .query_map(args, |r| {
            let voters: Option<String> = r.get(9)?;
            let voters: Vec<String> = voters
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let answer = match r.get::<_, Option<String>>(5)? {
                Some(text) => Some(Answer {
                    text,
                    author_id: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    author: r.get(7)?,
                    at: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                }),
                None => None,
            };
            Ok(Question {
                id: r.get(0)?,
                text: r.get(1)?,
                author_id: r.get(2)?,
                author: r.get(3)?,
                created_at: r.get(4)?,
                votes: voters.len(),
                voters,
                answer,
            })
        })?
        .collect::<DbResult<_>>()?;
    out.sort_by(|a, b| b.votes.cmp(&a.votes).then(a.id.cmp(&b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::open(None).unwrap()
    }

    #[test]
    fn the_creator_is_host_and_others_are_not_unless_they_ask() {
        let s = store();
        s.upsert_user("a", "Ann").unwrap();
        s.upsert_user("b", "Bob").unwrap();
        s.upsert_user("c", "Cy").unwrap();
        let j = s.join_room("r", "R", "indigo", "a", false).unwrap();
        assert!(j.created && j.host);
        let j = s.join_room("r", "R", "indigo", "b", false).unwrap();
        assert!(!j.created && !j.host);
        assert!(s.join_room("r", "R", "indigo", "c", true).unwrap().host);
        // Host rights stay when joining again without the box ticked.
        assert!(s.join_room("r", "R", "indigo", "a", false).unwrap().host);
        assert_eq!(s.membership("r", "b").unwrap(), Some(false));
        assert_eq!(s.membership("r", "a").unwrap(), Some(true));
        assert_eq!(s.membership("r", "nobody").unwrap(), None);
    }

    #[test]
    fn questions_start_with_their_authors_vote_and_order_by_votes() {
        let s = store();
        for (id, name) in [("a", "Ann"), ("b", "Bob")] {
            s.upsert_user(id, name).unwrap();
            s.join_room("r", "R", "indigo", id, false).unwrap();
        }
        let (q1, v1) = s.ask("r", "a", "first?").unwrap();
        // Others see a public id, never the secret one the page acts with.
        let public_a = s.public_id("a").unwrap().unwrap();
        assert_eq!(public_a.len(), 16);
        assert_ne!(public_a, s.public_id("b").unwrap().unwrap());
        assert_eq!((q1.votes, q1.voters.clone()), (1, vec![public_a.clone()]));
        assert_eq!(q1.author_id, public_a);
        let (q2, v2) = s.ask("r", "b", "second?").unwrap();
        assert!(v2 > v1);
        let (q2, _) = s.toggle_vote("r", "a", q2.id).unwrap().unwrap();
        assert_eq!(q2.votes, 2);
        let (_, qs) = s.room_state("r").unwrap().unwrap();
        assert_eq!(
            qs.iter().map(|q| q.text.as_str()).collect::<Vec<_>>(),
            ["second?", "first?"]
        );
        // A second tap takes the vote back.
        let (q2, _) = s.toggle_vote("r", "a", q2.id).unwrap().unwrap();
        assert_eq!(q2.votes, 1);
        assert!(s.toggle_vote("r", "a", 999).unwrap().is_none());
        let (q1, _) = s.answer("r", "a", q1.id, "yes").unwrap().unwrap();
        assert_eq!(q1.answer.unwrap().text, "yes");
        assert!(s.delete_question("r", q1.id).unwrap().is_some());
        assert_eq!(s.room_state("r").unwrap().unwrap().1.len(), 1);
        let rooms = s.rename_user("b", "Bobby").unwrap();
        assert_eq!(rooms.len(), 1);
        assert_eq!(s.room_state("r").unwrap().unwrap().1[0].author, "Bobby");
    }

    #[test]
    fn chat_ids_count_up_per_room() {
        let s = store();
        assert_eq!(s.chat_last_id("x").unwrap(), 0);
        for i in 1..=5 {
            assert_eq!(s.chat_post("x", "n", &format!("m{i}")).unwrap().id, i);
        }
        assert_eq!(s.chat_post("y", "n", "other").unwrap().id, 1);
        let after = s.chat_after("x", 3, 10).unwrap();
        assert_eq!(after.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
        let recent = s.chat_recent("x", 2).unwrap();
        assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
    }
}
