//! Configuration: the TOML file, its defaults, and the command-line overrides.
//!
//! Every limit holdfast enforces is a field here with a documented default; `config/holdfast.toml`
//! repeats each key with the same default. Unknown keys are an error so a typo never silently
//! falls back to a default. This module reads no sockets; it only parses text and validates values.

pub mod cluster;
pub mod zmq;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default configuration, compiled in: used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/holdfast.toml");

/// Everything holdfast is configured with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub http: HttpConfig,
    pub origin: OriginConfig,
    pub grip: GripConfig,
    pub hold: HoldConfig,
    pub publish: PublishConfig,
    pub websocket: WebSocketConfig,
    pub log: LogConfig,
    /// `[cluster]`: other holdfast nodes over NATS (off by default).
    pub cluster: cluster::ClusterConfig,
    /// `[zmq]`: Pushpin's ZeroMQ publish, command and stats sockets (off by default).
    pub zmq: zmq::ZmqConfig,
}

/// Which io_uring/epoll driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// io_uring when the kernel supports it, otherwise the legacy (epoll) driver.
    #[default]
    Auto,
    /// io_uring only: start-up fails if it is unavailable.
    Uring,
    /// The legacy (epoll) driver.
    Legacy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Client listeners (HTTP/1.1 and WebSocket). Each worker binds its own SO_REUSEPORT socket.
    pub listen: Vec<SocketAddr>,
    /// Worker threads, one per core. 0 means the number of CPUs.
    pub workers: usize,
    /// Pin worker N to CPU N (modulo the CPU count).
    pub pin_workers: bool,
    pub driver: DriverChoice,
    /// io_uring submission queue entries per worker.
    pub uring_entries: u32,
    /// Client connections one worker holds at most; past it new connections get 503 and are closed.
    pub connections_max_per_worker: usize,
    /// Client connections over all workers (0: no limit beyond the per-worker one).
    pub connections_max: usize,
    /// Client connections from one IP address (0: no limit).
    pub connections_max_per_ip: usize,
    /// Listen backlog of each listening socket.
    pub listen_backlog: i32,
    /// SO_SNDBUF / SO_RCVBUF of each accepted client socket, in bytes (0: the kernel's
    /// autotuning). Small values keep mostly idle held sockets cheap in kernel memory.
    pub socket_send_buffer_bytes: usize,
    pub socket_recv_buffer_bytes: usize,
    /// Routes file in Pushpin's syntax. Relative paths are relative to the config file.
    pub routes_file: Option<PathBuf>,
    /// Routes given inline (same syntax); used when `routes_file` is not set.
    pub routes: String,
    /// How long shutdown waits for connections to finish, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Let the kernel back holdfast's heap with 2 MiB transparent huge pages. Off by default:
    /// khugepaged collapses a sparse 2 MiB heap range into one huge page in the background, so
    /// RSS grows while holdfast is idle and memory freed after a peak is pinned again. Applies
    /// at start (a reload reports it as needing a restart).
    pub transparent_huge_pages: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 7999))],
            workers: 0,
            pin_workers: true,
            driver: DriverChoice::Auto,
            uring_entries: 4096,
            connections_max_per_worker: 1_000_000,
            connections_max: 0,
            connections_max_per_ip: 0,
            listen_backlog: 4096,
            socket_send_buffer_bytes: 0,
            socket_recv_buffer_bytes: 0,
            routes_file: None,
            routes: "* 127.0.0.1:8080\n".to_string(),
            shutdown_timeout_ms: 5_000,
            transparent_huge_pages: false,
        }
    }
}

/// HTTPS and WSS listeners and their certificates.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// TLS client listeners (HTTPS, WSS). Each worker binds its own SO_REUSEPORT socket.
    pub listen: Vec<SocketAddr>,
    /// Certificates, chosen per connection by the SNI name against each certificate's DNS names;
    /// the first one answers clients that send no name or an unknown one.
    pub certificates: Vec<CertificateConfig>,
}

