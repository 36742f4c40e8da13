//! One worker: a monoio runtime on one core that owns its listener socket, its connections, its
//! channel table, its origin pool and its timer wheel.
//!
//! Everything here is `!Send` and reached through `Rc<Worker>`; other threads reach a worker only
//! through its inbox. No `RefCell` borrow is held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use super::Shared;
use super::client;
use super::commands::Command;
use super::conns::{ConnSlot, ConnTable, Sink, SubscriberFilters, ev};
use super::settings::{Settings, WorkerSettings};
use super::timer::TimerWheel;
use crate::hub::ConnId;
use crate::hub::channels::ChannelTable;
use crate::hub::inbox::WorkerMsg;
use crate::io::bufpool::BufPool;
use crate::metrics::WorkerMetrics;
use crate::origin::client::OriginClient;
use crate::proto::filter::Filter;

mod outboxes;

/// Messages handled per inbox drain before the worker flushes and lets other tasks run.
const DRAIN_BATCH_MAX: usize = 4096;
/// Channels whose last published id a worker remembers.
const LAST_IDS_MAX: usize = 100_000;
/// Resolution of the timer wheel.
const TIMER_TICK_MS: u64 = 50;
/// Slots in the timer wheel (one turn = TIMER_TICK_MS * TIMER_SLOTS).
const TIMER_SLOTS: usize = 2048;
/// Debug builds check the running outbox total against a full count every this many ticks.
const AUDIT_EVERY_TICKS: u64 = 20;

/// What happened to bytes handed to [`Worker::queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// Past the soft limit, dropped (policy `drop_messages`).
    Dropped,
    /// The slow-consumer policy cut the connection (now or earlier): it takes nothing more.
    Cut,
}

pub struct Worker {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub conns: RefCell<ConnTable>,
    pub channels: RefCell<ChannelTable>,
    /// Read buffers, shared with the origin client.
    pub bufs: Rc<BufPool>,
    /// The origin side: keep-alive pool, requests in flight per address.
    pub origin: Rc<OriginClient>,
    /// The reloadable settings (config, routes, signers): this worker's own copy.
    settings: RefCell<Rc<WorkerSettings>>,
    /// This worker's metrics (only this worker writes them).
    pub metrics: Arc<WorkerMetrics>,
    timers: RefCell<TimerWheel>,
    /// The last id published on each channel (for the first-hold prev-id check).
    pub last_ids: RefCell<HashMap<Box<str>, Box<str>>>,
    dirty: RefCell<Vec<ConnId>>,
    /// Connections whose socket refused bytes since the timer last looked (each once).
    backlog: RefCell<Vec<ConnId>>,
    /// Bytes queued in all outboxes of this worker (kept on every push and write).
    outbox_total: Cell<usize>,
    /// The last reading of the worker's clock (`now_ms`), for stamps on the per-message path.
    clock_ms: Cell<u64>,
    epoch: Instant,
    stopping: Cell<bool>,
    /// Tasks waiting in `stopped()`, one entry per waiting future (removed when it is dropped).
    stop_wakers: RefCell<slab::Slab<Waker>>,
    /// Tells the cluster thread which channels this worker holds (`[cluster]` on).
    cluster: Option<crate::cluster::WorkerInterest>,
    /// Tells the ZeroMQ thread likewise, for its SUB socket's subscriptions (`[zmq]` on).
    zmq: Option<crate::zmq::WorkerInterest>,
}

impl Worker {
    pub fn new(index: usize, shared: Arc<Shared>) -> Worker {
        let c = &shared.config;
        let bufs = Rc::new(BufPool::new(
            c.http.read_buffer_bytes,
            c.http.buffer_pool_max,
        ));
        let metrics = shared.metrics[index].clone();
        let origin = Rc::new(OriginClient::new(c, bufs.clone(), metrics.clone()));
        Worker {
            index,
            bufs,
            origin,
            settings: RefCell::new(Rc::new(WorkerSettings::new(&shared.initial))),
            conns: RefCell::new(ConnTable::new()),
            channels: RefCell::new(ChannelTable::new()),
            metrics,
            timers: RefCell::new(TimerWheel::new(TIMER_TICK_MS, TIMER_SLOTS, 0)),
            last_ids: RefCell::new(HashMap::new()),
            dirty: RefCell::new(Vec::new()),
            backlog: RefCell::new(Vec::new()),
            outbox_total: Cell::new(0),
            clock_ms: Cell::new(0),
            epoch: Instant::now(),
            stopping: Cell::new(false),
            stop_wakers: RefCell::new(slab::Slab::new()),
            cluster: shared
                .cluster
                .clone()
                .map(crate::cluster::WorkerInterest::new),
            zmq: shared
                .zmq
                .as_ref()
                .and_then(crate::zmq::WorkerInterest::new),
            shared,
        }
    }

