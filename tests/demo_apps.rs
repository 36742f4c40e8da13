//! The demo apps (`holdfast demo`) at the protocol level, through holdfast: the Q&A board's
//! HTTP API and WebSocket (over HTTP, publishes fanned out to every window of the room), the
//! chat's SSE with `Last-Event-ID` resume and gap recovery, persistence across a restart, and
//! the starter endpoints. The browser tests (tests/browser/) drive the same apps in Chromium.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use holdfast::demo::{DemoOptions, DemoOrigin, PublishAuth};
use serde_json::{Value, json};

/// holdfast in front of a demo origin that publishes to it.
struct Demo {
    origin: DemoOrigin,
    proxy: Proxy,
}

impl Demo {
    fn start(options: DemoOptions) -> Demo {
        let origin = DemoOrigin::start_with("127.0.0.1:0".parse().unwrap(), options).unwrap();
        let proxy = ws_proxy(origin.addr.port(), |c| {
            // A gap (a publish that failed) is waited for this long before holdfast delivers
            // past it and recovers through the next link.
            c.publish.message_wait_ms = 200;
        });
        origin.set_publish(proxy.publish, PublishAuth::None);
        Demo { origin, proxy }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Connection", "close")];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let mut c = self.proxy.client();
        c.send_and_read(&request(method, path, &headers, body.as_bytes()))
    }

    fn join(&self, room: &str, name: &str, user: &str, host: bool) -> Value {
        let r = self.call(
            "POST",
            "/api/join",
            Some(&json!({"room": room, "name": name, "userId": user, "host": host})),
        );
        assert_eq!(r.status, 200, "join: {}", r.text());
        r.json()
    }

    fn socket(&self, room: &str, user: &str) -> Ws {
        ws_connect(
            self.proxy.http,
            &format!("/api/websocket?roomId={room}&userId={user}"),
        )
    }
}

fn send(ws: &mut Ws, action: Value) {
    ws.send(tungstenite::Message::text(action.to_string()))
        .unwrap();
}

