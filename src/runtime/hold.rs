//! A held request: long-poll (`Grip-Hold: response`) and streaming (`Grip-Hold: stream`, SSE).
//!
//! While held, the connection's task sleeps on "client readable (it left?) or worker event"; the
//! fan-out writes stream content straight from the worker. The task wakes only for the answer of
//! a long-poll, a timer (hold timeout, keep-alive), a `close`, a full socket, or shutdown.

use bytes::Bytes;

use super::client::{ClientConn, ClientError, Outcome, Read, Wake};
use super::conns::{Sink, ev};
use super::proxy::Retry;
use super::settings::RouteRef;
use crate::hub::delivery::{Delivery, ResponsePayload};
use url::Url;

use crate::proto::body_patch;
use crate::proto::filter::Filter;
use crate::proto::grip::{self, HoldMode, KeepAlive};
use crate::proto::http1::{self, EncodeError, HeadWriter, RequestHead, Version};

/// The two facts about the held request a hold needs (the request head itself is dropped).
#[derive(Debug, Clone, Copy)]
pub struct HeldRequest {
    /// The client may send another request after this response.
    pub keep_alive: bool,
    /// HTTP/1.1: a streamed response can be chunk-framed.
    pub http11: bool,
}

impl From<&RequestHead> for HeldRequest {
    fn from(req: &RequestHead) -> HeldRequest {
        HeldRequest {
            keep_alive: req.keep_alive,
            http11: req.version == Version::Http11,
        }
    }
}

/// Everything a hold needs, derived from the origin's answer.
#[derive(Clone)]
pub struct HoldSpec {
    /// None: no hold, just answer with the response below.
    pub mode: Option<HoldMode>,
    /// Full channel names (route prefix applied), at most `grip.channels_max`.
    pub channels: Vec<String>,
    pub timeout_secs: u32,
    pub keep_alive: Option<KeepAlive>,
    /// The response the client sees first (stream) or on timeout (response).
    pub code: u16,
    pub reason: String,
    /// Client-visible headers, without Content-Length or framing headers.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The URL the client asked for: relative links resolve against it.
    pub base_url: Option<Url>,
    /// `Grip-Link rel=next`, resolved, with its timeout.
    pub next_link: Option<(Url, Option<u32>)>,
    /// `Grip-Link rel=gone`, resolved: POSTed when the client leaves.
    pub gone_link: Option<Url>,
    /// Channels with a prev-id: (full channel name, prev-id).
    pub prev_ids: Vec<(String, String)>,
    /// The route's channel prefix (`Grip-Last` names channels as the origin does).
    pub channel_prefix: String,
    /// Filters named on each channel (full name), for the channels that have any.
    pub filters: Vec<(String, Vec<Filter>)>,
    /// Subscription meta (`Grip-Set-Meta`), read by filters.
    pub meta: Vec<(String, String)>,
    /// Long-polls only: the request and its body, to send again on a hint or conflict.
    pub original: Option<Box<(RequestHead, Vec<u8>)>>,
    /// The route the request took: retries, next links and gone links go to its origin only,
    /// signed with its key, whatever a reload did to the routes table since.
    pub route: RouteRef,
}

/// How a hold ended.
pub enum HoldEnd {
    Done(Outcome),
    /// Send the request to the origin again (long-poll `hint` or prev-id conflict).
    Retry(Box<Retry>),
}

/// Holds the connection as `spec` says. An async block rather than an async fn (whose future
/// would keep the arguments twice): this future is part of every held connection's memory.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
pub fn run(
    conn: &mut ClientConn,
    req: HeldRequest,
    spec: Box<HoldSpec>,
) -> impl Future<Output = HoldEnd> + '_ {
    async move {
        let outcome = match spec.mode {
            Some(HoldMode::Response) => return hold_response(conn, req, spec).await,
            Some(HoldMode::Stream) => super::stream_hold::hold_stream(conn, req, spec).await,
            // No hold but a next link: stream this answer, then page through the links.
            None if spec.next_link.is_some() => {
                super::stream_hold::hold_stream(conn, req, spec).await
            }
            None => {
                let resp = full_response(&spec, spec.code, &spec.reason, &[], &spec.body, req);
                Box::pin(answer(conn, req, resp)).await
            }
        };
        HoldEnd::Done(outcome)
    }
}

