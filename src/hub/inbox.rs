//! A worker's inbox: a bounded lock-free queue filled by other threads, and a doorbell.
//!
//! The publisher pushes a whole batch, then rings once; the worker drains everything per wake-up.
//! The doorbell wakes the worker's monoio task through its waker (monoio's `sync` feature turns a
//! cross-thread wake into an eventfd write), and only when it was not already rung, so a burst of
//! publishes costs one wake-up, not one per message. A full queue is reported to the pusher, which
//! waits: messages are never dropped here.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use super::delivery::Delivery;

/// What other threads send a worker.
pub enum WorkerMsg {
    /// A published item, encoded once, shared by every worker.
    Deliver(Arc<Delivery>),
    /// `POST /recover`: forget last ids and make every reliable hold fetch from the origin.
    Recover,
    /// New reloadable settings (SIGHUP).
    Reload(Arc<crate::runtime::settings::Settings>),
    /// Stop accepting, end held connections, exit.
    Shutdown,
}

/// A bounded queue and its doorbell; `T` is [`WorkerMsg`] for a worker's inbox (the cluster thread
/// uses one for what it hands the publish thread).
pub struct Inbox<T = WorkerMsg> {
    queue: ArrayQueue<T>,
    rung: AtomicBool,
    waker: AtomicWaker,
}

impl<T> Inbox<T> {
    pub fn new(capacity: usize) -> Inbox<T> {
        Inbox {
            queue: ArrayQueue::new(capacity.max(1)),
            rung: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues a message without waking the worker; gives it back when the queue is full.
    pub fn push(&self, msg: T) -> Result<(), T> {
        self.queue.push(msg)
    }

    /// Wakes the worker unless it was already woken and has not drained yet.
    pub fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Worker side: resolves once the doorbell has been rung since the last call.
    pub async fn rung(&self) {
        poll_fn(|cx| {
            if self.rung.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.rung.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_gives_the_message_back() {
        let inbox = Inbox::new(1);
        assert!(inbox.push(WorkerMsg::Shutdown).is_ok());
        assert!(inbox.push(WorkerMsg::Shutdown).is_err());
        assert_eq!(inbox.len(), 1);
        assert!(inbox.pop().is_some());
        assert!(inbox.is_empty());
    }

    #[test]
    fn ring_wakes_a_waiting_worker_from_another_thread() {
        let inbox = Arc::new(Inbox::new(8));
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let other = inbox.clone();
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(other.push(WorkerMsg::Shutdown).is_ok());
            other.ring();
        });
        rt.block_on(async {
            inbox.rung().await;
            assert!(inbox.pop().is_some());
        });
        pusher.join().unwrap();
    }
}
