//! A small log-linear histogram (HDR-like, ~3 % relative error) for latencies in nanoseconds.
//! Fixed size, no allocation per sample, mergeable across worker processes.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    pub n: u64,
    pub max: u64,
    pub min: u64,
    pub sum: f64,
}

/// Wire form: only the non-empty buckets.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct HistWire {
    pub buckets: Vec<(u32, u64)>,
    pub n: u64,
    pub max: u64,
    pub min: u64,
    pub sum: f64,
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        v as usize
    } else {
        let e = 63 - v.leading_zeros();
        let shift = e - SUB_BITS;
        let sub = ((v >> shift) as usize) & (SUB - 1);
        ((shift as usize + 1) << SUB_BITS) + sub
    }
}

/// The lowest and highest value that fall into bucket `idx`.
fn bounds(idx: usize) -> (u64, u64) {
    let block = idx >> SUB_BITS;
    let sub = (idx & (SUB - 1)) as u64;
    if block == 0 {
        (sub, sub)
    } else {
        let shift = (block - 1) as u32;
        let lo = ((SUB as u64) + sub) << shift;
        (lo, lo.saturating_add((1u64 << shift) - 1))
    }
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Hist {
    pub fn new() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
            min: u64::MAX,
            sum: 0.0,
        }
    }

    #[inline]
    pub fn add(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.n += 1;
        self.sum += v as f64;
        if v > self.max {
            self.max = v;
        }
        if v < self.min {
            self.min = v;
        }
    }

    pub fn merge_wire(&mut self, w: &HistWire) {
        for &(i, c) in &w.buckets {
            if let Some(slot) = self.counts.get_mut(i as usize) {
                *slot += c;
            }
        }
        self.n += w.n;
        self.sum += w.sum;
        self.max = self.max.max(w.max);
        self.min = self.min.min(w.min);
    }

    pub fn to_wire(&self) -> HistWire {
        HistWire {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
            n: self.n,
            max: self.max,
            min: self.min,
            sum: self.sum,
        }
    }

    /// Value at quantile q (0..=1): the middle of the bucket holding it, clamped to [min, max].
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut acc = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                let (lo, hi) = bounds(i);
                return (lo / 2 + hi / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values() {
        for v in [
            0u64,
            1,
            31,
            32,
            33,
            1000,
            123_456_789,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let (lo, hi) = bounds(index(v));
            assert!(lo <= v && v <= hi, "{v} not in [{lo},{hi}]");
        }
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Hist::new();
        for v in 1..=100_000u64 {
            h.add(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.04, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(h.quantile(1.0), 100_000_000);
        let mut m = Hist::new();
        m.merge_wire(&h.to_wire());
        assert_eq!(m.quantile(0.5), h.quantile(0.5));
    }
}
