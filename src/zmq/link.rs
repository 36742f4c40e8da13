//! What the ZeroMQ thread shares with the publish thread and the workers.
//!
//! - ZeroMQ thread → publish thread: items received (already validated), `recover`, and local
//!   refreshes, in the order they arrived (an [`Inbox`]). The publish thread puts them through
//!   the same ingest as `POST /publish/` (cluster forwarding, sequencer, every worker's inbox).
//!   A full queue makes the ZeroMQ thread stop reading (back-pressure); nothing is dropped.
//! - workers → ZeroMQ thread: "channel X gained its first / lost its last subscriber on this
//!   worker", for the SUB socket's subscriptions (a lock-free queue; a worker keeps what does
//!   not fit and tries again on its next tick).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::cluster::InterestChange;
use crate::config::zmq::ZmqConfig;
use crate::hub::inbox::Inbox;
use crate::metrics::WorkerMetrics;
use crate::proto::publish::Item;

/// What the ZeroMQ thread hands the publish thread.
pub enum FromZmq {
    /// Published items (PULL, SUB, the `publish` command): ingested like an HTTP publish,
    /// forwarded to the cluster too.
    Items(Vec<Item>),
    /// The `recover` command: as `POST /recover`.
    Recover,
    /// Items for this node only (the `refresh` command's ws refresh): not forwarded.
    Local(Vec<Item>),
}

/// The endpoints as bound (an ephemeral `tcp://host:*` resolved to its port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub pull: Option<String>,
    pub sub: Vec<String>,
    pub command: Option<String>,
    pub stats: Option<String>,
}

/// Counters of the ZeroMQ sockets, rendered in `/metrics`.
#[derive(Default)]
pub struct ZmqMetrics {
    /// Items accepted, by socket: PULL, SUB, `publish` command.
    pub items: [AtomicU64; 3],
    /// Messages refused as invalid (logged), by socket: PULL, SUB, command.
    pub rejected: [AtomicU64; 3],
    /// Commands answered.
    pub commands: AtomicU64,
    /// Times the ZeroMQ thread waited for room in the queue to the publish thread.
    pub queue_full_waits: AtomicU64,
    /// Channels the SUB socket is subscribed to.
    pub subscriptions: AtomicU64,
}

/// Which socket a message came in on (the index into [`ZmqMetrics`]'s arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pull = 0,
    Sub = 1,
    Command = 2,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Pull, Source::Sub, Source::Command];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pull => "pull",
            Source::Sub => "sub",
            Source::Command => "command",
        }
    }
}

/// The ZeroMQ side's shared state; one per node, only when `[zmq] enabled`.
pub struct ZmqLink {
    pub config: ZmqConfig,
    pub incoming: Inbox<FromZmq>,
    interest: ArrayQueue<InterestChange>,
    pub metrics: ZmqMetrics,
    stopping: AtomicBool,
}

/// How long the ZeroMQ thread sleeps before trying a full queue again.
const FULL_QUEUE_RETRY: Duration = Duration::from_micros(500);

impl ZmqLink {
    pub fn new(config: ZmqConfig) -> ZmqLink {
        ZmqLink {
            incoming: Inbox::new(config.queue_capacity),
            interest: ArrayQueue::new(config.interest_queue_capacity),
            metrics: ZmqMetrics::default(),
            stopping: AtomicBool::new(false),
            config,
        }
    }

    /// Whether workers report their channels (only a SUB socket needs them).
    pub fn wants_interest(&self) -> bool {
        !self.config.push_in_sub_specs.is_empty()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// ZeroMQ thread: queues `msg` for the publish thread, waiting (blocking this thread, so no
    /// socket is read meanwhile) while the queue is full. False when holdfast is stopping.
    pub fn send_blocking(&self, mut msg: FromZmq) -> bool {
        let mut waited = false;
        loop {
            match self.incoming.push(msg) {
                Ok(()) => {
                    self.incoming.ring();
                    return true;
                }
                Err(back) => {
                    msg = back;
                    self.incoming.ring();
                    if !waited {
                        waited = true;
                        WorkerMetrics::inc(&self.metrics.queue_full_waits);
                    }
                    if self.is_stopping() {
                        return false;
                    }
                    std::thread::sleep(FULL_QUEUE_RETRY);
                }
            }
        }
    }

    #[cfg_attr(not(feature = "zmq"), allow(dead_code))]
    pub(super) fn pop_interest(&self) -> Option<InterestChange> {
        self.interest.pop()
    }
}

/// A worker's end of the interest queue. Changes that do not fit wait here, in order, and go
/// with the next change or the worker's next timer tick.
pub struct WorkerInterest {
    link: Arc<ZmqLink>,
    backlog: RefCell<VecDeque<InterestChange>>,
}

impl WorkerInterest {
    /// `None` unless the link has a SUB socket to subscribe.
    pub fn new(link: &Arc<ZmqLink>) -> Option<WorkerInterest> {
        link.wants_interest().then(|| WorkerInterest {
            link: link.clone(),
            backlog: RefCell::new(VecDeque::new()),
        })
    }

    pub fn note(&self, change: InterestChange) {
        self.backlog.borrow_mut().push_back(change);
        self.flush();
    }

    /// Moves what waits into the queue, as much as fits (the ZeroMQ thread polls it).
    pub fn flush(&self) {
        let mut backlog = self.backlog.borrow_mut();
        while let Some(change) = backlog.pop_front() {
            if let Err(back) = self.link.interest.push(change) {
                backlog.push_front(back);
                break;
            }
        }
    }
}

/// Renders the ZeroMQ counters in the Prometheus text format.
pub fn render_metrics(link: &ZmqLink, out: &mut String) {
    use std::fmt::Write as _;
    let m = &link.metrics;
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    for (name, help, values) in [
        (
            "holdfast_zmq_items_total",
            "Items accepted from ZeroMQ, by socket.",
            &m.items,
        ),
        (
            "holdfast_zmq_rejected_total",
            "ZeroMQ messages refused as invalid, by socket.",
            &m.rejected,
        ),
    ] {
        family(out, name, "counter", help);
        for s in Source::ALL {
            let v = values[s as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{socket=\"{}\"}} {v}", s.as_str());
        }
    }
    for (name, kind, help, v) in [
        (
            "holdfast_zmq_commands_total",
            "counter",
            "Commands answered on the ZeroMQ command socket.",
            &m.commands,
        ),
        (
            "holdfast_zmq_queue_full_waits_total",
            "counter",
            "Times the ZeroMQ reader waited for the publish thread (back-pressure).",
            &m.queue_full_waits,
        ),
        (
            "holdfast_zmq_subscriptions",
            "gauge",
            "Channels the ZeroMQ SUB socket is subscribed to.",
            &m.subscriptions,
        ),
    ] {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
    }
}
