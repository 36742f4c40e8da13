//! WebSocket opening handshake (RFC 6455 4.2), server side, sans-IO.
//!
//! Owns recognising an upgrade request, validating it, computing `Sec-WebSocket-Accept` and writing
//! the 101 response head. It is a child module of `ws` (included there with `#[path]`) and its
//! public items are re-exported as `proto::ws::*`; it must not be declared in `proto/mod.rs`.
//! It does no I/O and does not choose a subprotocol: the caller (or the origin) picks one of
//! [`Handshake::protocols`]. No extension is negotiated: [`Handshake::extensions`] is informative.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use super::GUID;
use crate::proto::http1::{EncodeError, HeadWriter, Version, is_tchar};

/// What a valid upgrade request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// `Sec-WebSocket-Key`, trimmed: base64 of 16 bytes.
    pub key: String,
    /// `Sec-WebSocket-Protocol` tokens in the order offered (over all such headers).
    pub protocols: Vec<String>,
    /// `Sec-WebSocket-Extensions` entries (with their parameters), in the order offered.
    pub extensions: Vec<String>,
    /// `Sec-WebSocket-Version`: always 13 once validated.
    pub version: u8,
}

/// Why an upgrade request was refused. [`HandshakeError::status`] gives the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("websocket handshake must use GET")]
    MethodNotGet,
    #[error("websocket handshake requires HTTP/1.1")]
    NotHttp11,
    #[error("not a websocket upgrade (needs Upgrade: websocket and Connection: upgrade)")]
    NotUpgrade,
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    #[error("Sec-WebSocket-Key is not base64 of 16 bytes, or is repeated")]
    InvalidKey,
    #[error("missing Sec-WebSocket-Version")]
    MissingVersion,
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    #[error("Sec-WebSocket-Protocol holds something other than comma-separated tokens")]
    InvalidProtocol,
}

impl HandshakeError {
    /// 426 for a wrong or missing version (the caller adds `Sec-WebSocket-Version: 13`), else 400.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

/// Values of every header named `name` (case-insensitive).
fn values<'a, I>(headers: I, name: &'a str) -> impl Iterator<Item = &'a [u8]>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    headers
        .into_iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Comma-separated elements of header values, trimmed, empty ones skipped (RFC 9110 5.6.1).
fn elements<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// True when a header named `name` holds the comma-separated token `token` (case-insensitive).
fn has_token<'a, I>(headers: I, name: &'a str, token: &str) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    elements(values(headers, name)).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// True when the request asks for a WebSocket upgrade: `Upgrade` contains the token `websocket` and
/// `Connection` contains the token `upgrade`, both case-insensitive and comma-separated
/// (`Upgrade: WebSocket` is valid — Pushpin 1.36 gets this wrong).
pub fn is_upgrade_request<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> bool {
    has_token(headers.clone(), "upgrade", "websocket")
        && has_token(headers, "connection", "upgrade")
}

/// Validates an upgrade request (GET, HTTP/1.1, Sec-WebSocket-Key is base64 of 16 bytes,
/// Sec-WebSocket-Version 13). `http11` is true for HTTP/1.1 or later. The version is checked before
/// the key so that an old client gets 426 and can retry with 13.
pub fn validate_handshake<'a>(
    method: &str,
    http11: bool,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<Handshake, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if !http11 {
        return Err(HandshakeError::NotHttp11);
    }
    if !is_upgrade_request(headers.clone()) {
        return Err(HandshakeError::NotUpgrade);
    }
    let version = parse_version(values(headers.clone(), "sec-websocket-version"))?;
    let key = parse_key(values(headers.clone(), "sec-websocket-key"))?;
    let protocols = parse_protocols(values(headers.clone(), "sec-websocket-protocol"))?;
    let extensions = elements(values(headers, "sec-websocket-extensions"))
        .filter_map(|e| std::str::from_utf8(e).ok())
        .map(str::to_owned)
        .collect();
    Ok(Handshake {
        key,
        protocols,
        extensions,
        version,
    })
}

/// Exactly one `Sec-WebSocket-Version`, equal to 13.
fn parse_version<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<u8, HandshakeError> {
    let value = values.next().ok_or(HandshakeError::MissingVersion)?;
    if value.trim_ascii() != b"13" || values.next().is_some() {
        return Err(HandshakeError::UnsupportedVersion);
    }
    Ok(13)
}

