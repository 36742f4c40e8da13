//! The operator's commands that talk to a running holdfast: `holdfast publish` (a publisher like
//! `pushpin-publish`) and `holdfast status` (a summary of `/metrics`). Both find the instance and
//! its credentials the way the service does, in its config file, unless flags say otherwise.

pub mod http;
pub mod prom;
pub mod publish;
pub mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Config;
use crate::auth::Credentials;
use http::Endpoint;

/// The config an installed holdfast runs with (the Debian package's), read when `--config` is not
/// given and the file exists.
pub const INSTALLED_CONFIG: &str = "/etc/holdfast/holdfast.toml";

/// Where the running instance is and how to authenticate to it; each flag replaces what the
/// config says.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ApiArgs {
    /// holdfast's publish API as http://HOST:PORT (a path prefix is kept); default: from the
    /// config's publish.listen (or publish.metrics_listen for `status`).
    #[arg(long, visible_alias = "spec", value_name = "URL")]
    pub url: Option<String>,
    /// Authenticate with HTTP Basic as USER:PASS instead of what the config sets.
    #[arg(short = 'u', long, value_name = "USER:PASS", conflicts_with_all = ["jwt_key", "jwt_key_file", "no_auth"])]
    pub user: Option<String>,
    /// Sign a Bearer JWT (HS256, `base64:` prefix for a binary key) with this key. Visible to
    /// other local users in the process list: prefer --jwt-key-file.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["jwt_key_file", "no_auth"])]
    pub jwt_key: Option<String>,
    /// A file holding the JWT key (trailing newlines stripped).
    #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
    pub jwt_key_file: Option<PathBuf>,
    /// The token's `iss` claim (default: the config's publish.jwt_iss, if the key is also from
    /// the config).
    #[arg(long, value_name = "ISS")]
    pub jwt_iss: Option<String>,
    /// Send no credentials, whatever the config says.
    #[arg(long)]
    pub no_auth: bool,
    /// Give up on a request after this long (connect, send, answer).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// What the global flags say about where the config is.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--publish-listen`, which replaces `publish.listen`.
    pub publish_listen: Option<SocketAddr>,
}

/// Which listener a command talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Publish,
    Metrics,
}

/// A resolved target: where, with which credentials, and where that came from (for messages).
#[derive(Debug)]
pub struct Api {
    pub endpoint: Endpoint,
    pub credentials: Credentials,
    pub timeout: Duration,
    /// "--url" or "publish.listen in /etc/holdfast/holdfast.toml", ...
    pub source: String,
}

impl ApiArgs {
    fn credentials_from_flags(&self) -> Result<Option<Credentials>, String> {
        if self.no_auth {
            return Ok(Some(Credentials::None));
        }
        if let Some(user) = &self.user {
            if !user.contains(':') {
                return Err("--user must be USER:PASS".into());
            }
            return Ok(Some(Credentials::Basic(user.clone())));
        }
        let key = match (&self.jwt_key, &self.jwt_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => crate::config::read_secret_file("--jwt-key-file", path)
                .map_err(|e| e.to_string())?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Credentials::Bearer {
            key,
            iss: self.jwt_iss.clone(),
        }))
    }

    /// Resolves the target: flags first; the config only for what they leave open.
    pub fn resolve(&self, globals: &Globals, purpose: Purpose) -> Result<Api, String> {
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        let flag_credentials = self.credentials_from_flags()?;
        if let (Some(url), Some(credentials)) = (&self.url, &flag_credentials) {
            return Ok(Api {
                endpoint: Endpoint::parse(url)?,
                credentials: credentials.clone(),
                timeout,
                source: "--url".into(),
            });
        }
        let (config, origin) = load_config(globals)?;
        let (endpoint, source) = match &self.url {
            Some(url) => (Endpoint::parse(url)?, "--url".to_string()),
            None => listener(&config, &origin, globals, purpose),
        };
        let own_metrics_listener =
            purpose == Purpose::Metrics && config.publish.metrics_listen.is_some();
        let credentials = match flag_credentials {
            Some(c) => c,
            // The metrics listener of its own is open; /metrics on the publish listener needs
            // the publish credentials unless metrics_auth is off.
            None if own_metrics_listener && self.url.is_none() => Credentials::None,
            None if purpose == Purpose::Metrics && !config.publish.metrics_auth => {
                Credentials::None
            }
            None => {
                let mut c = Credentials::from_config(&config.publish);
                if let (Credentials::Bearer { iss, .. }, Some(flag)) = (&mut c, &self.jwt_iss) {
                    *iss = Some(flag.clone());
                }
                c
            }
        };
        Ok(Api {
            endpoint,
            credentials,
            timeout,
            source,
        })
    }
}

