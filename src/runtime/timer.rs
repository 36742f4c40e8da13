//! One coarse timer wheel per worker.
//!
//! Thousands of hold, keep-alive and header timeouts cost one `Vec` entry each here instead of one
//! runtime timer each. Entries are lazy: firing only tells a connection "look at your clock"; the
//! connection compares its own deadlines and schedules again, so cancelling is never needed.

use crate::hub::ConnId;

pub struct TimerWheel {
    slots: Vec<Vec<(ConnId, u64)>>,
    tick_ms: u64,
    /// Next tick to process.
    next_tick: u64,
    len: usize,
}

impl TimerWheel {
    /// `tick_ms` is the resolution; `slot_count` ticks make one turn of the wheel (entries further
    /// out simply wait for later turns).
    pub fn new(tick_ms: u64, slot_count: usize, now_ms: u64) -> TimerWheel {
        assert!(tick_ms > 0 && slot_count > 0);
        TimerWheel {
            slots: (0..slot_count).map(|_| Vec::new()).collect(),
            tick_ms,
            next_tick: now_ms / tick_ms,
            len: 0,
        }
    }

    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fires `id` at or after `at_ms` (rounded up to the next tick).
    pub fn insert(&mut self, id: ConnId, at_ms: u64) {
        let tick = at_ms.div_ceil(self.tick_ms).max(self.next_tick);
        let slot = (tick % self.slots.len() as u64) as usize;
        self.slots[slot].push((id, at_ms));
        self.len += 1;
    }

    /// Moves time to `now_ms` and appends every due id to `due`.
    pub fn expire(&mut self, now_ms: u64, due: &mut Vec<ConnId>) {
        let now_tick = now_ms / self.tick_ms;
        let turns = self.slots.len() as u64;
        // After a long stall one full turn visits every slot once.
        let first = self.next_tick.max(now_tick.saturating_sub(turns - 1));
        for tick in first..=now_tick {
            let slot = (tick % turns) as usize;
            let entries = std::mem::take(&mut self.slots[slot]);
            let mut keep = Vec::new();
            for (id, at) in entries {
                if at <= now_ms {
                    due.push(id);
                    self.len -= 1;
                } else {
                    keep.push((id, at));
                }
            }
            if !keep.is_empty() {
                self.slots[slot] = keep;
            }
        }
        self.next_tick = now_tick + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32) -> ConnId {
        ConnId { key, generation: 0 }
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new(100, 8, 0);
        w.insert(id(1), 250);
        let mut due = vec![];
        w.expire(200, &mut due);
        assert!(due.is_empty());
        w.expire(300, &mut due);
        assert_eq!(due, vec![id(1)]);
        assert!(w.is_empty());
    }

    #[test]
    fn far_deadlines_survive_wheel_turns() {
        let mut w = TimerWheel::new(10, 4, 0);
        w.insert(id(1), 1_000);
        let mut due = vec![];
        for now in (0..1_000).step_by(10) {
            w.expire(now, &mut due);
        }
        assert!(due.is_empty());
        w.expire(1_000, &mut due);
        assert_eq!(due, vec![id(1)]);
    }

    #[test]
    fn long_stall_fires_everything_due() {
        let mut w = TimerWheel::new(10, 4, 0);
        for k in 0..10 {
            w.insert(id(k), u64::from(k) * 7);
        }
        let mut due = vec![];
        w.expire(10_000, &mut due);
        assert_eq!(due.len(), 10);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn past_deadline_fires_on_next_expire() {
        let mut w = TimerWheel::new(10, 4, 1_000);
        w.insert(id(1), 5);
        let mut due = vec![];
        w.expire(1_000, &mut due);
        assert_eq!(due, vec![id(1)]);
    }
}
