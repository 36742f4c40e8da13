//! Fan-out of one delivery to this worker's subscribers.
//!
//! Per subscriber this costs a reference-count increment and a queue push; the bytes were encoded
//! once by the publish listener. Sockets are written later, once per connection per inbox drain
//! (`Worker::flush_dirty`), so a burst of publishes reaches a subscriber in one `writev`. Tasks are
//! woken only for what needs them: a long-poll answer, a stream `close`, a fetch from the origin
//! (hint, prev-id conflict), a full socket, a dead one.

use std::sync::Arc;

use bytes::Bytes;

use super::conns::{ConnSlot, Sink, ev};
use super::worker::{Queued, Worker};
use crate::hub::ConnId;
use crate::hub::delivery::{Delivery, ResponsePayload, StreamPayload, WsPayload};
use crate::proto::filter::{self, Decision};
use crate::proto::http1::LAST_CHUNK;
use crate::proto::ws;

/// Items a subscriber keeps while a fetch from the origin is under way; past it they are dropped
/// and another fetch follows (the origin is the source of truth for what was missed).
const PENDING_MAX: usize = 1_000;

/// Where an item stands for one subscriber that may track prev-ids (reliable delivery).
enum Sequence {
    Deliver,
    /// A fetch from the origin is under way: the item waits until it is applied.
    Held,
    /// The item does not follow what the subscriber got last: fetch from the origin instead.
    Conflict,
}

/// Hands `d` to every local subscriber of its channel.
pub fn deliver(w: &Worker, d: &Arc<Delivery>) {
    if let Some(id) = &d.id {
        w.note_last_id(&d.channel, id);
    }
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
            if deliver_one(w, slot, id, d, &mut finished) {
                delivered += 1;
            }
        }
        crate::metrics::WorkerMetrics::add(&w.metrics.delivered, delivered);
    }
    // A long-poll takes one answer and a closed stream takes nothing more: leave their channels
    // now so later items in this same batch skip them.
    for id in finished {
        w.unsubscribe_all(id);
    }
}

/// Pushpin's rule (`httpsession.cpp`): on a channel with a prev-id, an item is delivered only if
/// its prev-id equals the id of the last item delivered there, which then becomes the item's id.
fn sequence(slot: &mut ConnSlot, d: &Arc<Delivery>) -> Sequence {
    let Some(rec) = slot.recovery.as_deref_mut() else {
        return Sequence::Deliver;
    };
    if rec.fetching {
        if rec.pending.len() < PENDING_MAX {
            rec.pending.push(d.clone());
        }
        return Sequence::Held;
    }
    match rec.prev_id_mut(&d.channel) {
        Some(prev) if prev.is_some() => {
            if prev.as_deref() != d.prev_id.as_deref() {
                rec.fetching = true;
                return Sequence::Conflict;
            }
            *prev = d.id.clone();
            Sequence::Deliver
        }
        _ => Sequence::Deliver,
    }
}

/// Whether `d` follows what this subscriber got last on its channel (or is not sequenced).
pub fn follows(slot: &ConnSlot, d: &Delivery) -> bool {
    let Some(rec) = slot.recovery.as_deref() else {
        return true;
    };
    match rec.prev_ids.iter().find(|(c, _)| **c == *d.channel) {
        Some((_, Some(prev))) => d.prev_id.as_deref() == Some(&**prev),
        _ => true,
    }
}

