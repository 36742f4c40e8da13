//! The ZeroMQ thread (libzmq, through the `zmq` crate): reads the PULL and SUB sockets, answers
//! the command socket, keeps the SUB socket's subscriptions in step with the workers' channels,
//! and sends `report` stats. Never on a worker: it hands what it accepted to the publish thread
//! ([`FromZmq`]) and blocks while that queue is full, so a fast publisher is slowed down by
//! libzmq's high-water mark instead of anything being dropped here.
//!
//! Sockets are opened and bound by [`open`] before the thread starts, so a bad endpoint fails
//! start-up with a clear error.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Instant;

use super::link::{Endpoints, FromZmq, Source, ZmqLink};
use crate::cluster::InterestChange;
use crate::cluster::interest::Interest;
use crate::metrics::{PublishMetrics, WorkerMetrics};
use crate::proto::publish::{Item, PublishLimits};
use crate::proto::tnetstring::Value;
use crate::proto::zmq as wire;

/// How long one poll waits: the longest delay before a subscription change reaches the SUB
/// socket or a stop is noticed.
const POLL_MS: i64 = 25;
/// Messages read from one socket per round, so the others (and the command socket) get turns.
const READ_BATCH: usize = 256;

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("zmq.{key}: cannot use {spec:?}: {source}")]
pub struct OpenError {
    key: &'static str,
    spec: String,
    source: zmq::Error,
}

/// The sockets, bound and ready to move to the thread.
pub struct Sockets {
    // Sockets before the context: fields drop in order, and the context's drop waits for them.
    pull: Option<zmq::Socket>,
    sub: Option<zmq::Socket>,
    command: Option<zmq::Socket>,
    stats: Option<zmq::Socket>,
    pub endpoints: Endpoints,
    _context: zmq::Context,
}

/// Opens and binds (or connects) every configured socket.
pub fn open(link: &ZmqLink) -> Result<Sockets, OpenError> {
    let c = &link.config;
    let context = zmq::Context::new();
    let mut endpoints = Endpoints::default();
    let new = |key: &'static str, spec: &str, kind: zmq::SocketType| {
        let fail = |source| OpenError {
            key,
            spec: spec.to_owned(),
            source,
        };
        let s = context.socket(kind).map_err(fail)?;
        s.set_linger(0).map_err(fail)?;
        if matches!(kind, zmq::PULL | zmq::SUB | zmq::ROUTER) {
            s.set_rcvhwm(c.receive_hwm).map_err(fail)?;
            s.set_maxmsgsize(c.message_bytes_max as i64).map_err(fail)?;
        }
        Ok::<_, OpenError>(s)
    };
    let bind = |key: &'static str, s: &zmq::Socket, spec: &str| {
        let fail = |source| OpenError {
            key,
            spec: spec.to_owned(),
            source,
        };
        s.bind(spec).map_err(fail)?;
        set_ipc_mode(spec, c.ipc_file_mode);
        Ok::<_, OpenError>(resolved(spec, s))
    };
    let pull = match c.push_in_spec.as_str() {
        "" => None,
        spec => {
            let s = new("push_in_spec", spec, zmq::PULL)?;
            endpoints.pull = Some(bind("push_in_spec", &s, spec)?);
            Some(s)
        }
    };
    let sub = match c.push_in_sub_specs.first() {
        None => None,
        Some(first) => {
            let s = new("push_in_sub_specs", first, zmq::SUB)?;
            // Subscriptions go out however many there are (Pushpin: an unlimited send HWM).
            let _ = s.set_sndhwm(0);
            for spec in &c.push_in_sub_specs {
                if c.push_in_sub_connect {
                    let fail = |source| OpenError {
                        key: "push_in_sub_specs",
                        spec: spec.clone(),
                        source,
                    };
                    let _ = s.set_tcp_keepalive(1);
                    let _ = s.set_tcp_keepalive_idle(30);
                    let _ = s.set_tcp_keepalive_cnt(6);
                    let _ = s.set_tcp_keepalive_intvl(5);
                    s.connect(spec).map_err(fail)?;
                    endpoints.sub.push(spec.clone());
                } else {
                    endpoints.sub.push(bind("push_in_sub_specs", &s, spec)?);
                }
            }
            Some(s)
        }
    };
    // ROUTER, as Pushpin's command server: answers REQ and DEALER clients alike.
    let command = match c.command_spec.as_str() {
        "" => None,
        spec => {
            let s = new("command_spec", spec, zmq::ROUTER)?;
            endpoints.command = Some(bind("command_spec", &s, spec)?);
            Some(s)
        }
    };
    let stats = match c.stats_spec.as_str() {
        "" => None,
        spec => {
            let s = new("stats_spec", spec, zmq::PUB)?;
            endpoints.stats = Some(bind("stats_spec", &s, spec)?);
            Some(s)
        }
    };
    Ok(Sockets {
        pull,
        sub,
        command,
        stats,
        endpoints,
        _context: context,
    })
}