/// The next JSON message on a board socket.
fn next_event(ws: &mut Ws) -> Value {
    match ws_recv(ws) {
        tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The same event must reach every socket; returns it.
fn everyone_gets(sockets: &mut [&mut Ws]) -> Value {
    let first = next_event(sockets[0]);
    for ws in sockets.iter_mut().skip(1) {
        assert_eq!(next_event(ws), first);
    }
    first
}

#[test]
fn qa_board_changes_reach_every_window_of_the_room() {
    let demo = Demo::start(DemoOptions::default());
    let joined = demo.join("Town Hall", "Ann", "ann", false);
    assert_eq!(joined["roomId"], "town-hall");
    assert_eq!(
        (joined["created"].as_bool(), joined["host"].as_bool()),
        (Some(true), Some(true))
    );
    let joined = demo.join("town hall", "Bob", "bob", false);
    assert_eq!(
        (joined["created"].as_bool(), joined["host"].as_bool()),
        (Some(false), Some(false))
    );
    demo.join("Elsewhere", "Cy", "cy", false);
    // Others see Ann by a public id, never by the id she acts with.
    let ann = demo.join("Town Hall", "Ann", "ann", false)["me"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ann.len() == 16 && ann != "ann", "{ann}");

    let mut a = demo.socket("town-hall", "ann");
    let mut b = demo.socket("town-hall", "bob");
    // Someone in another room sees none of it.
    let mut c = demo.socket("elsewhere", "cy");

    send(
        &mut a,
        json!({"type": "ask", "text": "  Is it recorded?  "}),
    );
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(e["type"], "question");
    assert_eq!(e["version"], 1);
    let q1 = &e["question"];
    assert_eq!(
        (q1["text"].as_str(), q1["author"].as_str()),
        (Some("Is it recorded?"), Some("Ann"))
    );
    assert_eq!(
        (q1["votes"].as_u64(), q1["voters"].clone()),
        (Some(1), json!([ann]))
    );
    let q1 = q1["id"].as_i64().unwrap();

    send(&mut b, json!({"type": "ask", "text": "Slides?"}));
    let q2 = everyone_gets(&mut [&mut a, &mut b])["question"]["id"]
        .as_i64()
        .unwrap();
    // Ann upvotes Bob's question, then takes the vote back.
    send(&mut a, json!({"type": "vote", "id": q2}));
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(
        (e["version"].as_i64(), e["question"]["votes"].as_u64()),
        (Some(3), Some(2))
    );
    send(&mut a, json!({"type": "vote", "id": q2}));
    assert_eq!(everyone_gets(&mut [&mut a, &mut b])["question"]["votes"], 1);
    send(&mut a, json!({"type": "vote", "id": q2}));
    assert_eq!(everyone_gets(&mut [&mut a, &mut b])["question"]["votes"], 2);

    // Only a host answers, deletes or edits the room; the refusal goes to the asker alone.
    send(&mut b, json!({"type": "answer", "id": q1, "text": "no"}));
    let e = next_event(&mut b);
    assert_eq!(
        (e["type"].as_str(), e["message"].as_str()),
        (Some("error"), Some("only a host can do that"))
    );
    send(
        &mut a,
        json!({"type": "answer", "id": q1, "text": "Yes, on the wiki."}),
    );
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(e["version"], 6, "the refused answer changed nothing");
    assert_eq!(e["question"]["answer"]["text"], "Yes, on the wiki.");
    assert_eq!(e["question"]["answer"]["author"], "Ann");

    send(&mut a, json!({"type": "delete", "id": q2}));
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(
        (e["type"].as_str(), e["id"].as_i64()),
        (Some("deleted"), Some(q2))
    );

    send(
        &mut a,
        json!({"type": "room", "name": "Town Hall, Q4", "theme": "plaid"}),
    );
    assert_eq!(next_event(&mut a)["type"], "error");
    send(
        &mut a,
        json!({"type": "room", "name": "Town Hall, Q4", "theme": "teal"}),
    );
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(
        e["room"],
        json!({"id": "town-hall", "name": "Town Hall, Q4", "theme": "teal", "version": 8})
    );

    send(&mut a, json!({"type": "rename", "name": "Ann Lee"}));
    let e = everyone_gets(&mut [&mut a, &mut b]);
    assert_eq!(
        e,
        json!({"type": "user", "version": 9, "userId": ann, "name": "Ann Lee"})
    );
    // Bad input: the sender hears why; nothing else happens.
    send(&mut b, json!({"type": "ask", "text": "   "}));
    assert_eq!(next_event(&mut b)["message"], "the question is empty");
    send(&mut b, json!({"type": "vote", "id": 9999}));
    assert_eq!(next_event(&mut b)["message"], "no such question");
    b.send(tungstenite::Message::text("not json")).unwrap();
    assert_eq!(next_event(&mut b)["type"], "error");

    // A window opened now (or reloaded) reads the same state over plain HTTP.
    let state = demo.call("GET", "/api/rooms/town-hall", None).json();
    assert_eq!(state["room"]["version"], 9);
    assert_eq!(state["room"]["theme"], "teal");
    let qs = state["questions"].as_array().unwrap();
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0]["author"], "Ann Lee");
    assert_eq!(qs[0]["answer"]["author"], "Ann Lee");
    assert_eq!(demo.call("GET", "/api/rooms/nowhere", None).status, 404);

    // "join as host" makes Bob a host of the existing room.
    assert_eq!(demo.join("Town Hall", "Bob", "bob", true)["host"], true);
    send(&mut b, json!({"type": "delete", "id": q1}));
    assert_eq!(everyone_gets(&mut [&mut a, &mut b])["type"], "deleted");
    // Knowing a host's public id (every window does) gives no rights.
    let mut thief = demo.socket("town-hall", &ann);
    send(
        &mut thief,
        json!({"type": "room", "name": "Pwned", "theme": "rose"}),
    );
    assert_eq!(next_event(&mut thief)["message"], "join the room first");
    // Nor does having joined another room.
    let mut visitor = demo.socket("town-hall", "cy");
    send(
        &mut visitor,
        json!({"type": "ask", "text": "Hi from elsewhere"}),
    );
    assert_eq!(next_event(&mut visitor)["message"], "join the room first");

    let mut other = c.get_ref().0.try_clone().unwrap();
    other.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut other, &mut byte), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the other room's socket got something"
    );
    c.close(None).unwrap();
}