    /// The settings current now; a request keeps the snapshot it started with.
    pub fn settings(&self) -> Rc<WorkerSettings> {
        self.settings.borrow().clone()
    }

    /// The route for a request in the settings current now; the caller keeps the route (and
    /// with it that snapshot) for as long as it needs it.
    pub fn find_route(
        &self,
        host: &str,
        target: &str,
        tls: bool,
        is_ws: bool,
    ) -> Option<super::settings::RouteRef> {
        let settings = self.settings();
        let index = settings.routes.find(host, target, tls, is_ws)?;
        super::settings::RouteRef::new(settings, index)
    }

    /// Takes new settings (SIGHUP): requests already running keep the ones they started with.
    fn reload(&self, settings: &Settings) {
        *self.settings.borrow_mut() = Rc::new(WorkerSettings::new(settings));
        tracing::info!(worker = self.index, "settings reloaded");
    }

    /// Milliseconds since this worker started (the worker's own monotonic clock). Each reading
    /// is kept for the per-message path, which stamps without reading the clock.
    pub fn now_ms(&self) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.clock_ms.set(now);
        now
    }

    /// Runs the worker until shutdown has been requested and its connections are gone (or the
    /// shutdown deadline passed).
    pub async fn run(self: Rc<Self>, listeners: Vec<super::server::Listener>) {
        for l in listeners {
            match TcpListener::from_std(l.socket) {
                Ok(listener) => {
                    monoio::spawn(accept_loop(self.clone(), listener, l.tls));
                }
                Err(e) => tracing::error!(worker = self.index, "cannot register listener: {e}"),
            }
        }
        monoio::spawn(inbox_loop(self.clone()));
        monoio::spawn(timer_loop(self.clone()));
        self.stopped().await;
        let deadline = self.now_ms() + self.settings().config.server.shutdown_timeout_ms;
        while !self.conns.borrow().is_empty() && self.now_ms() < deadline {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.conns.borrow().len();
        if left > 0 {
            tracing::warn!(
                worker = self.index,
                "shutdown deadline passed with {left} connections open"
            );
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Resolves once shutdown has begun.
    pub fn stopped(&self) -> Stopped<'_> {
        Stopped { w: self, key: None }
    }

    fn begin_shutdown(&self) {
        if self.stopping.replace(true) {
            return;
        }
        tracing::info!(worker = self.index, "shutting down");
        for w in self.stop_wakers.borrow_mut().drain() {
            w.wake();
        }
        let mut conns = self.conns.borrow_mut();
        for id in conns.ids() {
            conns.notify(id, ev::SHUTDOWN);
        }
    }

    /// Registers a new connection's socket; None when this worker is at its connection limit.
    pub fn register(&self, fd: std::os::fd::RawFd, ip: std::net::IpAddr) -> Option<ConnId> {
        let mut conns = self.conns.borrow_mut();
        if conns.len() >= self.settings().config.server.connections_max_per_worker {
            return None;
        }
        if let Err(why) = self.shared.admission.admit(ip) {
            tracing::debug!(worker = self.index, %ip, "connection refused: {why:?} limit");
            return None;
        }
        WorkerMetrics::inc(&self.metrics.connections);
        Some(conns.insert(fd))
    }

    /// Drops a connection: its subscriptions first, then its slot.
    pub fn unregister(&self, id: ConnId, ip: std::net::IpAddr) {
        self.shared.admission.release(ip);
        self.unsubscribe_all(id);
        if let Some(slot) = self.conns.borrow_mut().get_mut(id) {
            self.change_sink(slot, Sink::None);
        }
        let removed = self.conns.borrow_mut().remove(id);
        if let Some(slot) = removed {
            self.unqueued(slot.outbox.bytes());
            WorkerMetrics::dec(&self.metrics.connections);
        }
    }

    /// Sets a connection's sink, keeping the per-kind connection gauges right.
    fn change_sink(&self, slot: &mut ConnSlot, sink: Sink) {
        let gauge = |s: Sink| match s {
            Sink::Stream { .. } => Some(&self.metrics.held_stream),
            Sink::Response => Some(&self.metrics.held_response),
            Sink::WebSocket => Some(&self.metrics.websockets),
            Sink::None => None,
        };
        if std::mem::discriminant(&slot.sink) == std::mem::discriminant(&sink) {
            slot.sink = sink;
            return;
        }
        if let Some(g) = gauge(slot.sink) {
            WorkerMetrics::dec(g);
        }
        if let Some(g) = gauge(sink) {
            WorkerMetrics::inc(g);
        }
        slot.sink = sink;
    }

    /// Mirrors the channel table's sizes into the gauges.
    fn table_gauges(&self, table: &ChannelTable) {
        WorkerMetrics::set(
            &self.metrics.subscriptions,
            table.subscription_count() as u64,
        );
        WorkerMetrics::set(&self.metrics.channels, table.channel_count() as u64);
    }

    /// Subscribes a connection to channels (and sets what it does with publishes).
    pub fn subscribe(&self, id: ConnId, channels: &[String], sink: Sink) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        self.change_sink(slot, sink);
        let mut table = self.channels.borrow_mut();
        for name in channels {
            let tracked = self.cluster.is_some() || self.zmq.is_some();
            let first = tracked && table.subscribers(name).is_none();
            let (key, added) = table.subscribe(name, id);
            if added {
                if first {
                    self.cluster_note(crate::cluster::InterestChange::Gained(name.as_str().into()));
                }
                slot.subs.push(key);
            }
        }
        self.table_gauges(&table);
    }

    /// Removes one subscription of a connection, from both sides.
    pub fn unsubscribe(&self, id: ConnId, channel: &str) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        if let Some(pos) = slot.subs.iter().position(|c| &**c == channel) {
            slot.subs.swap_remove(pos);
            let mut table = self.channels.borrow_mut();
            if table.unsubscribe(channel, id) {
                self.cluster_note(crate::cluster::InterestChange::Lost(channel.into()));
            }
            self.table_gauges(&table);
        }
    }

    /// Records a subscriber's filters (per full channel name) and meta; a subscriber with neither
    /// keeps no filter state at all.
    pub fn set_filters(
        &self,
        id: ConnId,
        by_channel: &[(String, Vec<Filter>)],
        meta: &[(String, String)],
    ) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        if meta.is_empty() && by_channel.iter().all(|(_, f)| f.is_empty()) {
            slot.filters = None;
            return;
        }
        let by_channel = by_channel
            .iter()
            .filter(|(_, f)| !f.is_empty())
            .filter_map(|(name, f)| {
                let key = slot.subs.iter().find(|c| &***c == name.as_str())?;
                Some((key.clone(), f.clone()))
            })
            .collect();
        slot.filters = Some(Box::new(SubscriberFilters {
            by_channel,
            meta: meta.to_vec(),
        }));
    }

    /// Adds the filters of one (already subscribed) channel, keeping the rest.
    pub fn add_channel_filters(
        &self,
        id: ConnId,
        channel: &str,
        filters: Vec<Filter>,
        meta: &[(String, String)],
    ) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        let Some(key) = slot.subs.iter().find(|c| &***c == channel).cloned() else {
            return;
        };
        let f = slot.filters.get_or_insert_with(Box::default);
        f.by_channel.retain(|(c, _)| *c != key);
        f.by_channel.push((key, filters));
        f.meta = meta.to_vec();
    }

    /// Updates the subscription meta filters read (when the subscriber has filter state).
    pub fn set_subscription_meta(&self, id: ConnId, meta: &[(String, String)]) {
        if let Some(f) = self
            .conns
            .borrow_mut()
            .get_mut(id)
            .and_then(|s| s.filters.as_deref_mut())
        {
            f.meta = meta.to_vec();
        }
    }

    /// Sets what a connection does with publishes, without touching its subscriptions.
    pub fn set_sink(&self, id: ConnId, sink: Sink) {
        if let Some(slot) = self.conns.borrow_mut().get_mut(id) {
            self.change_sink(slot, sink);
        }
    }

    /// Subscriptions a connection holds.
    pub fn subscription_count(&self, id: ConnId) -> usize {
        self.conns.borrow().get(id).map_or(0, |s| s.subs.len())
    }

    /// Removes every subscription of a connection, from both sides.
    pub fn unsubscribe_all(&self, id: ConnId) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        self.change_sink(slot, Sink::None);
        if slot.subs.is_empty() {
            return;
        }
        let mut table = self.channels.borrow_mut();
        for name in slot.subs.drain(..) {
            if table.unsubscribe(&name, id) {
                self.cluster_note(crate::cluster::InterestChange::Lost((*name).into()));
            }
        }
        slot.subs = Vec::new();
        self.table_gauges(&table);
    }

    /// Tells the cluster and ZeroMQ threads a channel gained its first or lost its last
    /// subscriber here.
    fn cluster_note(&self, change: crate::cluster::InterestChange) {
        if let Some(z) = &self.zmq {
            z.note(change.clone());
        }
        if let Some(c) = &self.cluster {
            c.note(change);
        }
    }

    /// Remembers the last id published on a channel (bounded: forgotten past the limit).
    pub fn note_last_id(&self, channel: &str, id: &str) {
        let mut last = self.last_ids.borrow_mut();
        if let Some(v) = last.get_mut(channel) {
            if &**v != id {
                *v = id.into();
            }
            return;
        }
        if last.len() >= LAST_IDS_MAX {
            last.clear();
        }
        last.insert(channel.into(), id.into());
    }

    /// `POST /recover`: forgets every last id, and every hold that tracks prev-ids fetches
    /// from the origin (as Pushpin's recover command).
    pub fn recover_all(&self) {
        self.last_ids.borrow_mut().clear();
        let mut conns = self.conns.borrow_mut();
        for id in conns.ids() {
            if let Some(slot) = conns.get_mut(id)
                && let Some(rec) = slot.recovery.as_deref_mut()
                && !rec.fetching
            {
                rec.fetching = true;
                slot.notify(ev::UPDATE);
            }
        }
    }

    /// Asks the timer wheel to wake `id` at `at_ms` (no-op if an earlier wake is scheduled).
    pub fn schedule(&self, id: ConnId, at_ms: u64) {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return;
        };
        if slot.timer_at_ms == 0 || at_ms < slot.timer_at_ms {
            slot.timer_at_ms = at_ms;
            self.timers.borrow_mut().insert(id, at_ms);
        }
    }

    /// Takes the events posted for `id`, or registers the task's waker and returns Pending.
    pub fn poll_events(&self, id: ConnId, cx: &mut std::task::Context<'_>) -> Poll<u16> {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(id) else {
            return Poll::Ready(ev::DEAD);
        };
        if slot.events != 0 {
            return Poll::Ready(std::mem::take(&mut slot.events));
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Gives a connection accepted on a TLS listener its session, with the certificates
    /// current now (a reload changes them for later connections only).
    fn start_tls(&self, id: ConnId) -> bool {
        let Some(config) = self.settings().tls.clone() else {
            tracing::error!(
                worker = self.index,
                "TLS connection but no certificates loaded"
            );
            return false;
        };
        let session = match rustls::ServerConnection::new(config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(worker = self.index, "cannot start a TLS session: {e}");
                return false;
            }
        };
        match self.conns.borrow_mut().get_mut(id) {
            Some(slot) => {
                slot.tls = Some(Box::new(session));
                true
            }
            None => false,
        }
    }

    /// Writes a connection's outbox now. Returns false when the connection is gone or dead.
    pub fn flush_conn(&self, id: ConnId) -> bool {
        let now = self.now_ms();
        let mut conns = self.conns.borrow_mut();
        match conns.get_mut(id) {
            Some(slot) => self.flush_slot(slot, id, now),
            None => false,
        }
    }

    /// Flushes a drained batch and records its publish → write latencies.
    fn flush_batch(&self, published: &mut Vec<std::time::Instant>) {
        self.flush_dirty();
        let now = std::time::Instant::now();
        for at in published.drain(..) {
            self.metrics
                .publish_to_write
                .observe(now.saturating_duration_since(at));
        }
    }

    /// Flushes every connection that had bytes queued since the last flush, then holds the
    /// worker to its outbox budget (what is still queued is what clients have not taken).
    pub fn flush_dirty(&self) {
        let now = self.now_ms();
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        {
            let mut conns = self.conns.borrow_mut();
            for &id in &dirty {
                if let Some(slot) = conns.get_mut(id) {
                    slot.dirty = false;
                    if !slot.write_blocked {
                        self.flush_slot(slot, id, now);
                    }
                }
            }
        }
        {
            let mut list = self.dirty.borrow_mut();
            if list.is_empty() {
                // Keep the allocation for the next batch.
                *list = dirty;
                list.clear();
            }
        }
        let mut cut = Vec::new();
        self.enforce_budget(&mut cut);
        for id in cut {
            self.unsubscribe_all(id);
        }
    }
}

