//! django-eventstream behind holdfast: a Django project on PyPI's `django-eventstream` and
//! `django-grip`, served by uvicorn (tests/apps/django_events), with holdfast in front of it.
//! Nothing on the GRIP side was written here: the SSE endpoint, its instructions (`Grip-Hold:
//! stream`, `Grip-Channel: events-C; prev-id=N; filter=build-id; filter=skip-users`,
//! `user-anonymous; filter=require-sub`, `Grip-Set-Meta`, `Grip-Keep-Alive`, `Grip-Link rel=next`)
//! and the publishes (http-stream items with `id`/`prev-id` and a `%I` build-id placeholder, sent
//! by `send_event` through gripcontrol with a Bearer JWT) are the libraries'.
//!
//! holdfast signs with `grip.sig_key` (iss "pushpin"); the app verifies it (django-grip, with the
//! same key) and refuses unsigned requests to /events/ (without GRIP django-eventstream would
//! stream by itself and these tests would prove nothing). holdfast's publish API requires the
//! JWT the app sends (key, iss "django-app").
//!
//! This test installs nothing: scripts/test.sh installs tests/apps/requirements.txt into `.venv`.
//! Without python3 at all the tests are skipped (with a message); missing packages fail them.

mod common;
mod django_app;

use std::time::{Duration, Instant};

use common::*;
use django_app::*;
use serde_json::{Value, json};

const KEY: &str = "holdfast-django-test-key-0123456789abcdef";

/// The Django app and holdfast in front of it, each knowing the other.
fn stack(name: &str) -> Option<(DjangoApp, Proxy)> {
    let python = match python_ready(name) {
        Ok(p) => p,
        Err(skip) => {
            eprintln!("{skip}");
            return None;
        }
    };
    let pending = PendingDjango::spawn(&python, name);
    let proxy = Proxy::start({
        let mut c = config(&format!("* 127.0.0.1:{}\n", pending.port));
        c.grip.sig_key = Some(KEY.to_string());
        c.publish.jwt_key = Some(KEY.to_string());
        c.publish.jwt_iss = Some("django-app".to_string());
        c
    });
    let app = pending.configure(json!([{
        "control_uri": format!("http://{}", proxy.publish),
        "control_iss": "django-app",
        "key": KEY,
        "verify_iss": "pushpin",
    }]));
    Some((app, proxy))
}

fn events_path(channel: &str) -> String {
    format!("/events/?channel={channel}")
}

/// Every request holdfast made to /events/ carried a Grip-Sig the app accepted.
fn assert_all_signed(app: &DjangoApp) -> Vec<Value> {
    let log = app.log();
    assert!(!log.is_empty(), "the app saw no /events/ request");
    for entry in &log {
        assert_eq!(entry["signed"], json!(true), "unsigned request: {entry}");
    }
    log
}

