//! Requests to the origin made for a held stream: the `Grip-Link rel=next` URL (after a prev-id
//! conflict, a `hint`, the link's timeout, or while paging), and the `rel=gone` notice.
//!
//! Like Pushpin (`httpsession.cpp`), a next-link request is a `GET` carrying one
//! `Grip-Last: <channel>; last-id=<id>` per channel with a prev-id, signed with the route's
//! Grip-Sig. Unlike Pushpin, which fetches any URL it is given, a link may only lead to the
//! origin of the route the original request took ([`LinkScope`]); it is not routed afresh. A
//! fetch runs as its own short task and posts `ev::ORIGIN` to the connection when done.

use std::cell::RefCell;
use std::rc::Rc;

use url::Url;

use super::conns::ev;
use super::settings::RouteRef;
use super::worker::Worker;
use crate::hub::ConnId;
use crate::origin::client::{self as origin, FullResponse, OriginError};
use crate::proto::http1::{EncodeError, HeadWriter, RequestHead, header_value};
use crate::routes::Route;

/// Largest body a next-link answer may have.
const BODY_BYTES_MAX: usize = 1_000_000;

/// The result slot shared with the task running one fetch.
pub type InFlight = Rc<RefCell<Option<Result<FullResponse, FetchError>>>>;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The link leads somewhere other than the origin of the route the request took.
    #[error("link to {0} is outside the route the request took")]
    OutsideRoute(String),
    /// The request head could not be encoded (nothing was sent).
    #[error("next-link request not sent: {0}")]
    Head(#[from] EncodeError),
    #[error(transparent)]
    Origin(#[from] OriginError),
}

impl FetchError {
    /// Whether trying again may help (Pushpin retries any failure before data was sent).
    pub fn retryable(&self) -> bool {
        matches!(self, FetchError::Origin(_))
    }
}

/// The URL a client request was made to (`http[s]://<Host><target>`), the base for relative
/// links.
pub fn request_url(head: &RequestHead, tls: bool) -> Option<Url> {
    let host = header_value(&head.headers, "host").and_then(|h| std::str::from_utf8(h).ok())?;
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://{host}{}", head.target)).ok()
}

/// Resolves a link relative to `base`.
pub fn resolve(base: &Url, link: &str) -> Option<Url> {
    base.join(link).ok()
}

/// Where a hold's links may lead: the origin of the route its request took, reached either
/// through the client-facing address (a relative link, or an absolute one with the request's own
/// scheme, host and port) or at one of the route's targets directly. Nothing else: a link that
/// would match another route must not make holdfast fetch that route's origin, signed with that
/// route's key, and stream the answer to this route's client.
#[derive(Clone)]
pub struct LinkScope {
    route: RouteRef,
    /// Scheme, host and port of the client's request.
    client: url::Origin,
}

/// How a link in scope names its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkPath {
    /// As the client sees it: the route's path rewrite (`path_rem`, `replace_beg`) applies.
    ClientFacing,
    /// At one of the route's targets: the origin's own path, sent as it is.
    OriginFacing,
}

impl LinkScope {
    pub fn new(route: RouteRef, request_url: &Url) -> LinkScope {
        LinkScope {
            route,
            client: request_url.origin(),
        }
    }

    fn place(&self, link: &Url) -> Result<LinkPath, FetchError> {
        if link.origin() == self.client {
            return Ok(LinkPath::ClientFacing);
        }
        if is_target_of(self.route.route(), link) {
            return Ok(LinkPath::OriginFacing);
        }
        Err(FetchError::OutsideRoute(shown(link)))
    }
}

/// Whether `link` has the scheme, host and port of one of the route's targets.
fn is_target_of(route: &Route, link: &Url) -> bool {
    let Some(host) = link.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    route.targets.iter().any(|t| {
        let scheme = if t.ssl { "https" } else { "http" };
        link.scheme() == scheme
            && t.host.eq_ignore_ascii_case(host)
            && link.port_or_known_default() == Some(t.port)
    })
}

/// A link for a log line: credentials and query (which may hold tokens) masked.
fn shown(url: &Url) -> String {
    crate::redact::target(&crate::redact::url(url.as_str())).into_owned()
}