/// A complete response: the hold's headers, `overrides` replacing same-named ones, the body with
/// its length, and `Connection: close` if the client will not reuse the connection.
fn full_response(
    spec: &HoldSpec,
    code: u16,
    reason: &str,
    overrides: &[(String, String)],
    body: &[u8],
    req: HeldRequest,
) -> Result<Vec<u8>, EncodeError> {
    // A published `Grip-Expose-Headers` names headers to leave out of the answer; every
    // Grip-* header of the push itself is stripped (Pushpin handlerengine.cpp / httpsession.cpp).
    let removed: Vec<&str> = overrides
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("grip-expose-headers"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let kept = |name: &str| !removed.iter().any(|r| r.eq_ignore_ascii_case(name));
    let mut out = HeadWriter::response(Version::Http11, code, reason, 256 + body.len());
    for (name, value) in &spec.headers {
        if !overrides.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) && kept(name) {
            out.header(name, value);
        }
    }
    for (name, value) in overrides {
        let framing = http1::is_hop_by_hop(name) || name.eq_ignore_ascii_case("content-length");
        if !framing && !grip::is_grip_header(name) && kept(name) {
            out.header(name, value.as_bytes());
        }
    }
    out.header("Content-Length", body.len().to_string().as_bytes());
    if !req.keep_alive {
        out.header("Connection", b"close");
    }
    let mut out = out.finish()?;
    out.extend_from_slice(body);
    Ok(out)
}

/// Checks that the hold's own response head (the origin's code, reason and headers) encodes,
/// before anything is held: a bad one is the origin's fault and becomes a 502 right away.
pub fn check_head(spec: &HoldSpec) -> Result<(), EncodeError> {
    let req = HeldRequest {
        keep_alive: true,
        http11: true,
    };
    full_response(spec, spec.code, &spec.reason, &[], &[], req).map(drop)
}

/// Writes an answer, or a 502 when its head was refused by the encoder.
async fn answer(
    conn: &mut ClientConn,
    req: HeldRequest,
    resp: Result<Vec<u8>, EncodeError>,
) -> Outcome {
    match resp {
        Ok(resp) => finish_with(conn, req, resp).await,
        Err(e) => {
            crate::metrics::WorkerMetrics::inc(&conn.w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "held response head refused: {e}");
            conn.send_error(&ClientError::new(
                502,
                "Invalid response for a held request",
            ))
            .await;
            Outcome::Close
        }
    }
}

async fn finish_with(conn: &mut ClientConn, req: HeldRequest, resp: Vec<u8>) -> Outcome {
    match conn.write(resp).await {
        Ok(()) if req.keep_alive => Outcome::KeepAlive,
        _ => Outcome::Close,
    }
}

