//! WebSocket-over-HTTP event bodies.
//!
//! Properties: `decode_events` never panics on any body; a body it accepts re-encodes to a body
//! that decodes to the same events, and it ends on an event boundary (so it concatenates);
//! for any list of events, `decode_events(encode(events)) == events` (once the one documented loss
//! is applied: a CLOSE without a code carries no reason); `encoded_len` is the encoded size; and
//! bodies concatenate: decoding `a ++ b` gives the events of `a` then those of `b`.
#![no_main]
use arbitrary::Arbitrary;
use holdfast::proto::wsoh::{Event, decode_events, encode_event, encoded_len};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Events(Vec<Ev>),
}

/// Mirror of `wsoh::Event`, which has no `Arbitrary` impl.
#[derive(Arbitrary, Debug, Clone)]
enum Ev {
    Open,
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close { code: Option<u16>, reason: Vec<u8> },
    Disconnect,
}

impl From<Ev> for Event {
    fn from(e: Ev) -> Event {
        match e {
            Ev::Open => Event::Open,
            Ev::Text(b) => Event::Text(b),
            Ev::Binary(b) => Event::Binary(b),
            Ev::Ping(b) => Event::Ping(b),
            Ev::Pong(b) => Event::Pong(b),
            Ev::Close { code, reason } => Event::Close { code, reason },
            Ev::Disconnect => Event::Disconnect,
        }
    }
}

/// What survives the wire: a CLOSE without a code is the bare `CLOSE\r\n`.
fn normalized(e: Event) -> Event {
    match e {
        Event::Close { code: None, .. } => Event::Close {
            code: None,
            reason: Vec::new(),
        },
        other => other,
    }
}

fn encode(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        let before = out.len();
        encode_event(&mut out, e);
        assert_eq!(out.len() - before, encoded_len(e), "encoded_len of {e:?}");
    }
    out
}

fuzz_target!(|input: Input| match input {
    Input::Raw(body) => {
        let Ok(events) = decode_events(&body) else {
            return;
        };
        let wire = encode(&events);
        assert_eq!(
            decode_events(&wire).as_ref(),
            Ok(&events),
            "re-encoded body decodes differently"
        );
        // Every accepted body ends on an event boundary, so bodies concatenate.
        let mut twice = body.clone();
        twice.extend_from_slice(&body);
        let mut want2 = events.clone();
        want2.extend(events);
        assert_eq!(decode_events(&twice), Ok(want2));
    }
    Input::Events(evs) => {
        let events: Vec<Event> = evs.into_iter().map(Event::from).collect();
        let wire = encode(&events);
        let want: Vec<Event> = events.iter().cloned().map(normalized).collect();
        assert_eq!(decode_events(&wire), Ok(want.clone()));
        // Concatenation: a body followed by itself decodes to the events twice.
        let mut twice = wire.clone();
        twice.extend_from_slice(&wire);
        let mut want2 = want.clone();
        want2.extend(want);
        assert_eq!(decode_events(&twice), Ok(want2));
    }
});