/// The endpoint to tell clients: the configured one, with an ephemeral port (`*` or 0) replaced
/// by the port bound.
fn resolved(spec: &str, s: &zmq::Socket) -> String {
    let ephemeral = spec.ends_with(":*") || spec.ends_with(":0");
    match s.get_last_endpoint() {
        Ok(Ok(last)) if ephemeral && spec.starts_with("tcp://") => {
            let port = last.rsplit_once(':').map_or("", |(_, p)| p);
            let host = spec.rsplit_once(':').map_or(spec, |(h, _)| h);
            format!("{host}:{port}")
        }
        _ => spec.to_owned(),
    }
}

fn set_ipc_mode(spec: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(path) = spec.strip_prefix("ipc://")
        && mode != 0
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    {
        tracing::warn!("zmq: cannot set mode {mode:o} on {path}: {e}");
    }
}

/// What the thread reads besides its sockets.
pub struct Context {
    pub link: Arc<ZmqLink>,
    pub limits: PublishLimits,
    pub workers: Vec<Arc<WorkerMetrics>>,
    pub publish: Arc<PublishMetrics>,
}

/// Starts the ZeroMQ thread; it runs until [`ZmqLink::stop`].
pub fn spawn(sockets: Sockets, cx: Context) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("holdfast-zmq".into())
        .spawn(move || Thread::new(sockets, cx).run())
}

struct Thread {
    s: Sockets,
    cx: Context,
    interest: Interest,
    epoch: Instant,
    stats: StatsClock,
}

/// The running totals a `report` is the difference of.
struct StatsClock {
    last_report_ms: u64,
    last: Totals,
    /// Connection time not yet reported as a whole minute.
    connection_ms_left: u64,
    from: String,
}

/// Counters over all workers and publish paths.
#[derive(Clone, Copy, Default)]
struct Totals {
    received: u64,
    sent: u64,
    connection_ms: u64,
}

impl Thread {
    fn new(s: Sockets, cx: Context) -> Thread {
        let linger = cx.link.config.subscription_linger_ms;
        let from = cx.link.config.instance_id();
        let mut t = Thread {
            s,
            interest: Interest::new(linger),
            epoch: Instant::now(),
            stats: StatsClock {
                last_report_ms: 0,
                last: Totals::default(),
                connection_ms_left: 0,
                from,
            },
            cx,
        };
        t.stats.last = t.totals();
        t
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn run(mut self) {
        tracing::info!(endpoints = ?self.s.endpoints, "zmq: sockets open");
        while !self.cx.link.is_stopping() {
            self.follow_interest();
            self.report_stats();
            let (pull, sub, command) = match self.poll() {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::warn!("zmq: poll failed: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
                    continue;
                }
            };
            if pull {
                self.read_items(Source::Pull);
            }
            if sub {
                self.read_items(Source::Sub);
            }
            if command {
                self.read_commands();
            }
        }
        tracing::debug!("zmq: thread stopped");
    }

    /// Which of PULL, SUB and the command socket have messages.
    fn poll(&self) -> zmq::Result<(bool, bool, bool)> {
        let socks = [&self.s.pull, &self.s.sub, &self.s.command];
        let mut items: Vec<zmq::PollItem> = socks
            .iter()
            .filter_map(|s| s.as_ref().map(|s| s.as_poll_item(zmq::POLLIN)))
            .collect();
        if items.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
            return Ok((false, false, false));
        }
        zmq::poll(&mut items, POLL_MS)?;
        let mut readable = items.iter().map(zmq::PollItem::is_readable);
        let mut next = |present: bool| present && readable.next().unwrap_or(false);
        Ok((
            next(self.s.pull.is_some()),
            next(self.s.sub.is_some()),
            next(self.s.command.is_some()),
        ))
    }

