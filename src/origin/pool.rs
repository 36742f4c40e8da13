//! Per-worker pool of idle keep-alive connections to origins, keyed by address (and TLS name),
//! and the limit on requests in flight to each address.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::stream::{OriginStream, PoolKey};

pub struct OriginPool {
    idle: HashMap<PoolKey, Vec<(OriginStream, u64)>>,
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

    /// The most recently used idle connection to `key` that has not sat idle too long and on
    /// which nothing has arrived since its last response (no unread bytes, no EOF); the others
    /// are closed, and counted in the second value.
    pub fn take(&mut self, key: &PoolKey, now_ms: u64) -> (Option<OriginStream>, u64) {
        let Some(list) = self.idle.get_mut(key) else {
            return (None, 0);
        };
        // Entries are in put order: drop the stale ones from the front, use the freshest.
        let fresh_from = list
            .iter()
            .position(|(_, since)| now_ms.saturating_sub(*since) < self.idle_timeout_ms)
            .unwrap_or(list.len());
        list.drain(..fresh_from);
        let mut unquiet = 0;
        while let Some((stream, _)) = list.pop() {
            if stream.is_quiet() {
                return (Some(stream), unquiet);
            }
            unquiet += 1;
            tracing::debug!(addr = %key.addr, "pooled origin connection had unread bytes or EOF: closed");
        }
        (None, unquiet)
    }

    /// Keeps a connection whose last response was read completely.
    pub fn put(&mut self, key: PoolKey, stream: OriginStream, now_ms: u64) {
        let list = self.idle.entry(key).or_default();
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

/// Bounds the requests awaiting a response head from one origin address (per worker), so a
/// burst of clients (e.g. thousands of WebSocket-over-HTTP messages at once) queues briefly
/// instead of opening a connection each and overflowing the origin's accept queue.
pub struct InFlightLimit {
    max: usize,
    counts: RefCell<HashMap<SocketAddr, usize>>,
    waiters: RefCell<HashMap<SocketAddr, VecDeque<Waker>>>,
}

/// One admitted request to an address; frees its place when dropped.
pub struct Lease {
    limit: Rc<InFlightLimit>,
    addr: SocketAddr,
}

impl InFlightLimit {
    pub fn new(max: usize) -> Rc<InFlightLimit> {
        Rc::new(InFlightLimit {
            max: max.max(1),
            counts: RefCell::new(HashMap::new()),
            waiters: RefCell::new(HashMap::new()),
        })
    }

    /// Waits until fewer than the maximum requests to `addr` await a response head. Waiters are
    /// woken in arrival order as places free up.
    pub async fn acquire(self: &Rc<Self>, addr: SocketAddr) -> Lease {
        std::future::poll_fn(|cx| {
            let mut counts = self.counts.borrow_mut();
            let n = counts.entry(addr).or_insert(0);
            if *n < self.max {
                *n += 1;
                return Poll::Ready(());
            }
            self.waiters
                .borrow_mut()
                .entry(addr)
                .or_default()
                .push_back(cx.waker().clone());
            Poll::Pending
        })
        .await;
        Lease {
            limit: self.clone(),
            addr,
        }
    }

    /// Requests to `addr` awaiting a response head.
    pub fn in_flight(&self, addr: SocketAddr) -> usize {
        self.counts.borrow().get(&addr).copied().unwrap_or(0)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.borrow_mut();
        if let Some(n) = counts.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
        drop(counts);
        let mut waiters = self.limit.waiters.borrow_mut();
        if let Some(q) = waiters.get_mut(&self.addr) {
            if let Some(w) = q.pop_front() {
                w.wake();
            }
            if q.is_empty() {
                waiters.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_past_the_limit_wait_their_turn() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let limit = InFlightLimit::new(2);
            let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let a = limit.acquire(addr).await;
            let _b = limit.acquire(addr).await;
            assert_eq!(limit.in_flight(addr), 2);
            let waiting = {
                let limit = limit.clone();
                monoio::spawn(async move {
                    let _c = limit.acquire(addr).await;
                    limit.in_flight(addr)
                })
            };
            monoio::time::sleep(std::time::Duration::from_millis(10)).await;
            assert_eq!(limit.in_flight(addr), 2, "the third waits");
            drop(a);
            assert_eq!(waiting.await, 2, "it got the freed place");
            assert_eq!(limit.in_flight(addr), 1);
        });
    }
}