/// Long-poll: wait for the first `http-response` publish or the timeout.
async fn hold_response(
    conn: &mut ClientConn,
    req: HeldRequest,
    mut spec: Box<HoldSpec>,
) -> HoldEnd {
    let w = conn.w.clone();
    let id = conn.id;
    w.subscribe(id, &spec.channels, Sink::Response);
    w.set_filters(id, &spec.filters, &spec.meta);
    super::stream_hold::track_prev_ids(conn, &spec.prev_ids);
    let deadline = w.now_ms() + u64::from(spec.timeout_secs) * 1000;
    let header_max = w.settings().config.http.header_bytes_max;
    loop {
        w.schedule(id, deadline);
        conn.release_idle_buffer();
        // Bytes a client pipelines while held wait in the buffer, up to the head limit.
        let read = conn.inbuf().len() < header_max;
        let events = match conn.wait(read).await {
            Ok(Wake::Readable) => match conn.read_now() {
                Read::Bytes(_) | Read::NotReady => continue,
                Read::Eof | Read::Failed => break,
            },
            Ok(Wake::Writable) => continue,
            Ok(Wake::Events(e)) => e,
            Err(_) => break,
        };
        if events & (ev::DEAD | ev::SHUTDOWN) != 0 {
            break;
        }
        if events & ev::RESPONSE != 0 {
            let published = w
                .conns
                .borrow_mut()
                .get_mut(id)
                .and_then(|s| s.response.take());
            if let Some(resp) = published
                .as_deref()
                .and_then(|d| published_response(conn, &spec, d, req))
            {
                end_hold(conn);
                return HoldEnd::Done(Box::pin(answer(conn, req, resp)).await);
            }
        }
        if events & ev::UPDATE != 0
            && let Some(original) = spec.original.take()
        {
            let grip_last = grip_last(conn, &spec.channel_prefix);
            end_hold(conn);
            let (head, body) = *original;
            return HoldEnd::Retry(Box::new(Retry {
                head,
                body,
                route: spec.route.clone(),
                grip_last,
            }));
        }
        if w.now_ms() >= deadline {
            end_hold(conn);
            let resp = full_response(&spec, spec.code, &spec.reason, &[], &spec.body, req);
            return HoldEnd::Done(Box::pin(answer(conn, req, resp)).await);
        }
    }
    end_hold(conn);
    if let (Some(url), Some(base)) = (spec.gone_link.take(), spec.base_url.as_ref()) {
        let scope = super::next_link::LinkScope::new(spec.route.clone(), base);
        super::next_link::spawn_gone(&w, scope, url);
    }
    HoldEnd::Done(Outcome::Close)
}

/// Leaves the channels and drops the reliable-delivery state.
fn end_hold(conn: &ClientConn) {
    conn.w.unsubscribe_all(conn.id);
    if let Some(slot) = conn.w.conns.borrow_mut().get_mut(conn.id) {
        slot.recovery = None;
        slot.filters = None;
    }
}

/// `Grip-Last` values of the held channels (as the origin names them) with their last ids.
fn grip_last(conn: &ClientConn, channel_prefix: &str) -> Vec<(String, String)> {
    let conns = conn.w.conns.borrow();
    let Some(rec) = conns.get(conn.id).and_then(|s| s.recovery.as_deref()) else {
        return Vec::new();
    };
    rec.prev_ids
        .iter()
        .filter_map(|(c, id)| {
            let name = c.strip_prefix(channel_prefix).unwrap_or(c);
            id.as_ref().map(|id| (name.to_string(), id.to_string()))
        })
        .collect()
}

fn published_response(
    conn: &ClientConn,
    spec: &HoldSpec,
    d: &Delivery,
    req: HeldRequest,
) -> Option<Result<Vec<u8>, EncodeError>> {
    let Some(ResponsePayload::Send(r)) = &d.response else {
        return None;
    };
    let patched = r
        .body_patch
        .as_ref()
        .map(|p| patched_body(conn, &spec.body, p));
    let body = patched.as_deref().unwrap_or(&r.body);
    Some(full_response(
        spec, r.code, &r.reason, &r.headers, body, req,
    ))
}

