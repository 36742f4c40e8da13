//! `[zmq]`: Pushpin's ZeroMQ sockets (publish PULL and SUB, the command socket, the stats
//! socket). Off by default. Key names are Pushpin's (`[handler]` in pushpin.conf), durations carry
//! their unit (`stats_report_interval_ms` is Pushpin's `stats_report_interval`, in seconds there).
//! Validation here only checks text; nothing binds.

use serde::Deserialize;

use super::ConfigError;
use crate::proto::zmq::StatsFormat;

/// The ZeroMQ endpoints holdfast offers, as Pushpin's handler does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZmqConfig {
    /// Open the sockets below. Off: none is opened (and libzmq is not started).
    pub enabled: bool,
    /// Bind a PULL socket here for published items ("" for none). Pushpin's default.
    pub push_in_spec: String,
    /// SUB sockets for published items (`[channel, item]`), bound (or connected, below) to each.
    /// holdfast subscribes to a channel while it has subscribers on it, so an XPUB publisher
    /// learns which channels to send.
    pub push_in_sub_specs: Vec<String>,
    /// Connect the SUB socket to `push_in_sub_specs` instead of binding.
    pub push_in_sub_connect: bool,
    /// Bind the command socket here (`recover`, `refresh`, `publish`, `conncheck`,
    /// `get-zmq-uris`); "" for none.
    pub command_spec: String,
    /// Bind a PUB socket here for Pushpin's `report` stats messages; "" for none (the default;
    /// Pushpin's is `ipc://<rundir>/pushpin-stats`).
    pub stats_spec: String,
    /// `tnetstring` or `json`, as Pushpin's `stats_format`.
    pub stats_format: StatsFormat,
    /// How often a `report` message is sent on the stats socket.
    pub stats_report_interval_ms: u64,
    /// The `from` field of stats messages. Empty: `holdfast-<process id>`.
    pub instance_id: String,
    /// Permissions of `ipc://` socket files (e.g. 0o660); 0 leaves them to the umask.
    pub ipc_file_mode: u32,
    /// Largest ZeroMQ message accepted (ZMQ_MAXMSGSIZE): a peer that sends a larger one is
    /// disconnected by libzmq. Items inside are also held to the `[publish]` limits.
    pub message_bytes_max: usize,
    /// Messages libzmq queues per socket before the sender is held back (ZMQ_RCVHWM). A PUSH
    /// publisher then blocks; a PUB publisher drops, as ZeroMQ's PUB always does.
    pub receive_hwm: i32,
    /// Batches of items waiting for the publish thread; when full, the ZeroMQ thread stops
    /// reading until there is room (back-pressure, nothing dropped).
    pub queue_capacity: usize,
    /// How long the SUB socket stays subscribed to a channel after its last subscriber left
    /// (Pushpin's `subscription_linger`).
    pub subscription_linger_ms: u64,
    /// Changes of interest (a channel's first or last subscriber on a worker) waiting for the
    /// ZeroMQ thread; a worker keeps what does not fit and tries again.
    pub interest_queue_capacity: usize,
}

impl Default for ZmqConfig {
    fn default() -> Self {
        ZmqConfig {
            enabled: false,
            push_in_spec: "tcp://127.0.0.1:5560".into(),
            push_in_sub_specs: vec!["tcp://127.0.0.1:5562".into()],
            push_in_sub_connect: false,
            command_spec: "tcp://127.0.0.1:5563".into(),
            stats_spec: String::new(),
            stats_format: StatsFormat::Tnetstring,
            stats_report_interval_ms: 10_000,
            instance_id: String::new(),
            ipc_file_mode: 0,
            message_bytes_max: 2_000_000,
            receive_hwm: 1_000,
            queue_capacity: 1_024,
            subscription_linger_ms: 60_000,
            interest_queue_capacity: 65_536,
        }
    }
}

impl ZmqConfig {
    /// The stats `from` field, with the default filled in.
    pub fn instance_id(&self) -> String {
        if self.instance_id.is_empty() {
            format!("holdfast-{}", std::process::id())
        } else {
            self.instance_id.clone()
        }
    }

