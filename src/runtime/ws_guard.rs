//! Limits on a client WebSocket beyond message size: how many control frames (pings) a client
//! may send per second, and how long a fragmented message may take to complete. Either way the
//! client is closed with 1008; without them a ping flood or a never-ending message would hold a
//! connection (and, for the message, up to `message_bytes_max` of memory) forever.

use crate::proto::ws::{self, Message};

/// A broken limit: the close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

#[derive(Default)]
pub struct ClientGuard {
    window_start_ms: u64,
    controls_in_window: u32,
    message_started_ms: Option<u64>,
}

impl ClientGuard {
    /// Accounts for `messages` just decoded; `in_message` says a fragmented message is open.
    pub fn after_decode(
        &mut self,
        now_ms: u64,
        messages: &[Message],
        in_message: bool,
        cfg: &crate::config::WebSocketConfig,
    ) -> Option<Violation> {
        if now_ms >= self.window_start_ms + 1000 {
            self.window_start_ms = now_ms;
            self.controls_in_window = 0;
        }
        let controls = messages
            .iter()
            .filter(|m| matches!(m, Message::Ping(_) | Message::Pong(_)))
            .count() as u32;
        self.controls_in_window += controls;
        if self.controls_in_window > cfg.control_frames_per_sec_max {
            return Some(Violation {
                code: ws::CLOSE_POLICY_VIOLATION,
                reason: "too many control frames",
            });
        }
        self.message_started_ms = match (in_message, self.message_started_ms) {
            (false, _) => None,
            (true, None) => Some(now_ms),
            (true, started) => started,
        };
        self.check_time(now_ms, cfg)
    }

    /// A fragmented message that has been open too long (also called on timers).
    pub fn check_time(
        &self,
        now_ms: u64,
        cfg: &crate::config::WebSocketConfig,
    ) -> Option<Violation> {
        let started = self.message_started_ms?;
        (now_ms >= started + cfg.fragment_timeout_ms).then_some(Violation {
            code: ws::CLOSE_POLICY_VIOLATION,
            reason: "fragmented message took too long",
        })
    }

    /// When an open fragmented message times out, if one is open.
    pub fn deadline(&self, cfg: &crate::config::WebSocketConfig) -> Option<u64> {
        self.message_started_ms.map(|s| s + cfg.fragment_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebSocketConfig;

    #[test]
    fn ping_flood_is_a_violation() {
        let cfg = WebSocketConfig {
            control_frames_per_sec_max: 3,
            ..WebSocketConfig::default()
        };
        let mut g = ClientGuard::default();
        let pings = vec![Message::Ping(vec![]); 3];
        assert_eq!(g.after_decode(10, &pings, false, &cfg), None);
        assert!(g.after_decode(20, &pings[..1], false, &cfg).is_some());
        let mut g = ClientGuard::default();
        assert_eq!(g.after_decode(10, &pings, false, &cfg), None);
        assert_eq!(
            g.after_decode(1_100, &pings, false, &cfg),
            None,
            "a new second"
        );
    }

    #[test]
    fn a_message_that_never_ends_times_out() {
        let cfg = WebSocketConfig {
            fragment_timeout_ms: 500,
            ..WebSocketConfig::default()
        };
        let mut g = ClientGuard::default();
        assert_eq!(g.after_decode(100, &[], true, &cfg), None);
        assert_eq!(g.deadline(&cfg), Some(600));
        assert_eq!(g.check_time(599, &cfg), None);
        assert!(g.check_time(600, &cfg).is_some());
        assert_eq!(
            g.after_decode(700, &[Message::Text(vec![])], false, &cfg),
            None
        );
        assert_eq!(g.deadline(&cfg), None, "completed");
    }
}
