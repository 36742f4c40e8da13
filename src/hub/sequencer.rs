//! Per-channel ordering of published items by `id` / `prev-id` (reliable delivery).
//!
//! Owns three tables: the last id delivered on each channel, the items waiting for a missing
//! predecessor, and the recently seen ids (for dropping duplicates). It does no I/O and reads no
//! clock: the caller passes `now_ms` (any monotonic millisecond count) and calls
//! [`Sequencer::expire`] by [`Sequencer::next_deadline`]. It knows nothing of subscribers or
//! formats; the item is an opaque `T` handed back in delivery order.
//!
//! Reproduced from Pushpin (`src/handler/sequencer.cpp`, `publishlastids.cpp`,
//! `handlerengine.cpp`):
//! - An item passes at once when the channel has no last id, when it has no `prev-id`, or when its
//!   `prev-id` equals the last id; delivering it sets the channel's last id to its `id`, or
//!   forgets the last id when it has none (`sendItem`).
//! - Otherwise it waits, keyed by its `prev-id`. Delivering an item releases the waiting item whose
//!   `prev-id` is that item's `id`, then the one after it, and so on, in one go.
//! - A second item waiting on the same `prev-id` is dropped; so is one beyond the per-channel
//!   pending limit (Pushpin: 100, a constant).
//! - A wait that reaches `wait_ms` (`message_wait`) releases the item anyway, followed by whatever
//!   chain it unblocks; the oldest wait goes first. Here it comes back as [`Released::AfterGap`].
//! - Ids are remembered per channel for `id_cache_ttl_ms` (`id_cache_ttl`) and a repeat within
//!   that time is dropped, `no-seq` items included. A ttl of 0 turns the cache off.
//! - `no-seq` items bypass ordering and do not touch the last id. (Pushpin also treats an item on
//!   a channel nobody subscribes to as `no-seq`; the caller sets [`Meta::no_seq`] for that.)
//! - The last-id table is bounded (`channels_max`; Pushpin: 1 000 000) and evicts the channel
//!   whose last id was set longest ago (`PublishLastIds::set`).
//! - [`Sequencer::forget_channel`] is Pushpin's unsubscribe (`clearPendingForChannel` plus
//!   removing the last id; waiting items are dropped); [`Sequencer::clear_last_ids`] is
//!   `POST /recover` (waiting items stay and expire as usual).
//!
//! Differences: expiry is exact (Pushpin checks once a second, so waits last 5–6 s); an item that
//! is dropped (duplicate `prev-id`, pending limit) does not enter the id cache, so a publisher's
//! retry is not mistaken for a duplicate; `wait_ms == 0` releases out-of-order items at once; the
//! id cache has a size limit (`id_cache_max`, oldest forgotten first) and the number of channels
//! with waiting items is bounded by `channels_max` (over it, an out-of-order item is released at
//! once as `AfterGap` rather than kept). Default limits differ: 1 000 pending items per channel
//! and 100 000 channels. Every drop and forced release is counted in [`SequencerStats`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Limits and timings of a [`Sequencer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerConfig {
    /// How long an out-of-order item waits for its predecessor (Pushpin `message_wait`).
    /// 0 releases such items at once.
    pub wait_ms: u64,
    /// How long an id is remembered to drop duplicates (Pushpin `id_cache_ttl`); 0 disables.
    pub id_cache_ttl_ms: u64,
    /// Most items waiting on one channel; more are dropped, as Pushpin does.
    pub pending_per_channel_max: usize,
    /// Most channels with a last id (least recently set evicted), and most channels with
    /// waiting items (over it, items are released at once).
    pub channels_max: usize,
    /// Most remembered ids over all channels; over it the oldest is forgotten early.
    pub id_cache_max: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        Self {
            wait_ms: 5_000,
            id_cache_ttl_ms: 60_000,
            pending_per_channel_max: 1_000,
            channels_max: 100_000,
            id_cache_max: 250_000,
        }
    }
}

