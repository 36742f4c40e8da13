//! The publish API listener (Pushpin's handler HTTP port, default 127.0.0.1:5561), on its own
//! thread: `POST /publish/` parses and validates the whole body, then hands the items to `Ingest`,
//! which encodes each once and queues it for every worker.

use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use super::Shared;
use super::server::build_runtime;
use crate::auth::{AuthError, PublishAuth};
use crate::hub::inbox::Inbox;
use crate::hub::ingest::Ingest;
use crate::hub::sequencer::SequencerConfig;
use crate::metrics::WorkerMetrics;
use crate::proto::http1::{self, BodyDecoder, BodyKind, HeadLimits, Parsed, RequestHead};
use crate::proto::publish::{self, PublishLimits};

struct Api {
    shared: Arc<Shared>,
    ingest: Ingest,
    auth: PublishAuth,
}

/// Starts the publish thread on `listener`, with `/metrics` on `metrics` instead when given.
pub fn spawn(
    listener: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    shared: Arc<Shared>,
    stop: Arc<Inbox<()>>,
    use_uring: bool,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("holdfast-publish".into())
        .spawn(move || {
            let mut rt = match build_runtime(use_uring, 256) {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("publish API: cannot build runtime: {e}");
                    return;
                }
            };
            rt.block_on(serve(listener, metrics, shared, stop));
        })
}

async fn serve(
    listener: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    shared: Arc<Shared>,
    stop: Arc<Inbox<()>>,
) {
    let (listener, metrics) = match (
        TcpListener::from_std(listener),
        metrics.map(TcpListener::from_std).transpose(),
    ) {
        (Ok(l), Ok(m)) => (l, m),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("publish API: cannot register listener: {e}");
            return;
        }
    };
    let auth = match PublishAuth::from_config(&shared.config.publish) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("publish API: {e}");
            return;
        }
    };
    let p = &shared.config.publish;
    let sequencing = SequencerConfig {
        wait_ms: p.message_wait_ms,
        id_cache_ttl_ms: p.id_cache_ttl_ms,
        ..SequencerConfig::default()
    };
    let api = Rc::new(Api {
        ingest: Ingest::new(shared.inboxes.clone(), sequencing),
        shared,
        auth,
    });
    let expiring = api.clone();
    monoio::spawn(async move { expiring.ingest.expire_loop().await });
    if let Some(link) = api.shared.cluster.clone() {
        let receiving = api.clone();
        monoio::spawn(async move { link.receive_loop(&receiving.ingest).await });
    }
    if let Some(link) = api.shared.zmq.clone() {
        let receiving = api.clone();
        monoio::spawn(async move { zmq_receive_loop(&link, &receiving).await });
    }
    if let Some(metrics) = metrics {
        // Ends with the runtime, when the loop below returns.
        monoio::spawn(accept_loop(metrics, api.clone(), Listener::Metrics));
    }
    monoio::select! {
        _ = accept_loop(listener, api, Listener::Publish) => {}
        _ = stop.rung() => {}
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// `publish.listen`: the publish API (and `/metrics`, unless it has a listener of its own).
    Publish,
    /// `publish.metrics_listen`: `/metrics` only, without credentials.
    Metrics,
}

async fn accept_loop(listener: TcpListener, api: Rc<Api>, kind: Listener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(connection(api.clone(), stream, kind));
            }
            Err(e) => {
                tracing::warn!("publish API: accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A response: status, body, content type, extra headers.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, &'static str)>,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
            extra: vec![],
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        let body = serde_json::json!({ "error": message }).to_string() + "\n";
        Reply {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
            extra: vec![],
        }
    }
}

async fn connection(api: Rc<Api>, mut stream: TcpStream, listener: Listener) {
    let mut buf = Vec::with_capacity(4096);
    let timeout = Duration::from_millis(api.shared.config.publish.request_timeout_ms);
    loop {
        // One deadline for the whole request, head and body: a publisher that sends a byte a
        // second is cut off, not kept for as long as it keeps sending.
        let deadline = monoio::time::Instant::now() + timeout;
        let head = monoio::time::timeout_at(deadline, read_head(&api, &mut stream, &mut buf));
        let head = match head.await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return,
            Ok(Err(reply)) => return reply_and_close(&mut stream, reply).await,
            // Idle between requests: close quietly; half a head: say why.
            Err(_) if buf.is_empty() => return,
            Err(_) => return timed_out(&api, &mut stream).await,
        };
        // Refused before the body is read: an unauthenticated client cannot make this thread
        // read (and buffer) up to body_bytes_max. With a body left unread the connection closes.
        let endpoint = match admit(&api, &head, listener) {
            Ok(endpoint) => endpoint,
            Err(reply) => {
                let bodiless = matches!(head.body, BodyKind::None | BodyKind::Length(0));
                let close = !(bodiless && head.keep_alive);
                if write_reply(&mut stream, reply, close).await.is_err() || close {
                    return;
                }
                continue;
            }
        };
        let body =
            monoio::time::timeout_at(deadline, read_body(&api, &mut stream, &mut buf, &head));
        let body = match body.await {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => return,
            Ok(Err(reply)) => return reply_and_close(&mut stream, reply).await,
            Err(_) => return timed_out(&api, &mut stream).await,
        };
        let reply = serve_endpoint(&api, endpoint, &head, body).await;
        let close = !head.keep_alive;
        if write_reply(&mut stream, reply, close).await.is_err() || close {
            return;
        }
    }
}

