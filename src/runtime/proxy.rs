//! One client request: route it, send it to the origin, then either relay the response as it
//! streams in or, when the origin answers with GRIP instructions, hand the connection to `hold`.

use std::net::SocketAddr;

use super::client::{ClientConn, ClientError, Outcome};
use super::hold::HoldSpec;
use crate::origin::client::{self as origin, OriginResponse};
use crate::proto::grip::{self, GripLimits, Instruct};
use crate::proto::http1::{
    self, BodyDecoder, BodyKind, Header, LAST_CHUNK, RequestHead, Version, header_value,
};
use crate::routes::Route;

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
    let Some(route_index) = w
        .settings()
        .routes
        .find(host, &head.target, conn.tls, is_ws)
    else {
        tracing::info!(peer = %conn.peer, host, path = %crate::redact::target(&head.target), "no route");
        conn.send_error(&ClientError::new(502, "No route for this host and path"))
            .await;
        return Step::Done(Outcome::Close);
    };
    if is_ws {
        return super::websocket::open(conn, head, route_index).await;
    }
    let body = match conn.read_body(&head).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(peer = %conn.peer, "bad request body: {}", e.message);
            conn.send_error(&e).await;
            return Step::Done(Outcome::Close);
        }
    };
    exchange(conn, head, route_index, body, &[]).await
}

/// A request sent to the origin again (a long-poll's `hint` or prev-id conflict, as Pushpin's
/// retry): the original request plus `Grip-Last` for each channel's last id.
pub struct Retry {
    pub head: RequestHead,
    pub body: Vec<u8>,
    pub grip_last: Vec<(String, String)>,
}

/// Sends a held request to the origin again.
pub async fn retry(conn: &mut ClientConn, r: Box<Retry>) -> Step {
    let Retry {
        head,
        body,
        grip_last,
    } = *r;
    let host = header_value(&head.headers, "host")
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let Some(route_index) = conn
        .w
        .settings()
        .routes
        .find(host, &head.target, conn.tls, false)
    else {
        conn.send_error(&ClientError::new(502, "No route for this host and path"))
            .await;
        return Step::Done(Outcome::Close);
    };
    exchange(conn, head, route_index, body, &grip_last).await
}

