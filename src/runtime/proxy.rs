//! One client request: route it, send it to the origin, then either relay the response as it
//! streams in or, when the origin answers with GRIP instructions, hand the connection to `hold`.

use std::net::SocketAddr;

use super::client::{ClientConn, ClientError, Outcome};
use super::hold::HoldSpec;
use super::settings::RouteRef;
use crate::metrics::WorkerMetrics;
use crate::origin::client::{self as origin, OriginResponse};
use crate::proto::grip::{self, GripLimits, Instruct};
use crate::proto::http1::{
    self, BodyDecoder, BodyKind, EncodeError, HeadWriter, Header, LAST_CHUNK, RequestHead, Version,
    header_value,
};

/// What holdfast tells the origin it supports (Grip-Feature).
pub const GRIP_FEATURES: &str = "status, link:next, filter:skip-self, filter:skip-users, filter:require-sub, filter:build-id, filter:var-subst";

/// What follows a request's exchange with the origin.
pub enum Step {
    /// The response is complete (or the connection failed).
    Done(Outcome),
    /// The origin asked to hold the request.
    Hold(RequestHead, Box<HoldSpec>),
    /// A WebSocket completed its handshake.
    WebSocket(super::websocket::WsSession),
}

impl From<Outcome> for Step {
    fn from(o: Outcome) -> Step {
        Step::Done(o)
    }
}

/// Handles one request up to the end of its response, or up to the start of a hold. The caller
/// boxes this future: it is large and lives only for the exchange, while the hold that may follow
/// lasts for hours in a small one.
pub async fn handle(conn: &mut ClientConn, head: RequestHead) -> Step {
    let w = conn.w.clone();
    let host = header_value(&head.headers, "host")
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let is_ws = crate::proto::ws::is_upgrade_request(
        head.headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice())),
    );
    let Some(route) = w.find_route(host, &head.target, conn.tls, is_ws) else {
        let path = crate::redact::target(&head.target);
        tracing::info!(peer = %conn.peer, host, %path, "no route");
        conn.send_error(&ClientError::new(502, "No route for this host and path"))
            .await;
        return Step::Done(Outcome::Close);
    };
    if is_ws {
        return super::websocket::open(conn, head, route).await;
    }
    let body = match conn.read_body(&head).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(peer = %conn.peer, "bad request body: {}", e.message);
            conn.send_error(&e).await;
            return Step::Done(Outcome::Close);
        }
    };
    exchange(conn, head, route, body, &[]).await
}

/// A request sent to the origin again (a long-poll's `hint` or prev-id conflict, as Pushpin's
/// retry): the original request, to the route it took, plus `Grip-Last` for each channel's last
/// id.
pub struct Retry {
    pub head: RequestHead,
    pub body: Vec<u8>,
    pub route: RouteRef,
    pub grip_last: Vec<(String, String)>,
}

/// Sends a held request to the origin again, on the route it took the first time.
pub async fn retry(conn: &mut ClientConn, r: Box<Retry>) -> Step {
    let Retry {
        head,
        body,
        route,
        grip_last,
    } = *r;
    exchange(conn, head, route, body, &grip_last).await
}

/// Sends the request to the route's origin and relays or holds what comes back.
async fn exchange(
    conn: &mut ClientConn,
    head: RequestHead,
    route: RouteRef,
    body: Vec<u8>,
    grip_last: &[(String, String)],
) -> Step {
    let resp = match send_to_targets(conn, &head, &route, &body, grip_last).await {
        Ok(resp) => resp,
        Err(e) => {
            let path = crate::redact::target(&head.target);
            tracing::warn!(peer = %conn.peer, %path, "origin request failed: {e}");
            let msg = match e.status() {
                504 => "Timed out waiting for the origin",
                _ => "Error while proxying to origin",
            };
            conn.send_error(&ClientError::new(e.status(), msg)).await;
            return Step::Done(Outcome::Close);
        }
    };
    let grip = !route.route().no_grip;
    if grip && carries_grip(&resp) {
        return grip_response(conn, head, body, route, resp).await;
    }
    Step::Done(relay(conn, &head, resp, grip).await)
}

/// Why a request got no answer from the origin.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Origin(#[from] origin::OriginError),
    /// The request head could not be encoded (a control character in something the client or a
    /// publisher supplied): nothing was sent.
    #[error("request not sent: {0}")]
    Head(#[from] EncodeError),
}

impl SendError {
    pub fn status(&self) -> u16 {
        match self {
            SendError::Origin(e) => e.status(),
            SendError::Head(_) => 502,
        }
    }
}