/// What the sequencer needs to know about one published item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The item's channel.
    pub channel: &'a str,
    /// The item's `id`.
    pub id: Option<&'a str>,
    /// The item's `prev-id`.
    pub prev_id: Option<&'a str>,
    /// Deliver without ordering (the item's `no-seq`, or no one is subscribed to the channel).
    pub no_seq: bool,
}

/// An item ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released<T> {
    /// In order (or not sequenced).
    Item(T),
    /// Released after the wait expired: items before it are missing. Subscribers that track
    /// `prev-id` will see the mismatch and recover through their next link.
    AfterGap(T),
}

impl<T> Released<T> {
    /// The item, however it was released.
    pub fn into_inner(self) -> T {
        match self {
            Released::Item(t) | Released::AfterGap(t) => t,
        }
    }

    /// Whether items before this one are known to be missing.
    pub fn is_after_gap(&self) -> bool {
        matches!(self, Released::AfterGap(_))
    }
}

/// Counters and gauges, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencerStats {
    /// Items waiting now.
    pub pending_items: usize,
    /// Channels with waiting items now.
    pub pending_channels: usize,
    /// Channels with a last id now.
    pub channels_tracked: usize,
    /// Ids remembered now.
    pub ids_cached: usize,
    /// Items dropped because their id was seen within the ttl.
    pub duplicates_dropped: u64,
    /// Items released as [`Released::AfterGap`] (all causes).
    pub gaps_released: u64,
    /// Of `gaps_released`, those released at once because `channels_max` channels had waiting
    /// items already.
    pub channels_full_released: u64,
    /// Items dropped because another item already waited on the same `prev-id`.
    pub same_prev_id_dropped: u64,
    /// Items dropped because their channel had `pending_per_channel_max` waiting.
    pub pending_full_dropped: u64,
    /// Waiting items dropped by [`Sequencer::forget_channel`].
    pub forgotten_dropped: u64,
    /// Last ids evicted to stay within `channels_max`.
    pub last_ids_evicted: u64,
    /// Ids forgotten before their ttl to stay within `id_cache_max`.
    pub ids_evicted: u64,
}

/// Orders published items per channel. See the module docs for the rules.
#[derive(Debug)]
pub struct Sequencer<T> {
    cfg: SequencerConfig,
    last_ids: LastIds,
    ids: IdCache,
    pending: Pending<T>,
    stats: SequencerStats,
}

impl<T> Sequencer<T> {
    /// An empty sequencer.
    pub fn new(cfg: SequencerConfig) -> Self {
        Self {
            last_ids: LastIds {
                max: cfg.channels_max,
                ..LastIds::default()
            },
            ids: IdCache {
                ttl_ms: cfg.id_cache_ttl_ms,
                max: cfg.id_cache_max,
                ..IdCache::default()
            },
            pending: Pending::new(),
            cfg,
            stats: SequencerStats::default(),
        }
    }

    /// Offers an item; returns what is ready to deliver now, in order: nothing (it waits or was
    /// dropped), the item, or the item and the waiting items it unblocked.
    pub fn push(&mut self, meta: Meta<'_>, item: T, now_ms: u64) -> Vec<Released<T>> {
        let mut out = Vec::new();
        self.push_into(meta, item, now_ms, &mut out);
        out
    }

    /// [`Sequencer::push`] appending to `out`, so a caller can reuse one buffer.
    pub fn push_into(&mut self, meta: Meta<'_>, item: T, now_ms: u64, out: &mut Vec<Released<T>>) {
        self.ids.purge(now_ms);
        if let Some(id) = meta.id
            && self.ids.contains(meta.channel, id)
        {
            self.stats.duplicates_dropped += 1;
            return;
        }
        let accepted = if meta.no_seq {
            out.push(Released::Item(item));
            true
        } else if let Some(prev_id) = self.must_wait(&meta) {
            self.wait(meta.channel, prev_id, meta.id, item, now_ms, out)
        } else {
            self.deliver(meta.channel, meta.id, Released::Item(item), out);
            true
        };
        if accepted && let Some(id) = meta.id {
            self.ids.insert(meta.channel, id, now_ms);
        }
    }

