//! A streamed hold (`Grip-Hold: stream`, SSE), and paging through `Grip-Link rel=next` without a
//! hold.
//!
//! The fan-out writes published content straight from the worker; this task wakes only for a
//! keep-alive, a `close`, a full socket, shutdown, or a fetch from the origin. A fetch follows
//! Pushpin (`httpsession.cpp`): after a prev-id conflict, a `hint`, or the next link's timeout,
//! the next link is requested with `Grip-Last`; its body is written, its instructions replace the
//! channels and prev-ids, and items published meanwhile are replayed against them. A hold-less
//! answer with a next link keeps paging; without one the stream ends.

use bytes::Bytes;
use url::Url;

use super::client::{ClientConn, ClientError, Outcome, Read, Wake};
use super::conns::{Recovery, Sink, ev};
use super::fanout;
use super::hold::{HeldRequest, HoldSpec, frame, queue_own, stream_head};
use super::next_link::{self, FetchError, InFlight, LinkScope};
use crate::origin::client::FullResponse;
use crate::proto::filter::Filter;
use crate::proto::grip::{self, GripLimits, HoldMode, Instruct, KeepAlive, KeepAliveMode};
use crate::proto::http1::{self, LAST_CHUNK};

/// Next-link timeout when the link gives none (Pushpin's default).
const NEXT_LINK_TIMEOUT_SECS: u32 = 120;
/// Attempts of a failed next-link request before the stream ends (Pushpin's RETRY_MAX).
const RETRIES_MAX: u32 = 5;

/// Keep-alive data sent on a held stream (Grip-Keep-Alive).
/// Compact (32 bytes): it lives in every held stream's future that has a keep-alive.
pub struct KeepAliveTimer {
    data: Box<[u8]>,
    next_ms: u64,
    every_secs: u32,
    mode: KeepAliveMode,
}

impl KeepAliveTimer {
    pub fn new(k: &KeepAlive, now_ms: u64) -> KeepAliveTimer {
        let every_secs = k.timeout_secs.max(1);
        KeepAliveTimer {
            data: k.data.clone().into_boxed_slice(),
            next_ms: now_ms + u64::from(every_secs) * 1000,
            every_secs,
            mode: k.mode,
        }
    }

    fn every_ms(&self) -> u64 {
        u64::from(self.every_secs) * 1000
    }

    /// Whether to send now; moves the next deadline. Idle mode counts from the last write.
    fn due(&mut self, now_ms: u64, last_write_ms: u64) -> bool {
        if self.mode == KeepAliveMode::Idle {
            self.next_ms = self.next_ms.max(last_write_ms + self.every_ms());
        }
        if now_ms < self.next_ms {
            return false;
        }
        self.next_ms = now_ms + self.every_ms();
        true
    }
}

/// The links of a stream (boxed: most streams have none).
struct Links {
    /// The URL the current content came from (relative links resolve against it).
    base: Url,
    next: Option<Url>,
    next_timeout_ms: u64,
    /// When the next link is fetched if nothing else triggers it first.
    due_ms: Option<u64>,
    gone: Option<Url>,
    /// The route of the original request: links are fetched from its origin only.
    scope: LinkScope,
    channel_prefix: String,
    inflight: Option<InFlight>,
    retries: u32,
    retry_at_ms: Option<u64>,
    /// Fetch as soon as possible (a conflict, a hint, paging).
    wanted: bool,
    /// No hold: the stream ends when no next link is left.
    paging: bool,
}

