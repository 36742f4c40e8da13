//! Requests to the origin made for a held stream: the `Grip-Link rel=next` URL (after a prev-id
//! conflict, a `hint`, the link's timeout, or while paging), and the `rel=gone` notice.
//!
//! Like Pushpin (`httpsession.cpp`), a next-link request is a `GET` carrying one
//! `Grip-Last: <channel>; last-id=<id>` per channel with a prev-id; it is routed through the
//! routes table like a client request and signed with the route's Grip-Sig. It runs as its own
//! short task and posts `ev::ORIGIN` to the connection when done.

use std::cell::RefCell;
use std::rc::Rc;

use url::Url;

use super::conns::ev;
use super::worker::Worker;
use crate::hub::ConnId;
use crate::origin::client::{self as origin, FullResponse, OriginError};
use crate::proto::http1::{self, RequestHead, header_value};

/// Largest body a next-link answer may have.
const BODY_BYTES_MAX: usize = 1_000_000;

/// The result slot shared with the task running one fetch.
pub type InFlight = Rc<RefCell<Option<Result<FullResponse, FetchError>>>>;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no route for {}", crate::redact::target(.0.as_str()))]
    NoRoute(Url),
    #[error(transparent)]
    Origin(#[from] OriginError),
}

impl FetchError {
    /// Whether trying again may help (Pushpin retries any failure before data was sent).
    pub fn retryable(&self) -> bool {
        matches!(self, FetchError::Origin(_))
    }
}

/// The URL a client request was made to (`http://<Host><target>`), the base for relative links.
pub fn request_url(head: &RequestHead) -> Option<Url> {
    let host = header_value(&head.headers, "host").and_then(|h| std::str::from_utf8(h).ok())?;
    Url::parse(&format!("http://{host}{}", head.target)).ok()
}

/// Resolves a link relative to `base`.
pub fn resolve(base: &Url, link: &str) -> Option<Url> {
    base.join(link).ok()
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

/// The request for `url`, or None when no route leads there.
fn build(
    w: &Worker,
    method: &str,
    url: &Url,
    grip_last: &[(String, String)],
) -> Option<(usize, Vec<u8>, Vec<u8>)> {
    let host = host_port(url)?;
    let target = path_and_query(url);
    let route_index = w
        .settings()
        .routes
        .find(&host, &target, url.scheme() == "https", false)?;
    let settings = w.settings();
    let route = settings.routes.route(route_index);
    let mut out = Vec::with_capacity(512);
    let path = route.origin_path(&target);
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    let host_header = route.as_host.as_deref().unwrap_or(&host);
    http1::encode_header(&mut out, "Host", host_header.as_bytes());
    for (channel, last_id) in grip_last {
        let value = format!("{channel}; last-id={last_id}");
        http1::encode_header(&mut out, "Grip-Last", value.as_bytes());
    }
    if let Some(token) = w
        .settings()
        .signers
        .for_route(route_index)
        .and_then(|s| s.token())
    {
        http1::encode_header(&mut out, "Grip-Sig", token.as_bytes());
        let features = super::proxy::GRIP_FEATURES.as_bytes();
        http1::encode_header(&mut out, "Grip-Feature", features);
    }
    if method == "POST" {
        http1::encode_header(&mut out, "Content-Length", b"0");
    }
    out.extend_from_slice(b"\r\n");
    Some((route_index, host_header.as_bytes().to_vec(), out))
}

/// Starts fetching `url` for connection `id`; the result lands in the returned slot.
pub fn spawn_fetch(
    w: &Rc<Worker>,
    id: ConnId,
    url: Url,
    grip_last: Vec<(String, String)>,
) -> InFlight {
    let slot: InFlight = Rc::new(RefCell::new(None));
    let result = slot.clone();
    let w = w.clone();
    monoio::spawn(async move {
        let outcome = match build(&w, "GET", &url, &grip_last) {
            Some((route, host, request)) => {
                origin::fetch(&w, route, Some(&host), "GET", request, BODY_BYTES_MAX)
                    .await
                    .map_err(FetchError::from)
            }
            None => Err(FetchError::NoRoute(url)),
        };
        *result.borrow_mut() = Some(outcome);
        w.conns.borrow_mut().notify(id, ev::ORIGIN);
    });
    slot
}

/// Tells the origin the client went away (`Grip-Link: <url>; rel=gone`), without waiting.
pub fn spawn_gone(w: &Rc<Worker>, url: Url) {
    let w = w.clone();
    monoio::spawn(async move {
        let Some((route, host, request)) = build(&w, "POST", &url, &[]) else {
            tracing::info!(
                "gone link {}: no route",
                crate::redact::target(url.as_str())
            );
            return;
        };
        if let Err(e) = origin::fetch(&w, route, Some(&host), "POST", request, BODY_BYTES_MAX).await
        {
            tracing::info!("gone link {}: {e}", crate::redact::target(url.as_str()));
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