    /// Releases the items whose wait has expired (oldest first, each followed by the chain it
    /// unblocks) and forgets expired ids. Call at [`Sequencer::next_deadline`].
    pub fn expire(&mut self, now_ms: u64) -> Vec<Released<T>> {
        let mut out = Vec::new();
        self.expire_into(now_ms, &mut out);
        out
    }

    /// [`Sequencer::expire`] appending to `out`.
    pub fn expire_into(&mut self, now_ms: u64, out: &mut Vec<Released<T>>) {
        self.ids.purge(now_ms);
        while let Some((channel, waiting)) = self.pending.pop_expired(now_ms) {
            self.stats.gaps_released += 1;
            let item = Released::AfterGap(waiting.item);
            self.deliver(&channel, waiting.id.as_deref(), item, out);
        }
    }

    /// When the earliest wait expires, if any item waits.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.next_deadline()
    }

    /// The last id delivered on `channel` (for `Grip-Last` and stream-hold conflict checks).
    pub fn last_id(&self, channel: &str) -> Option<&str> {
        self.last_ids.get(channel)
    }

    /// Forgets one channel's last id: Pushpin does this when a subscriber sees an id
    /// inconsistency, so the next item on the channel passes straight through.
    pub fn remove_last_id(&mut self, channel: &str) {
        self.last_ids.remove(channel);
    }

    /// Forgets every last id (`POST /recover`). Waiting items stay and expire as usual.
    pub fn clear_last_ids(&mut self) {
        self.last_ids.clear();
    }

    /// The channel lost its last subscriber: drops its waiting items and its last id (the id
    /// cache is kept). Returns how many waiting items were dropped.
    pub fn forget_channel(&mut self, channel: &str) -> usize {
        let dropped = self.pending.remove_channel(channel);
        self.stats.forgotten_dropped += dropped as u64;
        self.last_ids.remove(channel);
        dropped
    }

    /// Current gauges and counters.
    pub fn stats(&self) -> SequencerStats {
        SequencerStats {
            pending_items: self.pending.by_deadline.len(),
            pending_channels: self.pending.channels.len(),
            channels_tracked: self.last_ids.map.len(),
            ids_cached: self.ids.queue.len(),
            last_ids_evicted: self.last_ids.evicted,
            ids_evicted: self.ids.evicted,
            ..self.stats
        }
    }

    /// The `prev-id` to wait on, if the item is out of order (Pushpin's `addItem` condition).
    fn must_wait<'m>(&self, meta: &Meta<'m>) -> Option<&'m str> {
        let prev_id = meta.prev_id?;
        let last = self.last_ids.get(meta.channel)?;
        (last != prev_id).then_some(prev_id)
    }

    /// Parks an out-of-order item; returns whether it was accepted (parked or released).
    fn wait(
        &mut self,
        channel: &str,
        prev_id: &str,
        id: Option<&str>,
        item: T,
        now_ms: u64,
        out: &mut Vec<Released<T>>,
    ) -> bool {
        let (count, same_prev) = self.pending.channel_state(channel, prev_id);
        if same_prev {
            self.stats.same_prev_id_dropped += 1;
            return false;
        }
        if count >= self.cfg.pending_per_channel_max {
            self.stats.pending_full_dropped += 1;
            return false;
        }
        let channels_full = count == 0 && self.pending.channels.len() >= self.cfg.channels_max;
        if self.cfg.wait_ms == 0 || channels_full {
            self.stats.gaps_released += 1;
            self.stats.channels_full_released += u64::from(channels_full);
            self.deliver(channel, id, Released::AfterGap(item), out);
            return true;
        }
        let waiting = Waiting {
            item,
            id: id.map(str::to_owned),
            deadline_ms: now_ms.saturating_add(self.cfg.wait_ms),
            seq: 0,
        };
        self.pending.insert(channel, prev_id, waiting);
        true
    }

    /// Delivers `first` (whose id is `id`) and every waiting item it unblocks, updating the
    /// last id as each goes (Pushpin's `sendItem`).
    fn deliver(
        &mut self,
        channel: &str,
        id: Option<&str>,
        first: Released<T>,
        out: &mut Vec<Released<T>>,
    ) {
        self.last_ids.set(channel, id);
        out.push(first);
        let mut next = id.and_then(|id| self.pending.take(channel, id));
        while let Some(waiting) = next {
            self.last_ids.set(channel, waiting.id.as_deref());
            next = (waiting.id.as_deref()).and_then(|id| self.pending.take(channel, id));
            out.push(Released::Item(waiting.item));
        }
    }
}

