//! The origin side: route targets resolved to addresses, a per-worker keep-alive pool, request
//! signing (Grip-Sig) and the HTTP/1.1 exchange itself.

pub mod client;
pub mod pool;
pub mod sign;
pub mod stream;
pub mod targets;
pub mod wsoh;
