//! Many holdfast nodes behind one name: publishes fanned out over NATS (`[cluster]`, off by
//! default).
//!
//! ```text
//!  publisher ─► node A publish API ─► A's ingest ─► A's workers ─► A's subscribers
//!                        │
//!                        └─► cluster thread ─► NATS subject <prefix>.<channel>
//!                                                   │  (only to nodes subscribed to it)
//!                                                   ▼
//!               node B cluster thread ─► B's ingest ─► B's workers ─► B's subscribers
//! ```
//!
//! - A node delivers what it accepted to its own subscribers at once (as a single node does) and
//!   sends it to NATS; NATS does not echo it back (`no_echo`). Other nodes deliver it when it
//!   arrives, through their own ingest (sequencer, encode once, every worker's inbox): the worker
//!   side is the same as for a local publish.
//! - Interest: a node subscribes to a channel's subject only while it has local subscribers on
//!   it (plus `interest_linger_ms`), so a channel's traffic reaches only the nodes that hold it.
//! - Order: items accepted by one node reach every subscriber on every node in the order that
//!   node accepted them (NATS keeps one connection's order per subject). Items accepted by
//!   different nodes at the same time can interleave differently on different nodes, unless they
//!   carry `id`/`prev-id`: each node's sequencer then puts them in chain order (waiting up to
//!   `publish.message_wait_ms` for a missing one), and a subscriber tracking prev-ids detects any
//!   gap and recovers from the origin.
//! - Loss: while a node is cut off from NATS it misses what others publish. Every message carries
//!   its sender's per-channel sequence number, so the gap is found when the sender's next item
//!   arrives: logged, counted (`holdfast_cluster_lost_total`), and the channel's last id is
//!   forgotten so Grip-Link recovery (prev-id) starts at once.
//!
//! `config` is the `[cluster]` section; `subject` and `wire` are sans-IO codecs; `interest` sums
//! the workers' interest; `link` holds the queues between threads; `node` is the thread.

pub mod interest;
pub mod link;
pub mod metrics;
pub mod node;
pub mod subject;
pub mod wire;

pub use crate::config::cluster::ClusterConfig;
pub use link::{ClusterLink, InterestChange, WorkerInterest};