/// One subscriber's share of a delivery; true when something was queued for it.
pub fn deliver_one(
    w: &Worker,
    slot: &mut ConnSlot,
    id: ConnId,
    d: &Arc<Delivery>,
    finished: &mut Vec<ConnId>,
) -> bool {
    let relevant = match slot.sink {
        Sink::Stream { .. } => d.stream.is_some(),
        Sink::Response => d.response.is_some(),
        Sink::WebSocket => d.ws.is_some(),
        Sink::None => false,
    };
    if !relevant {
        return false;
    }
    match sequence(slot, d) {
        Sequence::Deliver => {}
        Sequence::Held => return false,
        Sequence::Conflict => {
            slot.notify(ev::UPDATE);
            return false;
        }
    }
    // Filters run after sequencing, as Pushpin's (build-id sees the advanced prev-id).
    match apply_filters(w, slot, d) {
        Filtered::Deliver => {}
        Filtered::Skip => return false,
        Filtered::Replace(content) => return deliver_replaced(w, slot, id, d, content, finished),
    }
    match slot.sink {
        Sink::Stream { chunked } => deliver_stream(w, slot, id, d, chunked, finished),
        Sink::Response => match &d.response {
            Some(ResponsePayload::Send(_)) => {
                slot.response = Some(d.clone());
                slot.notify(ev::RESPONSE);
                finished.push(id);
                true
            }
            Some(ResponsePayload::Hint) => {
                slot.notify(ev::UPDATE);
                false
            }
            None => false,
        },
        Sink::WebSocket => deliver_ws(w, slot, id, d, finished),
        Sink::None => false,
    }
}

/// What a subscriber's filters make of an item.
enum Filtered {
    Deliver,
    Skip,
    /// Deliver this content instead (for this subscriber only).
    Replace(Vec<u8>),
}

/// The published payload of a WebSocket frame (the frame minus its header).
fn ws_payload(frame: &[u8]) -> &[u8] {
    match ws::decode_header(frame) {
        Ok(Some((_, header_len))) => &frame[header_len..],
        _ => &[],
    }
}

fn apply_filters(w: &Worker, slot: &ConnSlot, d: &Delivery) -> Filtered {
    let Some(f) = slot.filters.as_deref() else {
        return Filtered::Deliver;
    };
    let filters = f.for_channel(&d.channel);
    if filters.is_empty() {
        return Filtered::Deliver;
    }
    let content: &[u8] = match (slot.sink, &d.stream, &d.response, &d.ws) {
        (Sink::Stream { .. }, Some(StreamPayload::Send { raw, .. }), _, _) => raw,
        (Sink::Response, _, Some(ResponsePayload::Send(r)), _) => &r.body,
        (Sink::WebSocket, _, _, Some(WsPayload::Send(frame))) => ws_payload(frame),
        _ => return Filtered::Deliver,
    };
    let subs = &slot.subs;
    let is_subscribed = |c: &str| subs.iter().any(|s| &**s == c);
    let rec = slot.recovery.as_deref();
    let prev_id = |c: &str| {
        rec.and_then(|r| r.prev_ids.iter().find(|(n, _)| &**n == c))
            .and_then(|(_, id)| id.as_deref())
    };
    let ctx = filter::Context {
        subscription_meta: &f.meta,
        publish_meta: &d.meta,
        is_subscribed: &is_subscribed,
        prev_id: &prev_id,
        output_bytes_max: w.settings().config.grip.filter_output_bytes_max,
    };
    match filter::apply(filters, &ctx, content) {
        Decision::Deliver => Filtered::Deliver,
        Decision::Skip => Filtered::Skip,
        Decision::Replace(content) => Filtered::Replace(content),
        Decision::Error(e) if e.is_limit() => {
            crate::metrics::WorkerMetrics::inc(&w.metrics.filter_over_limit);
            tracing::warn!(
                channel = %d.channel,
                "{e} (grip.filter_output_bytes_max): item not delivered to this subscriber"
            );
            Filtered::Skip
        }
        Decision::Error(e) => {
            tracing::debug!("filter error, item not delivered to this subscriber: {e}");
            Filtered::Skip
        }
    }
}