/// One certificate: a PEM chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Relative paths are relative to the config file.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Limits and timeouts on the client side of HTTP/1.1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Request line plus headers, in bytes; past it: 431.
    pub header_bytes_max: usize,
    /// Number of request headers; past it: 431.
    pub headers_count_max: usize,
    /// Request body, in bytes; past it: 413.
    pub body_bytes_max: usize,
    /// Time allowed to receive a whole request head, from its first byte; also the longest
    /// pause between two reads of a request body.
    pub header_timeout_ms: u64,
    /// Time allowed to receive a whole request body, from the end of its head; past it: 408.
    pub body_timeout_ms: u64,
    /// Time an idle keep-alive connection waits for its next request.
    pub keepalive_timeout_ms: u64,
    /// Size of the per-worker pooled read buffers.
    pub read_buffer_bytes: usize,
    /// Pooled buffers a worker keeps for reuse.
    pub buffer_pool_max: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_bytes_max: 16_384,
            headers_count_max: 100,
            body_bytes_max: 1_000_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            keepalive_timeout_ms: 60_000,
            read_buffer_bytes: 4096,
            buffer_pool_max: 128,
        }
    }
}

/// The origin client: timeouts, limits and the keep-alive pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    pub connect_timeout_ms: u64,
    /// Time from the request being sent until the whole response head has arrived: past it, 504.
    pub response_timeout_ms: u64,
    pub response_header_bytes_max: usize,
    /// A response carrying GRIP instructions is read whole before holding: its body limit.
    pub instruct_body_bytes_max: usize,
    /// Idle keep-alive connections kept per origin address.
    pub pool_idle_max: usize,
    /// An idle pooled connection older than this is not reused.
    pub pool_idle_timeout_ms: u64,
    /// Requests one worker has awaiting a response head from one origin address; more wait
    /// (up to connect_timeout_ms, then 504) instead of opening ever more connections.
    pub requests_in_flight_max: usize,
    /// Append the client address to X-Forwarded-For.
    pub x_forwarded_for: bool,
    /// Set X-Forwarded-Proto to the client's scheme.
    pub x_forwarded_proto: bool,
    /// CA certificates (PEM) trusted for origins reached over TLS (`ssl` targets). Unset: the
    /// system's roots. Relative paths are relative to the config file.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            connect_timeout_ms: 5_000,
            response_timeout_ms: 30_000,
            response_header_bytes_max: 16_384,
            instruct_body_bytes_max: 1_000_000,
            pool_idle_max: 64,
            pool_idle_timeout_ms: 30_000,
            requests_in_flight_max: 100,
            x_forwarded_for: true,
            x_forwarded_proto: true,
            tls_ca_file: None,
        }
    }
}

/// GRIP: request signing and hold defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GripConfig {
    /// `iss` claim of the Grip-Sig JWT.
    pub sig_iss: String,
    /// Key for Grip-Sig (HS256). `base64:` prefix means a base64-encoded binary key. Unset: no signing.
    pub sig_key: Option<String>,
    /// A file holding `sig_key` (same forms; trailing newlines stripped), so the key need not be
    /// in the config file or on the command line. Relative to the config file.
    pub sig_key_file: Option<PathBuf>,
    /// Channels one connection may subscribe to (Pushpin's connection_subscription_max).
    pub channels_max: usize,
    /// Long-poll hold timeout when the origin gives none, in seconds.
    pub hold_timeout_default_secs: u32,
    /// Longest channel name (and subscription meta name), in bytes, from any source: publish
    /// API, GRIP headers and JSON, WebSocket control messages, cluster peers. Past it: 400 to a
    /// publisher, 502 to a client whose origin sent it.
    pub channel_bytes_max: usize,
    /// Longest item `id` / `prev-id`, in bytes (they travel in `Grip-Last` headers).
    pub id_bytes_max: usize,
    /// Longest subscription meta value, in bytes (`Grip-Set-Meta`, WebSocket `set-meta`,
    /// `Set-Meta-*`; sent back to the origin as `Meta-*` headers).
    pub meta_value_bytes_max: usize,
    /// Meta entries one WebSocket-over-HTTP connection holds (`set-meta`, `Set-Meta-*`); each is
    /// a `Meta-*` header on every request to the origin. A new name past it is refused (logged).
    pub meta_entries_max: usize,
    /// Content a `var-subst` or `build-id` filter produces for one subscriber, in bytes; an item
    /// whose output would be larger is not delivered to that subscriber (counted, logged).
    pub filter_output_bytes_max: usize,
}

impl Default for GripConfig {
    fn default() -> Self {
        GripConfig {
            sig_iss: "pushpin".to_string(),
            sig_key: None,
            sig_key_file: None,
            channels_max: 20,
            hold_timeout_default_secs: 55,
            channel_bytes_max: 512,
            id_bytes_max: 512,
            meta_value_bytes_max: 1024,
            meta_entries_max: 32,
            filter_output_bytes_max: 1_000_000,
        }
    }
}