    /// Reads up to a batch of items from PULL or SUB and queues the valid ones, in order.
    fn read_items(&mut self, source: Source) {
        let socket = match source {
            Source::Pull => self.s.pull.as_ref(),
            _ => self.s.sub.as_ref(),
        };
        let Some(socket) = socket else { return };
        let mut batch = Vec::new();
        for _ in 0..READ_BATCH {
            let parts = match socket.recv_multipart(zmq::DONTWAIT) {
                Ok(parts) => parts,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!("zmq: {} receive failed: {e}", source.as_str());
                    break;
                }
            };
            match item(source, &parts, &self.cx.limits) {
                Ok(item) => batch.push(item),
                Err(e) => self.reject(source, &e),
            }
        }
        if !batch.is_empty() {
            WorkerMetrics::add(
                &self.cx.link.metrics.items[source as usize],
                batch.len() as u64,
            );
            self.cx.link.send_blocking(FromZmq::Items(batch));
        }
    }

    fn reject(&self, source: Source, why: &str) {
        WorkerMetrics::inc(&self.cx.link.metrics.rejected[source as usize]);
        tracing::info!("zmq: {} message refused: {why}", source.as_str());
    }

    /// Answers up to a batch of commands.
    fn read_commands(&mut self) {
        for _ in 0..READ_BATCH {
            let Some(socket) = self.s.command.as_ref() else {
                return;
            };
            let mut parts = match socket.recv_multipart(zmq::DONTWAIT) {
                Ok(parts) => parts,
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!("zmq: command receive failed: {e}");
                    return;
                }
            };
            // ROUTER framing: routing ids, an empty delimiter, then the request.
            let Some(split) = parts.iter().position(|p| p.is_empty()) else {
                self.reject(Source::Command, "no envelope delimiter");
                continue;
            };
            let content = parts.split_off(split + 1);
            let reply = match content.as_slice() {
                [request] => self.answer(request),
                _ => {
                    self.reject(Source::Command, "the request is not one part");
                    wire::response_error(None, "bad-format", Some("the request is not one part"))
                }
            };
            parts.push(reply);
            if let Some(socket) = self.s.command.as_ref()
                && let Err(e) = socket.send_multipart(parts, zmq::DONTWAIT)
            {
                tracing::info!("zmq: cannot answer a command: {e}");
            }
        }
    }

    /// One command's response.
    fn answer(&mut self, request: &[u8]) -> Vec<u8> {
        let req = match wire::parse_request(request) {
            Ok(req) => req,
            Err(e) => {
                self.reject(Source::Command, &format!("bad request: {e}"));
                return wire::response_error(None, "bad-format", Some(&e));
            }
        };
        WorkerMetrics::inc(&self.cx.link.metrics.commands);
        let id = req.id;
        let method = String::from_utf8_lossy(req.method);
        tracing::debug!(%method, "zmq: command");
        match req.method {
            b"get-zmq-uris" => wire::response_ok(id, self.uris()),
            b"recover" => {
                self.cx.link.send_blocking(FromZmq::Recover);
                wire::response_ok(id, Value::Null)
            }
            b"publish" => match wire::parse_publish_args(&req.args, &self.cx.limits) {
                Ok(items) => {
                    let n = items.len() as u64;
                    WorkerMetrics::add(&self.cx.link.metrics.items[Source::Command as usize], n);
                    self.cx.link.send_blocking(FromZmq::Items(items));
                    wire::response_ok(id, Value::Null)
                }
                Err(e) => {
                    self.reject(Source::Command, &e);
                    wire::response_error(id, "bad-request", Some(&e))
                }
            },
            b"refresh" => match refresh_item(&req.args, &self.cx.limits) {
                Ok(item) => {
                    self.cx.link.send_blocking(FromZmq::Local(vec![item]));
                    wire::response_ok(id, Value::Null)
                }
                Err((condition, why)) => {
                    self.reject(Source::Command, &why);
                    wire::response_error(id, condition, Some(&why))
                }
            },
            b"conncheck" => {
                let why = "holdfast does not track connection ids across workers";
                wire::response_error(id, "not-supported", Some(why))
            }
            _ => wire::response_error(id, "method-not-found", None),
        }
    }

    /// `get-zmq-uris`: as Pushpin, the command, PULL and (bound) SUB endpoints.
    fn uris(&self) -> Value<'_> {
        let e = &self.s.endpoints;
        let bound_sub = (!self.cx.link.config.push_in_sub_connect)
            .then(|| e.sub.first())
            .flatten();
        let entries = [
            ("command", e.command.as_ref()),
            ("publish-pull", e.pull.as_ref()),
            ("publish-sub", bound_sub),
        ];
        Value::Map(
            entries
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_bytes(), Value::Bytes(v?.as_bytes()))))
                .collect(),
        )
    }
}

