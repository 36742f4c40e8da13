//! Per-worker pool of idle keep-alive connections to origins, keyed by address.

use std::collections::HashMap;
use std::net::SocketAddr;

use monoio::net::TcpStream;

pub struct OriginPool {
    idle: HashMap<SocketAddr, Vec<(TcpStream, u64)>>,
    per_addr_max: usize,
    idle_timeout_ms: u64,
}

impl OriginPool {
    pub fn new(per_addr_max: usize, idle_timeout_ms: u64) -> OriginPool {
        OriginPool {
            idle: HashMap::new(),
            per_addr_max,
            idle_timeout_ms,
        }
    }

    /// The most recently used idle connection to `addr` that has not sat idle too long.
    pub fn take(&mut self, addr: SocketAddr, now_ms: u64) -> Option<TcpStream> {
        let list = self.idle.get_mut(&addr)?;
        // Entries are in put order: drop the stale ones from the front, use the freshest.
        let fresh_from = list
            .iter()
            .position(|(_, since)| now_ms.saturating_sub(*since) < self.idle_timeout_ms)
            .unwrap_or(list.len());
        list.drain(..fresh_from);
        list.pop().map(|(stream, _)| stream)
    }

    /// Keeps a connection whose last response was read completely.
    pub fn put(&mut self, addr: SocketAddr, stream: TcpStream, now_ms: u64) {
        let list = self.idle.entry(addr).or_default();
        if list.len() >= self.per_addr_max {
            list.remove(0);
        }
        list.push((stream, now_ms));
    }

    /// Idle connections held, over all addresses.
    pub fn idle_count(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }
}
