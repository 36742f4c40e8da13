//! What the cluster thread shares with the publish thread and the workers: three queues and the
//! cluster metrics.
//!
//! - publish thread → cluster thread: items accepted by this node's publish API, as publish
//!   bodies, to send to NATS (a tokio channel: the cluster thread runs tokio).
//! - workers → cluster thread: "channel X gained its first / lost its last subscriber on this
//!   worker" (a lock-free queue; a worker keeps what does not fit and tries again later).
//! - cluster thread → publish thread: items from other nodes, decoded once, to go through this
//!   node's sequencer and into every worker's inbox like a local publish (an [`Inbox`]).
//!
//! No worker ever waits on the cluster: the per-core delivery path is the one local publishes
//! take, and an interest change costs a queue push on the subscribe path, not on delivery.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, mpsc};

use super::metrics::ClusterMetrics;
use crate::config::cluster::ClusterConfig;
use crate::hub::inbox::Inbox;
use crate::hub::ingest::Ingest;
use crate::metrics::WorkerMetrics;
use crate::proto::publish::Item;

/// Items from other nodes waiting for the publish thread.
const INCOMING_CAPACITY: usize = 65_536;
/// How long a publish waits for room in a full queue to NATS while connected.
const SEND_WAIT: Duration = Duration::from_secs(1);

/// An item accepted here, on its way to NATS.
pub struct Outgoing {
    pub channel: String,
    /// The item as a publish body (see `wire`).
    pub body: Vec<u8>,
}

/// A worker's change of interest in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterestChange {
    Gained(Box<str>),
    Lost(Box<str>),
}

/// What the cluster thread hands the publish thread.
pub enum FromCluster {
    /// Items published on other nodes, in the order NATS delivered them for their channel.
    Items(Vec<Item>),
    /// Forget the channel's last id in the sequencer: this node (re)starts listening to it, or
    /// missed messages on it, so the next item must not wait for a predecessor that will never
    /// come. Subscribers that track prev-ids then see the gap and recover from the origin.
    Forget(Box<str>),
}

/// The cluster's shared state; one per node, only when `[cluster] enabled`.
pub struct ClusterLink {
    pub config: ClusterConfig,
    /// This node's name.
    pub node: String,
    outgoing_tx: mpsc::Sender<Outgoing>,
    outgoing_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    interest: ArrayQueue<InterestChange>,
    pub(super) interest_rung: Notify,
    pub incoming: Inbox<FromCluster>,
    pub metrics: ClusterMetrics,
    connected: AtomicBool,
    pub(super) stop: Notify,
    pub(super) stopping: AtomicBool,
}

impl ClusterLink {
    pub fn new(config: ClusterConfig) -> ClusterLink {
        let (tx, rx) = mpsc::channel(config.publish_queue_capacity);
        ClusterLink {
            node: config.node_name(),
            outgoing_tx: tx,
            outgoing_rx: Mutex::new(Some(rx)),
            interest: ArrayQueue::new(config.interest_queue_capacity),
            interest_rung: Notify::new(),
            incoming: Inbox::new(INCOMING_CAPACITY),
            metrics: ClusterMetrics::default(),
            connected: AtomicBool::new(false),
            stop: Notify::new(),
            stopping: AtomicBool::new(false),
            config,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(super) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        WorkerMetrics::set(&self.metrics.connected, up as u64);
    }

    /// The cluster thread takes the receiving end once.
    pub(super) fn take_outgoing(&self) -> Option<mpsc::Receiver<Outgoing>> {
        self.outgoing_rx.lock().ok()?.take()
    }

    pub(super) fn pop_interest(&self) -> Option<InterestChange> {
        self.interest.pop()
    }

    /// Publish thread: sends items accepted here to the other nodes. Connected, a full queue
    /// makes the publisher wait (up to a second per request); disconnected, or once that second
    /// is spent, an item that does not fit is delivered here only and counted in
    /// `holdfast_cluster_publish_dropped_total`.
    pub async fn forward(&self, items: &[Item]) {
        // One wait per request: a thousand-item publish must not wait a thousand seconds.
        let mut may_wait = true;
        for item in items {
            let out = Outgoing {
                channel: item.channel.clone(),
                body: super::wire::publish_body(item),
            };
            let sent = match self.outgoing_tx.try_send(out) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(out)) if may_wait && self.is_connected() => {
                    let sent = matches!(
                        monoio::time::timeout(SEND_WAIT, self.outgoing_tx.send(out)).await,
                        Ok(Ok(()))
                    );
                    may_wait = sent;
                    sent
                }
                Err(_) => false,
            };
            if !sent {
                WorkerMetrics::inc(&self.metrics.publish_dropped);
                tracing::debug!(
                    channel = %item.channel,
                    "cluster: queue to NATS full, item delivered on this node only"
                );
            }
        }
    }

    /// Publish thread: feeds what the cluster thread received into this node's ingest, in
    /// order, for as long as the thread lives.
    pub async fn receive_loop(&self, ingest: &Ingest) {
        let mut batch = Vec::new();
        loop {
            self.incoming.rung().await;
            while let Some(msg) = self.incoming.pop() {
                self.incoming.drained();
                match msg {
                    FromCluster::Items(items) => batch.extend(items),
                    FromCluster::Forget(channel) => {
                        if !batch.is_empty() {
                            ingest.publish(std::mem::take(&mut batch)).await;
                        }
                        ingest.forget_last_id(&channel).await;
                    }
                }
            }
            if !batch.is_empty() {
                ingest.publish(std::mem::take(&mut batch)).await;
            }
        }
    }
}

/// A worker's end of the interest queue. Changes that do not fit wait here, in order, and go
/// with the next change or the worker's next timer tick.
pub struct WorkerInterest {
    link: Arc<ClusterLink>,
    backlog: RefCell<VecDeque<InterestChange>>,
}

impl WorkerInterest {
    pub fn new(link: Arc<ClusterLink>) -> WorkerInterest {
        WorkerInterest {
            link,
            backlog: RefCell::new(VecDeque::new()),
        }
    }

    /// Records a change and tells the cluster thread.
    pub fn note(&self, change: InterestChange) {
        self.backlog.borrow_mut().push_back(change);
        self.flush();
    }

    /// Moves what waits into the queue (as much as fits) and rings the cluster thread.
    pub fn flush(&self) {
        let mut backlog = self.backlog.borrow_mut();
        if backlog.is_empty() {
            return;
        }
        while let Some(change) = backlog.pop_front() {
            if let Err(back) = self.link.interest.push(change) {
                backlog.push_front(back);
                break;
            }
        }
        self.link.interest_rung.notify_one();
    }
}