/// Tries each target of the route in order.
async fn send_to_targets(
    conn: &ClientConn,
    head: &RequestHead,
    route: &RouteRef,
    body: &[u8],
    grip_last: &[(String, String)],
) -> Result<OriginResponse, SendError> {
    let w = &conn.w;
    let mut last = None;
    for (t, target) in route.route().targets.iter().enumerate() {
        let host = route
            .route()
            .as_host
            .as_deref()
            .or(target.host_header.as_deref())
            .map(str::as_bytes);
        let request =
            origin_request(conn, head, route, host, body, grip_last).inspect_err(|_| {
                WorkerMetrics::inc(&w.metrics.heads_refused);
            })?;
        let tls_host = host.or_else(|| header_value(&head.headers, "host"));
        let dest = match origin::dest(route, t, tls_host) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match origin::send(
            &w.origin,
            &route.settings().config,
            &dest,
            &head.method,
            request,
        )
        .await
        {
            Ok(resp) => return Ok(resp),
            Err(e @ origin::OriginError::Timeout(_)) => return Err(e.into()),
            Err(e) => last = Some(e),
        }
    }
    let unreachable = origin::OriginError::Closed(SocketAddr::from(([0, 0, 0, 0], 0)));
    Err(last.unwrap_or(unreachable).into())
}

/// True for headers the client sent that must not reach the origin as they are.
fn drop_request_header(name: &str, connection_tokens: &[String]) -> bool {
    const DROPPED: [&str; 5] = [
        "host",
        "content-length",
        "expect",
        "x-forwarded-for",
        "x-forwarded-proto",
    ];
    http1::is_hop_by_hop(name)
        || grip::is_proxy_only_request_header(name)
        || DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The request as the origin receives it, `Grip-Last` included for a retry.
fn origin_request(
    conn: &ClientConn,
    head: &RequestHead,
    route: &RouteRef,
    host_override: Option<&[u8]>,
    body: &[u8],
    grip_last: &[(String, String)],
) -> Result<Vec<u8>, EncodeError> {
    let cfg = &route.settings().config.origin;
    let path = route.route().origin_path(&head.target);
    let mut out = HeadWriter::request(&head.method, &path, 1024 + body.len());
    let host = host_override.or_else(|| header_value(&head.headers, "host"));
    if let Some(host) = host {
        out.header("Host", host);
    }
    let declared = connection_tokens(&head.headers);
    for h in &head.headers {
        if !drop_request_header(&h.name, &declared) {
            out.header(&h.name, &h.value);
        }
    }
    forwarded_headers(&mut out, head, conn.peer, conn.tls, cfg);
    if let Some(token) = route.signer().and_then(|s| s.token()) {
        out.header("Grip-Sig", token.as_bytes());
        out.header("Grip-Feature", GRIP_FEATURES.as_bytes());
    }
    add_grip_last(&mut out, grip_last);
    if !body.is_empty() || head.body != BodyKind::None {
        out.header("Content-Length", body.len().to_string().as_bytes());
    }
    let mut out = out.finish()?;
    out.extend_from_slice(body);
    Ok(out)
}

/// `Grip-Last: <channel>; last-id=<id>`, one per channel (the ids were checked at every entry;
/// the encoder refuses what would still break the head).
pub fn add_grip_last(out: &mut HeadWriter, grip_last: &[(String, String)]) {
    for (channel, last_id) in grip_last {
        let value = format!("{channel}; last-id={last_id}");
        out.header("Grip-Last", value.as_bytes());
    }
}

fn forwarded_headers(
    out: &mut HeadWriter,
    head: &RequestHead,
    peer: SocketAddr,
    tls: bool,
    cfg: &crate::config::OriginConfig,
) {
    let existing: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value.as_slice())
        .collect();
    let mut xff = existing.join(&b", "[..]);
    if cfg.x_forwarded_for {
        if !xff.is_empty() {
            xff.extend_from_slice(b", ");
        }
        xff.extend_from_slice(peer.ip().to_string().as_bytes());
    }
    if !xff.is_empty() {
        out.header("X-Forwarded-For", &xff);
    }
    if cfg.x_forwarded_proto {
        out.header(
            "X-Forwarded-Proto",
            if tls { &b"https"[..] } else { b"http" },
        );
    } else if let Some(v) = header_value(&head.headers, "x-forwarded-proto") {
        out.header("X-Forwarded-Proto", v);
    }
}

fn is_instruct_body(headers: &[Header]) -> bool {
    header_value(headers, "content-type").is_some_and(|v| {
        let mime = v.split(|&b| b == b';').next().unwrap_or_default();
        mime.trim_ascii()
            .eq_ignore_ascii_case(grip::INSTRUCT_CONTENT_TYPE.as_bytes())
    })
}

/// A hold, a next link (paging without a hold), or the JSON instruct form.
fn carries_grip(resp: &OriginResponse) -> bool {
    let h = &resp.head.headers;
    header_value(h, "grip-hold").is_some()
        || header_value(h, "grip-link").is_some()
        || is_instruct_body(h)
}

