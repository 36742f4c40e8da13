//! The per-worker slab of client connections.
//!
//! Each accepted socket gets a [`ConnSlot`]: the raw fd the fan-out writes to, what kind of
//! subscriber it is, its outbox, its subscriptions and the events the worker has posted for its
//! task. The slot is small and owns no buffer while the connection is idle; the connection's task
//! keeps everything else. Slots are addressed by [`ConnId`] (key + generation).

use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use slab::Slab;

use crate::hub::ConnId;
use crate::hub::delivery::Delivery;
use crate::hub::slow_consumer::Backlog;
use crate::io::outbox::Outbox;
use crate::proto::filter::Filter;

/// Events the worker posts to a connection's task (bit flags).
pub mod ev {
    /// A timer this connection scheduled may be due: check the clock.
    pub const TIMER: u16 = 1;
    /// A long-poll answer is waiting in `ConnSlot::response`.
    pub const RESPONSE: u16 = 2;
    /// A published `close` action ended the stream; finish once the outbox is flushed.
    pub const CLOSE: u16 = 4;
    /// The socket buffer is full: wait for writability, then flush.
    pub const BLOCKED: u16 = 8;
    /// Writing failed or the slow-consumer policy cut the connection: drop it.
    pub const DEAD: u16 = 16;
    /// The worker is shutting down.
    pub const SHUTDOWN: u16 = 32;
    /// A request to the origin made on the connection's behalf finished.
    pub const ORIGIN: u16 = 64;
    /// A published `refresh` asks for a WebSocket-over-HTTP request.
    pub const REFRESH: u16 = 128;
    /// Fetch from the origin again (a `hint`, a prev-id conflict, `POST /recover`).
    pub const UPDATE: u16 = 256;
}

/// Subscription filters and meta of a subscriber that uses them (most do not).
#[derive(Debug, Default)]
pub struct SubscriberFilters {
    /// Full channel name → the filters named on that subscription.
    pub by_channel: Vec<(Rc<str>, Vec<Filter>)>,
    /// Subscription meta (`Grip-Set-Meta`, WebSocket `set-meta`), e.g. `user`.
    pub meta: Vec<(String, String)>,
}

impl SubscriberFilters {
    pub fn for_channel(&self, channel: &str) -> &[Filter] {
        self.by_channel
            .iter()
            .find(|(c, _)| &**c == channel)
            .map_or(&[][..], |(_, f)| f)
    }
}

/// Reliable-delivery state of a held connection whose channels carry `prev-id`s.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Full channel name → the id of the last item this subscriber got (None: not tracked).
    pub prev_ids: Vec<(Rc<str>, Option<Box<str>>)>,
    /// A fetch from the origin is under way: items wait in `pending` until it is applied.
    pub fetching: bool,
    /// Items published while fetching, replayed against the new prev-ids afterwards.
    pub pending: Vec<Arc<Delivery>>,
}

impl Recovery {
    /// The tracked prev-id of a channel: None if the channel is not tracked.
    pub fn prev_id_mut(&mut self, channel: &str) -> Option<&mut Option<Box<str>>> {
        self.prev_ids
            .iter_mut()
            .find(|(c, _)| &**c == channel)
            .map(|(_, id)| id)
    }
}

/// What a connection does with published items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Not held: publishes are ignored.
    None,
    /// `Grip-Hold: stream`: append `http-stream` content, chunk-framed or raw.
    Stream { chunked: bool },
    /// `Grip-Hold: response`: the first `http-response` answers the request.
    Response,
    /// A WebSocket: `ws-message` frames, `close`, `refresh`.
    WebSocket,
}

pub struct ConnSlot {
    pub generation: u32,
    pub fd: RawFd,
    pub sink: Sink,
    /// Pending [`ev`] flags for the task.
    pub events: u16,
    /// The socket refused bytes; only the connection's task flushes until it is writable again.
    pub write_blocked: bool,
    /// Queued on the worker's dirty list for the next flush.
    pub dirty: bool,
    /// On the worker's backlog list (blocked once; the slow-consumer check looks at it).
    pub backlogged: bool,
    /// The slow-consumer policy cut it: nothing more is queued, its task ends it.
    pub cut: bool,
    pub outbox: Outbox,
    pub waker: Option<Waker>,
    pub subs: Vec<Rc<str>>,
    /// The long-poll answer, once published.
    pub response: Option<Arc<Delivery>>,
    /// Earliest time the timer wheel holds an entry for this connection (0: none).
    pub timer_at_ms: u64,
    /// When the kernel last took bytes from the outbox, or it last became non-empty: a
    /// subscriber whose queue has not moved since is stalled. Keep-alives in idle mode count
    /// from it too (bytes written or on their way).
    pub progress_ms: u64,
    /// Only for holds that use prev-id (reliable delivery); None otherwise.
    pub recovery: Option<Box<Recovery>>,
    /// Only for subscribers with filters or meta; None otherwise.
    pub filters: Option<Box<SubscriberFilters>>,
    /// The TLS session of a connection accepted on a TLS listener: every byte to and from the
    /// client goes through it, the fan-out's writes included.
    pub tls: Option<Box<rustls::ServerConnection>>,
}

