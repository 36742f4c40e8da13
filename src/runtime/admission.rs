//! Admission of new client connections against the limits that span workers: the total, and
//! optionally the number per client IP. Consulted on accept and on close only (never on the
//! delivery path); the per-IP table is a mutex-guarded map used only when that limit is set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

pub struct Admission {
    total: AtomicUsize,
    total_max: usize,
    per_ip_max: usize,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

impl Admission {
    /// `total_max` 0 means unlimited; `per_ip_max` 0 turns the per-IP limit off.
    pub fn new(total_max: usize, per_ip_max: usize) -> Admission {
        Admission {
            total: AtomicUsize::new(0),
            total_max: if total_max == 0 {
                usize::MAX
            } else {
                total_max
            },
            per_ip_max,
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, or refuses it (nothing counted).
    pub fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.total_max {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        if self.per_ip_max > 0 {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n as usize >= self.per_ip_max {
                drop(map);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        Ok(())
    }

    /// Forgets a connection that `admit` counted.
    pub fn release(&self, ip: IpAddr) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if self.per_ip_max > 0 {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn total_and_per_ip_limits() {
        let a = Admission::new(3, 2);
        assert!(a.admit(ip(1)).is_ok());
        assert!(a.admit(ip(1)).is_ok());
        assert_eq!(a.admit(ip(1)), Err(Refusal::PerIp));
        assert!(a.admit(ip(2)).is_ok());
        assert_eq!(a.admit(ip(3)), Err(Refusal::Total));
        assert_eq!(a.open(), 3);
        a.release(ip(1));
        assert!(a.admit(ip(3)).is_ok());
        assert_eq!(a.admit(ip(1)), Err(Refusal::Total));
    }

    #[test]
    fn unlimited_by_default() {
        let a = Admission::new(0, 0);
        for _ in 0..1000 {
            assert!(a.admit(ip(1)).is_ok());
        }
        assert_eq!(a.open(), 1000);
    }
}
