//! Which channels this node holds, over all its workers, and when to stop listening to one.
//! Sans-IO: the caller passes the time and does the subscribing.
//!
//! Each worker reports a channel once when its first local subscriber arrives and once when its
//! last one leaves. A channel is held while any worker holds it. When the last worker lets go,
//! the node stays subscribed for `linger_ms` more, so a client that reconnects straight away
//! (a page reload, a long-poll asking again) costs no unsubscribe and subscribe in NATS.

use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
struct Held {
    /// Workers with local subscribers.
    workers: u32,
    /// When `workers` last fell to 0 (the channel lingers), or `None` while held.
    idle_since_ms: Option<u64>,
}

/// The node's interest in channels.
#[derive(Debug)]
pub struct Interest {
    held: HashMap<Box<str>, Held>,
    /// Channels that went idle, oldest first (entries may be out of date: checked when popped).
    lingering: VecDeque<(u64, Box<str>)>,
    linger_ms: u64,
}

impl Interest {
    pub fn new(linger_ms: u64) -> Interest {
        Interest {
            held: HashMap::new(),
            lingering: VecDeque::new(),
            linger_ms,
        }
    }

    /// A worker got its first subscriber on `channel`; true when the node must subscribe now.
    pub fn gained(&mut self, channel: &str) -> bool {
        match self.held.get_mut(channel) {
            Some(h) => {
                h.workers += 1;
                h.idle_since_ms = None;
                false
            }
            None => {
                self.held.insert(
                    channel.into(),
                    Held {
                        workers: 1,
                        idle_since_ms: None,
                    },
                );
                true
            }
        }
    }

    /// A worker lost its last subscriber on `channel`.
    pub fn lost(&mut self, channel: &str, now_ms: u64) {
        let Some(h) = self.held.get_mut(channel) else {
            debug_assert!(false, "interest lost in {channel:?} that was never gained");
            return;
        };
        debug_assert!(h.workers > 0);
        h.workers = h.workers.saturating_sub(1);
        if h.workers == 0 {
            h.idle_since_ms = Some(now_ms);
            self.lingering.push_back((now_ms, channel.into()));
        }
    }

    /// Channels whose linger is over: the node unsubscribes from them (they are forgotten here).
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<Box<str>>) {
        while let Some((since, _)) = self.lingering.front() {
            if since + self.linger_ms > now_ms {
                break;
            }
            let Some((since, channel)) = self.lingering.pop_front() else {
                break;
            };
            let still_idle = self
                .held
                .get(&channel)
                .is_some_and(|h| h.idle_since_ms == Some(since));
            if still_idle {
                self.held.remove(&channel);
                out.push(channel);
            }
        }
    }

    /// Channels the node is subscribed to (held or lingering).
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.held.keys().map(|k| &**k)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(i: &mut Interest, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        i.expire(now, &mut out);
        out.into_iter().map(String::from).collect()
    }

    #[test]
    fn subscribes_once_per_node_and_lingers_after_the_last_worker() {
        let mut i = Interest::new(100);
        assert!(i.gained("a"), "first worker: subscribe");
        assert!(!i.gained("a"), "second worker: already subscribed");
        i.lost("a", 10);
        assert!(
            expired(&mut i, 1_000).is_empty(),
            "one worker still holds it"
        );
        i.lost("a", 20);
        assert!(expired(&mut i, 119).is_empty(), "lingering");
        assert_eq!(i.len(), 1);
        assert_eq!(expired(&mut i, 120), ["a"]);
        assert!(i.is_empty());
        assert!(
            i.gained("a"),
            "after the linger a new subscriber subscribes again"
        );
    }

    #[test]
    fn a_subscriber_returning_within_the_linger_keeps_the_subscription() {
        let mut i = Interest::new(100);
        i.gained("a");
        i.lost("a", 0);
        assert!(!i.gained("a"), "still subscribed");
        assert!(expired(&mut i, 500).is_empty());
        i.lost("a", 600);
        assert!(
            expired(&mut i, 650).is_empty(),
            "the new linger counts from 600"
        );
        assert_eq!(expired(&mut i, 700), ["a"]);
    }

    #[test]
    fn channels_expire_in_the_order_they_went_idle() {
        let mut i = Interest::new(0);
        for c in ["a", "b", "c"] {
            i.gained(c);
        }
        i.lost("b", 1);
        i.lost("a", 2);
        let mut held: Vec<&str> = i.channels().collect();
        held.sort();
        assert_eq!(held, ["a", "b", "c"]);
        assert_eq!(expired(&mut i, 5), ["b", "a"]);
        assert_eq!(i.channels().collect::<Vec<_>>(), ["c"]);
    }
}