/// A PULL or SUB message as an item (Pushpin: PULL has one part, SUB `[channel, item]`).
fn item(source: Source, parts: &[Vec<u8>], limits: &PublishLimits) -> Result<Item, String> {
    match (source, parts) {
        (Source::Pull, [payload]) => wire::parse_item_message(payload, None, limits),
        (Source::Sub, [channel, payload]) => {
            wire::parse_item_message(payload, Some(channel), limits)
        }
        (Source::Pull, _) => Err(format!("{} parts, not 1", parts.len())),
        _ => Err(format!("{} parts, not 2", parts.len())),
    }
}

/// `refresh {channel}`: a ws refresh for the channel's WebSocket-over-HTTP subscribers on this
/// node (Pushpin's semantics). `refresh {cid}` needs a connection id registry holdfast does not
/// keep: refused as `not-supported`.
fn refresh_item(args: &Value<'_>, limits: &PublishLimits) -> Result<Item, (&'static str, String)> {
    if args.get("cid").is_some() {
        let why = "refresh by connection id is not supported; refresh a channel instead";
        return Err(("not-supported", why.into()));
    }
    let Some(Value::Bytes(channel)) = args.get("channel") else {
        return Err(("bad-request", "args need a 'channel' string".into()));
    };
    let channel = std::str::from_utf8(channel)
        .map_err(|_| ("bad-request", "the channel is not UTF-8".to_string()))?;
    let json = serde_json::json!({
        "channel": channel,
        "formats": { "ws-message": { "action": "refresh" } },
    });
    crate::proto::publish::parse_item_value(&json, limits).map_err(|e| ("bad-request", e))
}

impl Thread {
    /// Applies the workers' interest changes to the SUB socket's subscriptions.
    fn follow_interest(&mut self) {
        let Some(sub) = self.s.sub.as_ref() else {
            return;
        };
        let now = self.now_ms();
        while let Some(change) = self.cx.link.pop_interest() {
            match change {
                InterestChange::Gained(channel) => {
                    if self.interest.gained(&channel)
                        && let Err(e) = sub.set_subscribe(channel.as_bytes())
                    {
                        tracing::warn!("zmq: cannot subscribe to {channel:?}: {e}");
                    }
                }
                InterestChange::Lost(channel) => self.interest.lost(&channel, now),
            }
        }
        let mut expired = Vec::new();
        self.interest.expire(now, &mut expired);
        for channel in expired {
            if let Err(e) = sub.set_unsubscribe(channel.as_bytes()) {
                tracing::warn!("zmq: cannot unsubscribe from {channel:?}: {e}");
            }
        }
        let gauge = &self.cx.link.metrics.subscriptions;
        gauge.store(self.interest.len() as u64, Relaxed);
    }

