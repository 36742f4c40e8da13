//! Pushpin's ZeroMQ interface (`[zmq]`, off by default): publishing over a PULL socket and a SUB
//! socket (with the SUB socket's subscriptions following the channels that have subscribers),
//! the command socket (`recover`, `refresh`, `publish`, `conncheck`, `get-zmq-uris`) and the
//! stats socket (`report` messages).
//!
//! ```text
//!  PUSH / XPUB / REQ ─► ZeroMQ thread ──(validated items, in order)──► publish thread ─► ingest
//!                          ▲                                            (as POST /publish/)
//!                          └── workers: a channel's first / last subscriber (SUB subscriptions)
//! ```
//!
//! `config` is the `[zmq]` section; `link` holds the queues between threads; `thread` (cargo
//! feature `zmq`, on by default, libzmq built from source by the `zmq` crate) is the thread.
//! The message formats are sans-IO codecs in `proto::tnetstring` and `proto::zmq`.

pub mod link;
#[cfg(feature = "zmq")]
pub mod thread;

pub use crate::config::zmq::ZmqConfig;
pub use link::{Endpoints, FromZmq, WorkerInterest, ZmqLink};