/// What happens to a subscriber that falls behind: past the soft limit (`drop_messages` only),
/// and when it stalls, reaches the hard cap or is the stalest when the worker's budget is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Keep a draining subscriber past the soft limit; cut it (WebSocket: close 1008 after the
    /// frame being written; stream: the connection ends) when it stalls, reaches the hard cap,
    /// or is the stalest subscriber when the worker's budget is full.
    #[default]
    Close,
    /// Drop the messages past the soft limit (counted); the connection stays until it stalls or
    /// the worker's budget cuts it.
    DropMessages,
}

/// Held connections: how much may wait for a subscriber, and when a slow one is cut.
///
/// "Progress" is bytes the kernel accepted for the client. A subscriber that keeps draining is
/// kept whatever its backlog up to the hard cap; one whose queue has not moved for
/// `stall_timeout_ms` is cut. Queued bytes are counted per subscriber (a payload shared by N
/// subscribers counts N times), so the sums below are an upper bound of the memory they hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoldConfig {
    /// Soft limit of bytes queued for one connection. Past it the socket is written at once
    /// rather than at the end of the batch, and `drop_messages` drops; `close` keeps a subscriber
    /// that drains.
    pub outbox_bytes_max: usize,
    /// Hard cap of bytes queued for one connection: past it the subscriber is cut even if it
    /// drains (it is falling ever further behind).
    pub outbox_hard_bytes_max: usize,
    /// Bytes queued for all connections of one worker together: past it the subscribers with the
    /// least recent progress are cut until the rest fit.
    pub outbox_bytes_max_per_worker: usize,
    /// A subscriber with bytes queued and none of them taken by the kernel for this long is cut
    /// (0: never for that reason).
    pub stall_timeout_ms: u64,
    pub slow_consumer: SlowConsumerPolicy,
}

impl Default for HoldConfig {
    fn default() -> Self {
        HoldConfig {
            outbox_bytes_max: 4 * 1024 * 1024,
            outbox_hard_bytes_max: 64 * 1024 * 1024,
            outbox_bytes_max_per_worker: 256 * 1024 * 1024,
            stall_timeout_ms: 30_000,
            slow_consumer: SlowConsumerPolicy::Close,
        }
    }
}

impl HoldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        if self.outbox_bytes_max < 1024 {
            return bad("hold.outbox_bytes_max must be at least 1024");
        }
        if self.outbox_hard_bytes_max < self.outbox_bytes_max {
            return bad("hold.outbox_hard_bytes_max must be at least hold.outbox_bytes_max");
        }
        if self.outbox_bytes_max_per_worker < self.outbox_hard_bytes_max {
            return bad(
                "hold.outbox_bytes_max_per_worker must be at least hold.outbox_hard_bytes_max",
            );
        }
        if self.stall_timeout_ms != 0 && self.stall_timeout_ms < 100 {
            return bad("hold.stall_timeout_ms must be 0 (off) or at least 100");
        }
        Ok(())
    }
}

/// WebSocket clients and WebSocket-over-HTTP sessions with the origin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Largest client message (all fragments); past it the client is closed with 1009.
    pub message_bytes_max: usize,
    /// Event bytes one WebSocket-over-HTTP request carries at most (whole messages; Pushpin: 200 000).
    pub batch_bytes_max: usize,
    /// Client messages waiting for the origin; past it holdfast stops reading from the client.
    pub queue_bytes_max: usize,
    /// Largest WebSocket-over-HTTP response body from the origin (Pushpin: 1 000 000).
    pub origin_body_bytes_max: usize,
    /// Attempts of a request that failed to connect, with back-off 1 s * 2^n + 0-1 s (Pushpin: 5).
    pub retries_max: u32,
    /// After holdfast sends a close frame, how long it waits for the client's before dropping it.
    pub close_timeout_ms: u64,
    /// Pings and pongs a client may send per second; past it: close 1008.
    pub control_frames_per_sec_max: u32,
    /// How long a client's fragmented message may take to complete; past it: close 1008.
    pub fragment_timeout_ms: u64,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            message_bytes_max: 1_048_576,
            batch_bytes_max: 200_000,
            queue_bytes_max: 1_048_576,
            origin_body_bytes_max: 1_000_000,
            retries_max: 5,
            close_timeout_ms: 5_000,
            control_frames_per_sec_max: 50,
            fragment_timeout_ms: 30_000,
        }
    }
}

