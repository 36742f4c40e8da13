//! The slow-consumer policy, without IO: whether a subscriber's outbox may take more bytes, when
//! it has stalled, and which subscribers go first when a worker's outboxes together are over
//! budget.
//!
//! "Progress" is bytes the kernel accepted for the client. A subscriber that keeps draining is
//! kept past the soft limit, up to the hard cap; one whose queue has not moved (by at least
//! [`PROGRESS_BYTES_MIN`]) for the stall timeout is cut whatever its size. A never-reader's kernel buffers take the first few hundred
//! KiB, so its clock starts only once writes are refused and nothing drains.

use crate::config::{HoldConfig, SlowConsumerPolicy};

/// Bytes the kernel must take from an outbox (or all of it) to count as progress. A kernel wakes a
/// writer only once a third of its send buffer is free, so a client that reads moves tens of KiB
/// at a time; one that does not read still lets a few KiB through now and then (window probes,
/// the receive queue compacted), which must not reset its stall clock.
pub const PROGRESS_BYTES_MIN: usize = 16 * 1024;

/// The limits, copied out of `[hold]` (checked per queued message: plain integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub soft_bytes: usize,
    pub hard_bytes: usize,
    pub worker_bytes: usize,
    /// 0: stalls are never cut.
    pub stall_ms: u64,
    pub drop_messages: bool,
}

impl Limits {
    pub fn new(hold: &HoldConfig) -> Limits {
        Limits {
            soft_bytes: hold.outbox_bytes_max,
            hard_bytes: hold.outbox_hard_bytes_max,
            worker_bytes: hold.outbox_bytes_max_per_worker,
            stall_ms: hold.stall_timeout_ms,
            drop_messages: hold.slow_consumer == SlowConsumerPolicy::DropMessages,
        }
    }
}

/// Why a subscriber was cut (a label of `holdfast_slow_consumer_cuts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Bytes queued and none taken by the kernel for the stall timeout.
    Stalled,
    /// The outbox would pass the hard per-connection cap.
    HardCap,
    /// The worker's outboxes together were over budget and this one had the least recent progress.
    WorkerBudget,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Stalled, Reason::HardCap, Reason::WorkerBudget];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Stalled => "stalled",
            Reason::HardCap => "hard_cap",
            Reason::WorkerBudget => "worker_budget",
        }
    }
}

/// One subscriber's outbox as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub queued_bytes: usize,
    /// When the kernel last took bytes from it, or when it last became non-empty (worker ms).
    pub progress_ms: u64,
}

/// What to do with bytes offered to an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Queue,
    /// `drop_messages`: the subscriber is past the soft limit; this message is not sent to it.
    Drop,
    Cut(Reason),
}

impl Limits {
    /// Bytes are offered to an outbox (after its socket had a chance to take what it could).
    pub fn on_queue(&self, b: Backlog, incoming: usize, now_ms: u64) -> Verdict {
        // A message larger than the soft limit still goes to a subscriber that is not behind.
        let behind = b.queued_bytes > 0 && b.queued_bytes + incoming > self.soft_bytes;
        if self.drop_messages && behind {
            return Verdict::Drop;
        }
        self.on_queue_own(b, incoming, now_ms)
    }

    /// Bytes holdfast itself must send for a stream to stay valid and complete (framing, the
    /// content a recovery fetch brought, keep-alives): never dropped, whatever the policy; only
    /// the hard cap and a stall cut.
    pub fn on_queue_own(&self, b: Backlog, incoming: usize, now_ms: u64) -> Verdict {
        let after = b.queued_bytes + incoming;
        if after <= self.soft_bytes {
            return Verdict::Queue;
        }
        if after > self.hard_bytes {
            return Verdict::Cut(Reason::HardCap);
        }
        if self.is_stalled(b, now_ms) {
            return Verdict::Cut(Reason::Stalled);
        }
        Verdict::Queue
    }

    /// Bytes are queued and the kernel has taken none of them for the stall timeout.
    pub fn is_stalled(&self, b: Backlog, now_ms: u64) -> bool {
        self.stall_ms != 0
            && b.queued_bytes > 0
            && now_ms.saturating_sub(b.progress_ms) >= self.stall_ms
    }

