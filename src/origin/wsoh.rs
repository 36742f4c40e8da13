//! WebSocket-over-HTTP exchanges with the origin: one request (built by the session, see
//! `runtime::wsoh_request`) sent to the route's targets and its answer read whole. Header rules
//! follow Pushpin (see `proto::wsoh`'s module docs).

use super::client::{self, FullResponse, OriginClient, OriginError, OriginRoute};
use crate::proto::http1::header_value;
use crate::proto::wsoh;

/// The origin's answer to one request.
pub type Reply = FullResponse;

/// Whether an answer is a WebSocket-over-HTTP answer (200 with the exact content type).
pub fn is_events(reply: &Reply) -> bool {
    reply.code == 200
        && header_value(&reply.headers, "content-type") == Some(wsoh::CONTENT_TYPE.as_bytes())
}

/// Sends one request to the route's targets (in order) and reads the answer whole.
pub async fn exchange(
    origin: &OriginClient,
    route: &dyn OriginRoute,
    host: Option<&[u8]>,
    request: Vec<u8>,
) -> Result<Reply, OriginError> {
    let max = route.config().websocket.origin_body_bytes_max;
    client::fetch(origin, route, host, "POST", request, max).await
}

/// True when an error means the request never reached the origin, so sending it again cannot
/// duplicate anything (Pushpin retries exactly these).
pub fn is_retryable(e: &OriginError) -> bool {
    matches!(
        e,
        OriginError::Connect { .. } | OriginError::ConnectTimeout(_)
    )
}
