//! The cluster thread: one tokio runtime holding the NATS client (`async-nats`).
//!
//! Three jobs, each a task:
//! - send: items accepted by this node's publish API go to `<prefix>.<channel>`, in acceptance
//!   order, numbered per channel (`wire`);
//! - interest: the workers' "first / last subscriber" changes are summed over the node
//!   (`interest`); a channel's subject is subscribed while the node holds the channel, plus a
//!   linger;
//! - receive, one task per subscribed channel: decode each message once, check its sequence
//!   number against the sender's previous one (a jump is a loss: logged and counted), and hand
//!   the items to the publish thread, which sequences them and fills every worker's inbox.
//!
//! The connection is made with `no_echo`: this node's own publishes were delivered locally when
//! they were accepted, and do not come back. NATS reconnects by itself (another URL of
//! `servers` if one is down) and re-subscribes every subject this node holds; the connection state
//! is in the metrics (`holdfast_cluster_connected`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::interest::Interest;
use super::link::{ClusterLink, FromCluster, InterestChange, Outgoing};
use super::{subject, wire};
use crate::metrics::WorkerMetrics;
use crate::proto::publish::{self, PublishLimits};

/// How often lingering channels are checked (and a lost doorbell is made up for).
const INTEREST_TICK: Duration = Duration::from_millis(100);
/// Outgoing items taken from the queue at once.
const SEND_BATCH_MAX: usize = 256;
/// Channels whose send counter this node keeps; past it the table starts over (with a new
/// instance number, so receivers do not mistake the restart for a gap).
const SEND_COUNTERS_MAX: usize = 100_000;
/// Sender instances one channel's receiver tracks; past it the table starts over.
const SENDERS_PER_CHANNEL_MAX: usize = 1_024;
/// The first reconnect delay; it doubles up to `reconnect_delay_max_ms`.
const RECONNECT_DELAY_FIRST_MS: u64 = 100;

/// Starts the cluster thread.
pub fn spawn(link: Arc<ClusterLink>, limits: PublishLimits) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("holdfast-cluster".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cluster: cannot build runtime: {e}");
                    return;
                }
            };
            rt.block_on(run(link, limits));
        })
}

/// Asks the cluster thread to stop (it closes the NATS connection and returns).
pub fn stop(link: &ClusterLink) {
    link.stopping.store(true, Ordering::Release);
    link.stop.notify_one();
}

async fn run(link: Arc<ClusterLink>, limits: PublishLimits) {
    let Some(outgoing) = link.take_outgoing() else {
        tracing::error!("cluster: started twice");
        return;
    };
    let options = match connect_options(&link).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("cluster: {e}; running as a single node");
            return;
        }
    };
    let servers: Vec<ServerAddr> = link
        .config
        .servers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    tracing::info!(
        node = %link.node,
        "cluster: connecting to NATS at {:?}",
        link.config.servers_redacted()
    );
    // With retry_on_initial_connect this returns at once and connects in the background.
    let client = match options.connect(servers).await {
        Ok(c) => c,
        Err(e) => {
            let e = crate::redact::urls_in(&e.to_string()).into_owned();
            tracing::error!("cluster: cannot start the NATS client: {e}; running as a single node");
            return;
        }
    };
    let sender = tokio::spawn(send_loop(link.clone(), client.clone(), outgoing));
    tokio::select! {
        _ = interest_loop(link.clone(), client.clone(), limits) => {}
        _ = link.stop.notified() => {}
    }
    sender.abort();
    // Best effort: what is already queued in the client goes out before the connection closes.
    let _ = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
    link.set_connected(false);
}

/// Delay before reconnect attempt `attempts` (1-based): none, then 100 ms doubling up to `max_ms`,
/// with up to 20% jitter so a cluster of nodes does not retry in step.
fn reconnect_delay(attempts: usize, max_ms: u64) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = (attempts - 2).min(20) as u32;
    let base = RECONNECT_DELAY_FIRST_MS
        .saturating_mul(1u64 << exp)
        .min(max_ms);
    Duration::from_millis(base + fastrand::u64(0..=base / 5))
}