/// Last id per channel, bounded, least recently set evicted (Pushpin's `PublishLastIds`).
#[derive(Debug, Default)]
struct LastIds {
    map: HashMap<String, LastId>,
    /// Set order: stamp → channel; the first entry is the least recently set.
    by_stamp: BTreeMap<u64, String>,
    next_stamp: u64,
    max: usize,
    evicted: u64,
}

#[derive(Debug)]
struct LastId {
    id: String,
    stamp: u64,
}

impl LastIds {
    fn get(&self, channel: &str) -> Option<&str> {
        self.map.get(channel).map(|l| l.id.as_str())
    }

    /// Sets the channel's last id, or removes it for `None`.
    fn set(&mut self, channel: &str, id: Option<&str>) {
        let Some(id) = id else {
            self.remove(channel);
            return;
        };
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(entry) = self.map.get_mut(channel) {
            let name = self.by_stamp.remove(&entry.stamp);
            debug_assert!(name.is_some(), "last-id stamp index out of step");
            entry.id.clear();
            entry.id.push_str(id);
            entry.stamp = stamp;
            let name = name.unwrap_or_else(|| channel.to_owned());
            self.by_stamp.insert(stamp, name);
            return;
        }
        if self.max == 0 {
            return;
        }
        while self.map.len() >= self.max {
            let Some((_, oldest)) = self.by_stamp.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            self.evicted += 1;
        }
        let id = id.to_owned();
        self.map.insert(channel.to_owned(), LastId { id, stamp });
        self.by_stamp.insert(stamp, channel.to_owned());
    }

    fn remove(&mut self, channel: &str) {
        if let Some(entry) = self.map.remove(channel) {
            self.by_stamp.remove(&entry.stamp);
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.by_stamp.clear();
    }
}

/// Recently seen ids per channel, forgotten after a ttl, bounded in count.
#[derive(Debug, Default)]
struct IdCache {
    by_channel: HashMap<String, HashSet<String>>,
    /// Expiry order; expiry times never decrease along the queue.
    queue: VecDeque<CachedId>,
    ttl_ms: u64,
    max: usize,
    evicted: u64,
}

#[derive(Debug)]
struct CachedId {
    expire_ms: u64,
    channel: String,
    id: String,
}

impl IdCache {
    fn contains(&self, channel: &str, id: &str) -> bool {
        self.by_channel
            .get(channel)
            .is_some_and(|ids| ids.contains(id))
    }

    fn insert(&mut self, channel: &str, id: &str, now_ms: u64) {
        if self.ttl_ms == 0 || self.max == 0 {
            return;
        }
        while self.queue.len() >= self.max {
            self.pop_front();
            self.evicted += 1;
        }
        // A clock that steps back must not unsort the queue: never expire before the newest.
        let newest = self.queue.back().map_or(0, |c| c.expire_ms);
        let expire_ms = now_ms.saturating_add(self.ttl_ms).max(newest);
        if !self.by_channel.contains_key(channel) {
            self.by_channel.insert(channel.to_owned(), HashSet::new());
        }
        let Some(ids) = self.by_channel.get_mut(channel) else {
            return;
        };
        if ids.insert(id.to_owned()) {
            let (channel, id) = (channel.to_owned(), id.to_owned());
            self.queue.push_back(CachedId {
                expire_ms,
                channel,
                id,
            });
        }
    }

