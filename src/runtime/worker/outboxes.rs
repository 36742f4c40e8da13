//! The worker's side of the outboxes: queueing with the slow-consumer policy, the non-blocking
//! flush, the running total of queued bytes, and the checks that cut stalled subscribers and keep
//! the worker within its budget.
//!
//! Per message per subscriber the cost is a few integer operations: the soft limit is compared,
//! and only a subscriber past it is written to at once and judged. Stalls are found by the timer
//! (every tick it looks at the connections that were ever blocked, not at all of them), and the
//! budget is compared against the running total after each flush pass and tick; only when it is
//! over are the blocked connections sorted by their last progress.

use bytes::Bytes;

use super::{Queued, Worker};
use crate::hub::ConnId;
use crate::hub::slow_consumer::{Backlog, PROGRESS_BYTES_MIN, Reason, Verdict};
use crate::io::outbox::Flush;
use crate::metrics::WorkerMetrics;
use crate::proto::ws;
use crate::runtime::conns::{ConnSlot, Sink, ev};

impl Worker {
    /// Queues bytes for a held connection and marks it for flushing. Past the soft limit the
    /// socket first gets a chance to take what it can; then the slow-consumer policy decides.
    pub fn queue(&self, slot: &mut ConnSlot, id: ConnId, bytes: Bytes) -> Queued {
        self.queue_as(slot, id, bytes, false)
    }

    /// Queues bytes holdfast itself sends on a held stream (framing, keep-alives, what a recovery
    /// fetch brought): the slow-consumer policy may cut the connection but never drops these, so
    /// a stream stays well-framed and a recovery is never lost in turn.
    pub fn queue_own(&self, slot: &mut ConnSlot, id: ConnId, bytes: Bytes) -> Queued {
        self.queue_as(slot, id, bytes, true)
    }

