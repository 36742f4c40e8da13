//! Sans-IO protocol codecs. Nothing here touches a socket or awaits: each takes bytes and returns
//! what it parsed and how much it consumed, which makes them cheap to test, fuzz and bench.

pub mod body_patch;
pub mod filter;
pub mod grip;
pub mod http1;
pub mod names;
pub mod publish;
pub mod tnetstring;
pub mod ws;
pub mod wsoh;
pub mod zmq;