/// Sends the request to the route's origin and relays or holds what comes back.
async fn exchange(
    conn: &mut ClientConn,
    head: RequestHead,
    route_index: usize,
    body: Vec<u8>,
    grip_last: &[(String, String)],
) -> Step {
    let w = conn.w.clone();
    let settings = w.settings();
    let route = settings.routes.route(route_index);
    let resp = match send_to_targets(conn, &head, route_index, &body, grip_last).await {
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
    if !route.no_grip && carries_grip(&resp) {
        return grip_response(conn, head, body, route, resp).await;
    }
    Step::Done(relay(conn, &head, resp, !route.no_grip).await)
}

/// Tries each target of the route in order.
async fn send_to_targets(
    conn: &ClientConn,
    head: &RequestHead,
    route_index: usize,
    body: &[u8],
    grip_last: &[(String, String)],
) -> Result<OriginResponse, origin::OriginError> {
    let w = &conn.w;
    let settings = w.settings();
    let route = settings.routes.route(route_index);
    let mut last = None;
    for (t, target) in route.targets.iter().enumerate() {
        let host = route
            .as_host
            .as_deref()
            .or(target.host_header.as_deref())
            .map(str::as_bytes);
        let mut request = origin_request(conn, head, route, route_index, host, body);
        add_grip_last(&mut request, body.len(), grip_last);
        let tls_host = host.or_else(|| header_value(&head.headers, "host"));
        let dest = match origin::dest(&settings, route_index, t, tls_host) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match origin::send(w, &dest, &head.method, request).await {
            Ok(resp) => return Ok(resp),
            Err(e @ origin::OriginError::Timeout(_)) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(
        last.unwrap_or(origin::OriginError::Closed(SocketAddr::from((
            [0, 0, 0, 0],
            0,
        )))),
    )
}

/// Inserts `Grip-Last` headers before the blank line that ends the request head.
fn add_grip_last(request: &mut Vec<u8>, body_len: usize, grip_last: &[(String, String)]) {
    if grip_last.is_empty() {
        return;
    }
    let head_end = request.len() - body_len - 2;
    let mut lines = Vec::new();
    for (channel, last_id) in grip_last {
        let value = format!("{channel}; last-id={last_id}");
        http1::encode_header(&mut lines, "Grip-Last", value.as_bytes());
    }
    request.splice(head_end..head_end, lines);
}

/// True for headers the client sent that must not reach the origin as they are.
fn drop_request_header(name: &str, connection_tokens: &[String]) -> bool {
    const DROPPED: [&str; 9] = [
        "host",
        "content-length",
        "expect",
        "x-forwarded-for",
        "x-forwarded-proto",
        // A client must not be able to pose as the proxy.
        "grip-sig",
        "grip-feature",
        "grip-last",
        "grip-set-meta",
    ];
    http1::is_hop_by_hop(name)
        || DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The request as the origin receives it.
fn origin_request(
    conn: &ClientConn,
    head: &RequestHead,
    route: &Route,
    route_index: usize,
    host_override: Option<&[u8]>,
    body: &[u8],
) -> Vec<u8> {
    let cfg = &conn.w.settings().config.origin;
    let mut out = Vec::with_capacity(1024 + body.len());
    let path = route.origin_path(&head.target);
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", head.method, path).as_bytes());
    let host = host_override.or_else(|| header_value(&head.headers, "host"));
    if let Some(host) = host {
        http1::encode_header(&mut out, "Host", host);
    }
    let declared = connection_tokens(&head.headers);
    for h in &head.headers {
        if !drop_request_header(&h.name, &declared) {
            http1::encode_header(&mut out, &h.name, &h.value);
        }
    }
    forwarded_headers(&mut out, head, conn.peer, conn.tls, cfg);
    if let Some(token) = conn
        .w
        .settings()
        .signers
        .for_route(route_index)
        .and_then(|s| s.token())
    {
        http1::encode_header(&mut out, "Grip-Sig", token.as_bytes());
        http1::encode_header(&mut out, "Grip-Feature", GRIP_FEATURES.as_bytes());
    }
    if !body.is_empty() || head.body != BodyKind::None {
        http1::encode_header(
            &mut out,
            "Content-Length",
            body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn forwarded_headers(
    out: &mut Vec<u8>,
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
        http1::encode_header(out, "X-Forwarded-For", &xff);
    }
    if cfg.x_forwarded_proto {
        http1::encode_header(
            out,
            "X-Forwarded-Proto",
            if tls { &b"https"[..] } else { b"http" },
        );
    } else if let Some(v) = header_value(&head.headers, "x-forwarded-proto") {
        http1::encode_header(out, "X-Forwarded-Proto", v);
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
    let mut out = relay_head(&resp, strip_grip, chunked, close);
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
    resp.finish(&conn.w, decoder.is_done());
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

fn relay_head(resp: &OriginResponse, strip_grip: bool, chunked: bool, close: bool) -> Vec<u8> {
    let head = &resp.head;
    let mut out = Vec::with_capacity(512);
    http1::encode_status_line(&mut out, Version::Http11, head.code, &head.reason);
    for (name, value) in client_visible(&head.headers, strip_grip) {
        http1::encode_header(&mut out, &name, &value);
    }
    match head.body {
        BodyKind::Length(n) => {
            http1::encode_header(&mut out, "Content-Length", n.to_string().as_bytes())
        }
        BodyKind::None => {
            // HEAD and 304 answers keep the origin's Content-Length; other bodiless ones get 0.
            match header_value(&head.headers, "content-length") {
                Some(v) => http1::encode_header(&mut out, "Content-Length", v),
                None if head.code != 204 && head.code != 304 && head.code >= 200 => {
                    http1::encode_header(&mut out, "Content-Length", b"0")
                }
                None => {}
            }
        }
        BodyKind::Chunked | BodyKind::UntilClose if chunked => {
            http1::encode_header(&mut out, "Transfer-Encoding", b"chunked")
        }
        _ => {}
    }
    if close {
        http1::encode_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A response with GRIP instructions: read it whole, parse, then hold or answer.
async fn grip_response(
    conn: &mut ClientConn,
    req: RequestHead,
    request_body: Vec<u8>,
    route: &Route,
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
    resp.finish(&conn.w, body.is_ok());
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
    let base = super::next_link::request_url(&req);
    let mut spec = hold_spec(
        &conn.w.settings().config,
        route,
        &head,
        body,
        instruct,
        base,
    );
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
    cfg: &crate::config::Config,
    route: &Route,
    head: &http1::ResponseHead,
    body: Vec<u8>,
    instruct: Instruct,
    base_url: Option<url::Url>,
) -> HoldSpec {
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
    }
}