    fn queue_as(&self, slot: &mut ConnSlot, id: ConnId, bytes: Bytes, own: bool) -> Queued {
        if slot.cut {
            return Queued::Cut;
        }
        // Per subscriber per message: a borrow and a copy of a few integers, not a snapshot.
        let limits = self.settings.borrow().slow;
        if slot.outbox.bytes() + bytes.len() > limits.soft_bytes && !slot.write_blocked {
            self.flush_slot(slot, id, self.now_ms());
        }
        let now = self.clock_ms.get();
        let verdict = if own {
            limits.on_queue_own(slot.backlog(), bytes.len(), now)
        } else {
            limits.on_queue(slot.backlog(), bytes.len(), now)
        };
        match verdict {
            Verdict::Queue => {}
            Verdict::Drop => {
                WorkerMetrics::inc(&self.metrics.slow_consumer_dropped);
                tracing::debug!(worker = self.index, "slow consumer: message dropped");
                return Queued::Dropped;
            }
            Verdict::Cut(reason) => {
                self.cut(slot, id, reason);
                return Queued::Cut;
            }
        }
        self.push(slot, bytes);
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.borrow_mut().push(id);
        }
        Queued::Yes
    }

    /// Appends to an outbox, keeping the running total; an outbox that was empty starts its
    /// stall clock now.
    fn push(&self, slot: &mut ConnSlot, bytes: Bytes) {
        if slot.outbox.is_empty() {
            slot.progress_ms = self.clock_ms.get();
        }
        self.outbox_total.set(self.outbox_total.get() + bytes.len());
        slot.outbox.push(bytes);
    }

    /// Takes `n` bytes that left an outbox off the running total.
    pub(super) fn unqueued(&self, n: usize) {
        let total = self.outbox_total.get();
        debug_assert!(total >= n, "outbox total {total} < {n} unqueued");
        self.outbox_total.set(total.saturating_sub(n));
    }

    /// Drops everything queued for a connection (it is going away).
    fn discard(&self, slot: &mut ConnSlot) {
        self.unqueued(slot.outbox.bytes());
        slot.outbox.clear();
    }

    /// Cuts a slow subscriber: a WebSocket gets close 1008 after the frame being written (the
    /// stream stays valid), anything else is dropped. Counted and logged once.
    fn cut(&self, slot: &mut ConnSlot, id: ConnId, reason: Reason) {
        slot.cut = true;
        WorkerMetrics::inc(&self.metrics.slow_consumer_cuts[reason as usize]);
        tracing::info!(
            worker = self.index,
            conn = id.key,
            reason = reason.as_str(),
            queued_bytes = slot.outbox.bytes(),
            no_progress_ms = self.clock_ms.get().saturating_sub(slot.progress_ms),
            "slow consumer cut ({})",
            reason.as_str()
        );
        if slot.sink == Sink::WebSocket {
            let before = slot.outbox.bytes();
            slot.outbox.truncate_to_partial_front();
            self.unqueued(before - slot.outbox.bytes());
            let mut frame = Vec::with_capacity(32);
            ws::encode_close_frame(
                &mut frame,
                ws::CLOSE_POLICY_VIOLATION,
                "slow consumer",
                None,
            );
            self.push(slot, Bytes::from(frame));
            self.change_sink(slot, Sink::None);
            slot.notify(ev::CLOSE);
        } else {
            self.discard(slot);
            slot.notify(ev::DEAD);
        }
    }

    /// One non-blocking flush; on a full socket the task is told to wait for writability (and the
    /// connection joins the backlog), on an error it is told the connection is dead.
    pub(super) fn flush_slot(&self, slot: &mut ConnSlot, id: ConnId, now_ms: u64) -> bool {
        let tls_pending = slot.tls.as_ref().is_some_and(|t| t.wants_write());
        if slot.outbox.is_empty() && !tls_pending {
            slot.write_blocked = false;
            return true;
        }
        let before = slot.outbox.bytes();
        let result = match slot.tls.as_deref_mut() {
            Some(tls) => slot.outbox.flush_tls(slot.fd, tls),
            None => slot.outbox.flush(slot.fd),
        };
        let written = before - slot.outbox.bytes();
        if written > 0 {
            self.unqueued(written);
            if slot.outbox.take_progress(PROGRESS_BYTES_MIN) {
                slot.progress_ms = now_ms;
            }
            WorkerMetrics::add(&self.metrics.bytes_written, written as u64);
        }
        match result {
            Ok(Flush::Done) => {
                slot.write_blocked = false;
                true
            }
            Ok(Flush::Blocked) => {
                if !slot.write_blocked {
                    slot.write_blocked = true;
                    slot.notify(ev::BLOCKED);
                    if !slot.backlogged {
                        slot.backlogged = true;
                        self.backlog.borrow_mut().push(id);
                    }
                }
                true
            }
            Err(_) => {
                self.discard(slot);
                slot.notify(ev::DEAD);
                false
            }
        }
    }

    /// The timer's check: cuts the blocked connections that made no progress for the stall
    /// timeout, forgets the ones that drained, then holds the worker to its budget.
    pub(super) fn police_outboxes(&self, now_ms: u64) {
        let limits = self.settings.borrow().slow;
        let mut cut = Vec::new();
        let mut list = std::mem::take(&mut *self.backlog.borrow_mut());
        {
            let mut conns = self.conns.borrow_mut();
            list.retain(|&id| {
                let Some(slot) = conns.get_mut(id) else {
                    return false;
                };
                if slot.cut || (!slot.write_blocked && slot.outbox.is_empty()) {
                    slot.backlogged = false;
                    return false;
                }
                // No write is tried here: a socket that drains wakes its task, which writes (and
                // a socket with a few bytes of room but no wake-up is not a reading client).
                if limits.is_stalled(slot.backlog(), now_ms) {
                    self.cut(slot, id, Reason::Stalled);
                    slot.backlogged = false;
                    cut.push(id);
                    return false;
                }
                true
            });
        }
        {
            // Connections blocked while the list was out were pushed to the (empty) new one.
            let mut backlog = self.backlog.borrow_mut();
            list.append(&mut backlog);
            *backlog = list;
        }
        self.enforce_budget(&mut cut);
        for id in cut {
            self.unsubscribe_all(id);
        }
    }

    /// Over the worker's budget, cuts the backlogged subscribers with the least recent progress
    /// until the rest fit. Run where every connection not blocked has been flushed (after a flush
    /// pass, on a tick), so what is queued is what the clients have not taken.
    pub(super) fn enforce_budget(&self, cut: &mut Vec<ConnId>) {
        let total = self.outbox_total.get();
        let limits = self.settings.borrow().slow;
        if total <= limits.worker_bytes {
            WorkerMetrics::set(&self.metrics.outbox_bytes, total as u64);
            return;
        }
        let mut conns = self.conns.borrow_mut();
        let mut candidates: Vec<(ConnId, Backlog)> = self
            .backlog
            .borrow()
            .iter()
            .filter_map(|&id| {
                let s = conns.get(id)?;
                (!s.cut && !s.outbox.is_empty()).then(|| (id, s.backlog()))
            })
            .collect();
        let n = limits.plan_evictions(total, &mut candidates);
        for &(id, _) in &candidates[..n] {
            if let Some(slot) = conns.get_mut(id) {
                self.cut(slot, id, Reason::WorkerBudget);
                cut.push(id);
            }
        }
        WorkerMetrics::set(&self.metrics.outbox_bytes, self.outbox_total.get() as u64);
    }

    /// Checks the running total against a full count (debug builds, from the timer now and then).
    pub(super) fn audit_outbox_total(&self) {
        let counted = self.conns.borrow().outbox_bytes();
        debug_assert_eq!(
            counted,
            self.outbox_total.get(),
            "worker {}: outbox total drifted",
            self.index
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, HoldConfig};
    use crate::runtime::Shared;

    const KIB: usize = 1024;

    fn worker(hold: impl FnOnce(&mut HoldConfig)) -> Worker {
        let mut config = Config::default();
        hold(&mut config.hold);
        let routes = crate::routes::RouteTable::default();
        let shared = Arc::new(Shared {
            initial: crate::runtime::settings::Settings {
                config: config.clone(),
                routes: crate::origin::targets::RoutePlan::resolve(routes).expect("no routes"),
                tls: None,
                origin_tls: None,
            },
            config,
            inboxes: vec![Arc::new(crate::hub::inbox::Inbox::new(1))],
            commands: vec![Arc::default()],
            metrics: vec![Arc::default()],
            publish_metrics: Arc::default(),
            admission: crate::runtime::admission::Admission::new(0, 0),
            cluster: None,
            zmq: None,
        });
        Worker::new(0, shared)
    }

    /// A streaming subscriber on one end of a socket pair; the test holds the client's end.
    fn subscriber(w: &Worker) -> (ConnId, UnixStream, UnixStream) {
        let (ours, client) = UnixStream::pair().expect("socket pair");
        // A small socket buffer, so what is queued waits in the outbox.
        socket2::SockRef::from(&ours)
            .set_send_buffer_size(16 * KIB)
            .expect("SO_SNDBUF");
        let id = w.conns.borrow_mut().insert(ours.as_raw_fd());
        w.set_sink(id, Sink::Stream { chunked: false });
        (id, ours, client)
    }

    /// Queues `n` KiB for `id` and flushes the batch.
    fn flood(w: &Worker, id: ConnId, n: usize) {
        for _ in 0..n {
            if let Some(slot) = w.conns.borrow_mut().get_mut(id) {
                let _ = w.queue(slot, id, Bytes::from(vec![b'x'; KIB]));
            }
        }
        w.flush_dirty();
    }

    fn slot<T>(w: &Worker, id: ConnId, f: impl FnOnce(&ConnSlot) -> T) -> T {
        f(w.conns.borrow().get(id).expect("slot"))
    }

    fn cuts(w: &Worker, r: Reason) -> u64 {
        w.metrics.slow_consumer_cuts[r as usize].load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The client reads up to `n` bytes of what has arrived (never waits for more).
    fn drain(client: &mut UnixStream, n: usize) -> usize {
        client.set_nonblocking(true).expect("non-blocking");
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match client.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        got
    }

    #[test]
    fn a_stalled_subscriber_is_cut_by_the_timer_at_the_stall_timeout_not_before() {
        let w = worker(|h| {
            h.outbox_bytes_max = 4 * KIB;
            h.stall_timeout_ms = 1_000;
        });
        let (id, _ours, _client) = subscriber(&w);
        flood(&w, id, 2048);
        let (blocked, queued, since) = slot(&w, id, |s| {
            (s.write_blocked, s.outbox.bytes(), s.progress_ms)
        });
        assert!(blocked && queued > 0, "2 MiB fill the socket pair");
        assert_eq!(w.outbox_total.get(), queued);
        w.police_outboxes(since + 999);
        assert!(!slot(&w, id, |s| s.cut));
        w.police_outboxes(since + 1_000);
        assert_eq!(cuts(&w, Reason::Stalled), 1);
        assert!(slot(&w, id, |s| s.cut && s.events & ev::DEAD != 0));
        assert_eq!(w.outbox_total.get(), 0, "a cut stream's queue is freed");
        w.audit_outbox_total();
        // Nothing more is queued for it.
        flood(&w, id, 1);
        assert_eq!(w.outbox_total.get(), 0);
    }

    #[test]
    fn a_draining_subscriber_keeps_its_clock_fresh_past_the_soft_limit() {
        let w = worker(|h| {
            h.outbox_bytes_max = 4 * KIB;
            h.stall_timeout_ms = 1_000;
        });
        let (id, _ours, mut client) = subscriber(&w);
        flood(&w, id, 2048);
        let before = slot(&w, id, |s| s.progress_ms);
        std::thread::sleep(std::time::Duration::from_millis(5));
        // The client reads a few bytes: not enough to count.
        assert_eq!(drain(&mut client, 100), 100);
        w.flush_conn(id);
        assert_eq!(slot(&w, id, |s| s.progress_ms), before);
        // It reads everything that arrived (more than 16 KiB): progress.
        let read = drain(&mut client, usize::MAX >> 40);
        assert!(read > 16 * KIB, "only {read} bytes had arrived");
        w.flush_conn(id);
        let after = slot(&w, id, |s| s.progress_ms);
        assert!(after > before, "progress stamped ({before} -> {after})");
        w.police_outboxes(before + 1_000);
        assert!(!slot(&w, id, |s| s.cut), "it drained since");
        assert!(
            slot(&w, id, |s| s.outbox.bytes()) > 4 * KIB,
            "past the soft limit, kept"
        );
        w.audit_outbox_total();
    }

    #[test]
    fn over_the_budget_the_stalest_subscriber_goes_first() {
        let w = worker(|h| {
            h.outbox_bytes_max = 4 * KIB;
            h.outbox_hard_bytes_max = 2048 * KIB;
            h.outbox_bytes_max_per_worker = 2048 * KIB;
            h.stall_timeout_ms = 0;
        });
        let (stale, _a, _ca) = subscriber(&w);
        let (fresh, _b, _cb) = subscriber(&w);
        flood(&w, stale, 900);
        flood(&w, fresh, 900);
        let total = w.outbox_total.get();
        assert!(total < 2048 * KIB && cuts(&w, Reason::WorkerBudget) == 0);
        if let Some(s) = w.conns.borrow_mut().get_mut(stale) {
            s.progress_ms = 0;
        }
        if let Some(s) = w.conns.borrow_mut().get_mut(fresh) {
            s.progress_ms = 10;
        }
        // The fresher one gets more: past the budget at the end of this batch.
        flood(&w, fresh, 400);
        assert_eq!(cuts(&w, Reason::WorkerBudget), 1);
        assert!(slot(&w, stale, |s| s.cut), "the stalest is cut");
        assert!(
            !slot(&w, fresh, |s| s.cut),
            "the fresher one fits once the stalest is gone"
        );
        assert!(w.outbox_total.get() <= 2048 * KIB);
        w.audit_outbox_total();
    }

    #[test]
    fn drop_messages_drops_past_the_soft_limit_and_still_cuts_a_stall() {
        let w = worker(|h| {
            h.outbox_bytes_max = 64 * KIB;
            h.stall_timeout_ms = 1_000;
            h.slow_consumer = crate::config::SlowConsumerPolicy::DropMessages;
        });
        let (id, _ours, _client) = subscriber(&w);
        flood(&w, id, 512);
        let dropped = w
            .metrics
            .slow_consumer_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        let queued = slot(&w, id, |s| s.outbox.bytes());
        assert!(queued <= 64 * KIB, "held to the soft limit: {queued}");
        assert!(dropped > 0, "what did not fit is counted as dropped");
        let since = slot(&w, id, |s| s.progress_ms);
        w.police_outboxes(since + 1_000);
        assert_eq!(cuts(&w, Reason::Stalled), 1);
        w.audit_outbox_total();
    }

    #[test]
    fn past_the_hard_cap_even_a_fresh_subscriber_is_cut() {
        let w = worker(|h| {
            h.outbox_bytes_max = 4 * KIB;
            h.outbox_hard_bytes_max = 512 * KIB;
            h.outbox_bytes_max_per_worker = 1024 * KIB;
        });
        let (id, _ours, _client) = subscriber(&w);
        flood(&w, id, 2048);
        assert_eq!(cuts(&w, Reason::HardCap), 1);
        assert!(slot(&w, id, |s| s.cut));
        w.unregister(id, std::net::IpAddr::from([127, 0, 0, 1]));
        assert_eq!(w.outbox_total.get(), 0);
    }
}