async fn connect_options(link: &Arc<ClusterLink>) -> Result<ConnectOptions, String> {
    let c = &link.config;
    let mut o = match &c.credentials_file {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => ConnectOptions::new(),
    };
    if let (Some(user), Some(password)) = (&c.user, &c.password) {
        o = o.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &c.token {
        o = o.token(token.clone());
    }
    if let Some(seed) = &c.nkey_seed {
        o = o.nkey(seed.clone());
    }
    if c.tls_required {
        o = o.require_tls(true);
    }
    if let Some(ca) = &c.tls_ca_file {
        o = o.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&c.tls_cert_file, &c.tls_key_file) {
        o = o.add_client_certificate(cert.clone(), key.clone());
    }
    if c.servers_in_order {
        o = o.retain_servers_order();
    }
    let max_ms = c.reconnect_delay_max_ms;
    let events = link.clone();
    Ok(o.name(format!("holdfast {}", link.node))
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_millis(c.connect_timeout_ms))
        .subscription_capacity(c.subscription_capacity)
        .reconnect_delay_callback(move |attempts| {
            let delay = reconnect_delay(attempts, max_ms);
            if attempts > 1 && attempts.is_power_of_two() {
                tracing::warn!(
                    "cluster: no NATS server reachable after {attempts} attempts; next in {delay:?}"
                );
            }
            delay
        })
        .event_callback(move |event| {
            let link = events.clone();
            async move { on_event(&link, event) }
        }))
}

fn on_event(link: &ClusterLink, event: Event) {
    let m = &link.metrics;
    match event {
        Event::Connected => {
            link.set_connected(true);
            let n = m.connects.fetch_add(1, Ordering::Relaxed) + 1;
            let subjects = m.subjects.load(Ordering::Relaxed);
            if n == 1 {
                tracing::info!(node = %link.node, "cluster: connected to NATS");
            } else {
                tracing::warn!(
                    node = %link.node,
                    "cluster: reconnected to NATS and subscribed again to {subjects} channels; \
                     what other nodes published while this one was away did not arrive here \
                     (each gap is logged and counted in holdfast_cluster_lost_total as the \
                     sender's next item arrives)"
                );
            }
        }
        Event::Disconnected => {
            link.set_connected(false);
            WorkerMetrics::inc(&m.disconnects);
            if !link.stopping.load(Ordering::Acquire) {
                tracing::warn!(
                    node = %link.node,
                    "cluster: lost the connection to NATS; reconnecting. Local publishes are \
                     still delivered on this node"
                );
            }
        }
        Event::SlowConsumer(sid) => {
            WorkerMetrics::inc(&m.slow_consumer);
            tracing::warn!(
                "cluster: NATS subscription {sid} is full; the NATS client dropped a message \
                 (cluster.subscription_capacity)"
            );
        }
        Event::ClientError(e) => tracing::debug!(
            "cluster: NATS client: {}",
            crate::redact::urls_in(&e.to_string())
        ),
        other => tracing::info!(
            "cluster: NATS: {}",
            crate::redact::urls_in(&other.to_string())
        ),
    }
}

/// Sends items accepted here, in order, numbering them per channel.
async fn send_loop(link: Arc<ClusterLink>, client: Client, mut rx: mpsc::Receiver<Outgoing>) {
    let prefix = link.config.subject_prefix.clone();
    let mut instance = fastrand::u64(..);
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(SEND_BATCH_MAX);
    loop {
        if rx.recv_many(&mut batch, SEND_BATCH_MAX).await == 0 {
            return;
        }
        for out in batch.drain(..) {
            if counters.len() >= SEND_COUNTERS_MAX && !counters.contains_key(&out.channel) {
                counters.clear();
                instance = fastrand::u64(..);
            }
            let seq = counters.entry(out.channel.clone()).or_insert(0);
            *seq += 1;
            let header = wire::header_line(&wire::Header {
                node: &link.node,
                instance,
                seq: *seq,
            });
            let mut payload = BytesMut::with_capacity(header.len() + out.body.len());
            payload.put_slice(header.as_bytes());
            payload.put_slice(&out.body);
            let subject = subject::for_channel(&prefix, &out.channel);
            match client.publish(subject, payload.freeze()).await {
                Ok(()) => WorkerMetrics::inc(&link.metrics.published),
                Err(e) => {
                    WorkerMetrics::inc(&link.metrics.publish_errors);
                    tracing::warn!(channel = %out.channel, "cluster: item not sent to NATS: {e}");
                }
            }
        }
    }
}

/// Follows the workers' interest changes: subscribes a channel's subject when the node gets its
/// first subscriber, unsubscribes after the linger when it lost its last one.
async fn interest_loop(link: Arc<ClusterLink>, client: Client, limits: PublishLimits) {
    let epoch = Instant::now();
    let now_ms = || epoch.elapsed().as_millis() as u64;
    let mut interest = Interest::new(link.config.interest_linger_ms);
    let mut subs: HashMap<Box<str>, AbortHandle> = HashMap::new();
    let mut expired = Vec::new();
    loop {
        tokio::select! {
            _ = link.interest_rung.notified() => {}
            _ = tokio::time::sleep(INTEREST_TICK) => {}
        }
        while let Some(change) = link.pop_interest() {
            match change {
                InterestChange::Gained(channel) => {
                    if interest.gained(&channel) {
                        let receiver = subscribe(&link, &client, &channel, limits).await;
                        if let Some(handle) = receiver {
                            subs.insert(channel, handle);
                        }
                    }
                }
                InterestChange::Lost(channel) => interest.lost(&channel, now_ms()),
            }
        }
        interest.expire(now_ms(), &mut expired);
        for channel in expired.drain(..) {
            // Dropping the subscriber (its task) unsubscribes in NATS.
            if let Some(handle) = subs.remove(&channel) {
                handle.abort();
            }
            tracing::debug!(channel = %channel, "cluster: no local subscriber left, unsubscribed");
        }
        WorkerMetrics::set(&link.metrics.subjects, subs.len() as u64);
    }
}

