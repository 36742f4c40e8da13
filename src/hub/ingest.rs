//! Ordering publishes into every worker's inbox.
//!
//! Runs on the publish thread. Items go through the sequencer (per-channel `id`/`prev-id`
//! order, duplicates dropped, gaps waited on for `message_wait`), are encoded once and pushed to
//! the inboxes in one global order: a ticket makes concurrent publish requests (and the expiry of
//! waiting items) take turns, so every worker sees the same sequence, and a full inbox makes the
//! publisher wait (its HTTP response is delayed) instead of dropping anything. Waiting is on
//! wakers, never a sleep-and-retry: a turn wakes the next ticket, a worker that drained wakes a
//! pusher.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::delivery::Delivery;
use super::inbox::{Inbox, WorkerMsg};
use super::sequencer::{Meta, Released, Sequencer, SequencerConfig};
use crate::proto::publish::Item;

/// How often waiting items are checked for expiry when none is due sooner.
const EXPIRY_TICK: Duration = Duration::from_millis(100);

pub struct Ingest {
    inboxes: Vec<Arc<Inbox>>,
    sequencer: RefCell<Sequencer<Item>>,
    epoch: Instant,
    next_seq: Cell<u64>,
    next_ticket: Cell<u64>,
    serving: Cell<u64>,
    /// Tasks waiting for their turn, by ticket.
    waiting: RefCell<BTreeMap<u64, Waker>>,
    /// Tickets whose task went away before its turn came: skipped.
    abandoned: RefCell<BTreeSet<u64>>,
}

/// Passes the turn on (and wakes its holder) even if the publishing task is dropped half-way.
struct Turn<'a>(&'a Ingest);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.pass_turn();
    }
}

impl Ingest {
    pub fn new(inboxes: Vec<Arc<Inbox>>, sequencing: SequencerConfig) -> Ingest {
        Ingest {
            inboxes,
            sequencer: RefCell::new(Sequencer::new(sequencing)),
            epoch: Instant::now(),
            next_seq: Cell::new(1),
            next_ticket: Cell::new(0),
            serving: Cell::new(0),
            waiting: RefCell::new(BTreeMap::new()),
            abandoned: RefCell::new(BTreeSet::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Ends the current turn: the next ticket still waited for is served and woken.
    fn pass_turn(&self) {
        let mut next = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&next) {
            next += 1;
        }
        self.serving.set(next);
        if let Some(w) = self.waiting.borrow_mut().remove(&next) {
            w.wake();
        }
    }

    /// Waits for this caller's turn to push into the inboxes.
    async fn turn(&self) -> Turn<'_> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        // Holds the ticket until the turn is taken: a waiter dropped half-way (its request
        // gone) still passes its turn on.
        let waiter = TicketGuard {
            ingest: self,
            ticket,
            taken: false,
        };
        poll_fn(|cx| {
            if self.serving.get() == ticket {
                self.waiting.borrow_mut().remove(&ticket);
                return Poll::Ready(());
            }
            self.waiting.borrow_mut().insert(ticket, cx.waker().clone());
            Poll::Pending
        })
        .await;
        waiter.taken();
        Turn(self)
    }

    /// Sequences, encodes and queues every item for every worker, in order. Returns once all
    /// that is ready has been queued (items waiting for a gap go later, on their own).
    pub async fn publish(&self, items: Vec<Item>) {
        let _turn = self.turn().await;
        let mut ready = Vec::new();
        {
            let now = self.now_ms();
            let mut seq = self.sequencer.borrow_mut();
            for item in items {
                // The sequencer takes the item and its meta: the meta is copied out first.
                let channel = item.channel.clone();
                let (id, prev_id) = (item.id.clone(), item.prev_id.clone());
                let meta = Meta {
                    channel: &channel,
                    id: id.as_deref(),
                    prev_id: prev_id.as_deref(),
                    no_seq: item.no_seq,
                };
                seq.push_into(meta, item, now, &mut ready);
            }
        }
        self.queue(ready).await;
    }

    /// Releases items whose wait for a missing predecessor expired; runs for the thread's life.
    pub async fn expire_loop(&self) {
        loop {
            let wait = match self.sequencer.borrow().next_deadline() {
                Some(at) => {
                    Duration::from_millis(at.saturating_sub(self.now_ms())).min(EXPIRY_TICK)
                }
                None => EXPIRY_TICK,
            };
            monoio::time::sleep(wait).await;
            let _turn = self.turn().await;
            let mut ready = Vec::new();
            self.sequencer
                .borrow_mut()
                .expire_into(self.now_ms(), &mut ready);
            if !ready.is_empty() {
                self.queue(ready).await;
            }
        }
    }

    async fn queue(&self, ready: Vec<Released<Item>>) {
        if ready.is_empty() {
            return;
        }
        for released in ready {
            if released.is_after_gap() {
                tracing::debug!("a gap was not filled in time: delivering what follows it");
            }
            let seq = self.next_seq.get();
            self.next_seq.set(seq + 1);
            let delivery = Arc::new(Delivery::encode(released.into_inner(), seq));
            for inbox in &self.inboxes {
                push_wait(inbox, WorkerMsg::Deliver(delivery.clone())).await;
            }
        }
        for inbox in &self.inboxes {
            inbox.ring();
        }
    }

    /// Forgets a channel's last id, in turn with the publishes (the cluster: this node starts
    /// listening to the channel again, or missed items on it).
    pub async fn forget_last_id(&self, channel: &str) {
        let _turn = self.turn().await;
        self.sequencer.borrow_mut().remove_last_id(channel);
    }

    /// Asks every worker to recover (`POST /recover`), in order with the publishes.
    pub async fn recover(&self) {
        let _turn = self.turn().await;
        self.sequencer.borrow_mut().clear_last_ids();
        for inbox in &self.inboxes {
            push_wait(inbox, WorkerMsg::Recover).await;
            inbox.ring();
        }
    }
}

async fn push_wait(inbox: &Inbox, msg: WorkerMsg) {
    inbox.push_wait(msg).await;
}

/// A ticket not yet served: if its task is dropped while waiting, the turn still passes when it
/// comes (the ticket is served at once and handed on).
struct TicketGuard<'a> {
    ingest: &'a Ingest,
    ticket: u64,
    taken: bool,
}

impl TicketGuard<'_> {
    fn taken(mut self) {
        self.taken = true;
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let ingest = self.ingest;
        ingest.waiting.borrow_mut().remove(&self.ticket);
        if ingest.serving.get() == self.ticket {
            // Its turn had come: pass it on as a finished turn would.
            ingest.pass_turn();
        } else {
            // Served later: mark it so the turn skips it when it comes.
            ingest.abandoned.borrow_mut().insert(self.ticket);
        }
    }
}