    /// The worker's outboxes hold `total_bytes`: orders `candidates` stalest first (least recent
    /// progress; the larger backlog first among equals) and returns how many of them to cut so
    /// that the rest fit in the budget (each cut frees its backlog).
    pub fn plan_evictions<K>(&self, total_bytes: usize, candidates: &mut [(K, Backlog)]) -> usize {
        if total_bytes <= self.worker_bytes {
            return 0;
        }
        candidates.sort_unstable_by(|(_, a), (_, b)| {
            a.progress_ms
                .cmp(&b.progress_ms)
                .then(b.queued_bytes.cmp(&a.queued_bytes))
        });
        let mut left = total_bytes;
        let mut n = 0;
        for (_, b) in candidates.iter() {
            if left <= self.worker_bytes {
                break;
            }
            left = left.saturating_sub(b.queued_bytes);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn limits() -> Limits {
        Limits {
            soft_bytes: 64 * KIB,
            hard_bytes: 1024 * KIB,
            worker_bytes: 4096 * KIB,
            stall_ms: 1_000,
            drop_messages: false,
        }
    }

    fn backlog(queued_bytes: usize, progress_ms: u64) -> Backlog {
        Backlog {
            queued_bytes,
            progress_ms,
        }
    }

    #[test]
    fn under_the_soft_limit_everything_is_queued() {
        let l = limits();
        // Even a subscriber that has not moved for ages: below the soft limit the hot path only
        // pushes (the timer judges stalls).
        assert_eq!(l.on_queue(backlog(0, 0), 64 * KIB, 99_999), Verdict::Queue);
        assert_eq!(
            l.on_queue(backlog(60 * KIB, 0), 4 * KIB, 99_999),
            Verdict::Queue
        );
    }

    #[test]
    fn a_draining_subscriber_past_the_soft_limit_is_kept() {
        let l = limits();
        // 16x the soft limit queued, but the kernel took bytes 10 ms ago.
        assert_eq!(
            l.on_queue(backlog(1000 * KIB, 5_000), KIB, 5_010),
            Verdict::Queue
        );
    }

    #[test]
    fn the_hard_cap_cuts_even_a_draining_subscriber() {
        let l = limits();
        assert_eq!(
            l.on_queue(backlog(1023 * KIB, 5_000), 2 * KIB, 5_001),
            Verdict::Cut(Reason::HardCap)
        );
    }

    #[test]
    fn a_stalled_subscriber_past_the_soft_limit_is_cut_when_offered_more() {
        let l = limits();
        assert_eq!(
            l.on_queue(backlog(100 * KIB, 5_000), KIB, 5_999),
            Verdict::Queue
        );
        assert_eq!(
            l.on_queue(backlog(100 * KIB, 5_000), KIB, 6_000),
            Verdict::Cut(Reason::Stalled)
        );
    }

    #[test]
    fn stalled_needs_queued_bytes_and_a_stall_timeout() {
        let l = limits();
        assert!(!l.is_stalled(backlog(0, 0), 1_000_000), "nothing queued");
        assert!(l.is_stalled(backlog(1, 0), 1_000));
        assert!(!l.is_stalled(backlog(1, 0), 999));
        // A progress stamp from a clock read later than `now` (another path's fresher reading).
        assert!(!l.is_stalled(backlog(1, 2_000), 1_000));
        let off = Limits { stall_ms: 0, ..l };
        assert!(!off.is_stalled(backlog(1, 0), u64::MAX));
    }

    #[test]
    fn drop_messages_drops_past_the_soft_limit_but_not_for_an_empty_outbox() {
        let l = Limits {
            drop_messages: true,
            ..limits()
        };
        assert_eq!(
            l.on_queue(backlog(60 * KIB, 5_000), 8 * KIB, 5_001),
            Verdict::Drop
        );
        // Never reaches the hard cap: it stops queueing at the soft limit.
        assert_eq!(
            l.on_queue(backlog(60 * KIB, 0), 2048 * KIB, 99_999),
            Verdict::Drop
        );
        // One message larger than the soft limit for a subscriber that is not behind.
        assert_eq!(l.on_queue(backlog(0, 0), 100 * KIB, 1), Verdict::Queue);
    }

    #[test]
    fn under_budget_nobody_is_evicted() {
        let l = limits();
        let mut c = vec![(1, backlog(4096 * KIB, 0))];
        assert_eq!(l.plan_evictions(4096 * KIB, &mut c), 0);
    }

    #[test]
    fn over_budget_the_stalest_go_first_and_only_as_many_as_needed() {
        let l = limits();
        // Budget 4096 KiB; 5000 KiB queued: 904 KiB must go.
        let mut c = vec![
            ("reader-a", backlog(1500 * KIB, 9_990)),
            ("never-1", backlog(500 * KIB, 1_000)),
            ("reader-b", backlog(1500 * KIB, 9_995)),
            ("never-2", backlog(500 * KIB, 2_000)),
            ("reader-c", backlog(1000 * KIB, 9_999)),
        ];
        let n = l.plan_evictions(5000 * KIB, &mut c);
        let cut: Vec<_> = c[..n].iter().map(|(k, _)| *k).collect();
        assert_eq!(cut, ["never-1", "never-2"]);
        // 4000 KiB left: no draining reader is touched.
    }

    #[test]
    fn among_equally_stale_the_larger_backlog_goes_first() {
        let l = limits();
        let mut c = vec![
            ("small", backlog(100 * KIB, 1_000)),
            ("large", backlog(900 * KIB, 1_000)),
        ];
        let n = l.plan_evictions(4500 * KIB, &mut c);
        assert_eq!(n, 1);
        assert_eq!(c[0].0, "large");
    }

    #[test]
    fn eviction_stops_when_candidates_run_out() {
        let l = limits();
        let mut c = vec![(1, backlog(10 * KIB, 0))];
        assert_eq!(l.plan_evictions(8000 * KIB, &mut c), 1);
        let mut none: Vec<(u32, Backlog)> = Vec::new();
        assert_eq!(l.plan_evictions(8000 * KIB, &mut none), 0);
    }
}