/// Header names listed in `Connection` headers: hop-by-hop by declaration (RFC 9110 7.6.1).
fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).into_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Headers from the origin that the client may see (no Grip-*, no hop-by-hop, no framing).
pub fn client_visible(headers: &[Header], strip_grip: bool) -> Vec<(String, Vec<u8>)> {
    let declared = connection_tokens(headers);
    headers
        .iter()
        .filter(|h| !http1::is_hop_by_hop(&h.name))
        .filter(|h| !declared.iter().any(|t| h.name.eq_ignore_ascii_case(t)))
        .filter(|h| !h.name.eq_ignore_ascii_case("content-length"))
        .filter(|h| !(strip_grip && grip::is_grip_header(&h.name)))
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect()
}

/// Streams an ordinary response to the client without buffering it whole.
async fn relay(
    conn: &mut ClientConn,
    req: &RequestHead,
    mut resp: OriginResponse,
    strip_grip: bool,
) -> Outcome {
    let kind = resp.head.body;
    let chunked =
        req.version == Version::Http11 && matches!(kind, BodyKind::Chunked | BodyKind::UntilClose);
    let close =
        !req.keep_alive || (kind == BodyKind::UntilClose && !chunked) || conn.w.is_stopping();
    let mut out = match relay_head(&resp, strip_grip, chunked, close) {
        Ok(head) => head,
        Err(e) => {
            // Unreachable through httparse today (it refuses what the encoder would), but the
            // encoder is the rule: an origin head that would not survive re-encoding is a 502.
            WorkerMetrics::inc(&conn.w.metrics.heads_refused);
            tracing::warn!(origin = %resp.addr, "origin response head refused: {e}");
            conn.send_error(&ClientError::new(502, "Invalid response from origin"))
                .await;
            return Outcome::Close;
        }
    };
    let mut decoder = BodyDecoder::new(kind);
    let mut data = Vec::new();
    loop {
        let progress = match decoder.decode(&resp.buf, &mut data) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(origin = %resp.addr, "bad response body: {e}");
                return Outcome::Close;
            }
        };
        resp.buf.drain(..progress.consumed);
        frame_body(&mut out, &data, chunked);
        data.clear();
        if progress.done {
            break;
        }
        if !out.is_empty() && conn.write(std::mem::take(&mut out)).await.is_err() {
            return Outcome::Close;
        }
        match resp.read_more().await {
            Ok(0) => {
                if decoder.finish_at_eof().is_err() {
                    tracing::warn!(origin = %resp.addr, "origin closed mid-body");
                    return Outcome::Close;
                }
                break;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(origin = %resp.addr, "origin read failed mid-body: {e}");
                return Outcome::Close;
            }
        }
    }
    if chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    let written = conn.write(out).await;
    resp.finish(&conn.w.origin, decoder.is_done());
    match (written, close) {
        (Ok(()), false) => Outcome::KeepAlive,
        _ => Outcome::Close,
    }
}

fn frame_body(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        http1::encode_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}

fn relay_head(
    resp: &OriginResponse,
    strip_grip: bool,
    chunked: bool,
    close: bool,
) -> Result<Vec<u8>, EncodeError> {
    let head = &resp.head;
    let mut out = HeadWriter::response(Version::Http11, head.code, &head.reason, 512);
    for (name, value) in client_visible(&head.headers, strip_grip) {
        out.header(&name, &value);
    }
    match head.body {
        BodyKind::Length(n) => {
            out.header("Content-Length", n.to_string().as_bytes());
        }
        BodyKind::None => {
            // HEAD and 304 answers keep the origin's Content-Length; other bodiless ones get 0.
            match header_value(&head.headers, "content-length") {
                Some(v) => {
                    out.header("Content-Length", v);
                }
                None if head.code != 204 && head.code != 304 && head.code >= 200 => {
                    out.header("Content-Length", b"0");
                }
                None => {}
            }
        }
        BodyKind::Chunked | BodyKind::UntilClose if chunked => {
            out.header("Transfer-Encoding", b"chunked");
        }
        _ => {}
    }
    if close {
        out.header("Connection", b"close");
    }
    out.finish()
}