/// Exactly one `Sec-WebSocket-Key`, base64 (with padding) of exactly 16 bytes.
fn parse_key<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<String, HandshakeError> {
    let value = values
        .next()
        .ok_or(HandshakeError::MissingKey)?
        .trim_ascii();
    if values.next().is_some() || value.len() != 24 {
        return Err(HandshakeError::InvalidKey);
    }
    // decode_slice wants room for its estimate (18 bytes for 24 characters).
    let mut nonce = [0u8; 18];
    match STANDARD.decode_slice(value, &mut nonce) {
        Ok(16) => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    // Valid base64 is ASCII, so this never fails.
    let key = std::str::from_utf8(value).map_err(|_| HandshakeError::InvalidKey)?;
    Ok(key.to_owned())
}

/// Protocol names: HTTP tokens (RFC 6455 4.1, RFC 9110 5.6.2).
fn parse_protocols<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<String>, HandshakeError> {
    elements(values)
        .map(|e| match std::str::from_utf8(e) {
            Ok(token) if token.bytes().all(is_tchar) => Ok(token.to_owned()),
            _ => Err(HandshakeError::InvalidProtocol),
        })
        .collect()
}

/// base64(sha1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(GUID.as_bytes())
        .finalize();
    STANDARD.encode(digest)
}

