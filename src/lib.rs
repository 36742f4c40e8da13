//! holdfast: a thread-per-core io_uring GRIP proxy, a drop-in alternative to Pushpin.
//!
//! Data flow (see ARCHITECTURE.md in the repository): `runtime` accepts clients on every worker,
//! `proxy` sends requests to the origin (`origin`), `proto::grip` reads its instructions and `hold` keeps the
//! connection subscribed in the worker's `hub::channels`. The publish API (`runtime::publish_api`)
//! validates items once (`proto::publish`), encodes them once (`hub::delivery`) and queues them in
//! every worker's `hub::inbox`; each worker fans them out to its own subscribers.
//! With `[cluster]` on, `cluster` also sends them over NATS to the other nodes holding the channel
//! and feeds theirs into this node's ingest.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod hub;
pub mod io;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod proto;
pub mod redact;
pub mod routes;
pub mod runtime;
pub mod tls;
pub mod zmq;

pub use config::Config;
pub use runtime::server::{Server, StartError};
