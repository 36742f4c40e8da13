//! Ordering publishes into every worker's inbox.
//!
//! Runs on the publish thread. Items are encoded once and pushed to the inboxes in one global
//! order: a ticket makes concurrent publish requests take turns, so every worker sees the same
//! sequence, and a full inbox makes the publisher wait (its HTTP response is delayed) instead of
//! dropping anything.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use super::delivery::Delivery;
use super::inbox::{Inbox, WorkerMsg};
use crate::proto::publish::Item;

/// How long a publisher waits before trying a full inbox again.
const FULL_INBOX_RETRY: Duration = Duration::from_micros(200);

pub struct Ingest {
    inboxes: Vec<Arc<Inbox>>,
    next_seq: Cell<u64>,
    next_ticket: Cell<u64>,
    serving: Cell<u64>,
}

/// Passes the turn on even if the publishing task is dropped half-way.
struct Turn<'a>(&'a Cell<u64>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Ingest {
    pub fn new(inboxes: Vec<Arc<Inbox>>) -> Ingest {
        Ingest {
            inboxes,
            next_seq: Cell::new(1),
            next_ticket: Cell::new(0),
            serving: Cell::new(0),
        }
    }

    /// Encodes and queues every item for every worker, in order. Returns once all are queued.
    pub async fn publish(&self, items: Vec<Item>) {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        while self.serving.get() != ticket {
            monoio::time::sleep(FULL_INBOX_RETRY).await;
        }
        let _turn = Turn(&self.serving);
        for item in items {
            let seq = self.next_seq.get();
            self.next_seq.set(seq + 1);
            let delivery = Arc::new(Delivery::encode(item, seq));
            for inbox in &self.inboxes {
                push_wait(inbox, WorkerMsg::Deliver(delivery.clone())).await;
            }
        }
        for inbox in &self.inboxes {
            inbox.ring();
        }
    }
}

impl Ingest {
    /// Asks every worker to recover (`POST /recover`), in order with the publishes.
    pub async fn recover(&self) {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        while self.serving.get() != ticket {
            monoio::time::sleep(FULL_INBOX_RETRY).await;
        }
        let _turn = Turn(&self.serving);
        for inbox in &self.inboxes {
            push_wait(inbox, WorkerMsg::Recover).await;
            inbox.ring();
        }
    }
}

async fn push_wait(inbox: &Inbox, mut msg: WorkerMsg) {
    loop {
        match inbox.push(msg) {
            Ok(()) => return,
            Err(back) => {
                msg = back;
                inbox.ring();
                monoio::time::sleep(FULL_INBOX_RETRY).await;
            }
        }
    }
}
