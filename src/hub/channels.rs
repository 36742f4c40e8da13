//! One worker's channel → subscribers index.
//!
//! Owned by exactly one worker thread; never locked. A connection appears in a channel's set iff
//! the connection's own subscription list holds that channel: both sides are changed together by
//! the worker (see `runtime::conns`).

use std::collections::HashMap;
use std::rc::Rc;

use indexmap::IndexSet;

use super::ConnId;

/// The subscribers of one channel, in subscription order; O(1) insert and remove.
pub type Subscribers = IndexSet<ConnId>;

#[derive(Default)]
pub struct ChannelTable {
    map: HashMap<Rc<str>, Subscribers>,
    subscriptions: usize,
}

impl ChannelTable {
    pub fn new() -> ChannelTable {
        ChannelTable::default()
    }

    /// Adds `id` to `channel`; returns the shared channel name for the connection to keep, and
    /// whether it was newly added.
    pub fn subscribe(&mut self, channel: &str, id: ConnId) -> (Rc<str>, bool) {
        let key = match self.map.get_key_value(channel) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Rc<str> = Rc::from(channel);
                self.map.insert(k.clone(), Subscribers::default());
                k
            }
        };
        let added = self.map.get_mut(channel).is_some_and(|s| s.insert(id));
        if added {
            self.subscriptions += 1;
        }
        (key, added)
    }

    /// Removes `id` from `channel`; drops the channel when its last subscriber leaves, and then
    /// returns true.
    pub fn unsubscribe(&mut self, channel: &str, id: ConnId) -> bool {
        let Some(subs) = self.map.get_mut(channel) else {
            return false;
        };
        if subs.swap_remove(&id) {
            self.subscriptions -= 1;
        }
        if subs.is_empty() {
            self.map.remove(channel);
            return true;
        }
        false
    }

    pub fn subscribers(&self, channel: &str) -> Option<&Subscribers> {
        self.map.get(channel)
    }

    /// Number of channels with at least one subscriber here.
    pub fn channel_count(&self) -> usize {
        self.map.len()
    }

    /// Number of (channel, connection) pairs.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32) -> ConnId {
        ConnId { key, generation: 1 }
    }

    #[test]
    fn subscribe_and_unsubscribe_keep_counts() {
        let mut t = ChannelTable::new();
        let (k1, added) = t.subscribe("a", id(1));
        assert!(added);
        let (k2, added) = t.subscribe("a", id(2));
        assert!(added);
        assert!(Rc::ptr_eq(&k1, &k2), "the channel name is shared");
        assert!(!t.subscribe("a", id(2)).1, "double subscribe is a no-op");
        t.subscribe("b", id(1));
        assert_eq!((t.channel_count(), t.subscription_count()), (2, 3));
        t.unsubscribe("a", id(1));
        t.unsubscribe("a", id(1));
        assert_eq!(t.subscribers("a").map(|s| s.len()), Some(1));
        assert!(t.unsubscribe("a", id(2)), "the last subscriber left");
        assert!(t.subscribers("a").is_none(), "empty channels are dropped");
        assert_eq!((t.channel_count(), t.subscription_count()), (1, 1));
        t.unsubscribe("nope", id(9));
    }

    #[test]
    fn generations_are_distinct_subscribers() {
        let mut t = ChannelTable::new();
        t.subscribe(
            "a",
            ConnId {
                key: 1,
                generation: 1,
            },
        );
        t.subscribe(
            "a",
            ConnId {
                key: 1,
                generation: 2,
            },
        );
        assert_eq!(t.subscribers("a").map(|s| s.len()), Some(2));
    }
}
