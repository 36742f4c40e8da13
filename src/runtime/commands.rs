//! Commands the main thread sends the workers (reload, shutdown): apart from the ordered publish
//! queue, and acknowledged, so the sender knows when every worker has carried one out instead of
//! pushing and hoping (or sleeping and retrying on a full queue).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::settings::Settings;
use crate::hub::inbox::Inbox;

/// What a worker is told to do.
pub enum Command {
    /// New reloadable settings (SIGHUP): requests and sessions running keep theirs.
    Reload(Arc<Settings>),
    /// Stop accepting, end held connections, exit.
    Shutdown,
}

/// One worker's pending commands, each with where to acknowledge it. Commands are rare (a
/// SIGHUP, a stop): a mutex is fine, and the worker takes it only when `pending` says so.
#[derive(Default)]
pub struct Commands {
    queue: Mutex<Vec<(Command, Sender<usize>)>>,
    pending: AtomicBool,
}

impl Commands {
    fn send(&self, command: Command, ack: Sender<usize>) {
        if let Ok(mut q) = self.queue.lock() {
            q.push((command, ack));
            self.pending.store(true, Ordering::Release);
        }
    }

    /// Worker side: the commands sent since the last call, oldest first.
    pub fn take(&self) -> Vec<(Command, Sender<usize>)> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        self.queue
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

/// Sends a command (made by `make`) to every worker, rings each, and waits up to `limit` until
/// each has carried it out. Returns the workers that did not acknowledge in time.
pub fn broadcast(
    commands: &[Arc<Commands>],
    inboxes: &[Arc<Inbox>],
    make: impl Fn() -> Command,
    limit: Duration,
) -> Vec<usize> {
    let (tx, rx) = mpsc::channel();
    for (c, inbox) in commands.iter().zip(inboxes) {
        c.send(make(), tx.clone());
        inbox.ring();
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let mut done = vec![false; commands.len()];
    while done.iter().any(|d| !d) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(worker) => {
                if let Some(d) = done.get_mut(worker) {
                    *d = true;
                }
            }
            Err(_) => break,
        }
    }
    done.iter()
        .enumerate()
        .filter(|(_, d)| !**d)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_acknowledged_by_each_worker_and_a_silent_one_is_named() {
        let commands: Vec<Arc<Commands>> = (0..2).map(|_| Arc::default()).collect();
        let inboxes: Vec<Arc<Inbox>> = (0..2).map(|_| Arc::new(Inbox::new(1))).collect();
        let answering = commands[0].clone();
        let worker = std::thread::spawn(move || {
            loop {
                let taken = answering.take();
                if let Some((Command::Shutdown, ack)) = taken.into_iter().next() {
                    let _ = ack.send(0);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let missing = broadcast(
            &commands,
            &inboxes,
            || Command::Shutdown,
            Duration::from_millis(300),
        );
        worker.join().unwrap();
        assert_eq!(missing, vec![1], "worker 1 never answered");
        assert!(commands[0].take().is_empty(), "taken once");
    }
}