    /// Forgets ids whose ttl has passed (an id expires when `now_ms` reaches its expiry).
    fn purge(&mut self, now_ms: u64) {
        while self.queue.front().is_some_and(|c| c.expire_ms <= now_ms) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        let Some(old) = self.queue.pop_front() else {
            return;
        };
        if let Some(ids) = self.by_channel.get_mut(&old.channel) {
            let removed = ids.remove(&old.id);
            debug_assert!(removed, "id queue out of step");
            if ids.is_empty() {
                self.by_channel.remove(&old.channel);
            }
        }
    }
}

/// Items waiting for their predecessor, per channel and by deadline.
#[derive(Debug)]
struct Pending<T> {
    /// channel → prev-id → waiting item.
    channels: HashMap<String, HashMap<String, Waiting<T>>>,
    /// (deadline, seq) → (channel, prev-id); seq keeps equal deadlines in arrival order.
    by_deadline: BTreeMap<(u64, u64), (String, String)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Waiting<T> {
    item: T,
    id: Option<String>,
    deadline_ms: u64,
    seq: u64,
}

impl<T> Pending<T> {
    fn new() -> Self {
        Self {
            channels: HashMap::new(),
            by_deadline: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// How many items wait on `channel`, and whether one waits on `prev_id` already.
    fn channel_state(&self, channel: &str, prev_id: &str) -> (usize, bool) {
        self.channels
            .get(channel)
            .map_or((0, false), |w| (w.len(), w.contains_key(prev_id)))
    }

    fn insert(&mut self, channel: &str, prev_id: &str, mut waiting: Waiting<T>) {
        waiting.seq = self.next_seq;
        self.next_seq += 1;
        let key = (waiting.deadline_ms, waiting.seq);
        let (channel, prev_id) = (channel.to_owned(), prev_id.to_owned());
        self.by_deadline
            .insert(key, (channel.clone(), prev_id.clone()));
        let previous = self
            .channels
            .entry(channel)
            .or_default()
            .insert(prev_id, waiting);
        assert!(previous.is_none(), "two items waiting on one prev-id");
    }

    /// Removes the item waiting on `prev_id` in `channel`.
    fn take(&mut self, channel: &str, prev_id: &str) -> Option<Waiting<T>> {
        let waiting = self.channels.get_mut(channel)?;
        let taken = waiting.remove(prev_id)?;
        if waiting.is_empty() {
            self.channels.remove(channel);
        }
        let indexed = self.by_deadline.remove(&(taken.deadline_ms, taken.seq));
        debug_assert!(indexed.is_some(), "deadline index out of step");
        Some(taken)
    }

    /// Removes the earliest item whose deadline is at or before `now_ms`.
    fn pop_expired(&mut self, now_ms: u64) -> Option<(String, Waiting<T>)> {
        loop {
            let entry = self.by_deadline.first_entry()?;
            if entry.key().0 > now_ms {
                return None;
            }
            let (channel, prev_id) = entry.remove();
            let Some(waiting) = self.channels.get_mut(&channel) else {
                debug_assert!(false, "deadline index names a channel with nothing waiting");
                continue;
            };
            let Some(taken) = waiting.remove(&prev_id) else {
                debug_assert!(false, "deadline index names an item not waiting");
                continue;
            };
            if waiting.is_empty() {
                self.channels.remove(&channel);
            }
            return Some((channel, taken));
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first_key_value().map(|(k, _)| k.0)
    }

    /// Drops everything waiting on `channel`; returns how many.
    fn remove_channel(&mut self, channel: &str) -> usize {
        let Some(waiting) = self.channels.remove(channel) else {
            return 0;
        };
        for w in waiting.values() {
            self.by_deadline.remove(&(w.deadline_ms, w.seq));
        }
        waiting.len()
    }
}

#[cfg(test)]
#[path = "sequencer_tests.rs"]
mod tests;