/// The listener a purpose uses, by the config (and `--publish-listen`).
fn listener(
    config: &Config,
    origin: &str,
    globals: &Globals,
    purpose: Purpose,
) -> (Endpoint, String) {
    if purpose == Purpose::Metrics
        && let Some(addr) = config.publish.metrics_listen
    {
        let source = format!("publish.metrics_listen in {origin}");
        return (Endpoint::from_listen(addr), source);
    }
    match globals.publish_listen {
        Some(addr) => (Endpoint::from_listen(addr), "--publish-listen".into()),
        None => (
            Endpoint::from_listen(config.publish.listen),
            format!("publish.listen in {origin}"),
        ),
    }
}

/// The config (its publish secret files read) and where it came from: `--config`, else the
/// installed one if present, else the embedded default.
fn load_config(globals: &Globals) -> Result<(Config, String), String> {
    let installed = Path::new(INSTALLED_CONFIG);
    let path = match &globals.config {
        Some(p) => Some(p.as_path()),
        None if installed.exists() => Some(installed),
        None => None,
    };
    let Some(path) = path else {
        return Ok((Config::embedded(), "the embedded default config".into()));
    };
    let hint = |e: String| {
        format!(
            "{e}\n  (holdfast reads it to find the publish listener and its credentials: run as \
             root or a member of group holdfast, or give --url with --user, --jwt-key-file or \
             --no-auth)"
        )
    };
    let config = Config::load(path).map_err(|e| hint(e.to_string()))?;
    let config = config
        .with_secret_files()
        .map_err(|e| hint(e.to_string()))?;
    Ok((config, path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(dir: &Path, text: &str) -> Globals {
        let path = dir.join("holdfast.toml");
        std::fs::write(&path, text).unwrap();
        Globals {
            config: Some(path),
            publish_listen: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("holdfast-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn config_gives_address_and_credentials_flags_replace_them() {
        let dir = scratch("resolve");
        std::fs::write(dir.join("key"), "s3cret\n").unwrap();
        let g = globals(
            &dir,
            "[publish]\nlisten = \"0.0.0.0:6000\"\njwt_key_file = \"key\"\njwt_iss = \"me\"\n",
        );
        let api = ApiArgs::default().resolve(&g, Purpose::Publish).unwrap();
        assert_eq!(
            api.endpoint.url("/publish/"),
            "http://127.0.0.1:6000/publish/"
        );
        assert!(
            api.source.starts_with("publish.listen in "),
            "{}",
            api.source
        );
        assert_eq!(
            api.credentials,
            Credentials::Bearer {
                key: "s3cret".into(),
                iss: Some("me".into())
            }
        );
        let flags = ApiArgs {
            url: Some("http://example.test:1".into()),
            user: Some("u:p".into()),
            ..ApiArgs::default()
        };
        // Both given: the config is not even read.
        let missing = Globals {
            config: Some(dir.join("absent.toml")),
            publish_listen: None,
        };
        let api = flags.resolve(&missing, Purpose::Publish).unwrap();
        assert_eq!(api.credentials, Credentials::Basic("u:p".into()));
        let err = ApiArgs::default()
            .resolve(&missing, Purpose::Publish)
            .unwrap_err();
        assert!(
            err.contains("absent.toml") && err.contains("--url"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn metrics_use_their_own_listener_openly_or_the_publish_credentials() {
        let dir = scratch("metrics");
        let g = globals(
            &dir,
            "[publish]\nlisten = \"127.0.0.1:6000\"\nbasic_auth = \"a:b\"\n\
             metrics_listen = \"127.0.0.1:6001\"\n",
        );
        let api = ApiArgs::default().resolve(&g, Purpose::Metrics).unwrap();
        assert_eq!(
            api.endpoint.url("/metrics"),
            "http://127.0.0.1:6001/metrics"
        );
        assert_eq!(api.credentials, Credentials::None);
        let g = globals(
            &dir,
            "[publish]\nlisten = \"127.0.0.1:6000\"\nbasic_auth = \"a:b\"\n",
        );
        let api = ApiArgs::default().resolve(&g, Purpose::Metrics).unwrap();
        assert_eq!(
            api.endpoint.url("/metrics"),
            "http://127.0.0.1:6000/metrics"
        );
        assert_eq!(api.credentials, Credentials::Basic("a:b".into()));
        let g = globals(
            &dir,
            "[publish]\nbasic_auth = \"a:b\"\nmetrics_auth = false\n",
        );
        let api = ApiArgs::default().resolve(&g, Purpose::Metrics).unwrap();
        assert_eq!(api.credentials, Credentials::None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