/// Holds a stream (or pages through next links). An async block rather than an async fn, so its
/// arguments are kept once: this future is part of every held stream's memory.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
pub fn hold_stream(
    conn: &mut ClientConn,
    req: HeldRequest,
    spec: Box<HoldSpec>,
) -> impl Future<Output = Outcome> + '_ {
    async move {
        let chunked = req.http11;
        // In a block: nothing of it may stay in the future while the stream is held.
        let keep_alive = {
            let w = &conn.w;
            let id = conn.id;
            // The head was checked when the hold was planned (hold::check_head); should it fail
            // now, nothing has been sent yet and the client gets a clean 502.
            let mut first = match stream_head(&spec, chunked) {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!(peer = %conn.peer, "held stream head refused: {e}");
                    let refusal = ClientError::new(502, "Invalid response for a held request");
                    // Boxed: a refusal is rare, and inline it would grow every held stream.
                    Box::pin(conn.send_error(&refusal)).await;
                    return Outcome::Close;
                }
            };
            if chunked {
                http1::encode_chunk(&mut first, &spec.body);
            } else {
                first.extend_from_slice(&spec.body);
            }
            // Queue the head and subscribe in one step: every publish from now on lands after it.
            if let Some(slot) = w.conns.borrow_mut().get_mut(id) {
                let _ = w.queue_own(slot, id, Bytes::from(first));
            }
            w.subscribe(id, &spec.channels, Sink::Stream { chunked });
            w.set_filters(id, &spec.filters, &spec.meta);
            spec.keep_alive
                .as_ref()
                .map(|k| KeepAliveTimer::new(k, w.now_ms()))
        };
        track_prev_ids(conn, &spec.prev_ids);
        let mut links = links_of(conn, &spec);
        if links.is_none() && !spec.prev_ids.is_empty() {
            // Pushpin: "channel specifies prev-id, but no next link found" ends the stream.
            tracing::warn!("stream hold uses prev-id without a next link: ending it");
            return Box::pin(finish(conn, req, chunked, None)).await;
        }
        if let Some(l) = links.as_mut() {
            l.wanted = l.paging || conflicts_with_last_ids(conn, &spec.prev_ids);
        }
        // Nothing else of the spec is needed while the stream is held: free it now (it is
        // per-connection memory for as long as the stream lasts).
        drop(spec);
        let outcome = stream_loop(conn, req, chunked, keep_alive, links).await;
        let (w, id) = (&conn.w, conn.id);
        w.unsubscribe_all(id);
        if let Some(slot) = w.conns.borrow_mut().get_mut(id) {
            slot.recovery = None;
            slot.filters = None;
        }
        outcome
    }
}

fn links_of(conn: &ClientConn, spec: &HoldSpec) -> Option<Box<Links>> {
    if spec.next_link.is_none() && spec.gone_link.is_none() {
        return None;
    }
    let base = spec.base_url.clone()?;
    let scope = LinkScope::new(spec.route.clone(), &base);
    let timeout = spec.next_link.as_ref().and_then(|(_, t)| *t);
    let next_timeout_ms = u64::from(timeout.unwrap_or(NEXT_LINK_TIMEOUT_SECS)) * 1000;
    let next = spec.next_link.as_ref().map(|(u, _)| u.clone());
    Some(Box::new(Links {
        base,
        due_ms: next.as_ref().map(|_| conn.w.now_ms() + next_timeout_ms),
        next,
        next_timeout_ms,
        gone: spec.gone_link.clone(),
        scope,
        channel_prefix: spec.channel_prefix.clone(),
        inflight: None,
        retries: 0,
        retry_at_ms: None,
        wanted: false,
        paging: spec.mode.is_none(),
    }))
}

/// Starts tracking prev-ids for reliable delivery (nothing when no channel has one).
pub fn track_prev_ids(conn: &ClientConn, prev_ids: &[(String, String)]) {
    let mut conns = conn.w.conns.borrow_mut();
    let Some(slot) = conns.get_mut(conn.id) else {
        return;
    };
    if prev_ids.is_empty() {
        slot.recovery = None;
        return;
    }
    let tracked = slot
        .subs
        .iter()
        .map(|c| {
            let prev = prev_ids
                .iter()
                .find(|(n, _)| n == &**c)
                .map(|(_, p)| p.as_str().into());
            (c.clone(), prev)
        })
        .collect();
    let rec = slot.recovery.get_or_insert_with(Box::default);
    rec.prev_ids = tracked;
}

/// Pushpin's first-hold check: a prev-id that differs from the last id published on the channel
/// means the origin's view is stale: fetch right away.
fn conflicts_with_last_ids(conn: &ClientConn, prev_ids: &[(String, String)]) -> bool {
    let last = conn.w.last_ids.borrow();
    prev_ids
        .iter()
        .any(|(c, p)| last.get(c.as_str()).is_some_and(|l| &**l != p.as_str()))
}