/// `body-patch` applied to the hold's original body, within `publish.body_patch_ops_max` and
/// `publish.body_patch_bytes_max`; a patch that fails or passes a limit gives an empty body
/// (Pushpin's applyBodyPatch gives one for any failure).
fn patched_body(conn: &ClientConn, original: &[u8], patch: &serde_json::Value) -> Vec<u8> {
    let cfg = &conn.w.settings().config.publish;
    let limits = body_patch::PatchLimits {
        ops_max: cfg.body_patch_ops_max,
        bytes_max: cfg.body_patch_bytes_max,
    };
    match body_patch::apply(original, patch, &limits) {
        Ok(body) => body,
        Err(e) if e.is_limit() => {
            crate::metrics::WorkerMetrics::inc(&conn.w.metrics.patch_over_limit);
            tracing::warn!(peer = %conn.peer, "body-patch: {e}: the long-poll gets an empty body");
            Vec::new()
        }
        Err(e) => {
            tracing::debug!("body-patch: {e}");
            Vec::new()
        }
    }
}

/// The head of a streamed response: chunked for HTTP/1.1 clients, close-delimited otherwise.
pub fn stream_head(spec: &HoldSpec, chunked: bool) -> Result<Vec<u8>, EncodeError> {
    let mut out = HeadWriter::response(Version::Http11, spec.code, &spec.reason, 256);
    for (name, value) in &spec.headers {
        out.header(name, value);
    }
    if chunked {
        out.header("Transfer-Encoding", b"chunked");
    } else {
        out.header("Connection", b"close");
    }
    out.finish()
}

pub fn frame(data: &[u8], chunked: bool) -> Bytes {
    if chunked {
        let mut out = Vec::with_capacity(data.len() + 12);
        http1::encode_chunk(&mut out, data);
        Bytes::from(out)
    } else {
        Bytes::copy_from_slice(data)
    }
}

/// Queues bytes this connection itself produced (keep-alive, closing chunk).
pub fn queue_own(conn: &ClientConn, bytes: Bytes) {
    if let Some(slot) = conn.w.conns.borrow_mut().get_mut(conn.id) {
        let _ = conn.w.queue_own(slot, conn.id, bytes);
    }
}

/// Sizes of the stream and long-poll hold futures (built, never polled), for the size test.
#[cfg(test)]
pub fn future_sizes(conn: &mut ClientConn, spec: Box<HoldSpec>) -> (usize, usize) {
    let r = HeldRequest {
        keep_alive: true,
        http11: true,
    };
    let stream = std::mem::size_of_val(&super::stream_hold::hold_stream(conn, r, spec.clone()));
    let response = std::mem::size_of_val(&hold_response(conn, r, spec));
    (stream, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(headers: &[(&str, &str)]) -> HoldSpec {
        HoldSpec {
            mode: Some(HoldMode::Response),
            channels: vec![],
            timeout_secs: 55,
            keep_alive: None,
            code: 200,
            reason: "OK".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: vec![],
            base_url: None,
            next_link: None,
            gone_link: None,
            prev_ids: vec![],
            channel_prefix: String::new(),
            filters: vec![],
            meta: vec![],
            original: None,
            route: crate::runtime::settings::RouteRef::for_tests("* 127.0.0.1:8080\n"),
        }
    }

    #[test]
    fn published_headers_override_and_expose_headers_removes() {
        let s = spec(&[
            ("Content-Type", "text/plain"),
            ("X-Old", "1"),
            ("X-Secret", "s"),
        ]);
        let published = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "Grip-Expose-Headers".to_string(),
                "X-Secret, X-Gone".to_string(),
            ),
            ("X-Gone".to_string(), "g".to_string()),
        ];
        let req = HeldRequest {
            keep_alive: true,
            http11: true,
        };
        let text = String::from_utf8(full_response(&s, 200, "OK", &published, b"{}", req).unwrap())
            .unwrap();
        assert!(
            text.contains("Content-Type: application/json\r\n"),
            "{text}"
        );
        assert!(!text.contains("text/plain"), "overridden: {text}");
        assert!(text.contains("X-Old: 1\r\n"), "inherited: {text}");
        assert!(
            !text.contains("X-Secret") && !text.contains("X-Gone"),
            "removed: {text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("grip-"),
            "push's Grip-* stripped: {text}"
        );
    }
}