/// A response with GRIP instructions: read it whole, parse, then hold or answer.
async fn grip_response(
    conn: &mut ClientConn,
    req: RequestHead,
    request_body: Vec<u8>,
    route: RouteRef,
    mut resp: OriginResponse,
) -> Step {
    let cfg = &conn.w.settings().config;
    let body = resp
        .read_body(
            cfg.origin.instruct_body_bytes_max,
            cfg.origin.response_timeout_ms,
        )
        .await;
    let head = resp.head.clone();
    resp.finish(&conn.w.origin, body.is_ok());
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("origin GRIP response: {e}");
            conn.send_error(&ClientError::new(
                e.status(),
                "Error while proxying to origin",
            ))
            .await;
            return Step::Done(Outcome::Close);
        }
    };
    let limits = GripLimits {
        channels_max: cfg.grip.channels_max,
        names: super::settings::name_limits(&cfg.grip),
    };
    let parsed = parse_instructions(&head, &body, &limits);
    let instruct = match parsed {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                path = %crate::redact::target(&req.target),
                "origin sent invalid GRIP instructions: {e}"
            );
            let msg = format!("Invalid GRIP instructions from origin: {e}");
            conn.send_error(&ClientError::new(502, msg)).await;
            return Step::Done(Outcome::Close);
        }
    };
    let base = super::next_link::request_url(&req, conn.tls);
    let mut spec = hold_spec(route, &head, body, instruct, base);
    if let Err(e) = super::hold::check_head(&spec) {
        WorkerMetrics::inc(&conn.w.metrics.heads_refused);
        let path = crate::redact::target(&req.target);
        tracing::warn!(%path, "origin's GRIP response head refused: {e}");
        let msg = format!("Invalid GRIP instructions from origin: {e}");
        conn.send_error(&ClientError::new(502, msg)).await;
        return Step::Done(Outcome::Close);
    }
    if spec.mode == Some(grip::HoldMode::Response) {
        // A long-poll may have to send its request again (hint, prev-id conflict).
        spec.original = Some(Box::new((req.clone(), request_body)));
    }
    Step::Hold(req, Box::new(spec))
}

/// Instructions from the headers and, for an `application/grip-instruct` body, merged with the
/// JSON (as Pushpin: the JSON form is only valid on a 200 answer).
fn parse_instructions(
    head: &http1::ResponseHead,
    body: &[u8],
    limits: &GripLimits,
) -> Result<Instruct, String> {
    let pairs = head
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    let mut instruct = grip::from_headers(pairs, limits).map_err(|e| e.to_string())?;
    if is_instruct_body(&head.headers) {
        if head.code != 200 {
            return Err(format!("{} answer with a grip-instruct body", head.code));
        }
        let json = grip::from_json(body, limits).map_err(|e| e.to_string())?;
        instruct.merge_json(json, limits);
    }
    Ok(instruct)
}

/// What the client is sent and what the hold subscribes to, from the origin's answer.
fn hold_spec(
    route_ref: RouteRef,
    head: &http1::ResponseHead,
    body: Vec<u8>,
    instruct: Instruct,
    base_url: Option<url::Url>,
) -> HoldSpec {
    let cfg = &route_ref.settings().config;
    let route = route_ref.route();
    let filters = super::stream_hold::channel_filters(&route.prefix, &instruct);
    let (mut code, mut reason, headers, body) = match instruct.response {
        Some(r) => {
            let code = r.code.unwrap_or(200);
            let headers = r
                .headers
                .into_iter()
                .filter(|(n, _)| {
                    !http1::is_hop_by_hop(n) && !n.eq_ignore_ascii_case("content-length")
                })
                .collect();
            (code, r.reason.unwrap_or_default(), headers, r.body)
        }
        None => (
            head.code,
            head.reason.clone(),
            client_visible(&head.headers, true),
            body,
        ),
    };
    if let Some(status) = &instruct.status {
        code = status.code;
        reason = status.reason.clone().unwrap_or_default();
    }
    let mut channels: Vec<String> = instruct
        .channels
        .iter()
        .map(|c| format!("{}{}", route.prefix, c.name))
        .collect();
    if channels.len() > cfg.grip.channels_max {
        tracing::info!(
            "too many subscriptions: keeping the first {}",
            cfg.grip.channels_max
        );
        channels.truncate(cfg.grip.channels_max);
    }
    let resolve = |link: &grip::Link| {
        base_url
            .as_ref()
            .and_then(|b| super::next_link::resolve(b, &link.url))
    };
    let next_link = instruct
        .next_link
        .as_ref()
        .and_then(|l| resolve(l).map(|u| (u, l.timeout_secs)));
    let gone_link = instruct.gone_link.as_ref().and_then(resolve);
    let prev_ids = instruct
        .channels
        .iter()
        .filter_map(|c| {
            let full = format!("{}{}", route.prefix, c.name);
            c.prev_id.clone().map(|p| (full, p))
        })
        .collect();
    HoldSpec {
        mode: instruct.hold,
        channels,
        timeout_secs: instruct
            .timeout_secs
            .unwrap_or(cfg.grip.hold_timeout_default_secs),
        keep_alive: instruct.keep_alive,
        code,
        reason,
        headers,
        body,
        base_url,
        next_link,
        gone_link,
        prev_ids,
        channel_prefix: route.prefix.clone(),
        filters,
        meta: instruct.meta,
        original: None,
        route: route_ref.clone(),
    }
}