/// The held stream's loop. An async block rather than an async fn, so its arguments are kept
/// once, not twice: this future is most of what a held stream costs while idle.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
fn stream_loop(
    conn: &mut ClientConn,
    req: HeldRequest,
    chunked: bool,
    mut keep_alive: Option<KeepAliveTimer>,
    mut links: Option<Box<Links>>,
) -> impl Future<Output = Outcome> + '_ {
    async move {
        let mut closing = false;
        loop {
            let step = before_wait(conn, req, chunked, closing, &mut keep_alive, &mut links);
            let woke = match step {
                Step::Again => continue,
                Step::End(outcome) => return outcome,
                // Boxed: a wait on writability is rare (a slow reader), and inline it would make
                // every held stream's future the size of this one.
                Step::Wait {
                    blocked: true,
                    read,
                } => Box::pin(conn.wait_writable(read)).await,
                Step::Wait {
                    blocked: false,
                    read,
                } => conn.wait(read).await,
            };
            let events = match woke {
                Ok(Wake::Readable) => match conn.read_now() {
                    Read::Bytes(_) | Read::NotReady => continue,
                    Read::Eof | Read::Failed => return left(conn, &links),
                },
                Ok(Wake::Writable) => continue,
                Ok(Wake::Events(e)) => e,
                Err(_) => return left(conn, &links),
            };
            if events & ev::DEAD != 0 {
                return left(conn, &links);
            }
            if events & (ev::SHUTDOWN | ev::CLOSE) != 0 && !closing {
                closing = true;
                if events & ev::SHUTDOWN != 0 && chunked {
                    queue_own(conn, Bytes::from_static(LAST_CHUNK));
                }
            }
            if events & ev::UPDATE != 0 {
                match links.as_deref_mut() {
                    Some(l) if l.next.is_some() => l.wanted = true,
                    // Without a next link there is nothing to fetch: resume delivery as it is.
                    _ => replay_pending(conn),
                }
            }
            if events & ev::ORIGIN != 0
                && let Some(l) = links.as_deref_mut()
                && !l.on_fetched(conn, chunked)
            {
                closing = true;
                if chunked {
                    queue_own(conn, Bytes::from_static(LAST_CHUNK));
                }
            }
        }
    }
}

/// What the stream loop does next, decided without awaiting (so none of it is kept in the
/// held future).
enum Step {
    Again,
    End(Outcome),
    Wait { blocked: bool, read: bool },
}

/// Flushes, sends a due keep-alive, fetches a due next link and schedules the next timer.
fn before_wait(
    conn: &mut ClientConn,
    req: HeldRequest,
    chunked: bool,
    closing: bool,
    keep_alive: &mut Option<KeepAliveTimer>,
    links: &mut Option<Box<Links>>,
) -> Step {
    let w = conn.w.clone();
    let id = conn.id;
    if !w.flush_conn(id) {
        return Step::End(left(conn, links));
    }
    let (blocked, empty, last_write) = match w.conns.borrow().get(id) {
        Some(s) => (s.write_blocked, s.outbox.is_empty(), s.progress_ms),
        None => return Step::End(Outcome::Close),
    };
    if closing && empty {
        return Step::End(if chunked && req.keep_alive && !w.is_stopping() {
            Outcome::KeepAlive
        } else {
            Outcome::Close
        });
    }
    if let Some(ka) = keep_alive.as_mut().filter(|_| !closing) {
        if ka.due(w.now_ms(), last_write) {
            queue_own(conn, frame(&ka.data, chunked));
            return Step::Again;
        }
        w.schedule(id, ka.next_ms);
    }
    if let Some(l) = links.as_deref_mut().filter(|_| !closing) {
        l.maybe_fetch(conn);
        if let Some(at) = l.deadline() {
            w.schedule(id, at);
        }
    }
    conn.release_idle_buffer();
    let header_max = w.settings().config.http.header_bytes_max;
    let read = conn.inbuf().len() < header_max;
    Step::Wait { blocked, read }
}

/// The client went away: tell the origin if it asked (`rel=gone`).
fn left(conn: &ClientConn, links: &Option<Box<Links>>) -> Outcome {
    if let Some(l) = links.as_deref()
        && let Some(url) = l.gone.clone()
    {
        next_link::spawn_gone(&conn.w, l.scope.clone(), url);
    }
    Outcome::Close
}

/// Ends the stream right away (last chunk, then keep-alive or close).
async fn finish(
    conn: &mut ClientConn,
    req: HeldRequest,
    chunked: bool,
    links: Option<Box<Links>>,
) -> Outcome {
    if chunked {
        queue_own(conn, Bytes::from_static(LAST_CHUNK));
    }
    let w = conn.w.clone();
    loop {
        if !w.flush_conn(conn.id) {
            return left(conn, &links);
        }
        let empty = match w.conns.borrow().get(conn.id) {
            Some(s) => s.outbox.is_empty(),
            None => return Outcome::Close,
        };
        if empty {
            w.unsubscribe_all(conn.id);
            return if chunked && req.keep_alive {
                Outcome::KeepAlive
            } else {
                Outcome::Close
            };
        }
        match conn.wait_writable(false).await {
            Ok(Wake::Events(e)) if e & ev::DEAD != 0 => return Outcome::Close,
            Err(_) => return Outcome::Close,
            _ => {}
        }
    }
}