#[test]
fn send_event_reaches_every_sse_client_in_order() {
    let Some((app, proxy)) = stack("live") else {
        return;
    };
    let ch = "live";
    let mut clients: Vec<Sse> = (0..3)
        .map(|_| {
            let mut s = Sse::open(proxy.http, &events_path(ch), None);
            assert_eq!(
                s.head.header("content-type"),
                Some("text/event-stream"),
                "{:?}",
                s.head.head
            );
            assert!(
                s.head.head.names_starting("grip-").is_empty(),
                "Grip-* headers reached the client: {:?}",
                s.head.head
            );
            s.expect_open();
            s
        })
        .collect();

    // 20 events in 4 publishing requests.
    let mut sent = Vec::new();
    for batch in 0..4 {
        let from = batch * 5 + 1;
        sent.extend(app.send(ch, &data_range(ch, from, from + 4)));
    }
    let want: Vec<String> = (1..=20).map(|n| format!("{ch}:{n}")).collect();
    assert_eq!(sent, want, "ids django-eventstream gave the events");
    eprintln!("events sent: {}", sent.len());

    for (i, c) in clients.iter_mut().enumerate() {
        let got = c.messages(20, Duration::from_secs(15));
        check_sequence(
            &format!("client {i}"),
            &got,
            ch,
            &(1..=20).collect::<Vec<_>>(),
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let extra = c.extra_messages(Duration::from_millis(500));
        assert!(extra.is_empty(), "client {i} got more: {extra:?}");
    }
    let log = assert_all_signed(&app);
    assert_eq!(log.len(), 3, "one origin request per client: {log:?}");
}

#[test]
fn reconnect_with_last_event_id_gets_missed_events_once() {
    let Some((app, proxy)) = stack("resume") else {
        return;
    };
    let ch = "resume";
    // B stays connected all along; A leaves and comes back.
    let mut b = Sse::open(proxy.http, &events_path(ch), None);
    b.expect_open();
    let mut a = Sse::open(proxy.http, &events_path(ch), None);
    a.expect_open();
    app.send(ch, &data_range(ch, 1, 3));
    let got = a.messages(3, Duration::from_secs(10));
    check_sequence("A before leaving", &got, ch, &[1, 2, 3]);
    let last_seen = got.last().unwrap().id.clone().unwrap();
    drop(a);

    // Missed while away.
    app.send(ch, &data_range(ch, 4, 8));
    let mut a = Sse::open(proxy.http, &events_path(ch), Some(&last_seen));
    // django-eventstream answers a resume with stream-open (the client's own request is not a
    // next-link fetch), then the missed events, then holds with prev-id resume:8.
    a.expect_open();
    let missed = a.messages(5, Duration::from_secs(10));
    app.send(ch, &data_range(ch, 9, 10));
    let live = a.messages(2, Duration::from_secs(10));
    let got: Vec<SseEvent> = missed.into_iter().chain(live).collect();
    check_sequence(
        "A after Last-Event-ID reconnect",
        &got,
        ch,
        &[4, 5, 6, 7, 8, 9, 10],
    );
    assert!(a.extra_messages(Duration::from_millis(500)).is_empty());
    let log = assert_all_signed(&app);
    assert!(
        log.iter()
            .any(|e| e["last_event_id"] == json!(format!("{ch}:3"))),
        "Last-Event-ID did not reach the app: {log:?}"
    );

    // More missed events than django-eventstream answers at once (100 per channel): the first
    // answer has no hold and a Grip-Link rel=next with lastEventId=resume:110; holdfast streams
    // it, fetches the next page, and that one holds.
    drop(a);
    let t = Instant::now();
    app.send(ch, &data_range(ch, 11, 160));
    eprintln!("150 send_event calls took {:?}", t.elapsed());
    let mut a = Sse::open(proxy.http, &events_path(ch), Some(&format!("{ch}:10")));
    a.expect_open();
    let missed = a.messages(150, Duration::from_secs(20));
    app.send(ch, &data_range(ch, 161, 161));
    let live = a.messages(1, Duration::from_secs(10));
    let got: Vec<SseEvent> = missed.into_iter().chain(live).collect();
    check_sequence(
        "A after missing 150 (paged)",
        &got,
        ch,
        &(11..=161).collect::<Vec<_>>(),
    );
    assert!(a.extra_messages(Duration::from_millis(500)).is_empty());
    let log = assert_all_signed(&app);
    assert!(
        log.iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| p.contains("link=next") && p.contains("lastEventId=resume%3A110"))),
        "holdfast never fetched the next page: {log:?}"
    );

    // B saw everything live, once.
    let got = b.messages(161, Duration::from_secs(15));
    check_sequence(
        "B (connected throughout)",
        &got,
        ch,
        &(1..=161).collect::<Vec<_>>(),
    );
}

#[test]
fn a_publish_holdfast_never_got_is_recovered_from_the_next_link() {
    let Some((app, proxy)) = stack("gap") else {
        return;
    };
    let ch = "gap";
    let mut a = Sse::open(proxy.http, &events_path(ch), None);
    a.expect_open();
    let mut b = Sse::open(proxy.http, &events_path(ch), None);
    b.expect_open();
    app.send(ch, &data_range(ch, 1, 2));
    for (who, c) in [("A", &mut a), ("B", &mut b)] {
        let got = c.messages(2, Duration::from_secs(10));
        check_sequence(&format!("{who} before the gap"), &got, ch, &[1, 2]);
    }

    // Event 3 is stored but its publish never happens; event 4 is published with prev-id 3.
    let lost = app.store_unpublished(ch, &data_range(ch, 3, 3));
    assert_eq!(lost, vec![format!("{ch}:3")]);
    let t = Instant::now();
    app.send(ch, &data_range(ch, 4, 4));
    // holdfast holds item 4 for message_wait (5 s) waiting for 3, then delivers it; the
    // subscribers' prev-id (2) does not match, so each fetches its Grip-Link rel=next with
    // `Grip-Last: events-gap; last-id=2` and django-eventstream answers events 3 and 4.
    let mut got_a = a.messages(2, Duration::from_secs(20));
    let recovered_after = t.elapsed();
    let mut got_b = b.messages(2, Duration::from_secs(20));
    eprintln!("gap recovered after {recovered_after:?}");
    app.send(ch, &data_range(ch, 5, 5));
    got_a.extend(a.messages(1, Duration::from_secs(10)));
    got_b.extend(b.messages(1, Duration::from_secs(10)));
    check_sequence("A across the lost publish", &got_a, ch, &[3, 4, 5]);
    check_sequence("B across the lost publish", &got_b, ch, &[3, 4, 5]);
    assert!(a.extra_messages(Duration::from_millis(500)).is_empty());
    assert!(b.extra_messages(Duration::from_millis(200)).is_empty());

    let log = assert_all_signed(&app);
    let recoveries: Vec<&Value> = log
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("link=next")))
        .collect();
    assert!(!recoveries.is_empty(), "no next-link fetch: {log:?}");
    for r in &recoveries {
        assert_eq!(
            r["grip_last"],
            json!(format!("events-{ch}; last-id=2")),
            "next-link fetch without the right Grip-Last: {r}"
        );
    }
    eprintln!("next-link fetches: {}", recoveries.len());
}
