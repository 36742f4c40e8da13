//! Socket I/O below the protocols: the TLS record pump over a raw fd, a held connection's outbox
//! and its vectored non-blocking write, and the per-worker pool of read buffers. This is where
//! holdfast's `unsafe` lives (each block says why it is sound); nothing here knows HTTP, GRIP or
//! a worker.

pub mod bufpool;
pub mod outbox;
pub mod tls_io;

/// What one non-blocking read got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Bytes(usize),
    Eof,
    /// The readiness was spurious: wait again.
    NotReady,
    Failed,
}