/// Delivers the items that waited during a fetch. Leading items that do not follow the new
/// prev-ids were covered by the fetched content and are dropped (Pushpin does the same); a
/// later conflict asks for another fetch.
fn replay_pending(conn: &ClientConn) {
    let w = &conn.w;
    let mut finished = Vec::new();
    {
        let mut conns = w.conns.borrow_mut();
        let Some(slot) = conns.get_mut(conn.id) else {
            return;
        };
        let pending = match slot.recovery.as_deref_mut() {
            Some(rec) => {
                rec.fetching = false;
                std::mem::take(&mut rec.pending)
            }
            None => return,
        };
        let mut leading = true;
        for d in pending {
            if leading && !fanout::follows(slot, &d) {
                continue;
            }
            leading = false;
            fanout::deliver_one(w, slot, conn.id, &d, &mut finished);
        }
    }
    for id in finished {
        w.unsubscribe_all(id);
    }
}

impl Links {
    fn deadline(&self) -> Option<u64> {
        if self.inflight.is_some() {
            return None;
        }
        match (self.retry_at_ms, self.due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts the next-link request when one is wanted or due and none is running.
    fn maybe_fetch(&mut self, conn: &ClientConn) {
        let now = conn.w.now_ms();
        if self.inflight.is_some() {
            return;
        }
        let Some(url) = self.next.clone() else {
            return;
        };
        let retry_due = self.retry_at_ms.is_some_and(|t| now >= t);
        let timed_out = self.due_ms.is_some_and(|t| now >= t);
        if !(retry_due || timed_out || (self.wanted && self.retry_at_ms.is_none())) {
            return;
        }
        self.retry_at_ms = None;
        self.wanted = false;
        self.due_ms = None;
        if let Some(slot) = conn.w.conns.borrow_mut().get_mut(conn.id) {
            slot.recovery.get_or_insert_with(Box::default).fetching = true;
        }
        let grip_last = self.grip_last(conn);
        let scope = self.scope.clone();
        self.inflight = Some(next_link::spawn_fetch(
            &conn.w, conn.id, scope, url, grip_last,
        ));
    }

    /// `Grip-Last` values: each tracked channel (as the origin names it) with its last id.
    fn grip_last(&self, conn: &ClientConn) -> Vec<(String, String)> {
        let conns = conn.w.conns.borrow();
        let Some(rec) = conns.get(conn.id).and_then(|s| s.recovery.as_deref()) else {
            return Vec::new();
        };
        rec.prev_ids
            .iter()
            .filter_map(|(c, id)| {
                let name = c.strip_prefix(self.channel_prefix.as_str()).unwrap_or(c);
                id.as_ref().map(|id| (name.to_string(), id.to_string()))
            })
            .collect()
    }

    /// Applies a finished fetch; false when the stream must end.
    fn on_fetched(&mut self, conn: &ClientConn, chunked: bool) -> bool {
        let Some(slot) = self.inflight.take() else {
            return true;
        };
        let Some(result) = slot.borrow_mut().take() else {
            self.inflight = Some(slot);
            return true;
        };
        match result {
            Ok(resp) if (200..300).contains(&resp.code) => self.apply(conn, resp, chunked),
            Ok(resp) => self.failed(conn, &format!("next link answered {}", resp.code)),
            Err(e @ (FetchError::OutsideRoute(_) | FetchError::Head(_))) => {
                tracing::warn!("next link: {e}");
                false
            }
            Err(e) => self.failed(conn, &e.to_string()),
        }
    }

    fn failed(&mut self, conn: &ClientConn, why: &str) -> bool {
        if self.retries >= RETRIES_MAX {
            tracing::warn!("next link failed {RETRIES_MAX} times ({why}): ending the stream");
            return false;
        }
        tracing::info!("next link: {why}; retrying");
        self.retry_at_ms = Some(conn.w.now_ms() + next_link::backoff_ms(self.retries));
        self.retries += 1;
        true
    }

    /// Writes the fetched body and takes its instructions as the stream's new state.
    fn apply(&mut self, conn: &ClientConn, resp: FullResponse, chunked: bool) -> bool {
        let grip = &conn.w.settings().config.grip;
        let limits = GripLimits {
            channels_max: grip.channels_max,
            names: super::settings::name_limits(grip),
        };
        let instruct = match instructions(&resp, &limits) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("next link: invalid GRIP instructions: {e}");
                return false;
            }
        };
        if instruct.hold == Some(HoldMode::Response) {
            tracing::warn!("next link returned a response hold: ending the stream");
            return false;
        }
        queue_own(conn, frame(&resp.body, chunked));
        if let Some(url) = self.next.take() {
            self.base = url;
        }
        self.retries = 0;
        self.next = instruct
            .next_link
            .as_ref()
            .and_then(|l| next_link::resolve(&self.base, &l.url));
        let timeout = instruct.next_link.as_ref().and_then(|l| l.timeout_secs);
        self.next_timeout_ms = u64::from(timeout.unwrap_or(NEXT_LINK_TIMEOUT_SECS)) * 1000;
        self.paging = instruct.hold.is_none();
        if instruct.hold == Some(HoldMode::Stream) {
            self.resubscribe(conn, &instruct, chunked);
        }
        replay_pending(conn);
        if self.paging {
            if self.next.is_none() {
                return false;
            }
            self.wanted = true;
        }
        self.due_ms = self
            .next
            .as_ref()
            .map(|_| conn.w.now_ms() + self.next_timeout_ms);
        true
    }

