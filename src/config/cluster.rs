//! `[cluster]`: the NATS connection that joins holdfast nodes. Off by default; a single node needs
//! nothing else running. Validation here only checks text; nothing connects.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// Longest node name, in bytes.
const NODE_NAME_BYTES_MAX: usize = 64;

/// A NATS subject prefix (every channel's subject starts with it): checked here, with the rest of
/// the config, so nothing of the cluster layer is needed to validate one.
/// Longest subject prefix, in bytes.
const PREFIX_BYTES_MAX: usize = 128;

/// Why a subject prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {PREFIX_BYTES_MAX} bytes")]
    TooLong,
    #[error("{0:?} must be dot-separated tokens of letters, digits, '-' and '_'")]
    Invalid(String),
}

/// Checks that `prefix` is a literal NATS subject (no wildcards, no empty token).
pub fn check_prefix(prefix: &str) -> Result<(), PrefixError> {
    if prefix.is_empty() {
        return Err(PrefixError::Empty);
    }
    if prefix.len() > PREFIX_BYTES_MAX {
        return Err(PrefixError::TooLong);
    }
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !prefix.split('.').all(token_ok) {
        return Err(PrefixError::Invalid(prefix.to_string()));
    }
    Ok(())
}

/// How this node joins a cluster of holdfast nodes over NATS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Fan publishes out over NATS to the other nodes. Off: a single node, no broker.
    pub enabled: bool,
    /// NATS server URLs (`nats://host:port`, `tls://host:port`); several for failover.
    pub servers: Vec<String>,
    /// Try the servers in the order given (this node's nearest first) instead of shuffled.
    pub servers_in_order: bool,
    /// Subjects are `<subject_prefix>.<channel, base64url>`; nodes of one cluster share it.
    pub subject_prefix: String,
    /// This node's name in logs, in the NATS connection name and on the messages it sends.
    /// Empty: `holdfast-<process id>`.
    pub node_name: String,
    /// NATS user and password (both or neither).
    pub user: Option<String>,
    pub password: Option<String>,
    /// NATS token authentication.
    pub token: Option<String>,
    /// A NATS `.creds` file (JWT and NKey seed). Relative file paths here are relative to the
    /// config file.
    pub credentials_file: Option<PathBuf>,
    /// An NKey seed (`SU...`).
    pub nkey_seed: Option<String>,
    /// Require TLS to the NATS servers.
    pub tls_required: bool,
    /// CA certificates (PEM) to verify the NATS servers with, in addition to the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS (both or neither).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Time allowed to connect to one NATS server.
    pub connect_timeout_ms: u64,
    /// Longest wait between two reconnect attempts (the back-off doubles up to it).
    pub reconnect_delay_max_ms: u64,
    /// How long a node stays subscribed to a channel's subject after its last local subscriber
    /// left, so a client that reconnects at once does not cost an unsubscribe and a subscribe.
    pub interest_linger_ms: u64,
    /// Publishes waiting to be sent to NATS. Connected, a full queue slows the publisher down;
    /// disconnected, what does not fit is delivered locally only (and counted).
    pub publish_queue_capacity: usize,
    /// Messages from NATS waiting per subscribed channel; past it the NATS client drops them
    /// (counted as lost).
    pub subscription_capacity: usize,
    /// Changes of local interest (a channel's first or last subscriber on a worker) waiting for
    /// the cluster thread; a worker keeps what does not fit and tries again.
    pub interest_queue_capacity: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            servers: vec!["nats://127.0.0.1:4222".to_string()],
            servers_in_order: false,
            subject_prefix: "holdfast".to_string(),
            node_name: String::new(),
            user: None,
            password: None,
            token: None,
            credentials_file: None,
            nkey_seed: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            connect_timeout_ms: 2_000,
            reconnect_delay_max_ms: 4_000,
            interest_linger_ms: 2_000,
            publish_queue_capacity: 65_536,
            subscription_capacity: 65_536,
            interest_queue_capacity: 65_536,
        }
    }
}

impl ClusterConfig {
    /// The node name, with the default filled in.
    pub fn node_name(&self) -> String {
        if self.node_name.is_empty() {
            format!("holdfast-{}", std::process::id())
        } else {
            self.node_name.clone()
        }
    }