#[test]
fn qa_bad_requests_are_refused() {
    let demo = Demo::start(DemoOptions::default());
    let bad_join = [
        json!({"room": "  ", "name": "Ann", "userId": "a"}),
        json!({"room": "r", "name": "", "userId": "a"}),
        json!({"room": "r", "name": "Ann", "userId": "a b"}),
        json!({"room": "r", "name": "x".repeat(41), "userId": "a"}),
    ];
    for body in &bad_join {
        let r = demo.call("POST", "/api/join", Some(body));
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(demo.call("POST", "/api/join", None).status, 415);
    // A socket with a bad room id or user id is refused at the handshake.
    for path in [
        "/api/websocket?roomId=Bad%20Id&userId=a",
        "/api/websocket?roomId=r",
    ] {
        let mut c = demo.proxy.client();
        let r = c.send_and_read(&upgrade_request_to(path));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    // A socket of someone who never joined can listen but not act.
    let mut ws = demo.socket("r", "stranger");
    send(&mut ws, json!({"type": "ask", "text": "hi"}));
    assert_eq!(next_event(&mut ws)["message"], "join the room first");
}

fn upgrade_request_to(path: &str) -> Vec<u8> {
    request(
        "GET",
        path,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    )
}

// ---------------------------------------------------------------------------------------------
// Chat

/// Reads SSE events (id, data) from a held stream.
struct Sse {
    client: Client,
    buf: String,
}

impl Sse {
    fn open(demo: &Demo, room: &str, last_event_id: Option<&str>) -> Sse {
        Sse::open_path(demo, &format!("/rooms/{room}/events/"), last_event_id)
    }

    fn open_path(demo: &Demo, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut client = demo.proxy.client();
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        client.send(&request("GET", path, &headers, b""));
        let head = client.read_stream_head();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert!(
            head.head.names_starting("grip-").is_empty(),
            "GRIP headers leaked"
        );
        Sse {
            client,
            buf: String::new(),
        }
    }

    /// The next event with data (comments and `retry:` skipped): (id, message JSON).
    fn next(&mut self) -> (i64, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    return (id, data);
                }
                continue;
            }
            let chunk = self.client.next_text();
            self.buf.push_str(&chunk);
        }
    }

    fn ids(&mut self, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.next().0).collect()
    }

    /// Whether no event with data arrives within `t` (comments and `retry:` do not count).
    fn quiet_for(&mut self, t: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.buf.contains("data:") {
                return false;
            }
            // Complete blocks without data (`retry:`, keep-alive comments) are done with.
            if let Some(end) = self.buf.rfind("\n\n") {
                self.buf.drain(..end + 2);
            }
            let Some(left) = t.checked_sub(start.elapsed()) else {
                return true;
            };
            if !self.client.has_data_within(left) {
                return true;
            }
            let chunk = self.client.next_text();
            self.buf.push_str(&chunk);
        }
    }
}

fn say(demo: &Demo, room: &str, name: &str, text: &str) -> Response {
    demo.call(
        "POST",
        &format!("/rooms/{room}/messages/"),
        Some(&json!({"name": name, "text": text})),
    )
}

