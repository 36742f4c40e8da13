//! Per-worker pool of read buffers.
//!
//! A connection borrows a buffer only while it has bytes to read or parse and gives it back before
//! it waits again, so a held or idle connection owns no buffer (see ARCHITECTURE "Idle").

use std::cell::RefCell;

pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
    size: usize,
    max: usize,
}

impl BufPool {
    pub fn new(size: usize, max: usize) -> BufPool {
        BufPool {
            free: RefCell::new(Vec::new()),
            size,
            max,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Returns a buffer; grown or shrunk buffers, and any beyond the pool's limit, are freed.
    pub fn give(&self, mut buf: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if buf.capacity() == self.size && free.len() < self.max {
            buf.clear();
            free.push(buf);
        }
    }

    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// Buffers waiting in the pool.
    pub fn idle(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_up_to_the_limit() {
        let pool = BufPool::new(64, 1);
        let mut a = pool.take();
        a.extend_from_slice(b"junk");
        let b = pool.take();
        pool.give(a);
        pool.give(b);
        assert_eq!(pool.idle(), 1);
        let c = pool.take();
        assert!(c.is_empty() && c.capacity() == 64);
    }

    #[test]
    fn grown_buffers_are_not_kept() {
        let pool = BufPool::new(64, 4);
        let mut a = pool.take();
        a.reserve(1000);
        pool.give(a);
        assert_eq!(pool.idle(), 0);
    }
}