impl ConnSlot {
    fn new(generation: u32, fd: RawFd) -> ConnSlot {
        ConnSlot {
            generation,
            fd,
            sink: Sink::None,
            events: 0,
            write_blocked: false,
            dirty: false,
            backlogged: false,
            cut: false,
            outbox: Outbox::default(),
            waker: None,
            subs: Vec::new(),
            response: None,
            timer_at_ms: 0,
            progress_ms: 0,
            recovery: None,
            filters: None,
            tls: None,
        }
    }

    /// The outbox as the slow-consumer policy sees it.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            queued_bytes: self.outbox.bytes(),
            progress_ms: self.progress_ms,
        }
    }

    /// Posts events and wakes the connection's task.
    pub fn notify(&mut self, events: u16) {
        self.events |= events;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
pub struct ConnTable {
    slab: Slab<ConnSlot>,
    next_generation: u32,
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable::default()
    }

    pub fn insert(&mut self, fd: RawFd) -> ConnId {
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let key = self.slab.insert(ConnSlot::new(generation, fd));
        ConnId {
            key: key as u32,
            generation,
        }
    }

    pub fn get(&self, id: ConnId) -> Option<&ConnSlot> {
        self.slab
            .get(id.key as usize)
            .filter(|slot| slot.generation == id.generation)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut ConnSlot> {
        self.slab
            .get_mut(id.key as usize)
            .filter(|slot| slot.generation == id.generation)
    }

    /// Removes the slot; the caller must already have dropped its subscriptions.
    pub fn remove(&mut self, id: ConnId) -> Option<ConnSlot> {
        self.get(id)?;
        let slot = self.slab.remove(id.key as usize);
        debug_assert!(slot.subs.is_empty(), "slot removed while still subscribed");
        Some(slot)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every live connection's id.
    pub fn ids(&self) -> Vec<ConnId> {
        self.slab
            .iter()
            .map(|(key, slot)| ConnId {
                key: key as u32,
                generation: slot.generation,
            })
            .collect()
    }

    /// Bytes queued in every outbox (a full scan: for checking the worker's running total).
    pub fn outbox_bytes(&self) -> usize {
        self.slab.iter().map(|(_, s)| s.outbox.bytes()).sum()
    }

    /// Posts events to a connection if it still exists.
    pub fn notify(&mut self, id: ConnId, events: u16) {
        if let Some(slot) = self.get_mut(id) {
            slot.notify(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_gets_a_new_generation() {
        let mut t = ConnTable::new();
        let a = t.insert(10);
        assert!(t.remove(a).is_some());
        let b = t.insert(11);
        assert_eq!(a.key, b.key);
        assert_ne!(a.generation, b.generation);
        assert!(
            t.get(a).is_none(),
            "the old id must not reach the new connection"
        );
        assert_eq!(t.get(b).map(|s| s.fd), Some(11));
        assert!(t.remove(a).is_none());
    }

    #[test]
    fn notify_sets_events_and_wakes_once() {
        let mut t = ConnTable::new();
        let a = t.insert(3);
        t.notify(a, ev::TIMER);
        t.notify(a, ev::CLOSE);
        assert_eq!(t.get(a).map(|s| s.events), Some(ev::TIMER | ev::CLOSE));
    }

    /// The per-connection state a held idle connection costs the worker, printed for the record.
    #[test]
    fn slot_size_is_small() {
        // A slab entry is the slot plus the enum tag (padded to 8 bytes).
        let size = std::mem::size_of::<ConnSlot>() + 8;
        println!(
            "size_of ConnSlot = {} bytes, slab entry ~{size} bytes",
            size - 8
        );
        assert!(size <= 160, "ConnSlot grew to {size} bytes");
    }
}
