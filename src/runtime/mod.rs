//! The thread-per-core runtime: start-up, workers, connection tasks, and the publish listener.
//!
//! `start` binds every socket first (so errors surface before anything runs), then starts one
//! pinned worker thread per core, each a monoio runtime (io_uring, or epoll as a fallback), and
//! one publish thread. Workers share nothing mutable; they hear from other threads only through
//! their inbox.

pub mod admission;
pub mod client;
pub mod commands;
pub mod conns;
pub mod fanout;
pub mod grip_ws;
pub mod hold;
pub mod host;
pub mod listener;
pub mod next_link;
pub mod proxy;
pub mod publish_api;
pub mod server;
pub mod settings;
pub mod stream_hold;
pub mod timer;
pub mod websocket;
pub mod worker;
pub mod ws_guard;
pub mod ws_passthrough;
pub mod wsoh;
pub mod wsoh_request;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use crate::config::Config;
use crate::hub::inbox::Inbox;

/// What every worker reads and nobody writes after start-up.
pub struct Shared {
    /// The configuration at start: listeners, workers and the publish listener come from it
    /// (changing them needs a restart).
    pub config: Config,
    /// The reloadable settings at start; each worker keeps its own copy, replaced on reload.
    pub initial: settings::Settings,
    /// One inbox per worker, in worker order.
    pub inboxes: Vec<Arc<Inbox>>,
    /// One command queue per worker (reload, shutdown; acknowledged), in worker order.
    pub commands: Vec<Arc<commands::Commands>>,
    /// One metrics block per worker (written only by that worker), in worker order.
    pub metrics: Vec<Arc<crate::metrics::WorkerMetrics>>,
    pub publish_metrics: Arc<crate::metrics::PublishMetrics>,
    /// The connection limits that span workers.
    pub admission: admission::Admission,
    /// The link to the other nodes (`[cluster]`), when enabled.
    pub cluster: Option<Arc<crate::cluster::ClusterLink>>,
    /// The ZeroMQ sockets' queues (`[zmq]`), when enabled.
    pub zmq: Option<Arc<crate::zmq::ZmqLink>>,
}

/// Lets other tasks on this worker run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