    /// Makes relative file paths (credentials, TLS) relative to `dir`, the config file's directory.
    pub fn anchor_paths(&mut self, dir: &Path) {
        for path in [
            &mut self.credentials_file,
            &mut self.tls_ca_file,
            &mut self.tls_cert_file,
            &mut self.tls_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// The server URLs with any credentials in them masked, for logs.
    pub fn servers_redacted(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| crate::redact::url(s).into_owned())
            .collect()
    }

    /// Checks the values (also when disabled, so a typo shows before the day it is turned on).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(format!("cluster.{msg}")));
        if self.enabled && self.servers.is_empty() {
            return bad("servers is empty (cluster.enabled needs at least one NATS URL)".into());
        }
        for url in &self.servers {
            if let Err(e) = url.parse::<async_nats::ServerAddr>() {
                let (url, e) = (crate::redact::url(url), e.to_string());
                let e = crate::redact::urls_in(&e);
                return bad(format!("servers: {url:?} is not a NATS URL: {e}"));
            }
        }
        if let Err(e) = check_prefix(&self.subject_prefix) {
            return bad(format!("subject_prefix: {e}"));
        }
        let name = &self.node_name;
        if name.len() > NODE_NAME_BYTES_MAX
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return bad(format!(
                "node_name {name:?} must be at most {NODE_NAME_BYTES_MAX} letters, digits, '-', '_' or '.'"
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("user and cluster.password go together".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad("tls_cert_file and cluster.tls_key_file go together".into());
        }
        let auths = [
            self.user.is_some(),
            self.token.is_some(),
            self.credentials_file.is_some(),
            self.nkey_seed.is_some(),
        ];
        if auths.iter().filter(|&&a| a).count() > 1 {
            return bad(
                "user/password, token, credentials_file and nkey_seed: set at most one".into(),
            );
        }
        for (key, v) in [
            ("publish_queue_capacity", self.publish_queue_capacity),
            ("subscription_capacity", self.subscription_capacity),
            ("interest_queue_capacity", self.interest_queue_capacity),
        ] {
            if v == 0 {
                return bad(format!("{key} must be at least 1"));
            }
        }
        if self.connect_timeout_ms == 0 || self.reconnect_delay_max_ms == 0 {
            return bad("connect_timeout_ms and reconnect_delay_max_ms must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> ClusterConfig {
        ClusterConfig {
            enabled: true,
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn default_is_off_and_valid() {
        let c = ClusterConfig::default();
        assert!(!c.enabled);
        c.validate().unwrap();
        enabled().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                ClusterConfig {
                    servers: vec![],
                    ..enabled()
                },
                "servers is empty",
            ),
            (
                ClusterConfig {
                    servers: vec!["http://[::1".into()],
                    ..enabled()
                },
                "not a NATS URL",
            ),
            (
                ClusterConfig {
                    subject_prefix: "a b".into(),
                    ..enabled()
                },
                "subject_prefix",
            ),
            (
                ClusterConfig {
                    subject_prefix: "a.>".into(),
                    ..enabled()
                },
                "subject_prefix",
            ),
            (
                ClusterConfig {
                    node_name: "node 1".into(),
                    ..enabled()
                },
                "node_name",
            ),
            (
                ClusterConfig {
                    user: Some("u".into()),
                    ..enabled()
                },
                "password",
            ),
            (
                ClusterConfig {
                    token: Some("t".into()),
                    nkey_seed: Some("SU".into()),
                    ..enabled()
                },
                "at most one",
            ),
            (
                ClusterConfig {
                    tls_cert_file: Some("c.pem".into()),
                    ..enabled()
                },
                "tls_key_file",
            ),
            (
                ClusterConfig {
                    publish_queue_capacity: 0,
                    ..enabled()
                },
                "publish_queue_capacity",
            ),
        ];
        let with_password = ClusterConfig {
            servers: vec!["nats://user:pa55word@[::1".into()],
            ..enabled()
        };
        let err = with_password.validate().unwrap_err().to_string();
        assert!(!err.contains("pa55word"), "{err}");
        assert!(err.contains("nats://***@[::1"), "{err}");
        for (c, needle) in cases {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
            assert!(err.contains("cluster."), "{err}");
        }
    }

    #[test]
    fn relative_files_are_anchored_at_the_config_dir() {
        let text = "[cluster]\ncredentials_file = \"nats.creds\"\ntls_ca_file = \"/abs/ca.pem\"\n";
        let c = crate::config::Config::from_toml(text, Some(Path::new("/etc/holdfast/h.toml")))
            .unwrap();
        assert_eq!(
            c.cluster.credentials_file.as_deref(),
            Some(Path::new("/etc/holdfast/nats.creds"))
        );
        assert_eq!(
            c.cluster.tls_ca_file.as_deref(),
            Some(Path::new("/abs/ca.pem"))
        );
    }

    #[test]
    fn node_name_defaults_to_the_process() {
        assert!(
            ClusterConfig::default()
                .node_name()
                .starts_with("holdfast-")
        );
        let c = ClusterConfig {
            node_name: "eu-1".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(c.node_name(), "eu-1");
    }

    #[test]
    fn prefixes_are_literal_subjects() {
        assert!(check_prefix("holdfast").is_ok());
        assert!(check_prefix("prod.holdfast-eu_1").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "ä"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_prefix(&"a".repeat(129)), Err(PrefixError::TooLong));
    }
}