/// The publish API listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    pub listen: SocketAddr,
    pub header_bytes_max: usize,
    pub body_bytes_max: usize,
    pub items_max: usize,
    /// Messages queued per worker inbox; a full inbox slows the publisher, it never drops.
    pub inbox_capacity: usize,
    /// Basic auth: `user:password`. Unset: Basic is not accepted.
    pub basic_auth: Option<String>,
    /// A file holding `basic_auth` (trailing newlines stripped). Relative to the config file.
    pub basic_auth_file: Option<PathBuf>,
    /// Bearer JWT key (HS256; `base64:` prefix for binary). Unset: Bearer is not accepted.
    pub jwt_key: Option<String>,
    /// A file holding `jwt_key` (same forms; trailing newlines stripped). Relative to the config
    /// file.
    pub jwt_key_file: Option<PathBuf>,
    /// Required `iss` claim of Bearer tokens, if set.
    pub jwt_iss: Option<String>,
    /// How long an item whose `prev-id` is ahead of the channel's last id waits for the missing
    /// one before it is delivered anyway (Pushpin's message_wait).
    pub message_wait_ms: u64,
    /// How long published ids are remembered to drop duplicates (Pushpin's id_cache_ttl).
    pub id_cache_ttl_ms: u64,
    /// Operations in one `body-patch`; a publish with more is refused (400).
    pub body_patch_ops_max: usize,
    /// Size of a long-poll body after its `body-patch`, in bytes; a patch that would pass it
    /// stops there and the long-poll gets an empty body (counted, logged).
    pub body_patch_bytes_max: usize,
    /// Time a publisher has for one whole request (head and body) from when holdfast starts
    /// waiting for it; past it: 408 (or, between requests, a quiet close).
    pub request_timeout_ms: u64,
    /// `GET /metrics` needs the publish credentials too, when `basic_auth` or `jwt_key` is set.
    pub metrics_auth: bool,
    /// Serve `GET /metrics` on a listener of its own, without credentials, instead of on
    /// `listen`. Unset: on `listen`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5561)),
            header_bytes_max: 10_000,
            body_bytes_max: 1_000_000,
            items_max: 1_000,
            inbox_capacity: 65_536,
            basic_auth: None,
            basic_auth_file: None,
            jwt_key: None,
            jwt_key_file: None,
            jwt_iss: None,
            message_wait_ms: 5_000,
            id_cache_ttl_ms: 60_000,
            body_patch_ops_max: 100,
            body_patch_bytes_max: 1_000_000,
            request_timeout_ms: 30_000,
            metrics_auth: true,
            metrics_listen: None,
        }
    }
}

