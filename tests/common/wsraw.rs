//! Raw RFC 6455 client framing (sans-IO), for what a WebSocket library will not send: fragments
//! with a ping between them, invalid UTF-8, unmasked frames, floods and oversized headers.

use std::net::SocketAddr;

use super::{Client, request};

/// The sample key of RFC 6455 section 1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xa;

/// The bytes of one frame; client frames are masked unless `mask` is None.
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame from holdfast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Takes one whole frame off the front of `buf`; a masked server frame is an error.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err("holdfast sent a masked frame".into());
    }
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (usize::from(n), 2),
    };
    if buf.len() < start + len {
        return Ok(None);
    }
    let frame = Frame {
        fin: buf[0] & 0x80 != 0,
        opcode: buf[0] & 0x0f,
        payload: buf[start..start + len].to_vec(),
    };
    buf.drain(..start + len);
    Ok(Some(frame))
}

/// The next frame on a raw connection, failing after the client's read timeout.
pub fn read_frame(c: &mut Client) -> Frame {
    loop {
        match take_frame(&mut c.wire.buf) {
            Ok(Some(f)) => return f,
            Ok(None) => {}
            Err(e) => panic!("{e}"),
        }
        match c.wire.fill() {
            Ok(0) => panic!("connection closed while a frame was expected"),
            Ok(_) => {}
            Err(e) => panic!("reading a frame: {e}"),
        }
    }
}

/// Frames until (and including) a close frame.
pub fn read_until_close(c: &mut Client) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let f = read_frame(c);
        let done = f.opcode == OP_CLOSE;
        frames.push(f);
        if done {
            return frames;
        }
    }
}

/// An upgrade request; `None` leaves a header out.
pub fn upgrade_request(upgrade: &str, version: Option<&str>, key: Option<&str>) -> Vec<u8> {
    let mut headers = vec![("Upgrade", upgrade), ("Connection", "Upgrade")];
    if let Some(v) = version {
        headers.push(("Sec-WebSocket-Version", v));
    }
    if let Some(k) = key {
        headers.push(("Sec-WebSocket-Key", k));
    }
    request("GET", "/ws", &headers, b"")
}

/// A raw WebSocket to `/ws`, past its 101.
pub fn raw_open(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.send(&upgrade_request("websocket", Some("13"), Some(KEY)));
    let r = c.read_response();
    assert_eq!(
        r.status,
        101,
        "handshake refused: {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    c
}