async fn reply_and_close(stream: &mut TcpStream, reply: Reply) {
    let _ = write_reply(stream, reply, true).await;
}

/// A request not complete within `publish.request_timeout_ms`: 408, then close.
async fn timed_out(api: &Api, stream: &mut TcpStream) {
    let ms = api.shared.config.publish.request_timeout_ms;
    tracing::info!("publish API: request not complete within {ms} ms: 408, closing");
    reply_and_close(stream, Reply::error(408, "Request timed out.")).await;
}

async fn write_reply(stream: &mut TcpStream, r: Reply, close: bool) -> std::io::Result<()> {
    let bytes = http1::simple_response(r.status, r.content_type, &r.extra, &r.body, close);
    stream.write_all(bytes).await.0.map(|_| ())
}

/// Reads one request head; Ok(None) when the publisher closed the connection.
async fn read_head(
    api: &Api,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<RequestHead>, Reply> {
    let cfg = &api.shared.config.publish;
    let limits = HeadLimits {
        bytes_max: cfg.header_bytes_max,
        headers_max: 100,
    };
    loop {
        if !buf.is_empty() {
            match http1::parse_request(buf, limits) {
                Ok(Parsed::Complete(head, used)) => {
                    buf.drain(..used);
                    return Ok(Some(head));
                }
                Ok(Parsed::NeedMore) => {}
                Err(e) => return Err(Reply::error(e.status(), &e.to_string())),
            }
        }
        if read_more(stream, buf).await == 0 {
            return Ok(None);
        }
    }
}

/// Reads the body of `head`; Ok(None) when the publisher closed the connection.
async fn read_body(
    api: &Api,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> Result<Option<Vec<u8>>, Reply> {
    let cfg = &api.shared.config.publish;
    if let BodyKind::Length(n) = head.body
        && n > cfg.body_bytes_max as u64
    {
        return Err(Reply::error(413, "Request body too large."));
    }
    let mut decoder = BodyDecoder::new(head.body);
    let mut body = Vec::new();
    loop {
        let p = decoder
            .decode(buf, &mut body)
            .map_err(|e| Reply::error(400, &e.to_string()))?;
        buf.drain(..p.consumed);
        if body.len() > cfg.body_bytes_max {
            return Err(Reply::error(413, "Request body too large."));
        }
        if p.done {
            return Ok(Some(body));
        }
        if read_more(stream, buf).await == 0 {
            return Ok(None);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8192);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = stream.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res.unwrap_or(0)
}

/// What a request asks for, once it is allowed.
#[derive(Clone, Copy)]
enum Endpoint {
    Publish,
    Recover,
    Metrics,
    Index,
}

/// Decides from the head alone whether the request is served: the endpoint, or the refusal
/// (404, 405, 401). Publish, recover and (with `publish.metrics_auth`) metrics need the
/// configured publish credentials; the metrics listener serves only `/metrics`, openly.
fn admit(api: &Api, head: &RequestHead, listener: Listener) -> Result<Endpoint, Reply> {
    let path = head.target.split('?').next().unwrap_or("");
    let get = head.method == "GET" || head.method == "HEAD";
    let own_metrics_listener = api.shared.config.publish.metrics_listen.is_some();
    let endpoint = match (listener, path) {
        (Listener::Metrics, "/metrics") if get => return Ok(Endpoint::Metrics),
        (Listener::Metrics, _) => return Err(Reply::error(404, "Not found.")),
        (_, "/publish" | "/publish/") => Endpoint::Publish,
        (_, "/recover" | "/recover/") => Endpoint::Recover,
        (_, "/metrics") if get && !own_metrics_listener => Endpoint::Metrics,
        (_, "/") if get => Endpoint::Index,
        _ => return Err(Reply::error(404, "Not found.")),
    };
    if matches!(endpoint, Endpoint::Publish | Endpoint::Recover) && head.method != "POST" {
        let mut r = Reply::error(405, "Method not allowed.");
        r.extra.push(("Allow", "POST"));
        return Err(r);
    }
    let counters = &api.shared.publish_metrics;
    if matches!(endpoint, Endpoint::Publish) {
        WorkerMetrics::inc(&counters.requests);
    }
    let needs_auth = match endpoint {
        Endpoint::Publish | Endpoint::Recover => true,
        Endpoint::Metrics => api.shared.config.publish.metrics_auth,
        Endpoint::Index => false,
    };
    if !needs_auth {
        return Ok(endpoint);
    }
    match api
        .auth
        .check(http1::header_value(&head.headers, "authorization"))
    {
        Ok(()) => Ok(endpoint),
        Err(e) => {
            WorkerMetrics::inc(&counters.unauthorized);
            let path = crate::redact::target(&head.target);
            tracing::info!(%path, "publish API: refused: {e}");
            let mut r = Reply::error(401, &e.to_string());
            if e == AuthError::Missing {
                r.extra.push(("WWW-Authenticate", "Bearer"));
            }
            Err(r)
        }
    }
}

async fn serve_endpoint(api: &Api, endpoint: Endpoint, head: &RequestHead, body: Vec<u8>) -> Reply {
    match endpoint {
        Endpoint::Publish => publish(api, head, body).await,
        Endpoint::Recover => {
            api.ingest.recover().await;
            Reply::text(200, "Updated\n")
        }
        Endpoint::Metrics => {
            let workers: Vec<&WorkerMetrics> = api.shared.metrics.iter().map(|m| &**m).collect();
            let mut text = crate::metrics::render(&workers, &api.shared.publish_metrics);
            if let Some(link) = &api.shared.cluster {
                link.metrics.render(&mut text);
            }
            if let Some(link) = &api.shared.zmq {
                crate::zmq::link::render_metrics(link, &mut text);
            }
            Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                body: text.into_bytes(),
                extra: vec![],
            }
        }
        Endpoint::Index => Reply::text(200, "holdfast publish API: POST /publish/\n"),
    }
}

/// Items validated by the HTTP API or the ZeroMQ thread: counted, forwarded to the cluster,
/// ingested (sequenced, encoded once, queued for every worker).
async fn accept(api: &Api, items: Vec<publish::Item>) {
    WorkerMetrics::add(&api.shared.publish_metrics.items, items.len() as u64);
    if let Some(link) = &api.shared.cluster {
        link.forward(&items).await;
    }
    api.ingest.publish(items).await;
}

/// Feeds what the ZeroMQ thread accepted into the ingest, in the order it arrived, for as long as
/// the thread lives. While this waits on the workers, the ZeroMQ thread's queue fills and it
/// stops reading its sockets.
async fn zmq_receive_loop(link: &crate::zmq::ZmqLink, api: &Api) {
    use crate::zmq::FromZmq;
    loop {
        link.incoming.rung().await;
        while let Some(msg) = link.incoming.pop() {
            match msg {
                FromZmq::Items(items) => accept(api, items).await,
                FromZmq::Recover => api.ingest.recover().await,
                FromZmq::Local(items) => api.ingest.publish(items).await,
            }
        }
    }
}

/// `POST /publish/`, authorised: parse, validate, hand to the workers (and the cluster).
async fn publish(api: &Api, head: &RequestHead, body: Vec<u8>) -> Reply {
    let counters = &api.shared.publish_metrics;
    let cfg = &api.shared.config.publish;
    let limits = PublishLimits {
        items_max: cfg.items_max,
        content_bytes_max: cfg.body_bytes_max,
        names: super::settings::name_limits(&api.shared.config.grip),
        body_patch_ops_max: cfg.body_patch_ops_max,
    };
    let items = match publish::parse_body(&body, &limits) {
        Ok(items) => items,
        Err(e) => {
            WorkerMetrics::inc(&counters.rejected);
            tracing::info!("publish rejected: {e}");
            return Reply::error(400, &e.to_string());
        }
    };
    let count = items.len();
    accept(api, items).await;
    tracing::debug!("published {count} items");
    let wants_json = http1::header_value(&head.headers, "accept")
        .is_some_and(|v| String::from_utf8_lossy(v).contains("application/json"));
    if wants_json {
        Reply {
            status: 200,
            content_type: "application/json",
            body: b"{\"message\": \"Published\"}\n".to_vec(),
            extra: vec![],
        }
    } else {
        Reply::text(200, "Published\n")
    }
}