impl PublishConfig {
    /// Whether any publish authentication is configured.
    pub fn auth_required(&self) -> bool {
        self.basic_auth.is_some() || self.jwt_key.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter (`info`, `holdfast=debug`, ...). RUST_LOG overrides it.
    pub level: String,
    /// `text` (human-readable lines) or `json` (one JSON object a line).
    pub format: LogFormat,
    /// Most lines each call site logs per second (0: no limit); the rest are counted.
    pub lines_per_second: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Text,
            lines_per_second: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config{}: {message}", origin_suffix(.path))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
    /// A `*_file` secret that cannot be used; the message names the file, never its contents.
    #[error("cannot read {key} {path}: {reason}")]
    SecretFile {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn origin_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl Config {
    /// Parses TOML text; `path` only labels errors and anchors a relative `routes_file`.
    pub fn from_toml(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_path_buf),
            // The parser quotes the offending line, which may hold a secret.
            message: crate::redact::config_text(&e.to_string()).into_owned(),
        })?;
        if let Some(dir) = path.and_then(Path::parent) {
            let anchor = |file: &mut PathBuf| {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            };
            config.server.routes_file.iter_mut().for_each(anchor);
            config.origin.tls_ca_file.iter_mut().for_each(anchor);
            config.grip.sig_key_file.iter_mut().for_each(anchor);
            config.publish.jwt_key_file.iter_mut().for_each(anchor);
            config.publish.basic_auth_file.iter_mut().for_each(anchor);
            for c in &mut config.tls.certificates {
                anchor(&mut c.cert);
                anchor(&mut c.key);
            }
        }
        if let Some(dir) = path.and_then(Path::parent) {
            config.cluster.anchor_paths(dir);
        }
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, Some(path))
    }

    /// The embedded default configuration.
    pub fn embedded() -> Config {
        // The embedded text is part of the binary and covered by a unit test; it cannot fail here.
        Config::from_toml(EMBEDDED_DEFAULT, None).unwrap_or_default()
    }

    /// The config with every `*_file` secret read into its key (`grip.sig_key_file` into
    /// `grip.sig_key`, ...) and the file cleared. Giving both a key and its file is an error, so it is never unclear
    /// which one is used.
    pub fn with_secret_files(&self) -> Result<Config, ConfigError> {
        let mut c = self.clone();
        let read = |key, file: &Option<PathBuf>, value: &Option<String>, value_key| match file {
            None => Ok(value.clone()),
            Some(_) if value.is_some() => Err(ConfigError::Invalid(format!(
                "set {value_key} or {key}, not both"
            ))),
            Some(path) => read_secret_file(key, path).map(Some),
        };
        c.grip.sig_key = read(
            "grip.sig_key_file",
            &c.grip.sig_key_file,
            &c.grip.sig_key,
            "grip.sig_key",
        )?;
        c.publish.jwt_key = read(
            "publish.jwt_key_file",
            &c.publish.jwt_key_file,
            &c.publish.jwt_key,
            "publish.jwt_key",
        )?;
        c.publish.basic_auth = read(
            "publish.basic_auth_file",
            &c.publish.basic_auth_file,
            &c.publish.basic_auth,
            "publish.basic_auth",
        )?;
        // Read once: the result can be checked (and resolved) again without a conflict.
        c.grip.sig_key_file = None;
        c.publish.jwt_key_file = None;
        c.publish.basic_auth_file = None;
        Ok(c)
    }

    /// Worker count with 0 resolved to the number of CPUs.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Checks values that parse but make no sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        if self.server.listen.is_empty() && self.tls.listen.is_empty() {
            return bad("server.listen and tls.listen are both empty");
        }
        if !self.tls.listen.is_empty() && self.tls.certificates.is_empty() {
            return bad("tls.listen is set but tls.certificates is empty");
        }
        if self.http.header_bytes_max < 64 {
            return bad("http.header_bytes_max must be at least 64");
        }
        if self.http.read_buffer_bytes < 1024 {
            return bad("http.read_buffer_bytes must be at least 1024");
        }
        if self.http.body_timeout_ms == 0 {
            return bad("http.body_timeout_ms must be at least 1");
        }
        if self.publish.request_timeout_ms == 0 {
            return bad("publish.request_timeout_ms must be at least 1");
        }
        if self.publish.inbox_capacity == 0 {
            return bad("publish.inbox_capacity must be at least 1");
        }
        if self.grip.channels_max == 0 {
            return bad("grip.channels_max must be at least 1");
        }
        self.hold.validate()?;
        if let Some(auth) = &self.publish.basic_auth
            && !auth.contains(':')
        {
            return bad("publish.basic_auth must be user:password");
        }
        self.cluster.validate()?;
        self.zmq.validate()?;
        Ok(())
    }

    /// The routes text: the routes file's contents if one is set, else the inline routes.
    pub fn routes_text(&self) -> Result<String, ConfigError> {
        match &self.server.routes_file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            }),
            None => Ok(self.server.routes.clone()),
        }
    }
}

/// Reads a secret from a file: UTF-8 text, trailing newlines stripped, not empty. Errors name
/// the file and the config key, never the contents.
pub fn read_secret_file(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::SecretFile {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| fail("it is not UTF-8 text (write a binary key as base64:...)".to_string()))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(fail("it is empty".to_string()));
    }
    Ok(secret.to_string())
}