    /// Every endpoint given, with the key it came from.
    fn specs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let subs = self
            .push_in_sub_specs
            .iter()
            .map(|s| ("push_in_sub_specs", s.as_str()));
        [
            ("push_in_spec", self.push_in_spec.as_str()),
            ("command_spec", self.command_spec.as_str()),
            ("stats_spec", self.stats_spec.as_str()),
        ]
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .chain(subs)
    }

    /// Checks the values (also when disabled, so a typo shows before the day it is turned on).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(format!("zmq.{msg}")));
        for (key, spec) in self.specs() {
            if let Err(e) = check_spec(spec) {
                return bad(format!("{key}: {spec:?} {e}"));
            }
        }
        if self.enabled && !cfg!(feature = "zmq") {
            return bad("enabled: this holdfast was built without the \"zmq\" feature".into());
        }
        if self.enabled && self.specs().next().is_none() {
            return bad("enabled: no socket is configured".into());
        }
        if self.stats_report_interval_ms == 0 {
            return bad("stats_report_interval_ms must be at least 1".into());
        }
        if self.ipc_file_mode > 0o777 {
            return bad(format!(
                "ipc_file_mode: {:#o} is not a file mode",
                self.ipc_file_mode
            ));
        }
        if self.message_bytes_max == 0 || i64::try_from(self.message_bytes_max).is_err() {
            return bad("message_bytes_max must be at least 1".into());
        }
        if self.receive_hwm < 0 || self.queue_capacity == 0 || self.interest_queue_capacity == 0 {
            return bad("receive_hwm must be >= 0, the queue capacities >= 1".into());
        }
        Ok(())
    }
}

/// A ZeroMQ endpoint holdfast can use: `tcp://host:port` (port may be `*`) or `ipc://path`.
fn check_spec(spec: &str) -> Result<(), &'static str> {
    if spec.chars().any(char::is_control) {
        return Err("has control characters");
    }
    if let Some(rest) = spec.strip_prefix("tcp://") {
        let port = rest.rsplit_once(':').map(|(_, p)| p);
        return match port {
            Some("*") => Ok(()),
            Some(p) if p.parse::<u16>().is_ok() => Ok(()),
            _ => Err("needs a port (tcp://host:port)"),
        };
    }
    match spec.strip_prefix("ipc://") {
        Some(path) if !path.is_empty() => Ok(()),
        _ => Err("is not a tcp:// or ipc:// endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pushpins_ports_and_off() {
        let c = ZmqConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.push_in_spec, "tcp://127.0.0.1:5560");
        assert_eq!(c.push_in_sub_specs, ["tcp://127.0.0.1:5562"]);
        assert_eq!(c.command_spec, "tcp://127.0.0.1:5563");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let check = |f: fn(&mut ZmqConfig)| {
            let mut c = ZmqConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(check(|c| c.push_in_spec = "udp://x:1".into()).contains("zmq.push_in_spec"));
        assert!(check(|c| c.command_spec = "tcp://127.0.0.1".into()).contains("needs a port"));
        let sub = check(|c| c.push_in_sub_specs = vec!["ipc://".into()]);
        assert!(sub.contains("push_in_sub_specs"));
        assert!(check(|c| c.ipc_file_mode = 0o1777).contains("ipc_file_mode"));
        assert!(check(|c| c.queue_capacity = 0).contains("queue capacities"));
        let none = check(|c| {
            c.enabled = true;
            c.push_in_spec.clear();
            c.command_spec.clear();
            c.push_in_sub_specs.clear();
        });
        assert!(
            none.contains("no socket") || none.contains("feature"),
            "{none}"
        );
    }

    #[test]
    fn endpoints() {
        for ok in [
            "tcp://127.0.0.1:5560",
            "tcp://*:*",
            "tcp://[::1]:1",
            "ipc:///run/x",
        ] {
            assert_eq!(check_spec(ok), Ok(()), "{ok}");
        }
        for bad in ["", "tcp://h", "tcp://h:99999", "inproc://x", "ipc://a\nb"] {
            assert!(check_spec(bad).is_err(), "{bad}");
        }
    }
}