/// [`Worker::stopped`]: keeps one waker entry while it waits, updated on each poll and removed
/// when the future is dropped. The accept loop polls a fresh one for every connection it accepts;
/// registering on every poll grew the list by a waker per accepted connection for the life of
/// the worker (found by the soak: ~12 MB after 300 000 connections).
pub struct Stopped<'a> {
    w: &'a Worker,
    key: Option<usize>,
}

impl std::future::Future for Stopped<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.w.stopping.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.w.stop_wakers.borrow_mut();
        match self.key.and_then(|k| wakers.get_mut(k)) {
            Some(w) => w.clone_from(cx.waker()),
            None => {
                let k = wakers.insert(cx.waker().clone());
                drop(wakers);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        // After shutdown began the entries were drained and no new ones are made.
        if let Some(k) = self.key
            && !self.w.stopping.get()
        {
            self.w.stop_wakers.borrow_mut().try_remove(k);
        }
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, tls: bool) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = w.stopped() => return,
        };
        match accepted {
            Ok((stream, peer)) => on_accept(&w, stream, peer, tls),
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                tracing::warn!(worker = w.index, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn on_accept(w: &Rc<Worker>, stream: TcpStream, peer: SocketAddr, tls: bool) {
    let _ = stream.set_nodelay(true);
    let (send, recv) = {
        let settings = w.settings.borrow();
        let server = &settings.config.server;
        (
            server.socket_send_buffer_bytes,
            server.socket_recv_buffer_bytes,
        )
    };
    if (send | recv) != 0
        && let Err(e) = super::listener::set_buffer_sizes(stream.as_raw_fd(), send, recv)
    {
        tracing::warn!(worker = w.index, "cannot set socket buffer sizes: {e}");
    }
    WorkerMetrics::inc(&w.metrics.accepted);
    let Some(id) = w.register(stream.as_raw_fd(), peer.ip()) else {
        monoio::spawn(client::reject_over_limit(w.clone(), stream, tls));
        return;
    };
    if tls && !w.start_tls(id) {
        w.unregister(id, peer.ip());
        return;
    }
    monoio::spawn(client::serve(w.clone(), id, stream, peer, tls));
}

async fn inbox_loop(w: Rc<Worker>) {
    let inbox = w.shared.inboxes[w.index].clone();
    // When each delivery of the current batch was published, for the latency histogram.
    let mut published = Vec::new();
    let commands = w.shared.commands[w.index].clone();
    loop {
        inbox.rung().await;
        w.now_ms();
        for (command, ack) in commands.take() {
            match command {
                Command::Reload(settings) => w.reload(&settings),
                Command::Shutdown => w.begin_shutdown(),
            }
            let _ = ack.send(w.index);
        }
        WorkerMetrics::set(&w.metrics.inbox_depth, inbox.len() as u64);
        let mut handled = 0;
        while let Some(msg) = inbox.pop() {
            match msg {
                WorkerMsg::Deliver(d) => {
                    super::fanout::deliver(&w, &d);
                    published.push(d.published_at);
                }
                WorkerMsg::Recover => w.recover_all(),
            }
            handled += 1;
            if handled % DRAIN_BATCH_MAX == 0 {
                inbox.drained();
                w.flush_batch(&mut published);
                super::yield_now().await;
                w.now_ms();
            }
        }
        inbox.drained();
        w.flush_batch(&mut published);
    }
}

async fn timer_loop(w: Rc<Worker>) {
    let mut due = Vec::new();
    let mut ticks = 0u64;
    loop {
        monoio::time::sleep(Duration::from_millis(TIMER_TICK_MS)).await;
        let now = w.now_ms();
        if let Some(c) = &w.cluster {
            c.flush();
        }
        if let Some(z) = &w.zmq {
            z.flush();
        }
        w.timers.borrow_mut().expire(now, &mut due);
        {
            let mut conns = w.conns.borrow_mut();
            for id in due.drain(..) {
                if let Some(slot) = conns.get_mut(id) {
                    slot.timer_at_ms = 0;
                    slot.notify(ev::TIMER);
                }
            }
        }
        w.police_outboxes(now);
        let open = w
            .metrics
            .connections
            .load(std::sync::atomic::Ordering::Relaxed);
        WorkerMetrics::add(&w.metrics.connection_ms, open * TIMER_TICK_MS);
        ticks += 1;
        if cfg!(debug_assertions) && ticks.is_multiple_of(AUDIT_EVERY_TICKS) {
            w.audit_outbox_total();
        }
    }
}