    /// The fetched instructions' channels and prev-ids replace the current ones.
    fn resubscribe(&self, conn: &ClientConn, instruct: &Instruct, chunked: bool) {
        let w = &conn.w;
        let channels: Vec<String> = instruct
            .channels
            .iter()
            .take(w.settings().config.grip.channels_max)
            .map(|c| format!("{}{}", self.channel_prefix, c.name))
            .collect();
        let prev_ids: Vec<(String, String)> = instruct
            .channels
            .iter()
            .filter_map(|c| {
                let full = format!("{}{}", self.channel_prefix, c.name);
                c.prev_id.clone().map(|p| (full, p))
            })
            .collect();
        let pending = w
            .conns
            .borrow_mut()
            .get_mut(conn.id)
            .and_then(|s| s.recovery.take());
        let meta = w
            .conns
            .borrow()
            .get(conn.id)
            .and_then(|s| s.filters.as_ref().map(|f| f.meta.clone()))
            .unwrap_or_default();
        w.unsubscribe_all(conn.id);
        w.subscribe(conn.id, &channels, Sink::Stream { chunked });
        let filters = channel_filters(&self.channel_prefix, instruct);
        w.set_filters(conn.id, &filters, &meta);
        track_prev_ids(conn, &prev_ids);
        // Keep the items that waited during the fetch for the replay.
        if let Some(old) = pending
            && let Some(slot) = w.conns.borrow_mut().get_mut(conn.id)
        {
            let rec: &mut Recovery = slot.recovery.get_or_insert_with(Box::default);
            rec.fetching = true;
            rec.pending = old.pending;
        }
    }
}

/// The filters named on each channel of an instruction (full names; unknown names skipped).
pub fn channel_filters(prefix: &str, instruct: &Instruct) -> Vec<(String, Vec<Filter>)> {
    instruct
        .channels
        .iter()
        .filter(|c| !c.filters.is_empty())
        .map(|c| (format!("{prefix}{}", c.name), parse_filters(&c.filters)))
        .collect()
}

/// Filter names to filters; names holdfast does not know are logged and skipped.
pub fn parse_filters(names: &[String]) -> Vec<Filter> {
    names
        .iter()
        .filter_map(|n| {
            let f = Filter::parse(n);
            if f.is_none() {
                tracing::info!("unknown filter {n:?} ignored");
            }
            f
        })
        .collect()
}

fn instructions(resp: &FullResponse, limits: &GripLimits) -> Result<Instruct, String> {
    let mut instruct =
        grip::from_headers(resp.header_pairs(), limits).map_err(|e| e.to_string())?;
    let json = http1::header_value(&resp.headers, "content-type")
        .is_some_and(grip::is_instruct_content_type);
    if json {
        let from_json = grip::from_json(&resp.body, limits).map_err(|e| e.to_string())?;
        instruct.merge_json(from_json, limits);
    }
    Ok(instruct)
}