/// Subscribes to a channel's subject and starts its receiver.
async fn subscribe(
    link: &Arc<ClusterLink>,
    client: &Client,
    channel: &str,
    limits: PublishLimits,
) -> Option<AbortHandle> {
    // The sequencer forgets what it knew of the channel: what was published meanwhile did not
    // reach this node, so the next item must not wait for a predecessor it never saw.
    push_incoming(link, FromCluster::Forget(channel.into())).await;
    let subject = subject::for_channel(&link.config.subject_prefix, channel);
    match client.subscribe(subject).await {
        Ok(sub) => {
            tracing::debug!(channel, "cluster: first local subscriber, subscribed");
            let task = tokio::spawn(receive(link.clone(), channel.to_string(), sub, limits));
            Some(task.abort_handle())
        }
        Err(e) => {
            tracing::error!(channel, "cluster: cannot subscribe: {e}");
            None
        }
    }
}

/// Where one sender's messages on one channel stand.
struct SenderState {
    instance: u64,
    seq: u64,
}

/// Receives one channel's messages from the other nodes, in NATS order.
async fn receive(
    link: Arc<ClusterLink>,
    channel: String,
    mut sub: async_nats::Subscriber,
    limits: PublishLimits,
) {
    let mut senders: HashMap<String, SenderState> = HashMap::new();
    while let Some(msg) = sub.next().await {
        let m = &link.metrics;
        let (header, body) = match wire::decode(&msg.payload) {
            Ok(x) => x,
            Err(e) => {
                WorkerMetrics::inc(&m.invalid);
                tracing::debug!(channel, "cluster: message refused: {e}");
                continue;
            }
        };
        let missed = match senders.get_mut(header.node) {
            Some(s) if s.instance == header.instance => {
                if header.seq <= s.seq {
                    WorkerMetrics::inc(&m.invalid);
                    tracing::debug!(channel, node = header.node, "cluster: repeated message");
                    continue;
                }
                let missed = header.seq - s.seq - 1;
                s.seq = header.seq;
                missed
            }
            _ => {
                if senders.len() >= SENDERS_PER_CHANNEL_MAX {
                    senders.clear();
                }
                senders.insert(
                    header.node.to_string(),
                    SenderState {
                        instance: header.instance,
                        seq: header.seq,
                    },
                );
                0
            }
        };
        let items = match publish::parse_body(body, &limits) {
            Ok(items) if items.iter().all(|i| i.channel == channel) => items,
            Ok(_) => {
                WorkerMetrics::inc(&m.invalid);
                tracing::warn!(channel, "cluster: message for another channel refused");
                continue;
            }
            Err(e) => {
                WorkerMetrics::inc(&m.invalid);
                tracing::warn!(channel, node = header.node, "cluster: invalid item: {e}");
                continue;
            }
        };
        if missed > 0 {
            WorkerMetrics::add(&m.lost, missed);
            tracing::warn!(
                channel,
                node = header.node,
                "cluster: {missed} items from this node never arrived (NATS reconnect or slow \
                 consumer); subscribers tracking prev-id recover from the origin"
            );
            push_incoming(&link, FromCluster::Forget(channel.as_str().into())).await;
        }
        WorkerMetrics::add(&m.received, items.len() as u64);
        push_incoming(&link, FromCluster::Items(items)).await;
    }
}

/// Hands a message to the publish thread, waiting (on a waker) while its queue is full.
async fn push_incoming(link: &ClusterLink, msg: FromCluster) {
    link.incoming.push_wait(msg).await;
    link.incoming.ring();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_backs_off_to_the_maximum() {
        assert_eq!(reconnect_delay(1, 4_000), Duration::ZERO);
        let d2 = reconnect_delay(2, 4_000).as_millis();
        assert!((100..=120).contains(&d2), "{d2}");
        let d4 = reconnect_delay(4, 4_000).as_millis();
        assert!((400..=480).contains(&d4), "{d4}");
        let big = reconnect_delay(1_000, 4_000).as_millis();
        assert!((4_000..=4_800).contains(&big), "{big}");
    }
}