#[test]
fn chat_delivers_over_sse_and_resumes_from_last_event_id() {
    let demo = Demo::start(DemoOptions::default());
    let mut a = Sse::open(&demo, "lobby", None);
    let mut b = Sse::open(&demo, "lobby", None);
    for i in 1..=3 {
        let r = say(&demo, "lobby", "Ann", &format!("hello {i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["id"], i);
    }
    for s in [&mut a, &mut b] {
        let (id, m) = s.next();
        assert_eq!(
            (id, m["name"].as_str(), m["text"].as_str()),
            (1, Some("Ann"), Some("hello 1"))
        );
        assert_eq!(s.ids(2), [2, 3]);
    }
    // B drops; two messages go by; B comes back with Last-Event-ID and gets exactly those.
    drop(b);
    say(&demo, "lobby", "Ann", "while you were away");
    say(&demo, "lobby", "Ann", "still away");
    let mut b = Sse::open(&demo, "lobby", Some("3"));
    let (id, m) = b.next();
    assert_eq!((id, m["text"].as_str()), (4, Some("while you were away")));
    assert_eq!(b.next().0, 5);
    assert!(
        b.quiet_for(Duration::from_millis(200)),
        "more than the missed messages"
    );
    assert_eq!(a.ids(2), [4, 5]);
    // Held again after catching up: new messages reach both once.
    say(&demo, "lobby", "Bob", "back");
    assert_eq!((a.next().0, b.next().0), (6, 6));
    assert!(b.quiet_for(Duration::from_millis(200)));
    // A page that starts a new EventSource says where it was in the query; the header, when
    // the browser sends one, is newer and wins.
    let mut d = Sse::open_path(&demo, "/rooms/lobby/events/?lastEventId=4", None);
    assert_eq!(d.ids(2), [5, 6]);
    let mut d = Sse::open_path(&demo, "/rooms/lobby/events/?lastEventId=2", Some("5"));
    assert_eq!(d.ids(1), [6]);
    assert!(d.quiet_for(Duration::from_millis(100)));
    // A new window gets the history; another room nothing of this one.
    let mut c = Sse::open(&demo, "lobby", None);
    assert_eq!(c.ids(6), [1, 2, 3, 4, 5, 6]);
    let mut other = Sse::open(&demo, "other", None);
    assert!(other.quiet_for(Duration::from_millis(200)));
    assert_eq!(say(&demo, "lobby", "", "x").status, 400);
    assert_eq!(say(&demo, "lobby", "Ann", " ").status, 400);
}

#[test]
fn chat_recovers_a_message_whose_publish_failed() {
    let demo = Demo::start(DemoOptions::default());
    let mut a = Sse::open(&demo, "ops", None);
    say(&demo, "ops", "Ann", "one");
    assert_eq!(a.next().0, 1);
    // Message 2 is stored but its publish fails (nothing listens there)...
    let dead: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    demo.origin.set_publish(dead, PublishAuth::None);
    let r = say(&demo, "ops", "Ann", "two");
    // Stored, so sent: the sender is not asked to send it again.
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(a.quiet_for(Duration::from_millis(300)));
    demo.origin
        .set_publish(demo.proxy.publish, PublishAuth::None);
    // ...so message 3's prev-id (2) is not what the stream last got (1): holdfast fetches the
    // next link with Grip-Last and the stream gets 2, then 3, each once.
    let start = Instant::now();
    say(&demo, "ops", "Ann", "three");
    let (id, m) = a.next();
    assert_eq!((id, m["text"].as_str()), (2, Some("two")));
    assert_eq!(a.next().0, 3);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        a.quiet_for(Duration::from_millis(300)),
        "a duplicate arrived"
    );
    say(&demo, "ops", "Ann", "four");
    assert_eq!(a.next().0, 4);
}

// ---------------------------------------------------------------------------------------------
// Persistence, pages, starter endpoints

#[test]
fn the_apps_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("holdfast-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let _ = std::fs::remove_file(&db);
    let options = DemoOptions {
        db_path: Some(db.clone()),
        ..DemoOptions::default()
    };
    {
        let demo = Demo::start(options.clone());
        demo.join("Kept", "Ann", "ann", false);
        let mut a = demo.socket("kept", "ann");
        send(&mut a, json!({"type": "ask", "text": "Still here?"}));
        assert_eq!(next_event(&mut a)["version"], 1);
        assert_eq!(say(&demo, "kept", "Ann", "persisted").status, 200);
        demo.origin.stop();
    }
    let demo = Demo::start(options);
    let state = demo.call("GET", "/api/rooms/kept", None).json();
    assert_eq!(state["questions"][0]["text"], "Still here?");
    assert_eq!(state["room"]["version"], 1);
    // Ann is still the room's host.
    assert_eq!(demo.join("Kept", "Ann", "ann", false)["host"], true);
    let mut s = Sse::open(&demo, "kept", None);
    assert_eq!(s.next().1["text"], "persisted");
    assert_eq!(say(&demo, "kept", "Ann", "next").json()["id"], 2);
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pages_and_starter_endpoints_are_served_through_holdfast() {
    let demo = Demo::start(DemoOptions::default());
    for (path, kind, needle) in [
        ("/", "text/html", "Live Q&amp;A board"),
        ("/qa/", "text/html", "/static/qa.js"),
        ("/chat/", "text/html", "/static/chat.js"),
        ("/static/qa.js", "text/javascript", "/api/websocket"),
        ("/static/chat.js", "text/javascript", "EventSource"),
        ("/static/style.css", "text/css", "--accent"),
    ] {
        let r = demo.call("GET", path, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap_or("").starts_with(kind),
            "{path}"
        );
        assert!(r.text().contains(needle), "{path}");
    }
    assert_eq!(demo.call("GET", "/static/nope.js", None).status, 404);
    // The landing page's curl example names the publish API this demo publishes to.
    let landing = demo.call("GET", "/", None).text();
    assert!(
        landing.contains(&format!("http://{}/publish/", demo.proxy.publish)),
        "{landing}"
    );

    let mut stream = demo.proxy.subscribe(
        "/stream",
        b"Stream open. Publish to channel 'test' and watch it arrive here.\n",
    );
    let mut ws = ws_connect(demo.proxy.http, "/ws");
    ws.send(tungstenite::Message::text("echo?")).unwrap();
    assert_eq!(ws_recv(&mut ws), tungstenite::Message::text("echo?"));
    demo.proxy
        .publish(&items(vec![json!({"channel": "test", "formats": {
            "http-stream": {"content": "hello\n"},
            "ws-message": {"content": "hello"},
        }})]));
    assert_eq!(stream.next_text(), "hello\n");
    assert_eq!(ws_recv(&mut ws), tungstenite::Message::text("hello"));
}

#[test]
fn chat_catches_up_page_by_page_through_next_links() {
    let demo = Demo::start(DemoOptions::default());
    // More than one page (200) behind: the first answer has no hold, only a next link, which
    // holdfast fetches at once; the last page holds.
    let start = Instant::now();
    for i in 1..=230 {
        let r = demo.call(
            "POST",
            "/rooms/backlog/messages/",
            Some(&json!({"name": "bot", "text": format!("m{i}")})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    eprintln!("230 messages posted in {:?}", start.elapsed());
    let mut s = Sse::open(&demo, "backlog", Some("0"));
    let ids = s.ids(230);
    assert_eq!(ids, (1..=230).collect::<Vec<i64>>());
    assert!(
        s.quiet_for(Duration::from_millis(200)),
        "more than the backlog"
    );
    say(&demo, "backlog", "bot", "live again");
    let (id, m) = s.next();
    assert_eq!((id, m["text"].as_str()), (231, Some("live again")));
}

#[test]
fn the_apps_publish_with_the_credentials_holdfast_asks_for() {
    let origin = DemoOrigin::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = ws_proxy(origin.addr.port(), |c| {
        c.publish.basic_auth = Some("demo:s3cret".into());
    });
    let demo = Demo { origin, proxy };
    demo.join("Auth", "Ann", "ann", false);
    let mut a = demo.socket("auth", "ann");
    // Without credentials the change is stored but the publish is refused: the actor hears why.
    demo.origin
        .set_publish(demo.proxy.publish, PublishAuth::None);
    send(&mut a, json!({"type": "ask", "text": "anyone?"}));
    let e = next_event(&mut a);
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("saved, but not published:") && message.contains("401"),
        "{e}"
    );
    demo.origin
        .set_publish(demo.proxy.publish, PublishAuth::Basic("demo:s3cret".into()));
    send(&mut a, json!({"type": "ask", "text": "now?"}));
    let e = next_event(&mut a);
    assert_eq!(
        (e["type"].as_str(), e["version"].as_i64()),
        (Some("question"), Some(2))
    );

    // A Bearer token signed with the key (and issuer) holdfast checks.
    let origin = DemoOrigin::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = ws_proxy(origin.addr.port(), |c| {
        c.publish.jwt_key = Some("k3y".into());
        c.publish.jwt_iss = Some("demo".into());
    });
    let bearer = |iss: &str| PublishAuth::Bearer {
        key: "k3y".into(),
        iss: Some(iss.into()),
    };
    origin.set_publish(proxy.publish, bearer("someone-else"));
    let demo = Demo { origin, proxy };
    demo.join("Auth", "Ann", "ann", false);
    let mut a = demo.socket("auth", "ann");
    send(&mut a, json!({"type": "ask", "text": "anyone?"}));
    assert!(
        next_event(&mut a)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("401")
    );
    demo.origin.set_publish(demo.proxy.publish, bearer("demo"));
    send(&mut a, json!({"type": "ask", "text": "now?"}));
    assert_eq!(next_event(&mut a)["type"], "question");
}
