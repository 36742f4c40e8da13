//! Fan-out of one delivery to this worker's subscribers.
//!
//! Per subscriber this costs a reference-count increment and a queue push; the bytes were encoded
//! once by the publish listener. Sockets are written later, once per connection per inbox drain
//! (`Worker::flush_dirty`), so a burst of publishes reaches a subscriber in one `writev`. Tasks are
//! woken only for what needs them: a long-poll answer, a stream `close`, a full socket, a dead one.

use std::sync::Arc;

use bytes::Bytes;

use super::conns::{Sink, ev};
use super::worker::{Queued, Worker};
use crate::hub::ConnId;
use crate::hub::delivery::{Delivery, ResponsePayload, StreamPayload, WsPayload};
use crate::proto::http1::LAST_CHUNK;

/// Hands `d` to every local subscriber of its channel.
pub fn deliver(w: &Worker, d: &Arc<Delivery>) {
    let mut finished: Vec<ConnId> = Vec::new();
    {
        let channels = w.channels.borrow();
        let Some(subs) = channels.subscribers(&d.channel) else {
            return;
        };
        let mut conns = w.conns.borrow_mut();
        let mut delivered = 0u64;
        for &id in subs {
            let Some(slot) = conns.get_mut(id) else {
                debug_assert!(false, "subscriber {id:?} has no slot");
                continue;
            };
            match slot.sink {
                Sink::Stream { chunked } => match &d.stream {
                    Some(StreamPayload::Send {
                        raw,
                        chunked: framed,
                    }) => {
                        let bytes = if chunked { framed } else { raw };
                        match w.queue(slot, id, bytes.clone()) {
                            Queued::Yes => delivered += 1,
                            Queued::Dropped => {}
                            Queued::Cut => finished.push(id),
                        }
                    }
                    Some(StreamPayload::Close) => {
                        if chunked {
                            let _ = w.queue(slot, id, Bytes::from_static(LAST_CHUNK));
                        }
                        slot.notify(ev::CLOSE);
                        finished.push(id);
                    }
                    Some(StreamPayload::Hint) => {
                        tracing::debug!("hint action on a stream: re-fetch is not supported yet");
                    }
                    None => {}
                },
                Sink::Response => {
                    if let Some(ResponsePayload::Send(_)) = &d.response {
                        slot.response = Some(d.clone());
                        slot.notify(ev::RESPONSE);
                        finished.push(id);
                        delivered += 1;
                    }
                }
                Sink::WebSocket => match &d.ws {
                    Some(WsPayload::Send(frame)) => match w.queue(slot, id, frame.clone()) {
                        Queued::Yes => delivered += 1,
                        Queued::Dropped => {}
                        Queued::Cut => finished.push(id),
                    },
                    Some(WsPayload::Close(frame)) => {
                        let _ = w.queue(slot, id, frame.clone());
                        slot.notify(ev::CLOSE);
                        finished.push(id);
                    }
                    Some(WsPayload::Refresh) => slot.notify(ev::REFRESH),
                    None => {}
                },
                Sink::None => {}
            }
        }
        w.stats.delivered.set(w.stats.delivered.get() + delivered);
    }
    // A long-poll takes one answer and a closed stream takes nothing more: leave their channels
    // now so later items in this same batch skip them.
    for id in finished {
        w.unsubscribe_all(id);
    }
}