/// Delivers content a filter rewrote for this subscriber, framed for its kind.
fn deliver_replaced(
    w: &Worker,
    slot: &mut ConnSlot,
    id: ConnId,
    d: &Arc<Delivery>,
    content: Vec<u8>,
    finished: &mut Vec<ConnId>,
) -> bool {
    let bytes = match slot.sink {
        Sink::Stream { chunked } => super::hold::frame(&content, chunked),
        Sink::WebSocket => {
            let opcode = match &d.ws {
                Some(WsPayload::Send(frame)) => ws::decode_header(frame)
                    .ok()
                    .flatten()
                    .map_or(ws::Opcode::Text, |(h, _)| h.opcode),
                _ => ws::Opcode::Text,
            };
            let mut frame = Vec::with_capacity(content.len() + ws::HEADER_BYTES_MAX);
            ws::encode_frame(&mut frame, true, opcode, &content, None);
            Bytes::from(frame)
        }
        Sink::Response => {
            let Some(changed) = d.with_response_body(content) else {
                return false;
            };
            slot.response = Some(Arc::new(changed));
            slot.notify(ev::RESPONSE);
            finished.push(id);
            return true;
        }
        Sink::None => return false,
    };
    match w.queue(slot, id, bytes) {
        Queued::Yes => true,
        Queued::Dropped => {
            if matches!(slot.sink, Sink::Stream { .. }) {
                recover_dropped(slot, d);
            }
            false
        }
        Queued::Cut => {
            finished.push(id);
            false
        }
    }
}

/// An item dropped by `slow_consumer = "drop_messages"` for a stream that tracks prev-ids (the
/// protocol's recovery signal): the channel's last id goes back to what the subscriber really
/// got, and it fetches from the origin (next link with `Grip-Last`), which sends what it missed;
/// items published meanwhile wait for the fetch as after any conflict. Without prev-ids a drop
/// is only counted.
fn recover_dropped(slot: &mut ConnSlot, d: &Delivery) {
    let Some(rec) = slot.recovery.as_deref_mut() else {
        return;
    };
    let Some(prev) = rec.prev_id_mut(&d.channel).filter(|p| p.is_some()) else {
        return;
    };
    // sequence() moved it from the item's prev-id to its id just before the drop.
    *prev = d.prev_id.as_deref().map(Box::from);
    rec.fetching = true;
    slot.notify(ev::UPDATE);
}

/// Stream content, a close, or a hint (fetch from the origin) for a streaming subscriber.
fn deliver_stream(
    w: &Worker,
    slot: &mut ConnSlot,
    id: ConnId,
    d: &Arc<Delivery>,
    chunked: bool,
    finished: &mut Vec<ConnId>,
) -> bool {
    match &d.stream {
        Some(StreamPayload::Send {
            raw,
            chunked: framed,
        }) => {
            let bytes = if chunked { framed } else { raw };
            match w.queue(slot, id, bytes.clone()) {
                Queued::Yes => return true,
                Queued::Dropped => recover_dropped(slot, d),
                Queued::Cut => finished.push(id),
            }
        }
        Some(StreamPayload::Close) => {
            if chunked {
                // Framing: never dropped, or the client would read the next response as body.
                let _ = w.queue_own(slot, id, Bytes::from_static(LAST_CHUNK));
            }
            slot.notify(ev::CLOSE);
            finished.push(id);
        }
        Some(StreamPayload::Hint) => slot.notify(ev::UPDATE),
        None => {}
    }
    false
}

fn deliver_ws(
    w: &Worker,
    slot: &mut ConnSlot,
    id: ConnId,
    d: &Arc<Delivery>,
    finished: &mut Vec<ConnId>,
) -> bool {
    match &d.ws {
        Some(WsPayload::Send(frame)) => match w.queue(slot, id, frame.clone()) {
            Queued::Yes => return true,
            Queued::Dropped => {}
            Queued::Cut => finished.push(id),
        },
        Some(WsPayload::Close(frame)) => {
            let _ = w.queue_own(slot, id, frame.clone());
            slot.notify(ev::CLOSE);
            finished.push(id);
        }
        Some(WsPayload::Refresh) => slot.notify(ev::REFRESH),
        None => {}
    }
    false
}