fn host_port(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The request for `url` to the scope's route, with the Host header it carries.
fn build(
    scope: &LinkScope,
    method: &str,
    url: &Url,
    grip_last: &[(String, String)],
) -> Result<(Vec<u8>, Vec<u8>), FetchError> {
    let place = scope.place(url)?;
    let link_host = host_port(url).ok_or_else(|| FetchError::OutsideRoute(shown(url)))?;
    let route = scope.route.route();
    let target = path_and_query(url);
    let path = match place {
        LinkPath::ClientFacing => route.origin_path(&target),
        LinkPath::OriginFacing => target,
    };
    let host_header = route.as_host.as_deref().unwrap_or(&link_host);
    let mut out = HeadWriter::request(method, &path, 512);
    out.header("Host", host_header.as_bytes());
    super::proxy::add_grip_last(&mut out, grip_last);
    if let Some(token) = scope.route.signer().and_then(|s| s.token()) {
        out.header("Grip-Sig", token.as_bytes());
        let features = super::proxy::GRIP_FEATURES.as_bytes();
        out.header("Grip-Feature", features);
    }
    if method == "POST" {
        out.header("Content-Length", b"0");
    }
    Ok((host_header.as_bytes().to_vec(), out.finish()?))
}

/// Sends `method url` to the scope's origin and reads the answer (bounded).
async fn fetch(
    w: &Worker,
    scope: &LinkScope,
    method: &str,
    url: &Url,
    grip_last: &[(String, String)],
) -> Result<FullResponse, FetchError> {
    let (host, request) = build(scope, method, url, grip_last).inspect_err(|e| {
        if matches!(e, FetchError::Head(_)) {
            crate::metrics::WorkerMetrics::inc(&w.metrics.heads_refused);
        }
    })?;
    let route = &scope.route;
    Ok(origin::fetch(
        &w.origin,
        route,
        Some(&host),
        method,
        request,
        BODY_BYTES_MAX,
    )
    .await?)
}

/// Starts fetching `url` for connection `id`; the result lands in the returned slot.
pub fn spawn_fetch(
    w: &Rc<Worker>,
    id: ConnId,
    scope: LinkScope,
    url: Url,
    grip_last: Vec<(String, String)>,
) -> InFlight {
    let slot: InFlight = Rc::new(RefCell::new(None));
    let result = slot.clone();
    let w = w.clone();
    monoio::spawn(async move {
        let outcome = fetch(&w, &scope, "GET", &url, &grip_last).await;
        *result.borrow_mut() = Some(outcome);
        w.conns.borrow_mut().notify(id, ev::ORIGIN);
    });
    slot
}

/// Tells the origin the client went away (`Grip-Link: <url>; rel=gone`), without waiting.
pub fn spawn_gone(w: &Rc<Worker>, scope: LinkScope, url: Url) {
    let w = w.clone();
    monoio::spawn(async move {
        if let Err(e) = fetch(&w, &scope, "POST", &url, &[]).await {
            tracing::info!("gone link {}: {e}", shown(&url));
        }
    });
}

/// Back-off before retry `n` (0-based): 1 s * 2^n plus up to 1 s of jitter, as Pushpin.
pub fn backoff_ms(n: u32) -> u64 {
    (1000u64 << n.min(10)) + fastrand::u64(0..1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_request() {
        let base = Url::parse("http://example.com/events/?channel=a").unwrap();
        let next = resolve(&base, "/events/?channel=a&last=7").unwrap();
        assert_eq!(next.as_str(), "http://example.com/events/?channel=a&last=7");
        let rel = resolve(&base, "more?x=1").unwrap();
        assert_eq!(rel.as_str(), "http://example.com/events/more?x=1");
        assert_eq!(
            host_port(&Url::parse("http://h:8080/p").unwrap()).as_deref(),
            Some("h:8080")
        );
        assert_eq!(path_and_query(&next), "/events/?channel=a&last=7");
    }

    #[test]
    fn backoff_grows() {
        assert!((1000..2000).contains(&backoff_ms(0)));
        assert!((4000..5000).contains(&backoff_ms(2)));
    }
}
