//! The per-core hub: which connection listens to which channel, and how published messages reach
//! each worker. Publishes are parsed and encoded once (`delivery`), pushed into every worker's
//! bounded lock-free `inbox`, and fanned out by the worker through its own `channels` table.
//! Nothing here is shared between workers except the inbox queues themselves.

pub mod channels;
pub mod delivery;
pub mod inbox;
pub mod ingest;
pub mod sequencer;
pub mod slow_consumer;

/// A connection handle: slab key plus generation, so a reused slot is never mistaken for the
/// connection that had it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub key: u32,
    pub generation: u32,
}