    /// Items received (all publish paths), messages sent to subscribers and connection time,
    /// so far.
    fn totals(&self) -> Totals {
        let sum = |f: fn(&WorkerMetrics) -> &std::sync::atomic::AtomicU64| {
            self.cx.workers.iter().map(|w| f(w).load(Relaxed)).sum()
        };
        Totals {
            received: self.cx.publish.items.load(Relaxed),
            sent: sum(|w| &w.delivered),
            connection_ms: sum(|w| &w.connection_ms),
        }
    }

    /// Sends Pushpin's `report` when one is due: the counts since the last one.
    fn report_stats(&mut self) {
        let now = self.now_ms();
        let interval = self.cx.link.config.stats_report_interval_ms;
        if self.s.stats.is_none() || now - self.stats.last_report_ms < interval {
            return;
        }
        let open: u64 = self
            .cx
            .workers
            .iter()
            .map(|w| w.connections.load(Relaxed))
            .sum();
        let t = self.totals();
        let st = &mut self.stats;
        let connection_ms =
            st.connection_ms_left + t.connection_ms.saturating_sub(st.last.connection_ms);
        st.connection_ms_left = connection_ms % 60_000;
        let delta = |now: u64, then: u64| Value::Int(now.saturating_sub(then) as i64);
        let fields = Value::Map(vec![
            (b"from", Value::Bytes(st.from.as_bytes())),
            (b"connections", Value::Int(open as i64)),
            (b"minutes", Value::Int((connection_ms / 60_000) as i64)),
            (b"received", delta(t.received, st.last.received)),
            (b"sent", delta(t.sent, st.last.sent)),
            (b"duration", Value::Int((now - st.last_report_ms) as i64)),
        ]);
        let msg = wire::stats_message("report", &fields, self.cx.link.config.stats_format);
        (st.last, st.last_report_ms) = (t, now);
        if let Some(stats) = &self.s.stats
            && let Err(e) = stats.send(msg, zmq::DONTWAIT)
        {
            tracing::debug!("zmq: stats report not sent: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::publish::WsAction;

    fn args(entries: Vec<(&'static str, Value<'static>)>) -> Value<'static> {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes(), v))
                .collect(),
        )
    }

    #[test]
    fn refresh_a_channel_is_a_ws_refresh_item_checked_like_a_publish() {
        let limits = PublishLimits::default();
        let item = refresh_item(&args(vec![("channel", Value::Bytes(b"room"))]), &limits).unwrap();
        assert_eq!(item.channel, "room");
        assert_eq!(item.ws_message.map(|w| w.action), Some(WsAction::Refresh));
        let bad = |a| refresh_item(&a, &limits).unwrap_err();
        assert_eq!(bad(args(vec![])).0, "bad-request");
        assert_eq!(
            bad(args(vec![("channel", Value::Bytes(b""))])).0,
            "bad-request"
        );
        assert_eq!(bad(args(vec![("channel", Value::Int(1))])).0, "bad-request");
        assert_eq!(
            bad(args(vec![("cid", Value::Bytes(b"x"))])).0,
            "not-supported"
        );
    }

    #[test]
    fn ephemeral_ports_are_reported_as_bound() {
        let context = zmq::Context::new();
        let s = context.socket(zmq::PULL).unwrap();
        s.bind("tcp://127.0.0.1:*").unwrap();
        let got = resolved("tcp://127.0.0.1:*", &s);
        assert!(
            got.starts_with("tcp://127.0.0.1:") && !got.ends_with(":*"),
            "{got}"
        );
        assert_eq!(resolved("tcp://127.0.0.1:5560", &s), "tcp://127.0.0.1:5560");
    }
}