/// The 101 response head, ending with the blank line: Upgrade, Connection, Sec-WebSocket-Accept,
/// optional Sec-WebSocket-Protocol, then `extra` headers (the origin's), through the validating
/// encoder: a name or value it refuses fails the whole head.
pub fn response_101(
    accept: &str,
    protocol: Option<&str>,
    extra: &[(&str, &[u8])],
) -> Result<Vec<u8>, EncodeError> {
    let extra_bytes: usize = extra.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut out = HeadWriter::response(Version::Http11, 101, "", 160 + extra_bytes);
    out.header("Upgrade", b"websocket");
    out.header("Connection", b"Upgrade");
    out.header("Sec-WebSocket-Accept", accept.as_bytes());
    if let Some(protocol) = protocol {
        out.header("Sec-WebSocket-Protocol", protocol.as_bytes());
    }
    for (name, value) in extra {
        out.header(name, value);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn request<'a>(extra: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"server.example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", b"13"),
        ];
        for (name, _) in extra {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        headers.extend(extra.iter().copied().filter(|(_, v)| !v.is_empty()));
        headers
    }

    fn validate(headers: &[(&str, &[u8])]) -> Result<Handshake, HandshakeError> {
        validate_handshake("GET", true, headers.iter().copied())
    }

    #[test]
    fn rfc_accept_key() {
        let key = std::str::from_utf8(KEY).unwrap();
        assert_eq!(accept_key(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn valid_request() {
        let headers = request(&[
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            (
                "Sec-WebSocket-Extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
        ]);
        let hs = validate(&headers).unwrap();
        assert_eq!(hs.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(hs.protocols, ["chat", "superchat"]);
        assert_eq!(
            hs.extensions,
            ["permessage-deflate; client_max_window_bits"]
        );
        assert_eq!(hs.version, 13);
    }

    #[test]
    fn mixed_case_tokens_and_lists_are_accepted() {
        let headers = request(&[
            ("upgrade", b"WebSocket"),
            ("CONNECTION", b"keep-alive, Upgrade"),
            ("sec-websocket-key", b"  dGhlIHNhbXBsZSBub25jZQ== "),
        ]);
        assert!(is_upgrade_request(headers.iter().copied()));
        assert!(validate(&headers).is_ok());
        // Tokens spread over repeated headers.
        let mut headers = request(&[("Connection", b"keep-alive")]);
        headers.push(("Connection", b"upgrade"));
        headers.push(("Sec-WebSocket-Protocol", b"a"));
        headers.push(("Sec-WebSocket-Protocol", b" b ,,c"));
        assert_eq!(validate(&headers).unwrap().protocols, ["a", "b", "c"]);
    }

    #[test]
    fn not_upgrade_requests() {
        let cases: [&[(&str, &[u8])]; 5] = [
            &[("Connection", b"keep-alive")],
            &[("Upgrade", b"h2c")],
            &[("Upgrade", b"websockets")],
            &[("Connection", b"upgraded")],
            &[("Upgrade", b"")],
        ];
        for extra in cases {
            let headers = request(extra);
            assert!(!is_upgrade_request(headers.iter().copied()), "{extra:?}");
            assert_eq!(validate(&headers), Err(HandshakeError::NotUpgrade));
        }
        let both = [
            ("Upgrade", &b"h2c, websocket"[..]),
            ("Connection", b"Upgrade"),
        ];
        assert!(is_upgrade_request(both.iter().copied()));
    }

    #[test]
    fn method_and_http_version() {
        let headers = request(&[]);
        let post = validate_handshake("POST", true, headers.iter().copied());
        assert_eq!(post, Err(HandshakeError::MethodNotGet));
        assert_eq!(post.unwrap_err().status(), 400);
        let lower = validate_handshake("get", true, headers.iter().copied());
        assert_eq!(lower, Err(HandshakeError::MethodNotGet));
        let http10 = validate_handshake("GET", false, headers.iter().copied());
        assert_eq!(http10, Err(HandshakeError::NotHttp11));
    }

    #[test]
    fn key_errors() {
        let missing = validate(&request(&[("Sec-WebSocket-Key", b"")]));
        assert_eq!(missing, Err(HandshakeError::MissingKey));
        assert_eq!(missing.unwrap_err().status(), 400);
        // 22 characters and "==" is exactly 16 bytes.
        let valid = request(&[("Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAAAA==")]);
        assert!(validate(&valid).is_ok());
        let bad: [&[u8]; 5] = [
            b"AAAAAAAAAAAAAAAAAAAAAAAA", // 18 bytes
            b"AAAAAAAAAAAAAAAAAAAA",     // 15 bytes
            b"dGhlIHNhbXBsZSBub25jZQ",   // unpadded
            b"dGhlIHNhbXBsZSBub25jZQ=!", // not base64
            b"dGhlIHNhbXBsZSBub25jZR==", // non-canonical trailing bits
        ];
        for key in bad {
            let r = validate(&request(&[("Sec-WebSocket-Key", key)]));
            assert_eq!(r, Err(HandshakeError::InvalidKey), "{key:?}");
        }
        let mut twice = request(&[]);
        twice.push(("Sec-WebSocket-Key", KEY));
        assert_eq!(validate(&twice), Err(HandshakeError::InvalidKey));
    }

    #[test]
    fn version_errors_are_426() {
        let v8 = validate(&request(&[("Sec-WebSocket-Version", b"8")]));
        assert_eq!(v8, Err(HandshakeError::UnsupportedVersion));
        assert_eq!(v8.unwrap_err().status(), 426);
        let missing = validate(&request(&[("Sec-WebSocket-Version", b"")]));
        assert_eq!(missing, Err(HandshakeError::MissingVersion));
        assert_eq!(missing.unwrap_err().status(), 426);
        let list = validate(&request(&[("Sec-WebSocket-Version", b"13, 8")]));
        assert_eq!(list, Err(HandshakeError::UnsupportedVersion));
        // Version is checked before the key.
        let both = request(&[("Sec-WebSocket-Version", b"8"), ("Sec-WebSocket-Key", b"")]);
        assert_eq!(validate(&both), Err(HandshakeError::UnsupportedVersion));
    }

    #[test]
    fn protocols_must_be_tokens() {
        for value in [&b"chat, super chat"[..], b"a;b", b"\xff", b"x/y"] {
            let r = validate(&request(&[("Sec-WebSocket-Protocol", value)]));
            assert_eq!(r, Err(HandshakeError::InvalidProtocol), "{value:?}");
        }
    }

    #[test]
    fn response_head() {
        let head = response_101("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, &[]).unwrap();
        let want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(std::str::from_utf8(&head).unwrap(), want);

        let extra: [(&str, &[u8]); 2] = [("Set-Cookie", b"a=b"), ("X-Ok", b"1")];
        let head = response_101("abc=", Some("chat"), &extra).unwrap();
        let want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\
                    Sec-WebSocket-Protocol: chat\r\nSet-Cookie: a=b\r\nX-Ok: 1\r\n\r\n";
        assert_eq!(std::str::from_utf8(&head).unwrap(), want);

        let bad: [(&str, &[u8]); 1] = [("X-Bad", b"x\r\nInjected: 1")];
        assert!(response_101("abc=", None, &bad).is_err());
    }

    #[test]
    fn status_codes() {
        use HandshakeError::*;
        for e in [
            MethodNotGet,
            NotHttp11,
            NotUpgrade,
            MissingKey,
            InvalidKey,
            InvalidProtocol,
        ] {
            assert_eq!(e.status(), 400, "{e}");
        }
        assert_eq!(MissingVersion.status(), 426);
        assert_eq!(UnsupportedVersion.status(), 426);
    }
}