/// Decodes a key given as text: `base64:` prefix means base64-encoded binary, else the UTF-8 bytes.
pub fn decode_key(text: &str) -> Result<Vec<u8>, ConfigError> {
    use base64::Engine;
    match text.strip_prefix("base64:") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| ConfigError::Invalid(format!("key is not valid base64: {e}"))),
        None => Ok(text.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_validates() {
        let c = Config::from_toml(EMBEDDED_DEFAULT, None).unwrap();
        c.validate().unwrap();
        assert_eq!(c.publish.listen.port(), 5561);
        assert_eq!(c.grip.channels_max, 20);
    }

    #[test]
    fn embedded_file_matches_code_defaults() {
        let file = Config::from_toml(EMBEDDED_DEFAULT, None).unwrap();
        let code = Config::default();
        assert_eq!(format!("{:?}", file.http), format!("{:?}", code.http));
        assert_eq!(file.tls, code.tls);
        assert_eq!(format!("{:?}", file.origin), format!("{:?}", code.origin));
        assert_eq!(format!("{:?}", file.hold), format!("{:?}", code.hold));
        assert_eq!(format!("{:?}", file.publish), format!("{:?}", code.publish));
        assert_eq!(format!("{:?}", file.grip), format!("{:?}", code.grip));
        assert_eq!(
            format!("{:?}", file.websocket),
            format!("{:?}", code.websocket)
        );
        assert_eq!(file.cluster, code.cluster);
        assert_eq!(file.zmq, code.zmq);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::from_toml("[http]\nheader_bytes_mx = 5\n", None).unwrap_err();
        assert!(err.to_string().contains("header_bytes_mx"), "{err}");
    }

    #[test]
    fn relative_routes_file_is_anchored_at_config_dir() {
        let c = Config::from_toml(
            "[server]\nroutes_file = \"routes\"\n",
            Some(Path::new("/etc/holdfast/holdfast.toml")),
        )
        .unwrap();
        assert_eq!(
            c.server.routes_file.as_deref(),
            Some(Path::new("/etc/holdfast/routes"))
        );
        let c = Config::from_toml(
            "[[tls.certificates]]\ncert = \"a.pem\"\nkey = \"/k/a.key\"\n",
            Some(Path::new("/etc/holdfast/holdfast.toml")),
        )
        .unwrap();
        assert_eq!(c.tls.certificates[0].cert, Path::new("/etc/holdfast/a.pem"));
        assert_eq!(c.tls.certificates[0].key, Path::new("/k/a.key"));
    }

    #[test]
    fn validate_rejects_nonsense() {
        let mut c = Config::default();
        c.publish.basic_auth = Some("nocolon".into());
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.server.listen.clear();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.tls.listen = vec![SocketAddr::from(([127, 0, 0, 1], 443))];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("tls.certificates"), "{err}");
    }

    #[test]
    fn secret_files_are_read_trimmed_and_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("holdfast-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sig"), "s3cret\r\n").unwrap();
        std::fs::write(dir.join("basic"), "u:p\n").unwrap();
        std::fs::write(dir.join("binary"), [0xff, 0xfe, b'\n']).unwrap();
        let text = "[grip]\nsig_key_file = \"sig\"\n[publish]\nbasic_auth_file = \"basic\"\n";
        let c = Config::from_toml(text, Some(&dir.join("h.toml"))).unwrap();
        let resolved = c.with_secret_files().unwrap();
        assert_eq!(resolved.grip.sig_key.as_deref(), Some("s3cret"));
        assert_eq!(resolved.publish.basic_auth.as_deref(), Some("u:p"));
        assert!(resolved.publish.jwt_key.is_none());
        // Resolving again changes nothing (the files are cleared once read).
        let again = resolved.with_secret_files().unwrap();
        assert_eq!(again.grip.sig_key.as_deref(), Some("s3cret"));

        let mut both = c.clone();
        both.grip.sig_key = Some("inline".into());
        let err = both.with_secret_files().unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");

        for (name, needle) in [("missing", "No such file"), ("binary", "not UTF-8")] {
            let mut c = Config::default();
            c.publish.jwt_key_file = Some(dir.join(name));
            let err = c.with_secret_files().unwrap_err().to_string();
            assert!(err.contains("publish.jwt_key_file"), "{err}");
            assert!(err.contains(&*dir.join(name).to_string_lossy()), "{err}");
            assert!(err.contains(needle), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parse_errors_do_not_quote_secrets() {
        let err = Config::from_toml("[grip]\nsig_key = \"s3cret\n", None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("sig_key"), "{err}");
    }

    #[test]
    fn hold_limits_must_nest() {
        let mut c = Config::default();
        c.hold.outbox_hard_bytes_max = c.hold.outbox_bytes_max - 1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("outbox_hard_bytes_max"), "{err}");
        let mut c = Config::default();
        c.hold.outbox_bytes_max_per_worker = c.hold.outbox_hard_bytes_max - 1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("outbox_bytes_max_per_worker"), "{err}");
        let mut c = Config::default();
        c.hold.stall_timeout_ms = 10;
        assert!(c.validate().is_err());
        c.hold.stall_timeout_ms = 0;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn decode_key_handles_base64_prefix() {
        assert_eq!(decode_key("changeme").unwrap(), b"changeme");
        assert_eq!(decode_key("base64:aGVsbG8=").unwrap(), b"hello");
        assert!(decode_key("base64:***").is_err());
    }
}
