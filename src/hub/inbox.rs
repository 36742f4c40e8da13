//! A worker's inbox: a bounded lock-free queue filled by other threads, and a doorbell.
//!
//! The publisher pushes a whole batch, then rings once; the worker drains everything per wake-up.
//! The doorbell wakes the worker's monoio task through its waker (monoio's `sync` feature turns a
//! cross-thread wake into an eventfd write), and only when it was not already rung, so a burst of
//! publishes costs one wake-up, not one per message. A pusher that finds the queue full waits on a
//! second waker that the consumer wakes once it has drained ([`Inbox::push_wait`],
//! [`Inbox::drained`]): messages are never dropped here, and nobody polls.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use super::delivery::Delivery;

/// What the publish thread sends a worker, in publish order. (Commands such as a reload travel
/// apart, acknowledged: see `runtime::worker::Commands`.)
pub enum WorkerMsg {
    /// A published item, encoded once, shared by every worker.
    Deliver(Arc<Delivery>),
    /// `POST /recover`: forget last ids and make every reliable hold fetch from the origin.
    Recover,
}

/// A bounded queue and its doorbell; `T` is [`WorkerMsg`] for a worker's inbox (the cluster thread
/// uses one for what it hands the publish thread).
pub struct Inbox<T = WorkerMsg> {
    queue: ArrayQueue<T>,
    rung: AtomicBool,
    waker: AtomicWaker,
    /// A pusher found the queue full and waits on `room`.
    room_wanted: AtomicBool,
    room: AtomicWaker,
}

impl<T> Inbox<T> {
    pub fn new(capacity: usize) -> Inbox<T> {
        Inbox {
            queue: ArrayQueue::new(capacity.max(1)),
            rung: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            room_wanted: AtomicBool::new(false),
            room: AtomicWaker::new(),
        }
    }

    /// Queues a message, waiting (without polling) while the queue is full: the consumer wakes
    /// this pusher when it has drained. Rings the doorbell only when it has to wait; the caller
    /// rings once after its batch.
    pub async fn push_wait(&self, msg: T) {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let Some(m) = msg.take() else {
                return Poll::Ready(());
            };
            let Err(back) = self.queue.push(m) else {
                return Poll::Ready(());
            };
            self.room.register(cx.waker());
            self.room_wanted.store(true, Ordering::SeqCst);
            self.ring();
            // Again after registering: the consumer may have drained in between.
            match self.queue.push(back) {
                Ok(()) => Poll::Ready(()),
                Err(back) => {
                    msg = Some(back);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Consumer side, after draining: wakes a pusher waiting for room.
    pub fn drained(&self) {
        if self.room_wanted.swap(false, Ordering::SeqCst) {
            self.room.wake();
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
        assert!(inbox.push(WorkerMsg::Recover).is_ok());
        assert!(inbox.push(WorkerMsg::Recover).is_err());
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
            assert!(other.push(WorkerMsg::Recover).is_ok());
            other.ring();
        });
        rt.block_on(async {
            inbox.rung().await;
            assert!(inbox.pop().is_some());
        });
        pusher.join().unwrap();
    }

    #[test]
    fn a_pusher_waits_for_room_and_the_consumer_wakes_it() {
        let inbox: Arc<Inbox<u32>> = Arc::new(Inbox::new(2));
        let consumer = inbox.clone();
        let drain = std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut got = Vec::new();
                while got.len() < 100 {
                    consumer.rung().await;
                    while let Some(n) = consumer.pop() {
                        got.push(n);
                    }
                    consumer.drained();
                }
                got
            })
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            for n in 0..100 {
                inbox.push_wait(n).await;
                inbox.ring();
            }
        });
        assert_eq!(
            drain.join().unwrap(),
            (0..100).collect::<Vec<_>>(),
            "in order, none lost"
        );
    }
}
