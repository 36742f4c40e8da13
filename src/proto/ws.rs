//! WebSocket (RFC 6455), server side, sans-IO.
//!
//! Owns the frame codec ([`decode_header`], [`encode_frame`], [`apply_mask`]), close payloads, and
//! the per-connection [`Session`] that reassembles client messages and enforces the protocol rules:
//! masking, RSV bits, reserved opcodes, control frame limits, fragmentation order, UTF-8 of text
//! (checked incrementally, failing fast) and the message size limit. The opening handshake lives in
//! `ws_handshake.rs` and is re-exported from here.
//!
//! It does no I/O: nothing here touches a socket, a timer or an executor. Callers hand in bytes and
//! get back what was parsed and how much was consumed, or "need more". No extension is negotiated,
//! so the RSV bits of every frame must be 0.

#[path = "ws_handshake.rs"]
mod handshake;

pub use handshake::{
    Handshake, HandshakeError, accept_key, is_upgrade_request, response_101, validate_handshake,
};

/// Appended to `Sec-WebSocket-Key` before hashing to form `Sec-WebSocket-Accept` (RFC 6455 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload of a control frame (RFC 6455 5.5).
pub const CONTROL_PAYLOAD_MAX: usize = 125;
/// Largest close reason: a control payload minus the 2-byte status code.
pub const CLOSE_REASON_BYTES_MAX: usize = CONTROL_PAYLOAD_MAX - 2;
/// Largest frame header: 2 bytes, a 64-bit extended length and a 4-byte masking key.
pub const HEADER_BYTES_MAX: usize = 14;
/// The most bytes [`Session::decode`] can leave unconsumed at the front of the caller's buffer (a
/// control frame with a non-minimal 64-bit length): the caller's read buffer must hold at least this.
pub const PENDING_BYTES_MAX: usize = HEADER_BYTES_MAX + CONTROL_PAYLOAD_MAX;
/// Default for [`SessionLimits::message_bytes_max`]: 1 MiB.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// The endpoint is going away (server shutdown, browser leaving the page).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The peer broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text message (or close reason) was not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Generic policy violation.
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// A message was larger than the configured limit.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// The server hit an unexpected condition.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Frame opcode (RFC 6455 5.2). Reserved opcodes have no variant: decoding them is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode for the low 4 bits of a frame's first byte; `None` for the reserved ones.
    pub fn from_u8(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: never fragmented, payload at most 125 bytes.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header. `len` is the payload length; the payload follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low 3 bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Protocol violation: the close code to send and a reason (for the close frame and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("websocket protocol error {code}: {reason}")]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

impl WsError {
    const fn protocol(reason: &'static str) -> WsError {
        WsError {
            code: CLOSE_PROTOCOL_ERROR,
            reason,
        }
    }

    const fn invalid_payload(reason: &'static str) -> WsError {
        WsError {
            code: CLOSE_INVALID_PAYLOAD,
            reason,
        }
    }
}

const INVALID_UTF8: WsError = WsError::invalid_payload("text message is not valid UTF-8");

/// Parses a frame header; Ok(None) = need more bytes; Err for reserved opcodes (close 1002) and for
/// a 64-bit length with its most significant bit set. On success also returns the header's length
/// in bytes. Fails as early as the first byte for a reserved opcode. Non-minimal length encodings
/// are accepted (the RFC puts that MUST on the sender; rejecting them buys nothing).
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, WsError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(WsError::protocol("reserved opcode"))?;
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let (len, len_end) = match b1 & 0x7F {
        126 => {
            let Some(&[hi, lo]) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([hi, lo])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(WsError::protocol(
                    "64-bit payload length has its top bit set",
                ));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let (mask, header_len) = if b1 & 0x80 == 0 {
        (None, len_end)
    } else {
        let Some(&[k0, k1, k2, k3]) = buf.get(len_end..len_end + 4) else {
            return Ok(None);
        };
        (Some([k0, k1, k2, k3]), len_end + 4)
    };
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode,
        mask,
        len,
    };
    Ok(Some((header, header_len)))
}

/// Length in bytes of the header for a payload of `len` bytes, masked or not.
pub fn header_len(len: u64, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked { base + 4 } else { base }
}

/// Appends a frame header (minimal length encoding). With `encode_frame` this lets a caller write
/// the header into a small buffer and send a shared payload next to it without copying it.
pub fn encode_header(out: &mut Vec<u8>, header: &FrameHeader) {
    debug_assert!(header.rsv <= 0x7, "rsv is 3 bits");
    let fin = if header.fin { 0x80 } else { 0 };
    out.push(fin | (header.rsv & 0x7) << 4 | header.opcode.as_u8());
    let mask_bit = if header.mask.is_some() { 0x80 } else { 0 };
    match header.len {
        // The match arms bound `len`, so the narrowing casts are exact.
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = header.mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with the mask; `offset` is the position of `data[0]` within the payload (for payloads
/// processed in pieces). The bulk is done 8 bytes at a time on `u64` words (which the compiler
/// also vectorises); only the tail of fewer than 8 bytes goes byte by byte.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    // key[i] is now the mask byte for data[i], data[i + 4], ...
    key.rotate_left(offset % 4);
    let [k0, k1, k2, k3] = key;
    let word = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Each chunk is a multiple of 4 bytes long, so the tail starts at mask phase 0 again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Appends a frame (server → client: unmasked when mask is None; masked when Some, for a client
/// role / tests). RSV bits are 0.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let len = payload.len() as u64;
    out.reserve(header_len(len, mask.is_some()) + payload.len());
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        len,
    };
    encode_header(out, &header);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// A complete close frame payload: 2-byte code + UTF-8 reason (reason truncated to fit 123 bytes on
/// a char boundary). Appends the payload only, not a frame header: see [`encode_close_frame`].
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

/// Appends a whole close frame: header and the [`encode_close`] payload, without a temporary buffer.
pub fn encode_close_frame(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    let reason = truncate_reason(reason);
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: Opcode::Close,
        mask,
        len: 2 + reason.len() as u64,
    };
    encode_header(out, &header);
    let start = out.len();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// The longest prefix of `reason` that fits a close payload and ends on a char boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Close codes a peer may send (RFC 6455 7.4 + registry: 1000-1003, 1007-1011 (and 1012-1014),
/// 3000-4999). 1004 is reserved, 1005/1006/1015 must never be sent, 1016-2999 are unassigned.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What the server-side session produced from client bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Valid UTF-8 (checked as it arrived).
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// `code` is None for an empty close payload.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// Per-session limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest message (sum of its fragments' payloads) in bytes; more is closed with 1009.
    /// Default [`MESSAGE_BYTES_MAX_DEFAULT`] (1 MiB).
    pub message_bytes_max: usize,
    /// Frames must be masked (true for a server: RFC 6455 5.1); an unmasked one is closed with 1002.
    pub require_mask: bool,
}

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            require_mask: true,
        }
    }
}

/// The kind of the data message being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// Progress through one data frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PayloadProgress {
    /// Payload bytes not yet consumed.
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Position within the payload modulo 4: the mask phase of the next byte.
    phase: u8,
    fin: bool,
}

/// Frame-level state of a [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: the next byte starts a frame header.
    /// call: decode / next: Payload (data frame header consumed, payload pending),
    /// Idle (control frame or whole data frame consumed), Closed (close frame or error)
    Idle,
    /// Inside a data frame's payload, which is consumed as it arrives.
    /// call: decode / next: Payload (part consumed), Idle (payload complete), Closed (error)
    Payload(PayloadProgress),
    /// A close frame was received or a protocol error was returned: decode consumes nothing more.
    Closed,
}

/// The last bytes of a text message that end inside a UTF-8 sequence: at most 3, kept inline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Utf8Carry {
    bytes: [u8; 3],
    len: u8,
}

impl Utf8Carry {
    /// Validates the next piece of a text message. Fails as soon as a byte makes the text invalid;
    /// an incomplete but so far valid sequence at the end is carried into the next piece.
    fn feed(&mut self, data: &[u8]) -> Result<(), WsError> {
        let data = self.complete(data)?;
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the input ends inside a sequence that is valid so far (std
            // checks the second byte's range, e.g. rejects E0 80 and F4 90, before saying so).
            Err(e) if e.error_len().is_none() => {
                self.store(&data[e.valid_up_to()..]);
                Ok(())
            }
            Err(_) => Err(INVALID_UTF8),
        }
    }

    /// Finishes the carried sequence with the first bytes of `data`; returns the rest of `data`.
    fn complete<'d>(&mut self, data: &'d [u8]) -> Result<&'d [u8], WsError> {
        let have = usize::from(self.len);
        let Some(&lead) = self.bytes[..have].first() else {
            return Ok(data);
        };
        // The carry starts with a lead byte std accepted, so the width is 2, 3 or 4.
        let width: usize = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        let take = width.saturating_sub(have).min(data.len());
        let mut seq = [0u8; 4];
        seq[..have].copy_from_slice(&self.bytes[..have]);
        seq[have..have + take].copy_from_slice(&data[..take]);
        let seq = &seq[..have + take];
        match std::str::from_utf8(seq) {
            Ok(_) => self.len = 0,
            // Still short (only when `data` ran out): carry the longer prefix.
            Err(e) if e.error_len().is_none() => self.store(seq),
            Err(_) => return Err(INVALID_UTF8),
        }
        Ok(&data[take..])
    }

    fn store(&mut self, tail: &[u8]) {
        debug_assert!(tail.len() <= self.bytes.len());
        let len = tail.len().min(self.bytes.len());
        self.bytes[..len].copy_from_slice(&tail[..len]);
        self.len = len as u8;
    }
}

/// Reassembles messages from client frames and enforces RFC 6455 (see the module doc). Small: no
/// buffers are preallocated, the partial message `Vec` is unallocated between messages, and the
/// UTF-8 carry is inline. Data frame payloads are consumed piecewise as they arrive, so the
/// caller's read buffer never has to hold a whole frame; control frames are consumed whole.
#[derive(Debug, Clone)]
pub struct Session {
    limits: SessionLimits,
    state: State,
    /// Kind of the message being reassembled; None between messages.
    kind: Option<DataKind>,
    utf8: Utf8Carry,
    /// Payload of the message so far; empty and unallocated between messages.
    message: Vec<u8>,
}

impl Session {
    /// A session waiting for the first frame.
    pub fn new(limits: SessionLimits) -> Session {
        Session {
            limits,
            state: State::Idle,
            kind: None,
            utf8: Utf8Carry::default(),
            message: Vec::new(),
        }
    }

    /// Consumes bytes from the front of `buf` (unmasking in place). Returns the bytes consumed and
    /// at most one complete message. Call again while it consumes > 0. A control frame that has not
    /// fully arrived is not consumed (the caller keeps the bytes, at most [`PENDING_BYTES_MAX`]); a
    /// data frame's payload is consumed piecewise once its header has arrived. After a close frame
    /// or an error the session is closed and consumes nothing more.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<(usize, Option<Message>), WsError> {
        let result = match self.state {
            State::Closed => return Ok((0, None)),
            State::Idle => self.decode_frame(buf),
            State::Payload(progress) => self.decode_payload(progress, buf),
        };
        if result.is_err() {
            self.close();
        }
        result
    }

    /// True once a close frame was received or a protocol error returned.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True while a data message has started but not finished.
    pub fn in_message(&self) -> bool {
        self.kind.is_some()
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.kind = None;
        self.utf8 = Utf8Carry::default();
        self.message = Vec::new();
    }

    fn decode_frame(&mut self, buf: &mut [u8]) -> Result<(usize, Option<Message>), WsError> {
        debug_assert_eq!(self.state, State::Idle);
        let Some((header, header_len)) = decode_header(buf)? else {
            return Ok((0, None));
        };
        self.check_header(&header)?;
        if header.opcode.is_control() {
            return self.decode_control(&header, header_len, buf);
        }
        let progress = self.start_data_frame(&header)?;
        let (n, message) = self.decode_payload(progress, &mut buf[header_len..])?;
        Ok((header_len + n, message))
    }

    /// Rules that need only the header, checked before waiting for any payload.
    fn check_header(&self, header: &FrameHeader) -> Result<(), WsError> {
        if header.rsv != 0 {
            return Err(WsError::protocol(
                "RSV bits set without a negotiated extension",
            ));
        }
        if self.limits.require_mask && header.mask.is_none() {
            return Err(WsError::protocol("client frame is not masked"));
        }
        if header.opcode.is_control() {
            if !header.fin {
                return Err(WsError::protocol("fragmented control frame"));
            }
            if header.len > CONTROL_PAYLOAD_MAX as u64 {
                return Err(WsError::protocol("control frame payload over 125 bytes"));
            }
        }
        Ok(())
    }

    /// Checks fragmentation order and the size limit, and starts the message on its first frame.
    fn start_data_frame(&mut self, header: &FrameHeader) -> Result<PayloadProgress, WsError> {
        let starts = match header.opcode {
            Opcode::Text => Some(DataKind::Text),
            Opcode::Binary => Some(DataKind::Binary),
            _ => None,
        };
        match (starts, self.kind) {
            (None, None) => {
                return Err(WsError::protocol("continuation without a started message"));
            }
            (Some(_), Some(_)) => {
                return Err(WsError::protocol(
                    "new data frame inside a fragmented message",
                ));
            }
            (None, Some(_)) | (Some(_), None) => {}
        }
        let total = (self.message.len() as u64).saturating_add(header.len);
        if total > self.limits.message_bytes_max as u64 {
            return Err(WsError {
                code: CLOSE_MESSAGE_TOO_BIG,
                reason: "message over the size limit",
            });
        }
        if starts.is_some() {
            self.kind = starts;
        }
        Ok(PayloadProgress {
            remaining: header.len,
            mask: header.mask,
            phase: 0,
            fin: header.fin,
        })
    }

    /// Consumes as much of the current data frame's payload as `buf` holds.
    fn decode_payload(
        &mut self,
        mut progress: PayloadProgress,
        buf: &mut [u8],
    ) -> Result<(usize, Option<Message>), WsError> {
        let n = usize::try_from(progress.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let chunk = &mut buf[..n];
        if let Some(key) = progress.mask {
            apply_mask(chunk, key, usize::from(progress.phase));
        }
        if self.kind == Some(DataKind::Text) {
            self.utf8.feed(chunk)?;
        }
        self.message.extend_from_slice(chunk);
        progress.remaining -= n as u64;
        progress.phase = ((usize::from(progress.phase) + n) % 4) as u8;
        if progress.remaining > 0 {
            self.state = State::Payload(progress);
            return Ok((n, None));
        }
        self.state = State::Idle;
        if !progress.fin {
            return Ok((n, None));
        }
        Ok((n, Some(self.finish_message()?)))
    }

    fn finish_message(&mut self) -> Result<Message, WsError> {
        let payload = std::mem::take(&mut self.message);
        match self.kind.take() {
            Some(DataKind::Text) if self.utf8.len != 0 => Err(WsError::invalid_payload(
                "text message ends inside a UTF-8 sequence",
            )),
            Some(DataKind::Text) => Ok(Message::Text(payload)),
            Some(DataKind::Binary) => Ok(Message::Binary(payload)),
            // Unreachable: start_data_frame sets `kind` for every data frame.
            None => Err(WsError {
                code: CLOSE_INTERNAL_ERROR,
                reason: "message finished without a start",
            }),
        }
    }

    /// Consumes a whole control frame, or nothing if it has not fully arrived.
    fn decode_control(
        &mut self,
        header: &FrameHeader,
        header_len: usize,
        buf: &mut [u8],
    ) -> Result<(usize, Option<Message>), WsError> {
        debug_assert!(header.opcode.is_control() && header.len <= CONTROL_PAYLOAD_MAX as u64);
        let end = header_len + header.len as usize;
        let Some(payload) = buf.get_mut(header_len..end) else {
            return Ok((0, None));
        };
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        let message = match header.opcode {
            Opcode::Ping => Message::Ping(payload.to_vec()),
            Opcode::Pong => Message::Pong(payload.to_vec()),
            _ => {
                let close = parse_close(payload)?;
                self.close();
                close
            }
        };
        Ok((end, Some(message)))
    }
}

/// Parses a close payload: empty, or a valid code and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Message, WsError> {
    match payload {
        [] => Ok(Message::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(WsError::protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WsError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| WsError::invalid_payload("close reason is not valid UTF-8"))?;
            Ok(Message::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn server() -> Session {
        Session::new(SessionLimits::default())
    }

    fn unmasked_session() -> Session {
        Session::new(SessionLimits {
            require_mask: false,
            ..SessionLimits::default()
        })
    }

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, opcode, payload, Some(KEY));
        out
    }

    /// Feeds `bytes` as the runtime would: decode while it consumes, keep the rest.
    fn drive(session: &mut Session, bytes: &[u8]) -> Result<(Vec<Message>, usize), WsError> {
        let mut buf = bytes.to_vec();
        let mut pos = 0;
        let mut messages = Vec::new();
        loop {
            let (n, message) = session.decode(&mut buf[pos..])?;
            pos += n;
            messages.extend(message);
            if n == 0 {
                return Ok((messages, pos));
            }
        }
    }

    /// Feeds `bytes` in pieces of `piece` bytes through a caller-side buffer.
    fn drive_in_pieces(
        session: &mut Session,
        bytes: &[u8],
        piece: usize,
    ) -> Result<Vec<Message>, WsError> {
        let mut pending = Vec::new();
        let mut messages = Vec::new();
        for chunk in bytes.chunks(piece) {
            pending.extend_from_slice(chunk);
            let (got, used) = drive(session, &pending)?;
            messages.extend(got);
            pending.drain(..used);
        }
        assert!(pending.is_empty(), "{} bytes left over", pending.len());
        Ok(messages)
    }

    fn decode_all(session: &mut Session, bytes: &[u8]) -> Result<Vec<Message>, WsError> {
        let (messages, used) = drive(session, bytes)?;
        assert_eq!(used, bytes.len());
        Ok(messages)
    }

    fn err_code(session: &mut Session, bytes: &[u8]) -> u16 {
        match drive(session, bytes) {
            Err(e) => e.code,
            Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }

    fn text(s: &str) -> Message {
        Message::Text(s.as_bytes().to_vec())
    }

    // RFC 6455 5.7 examples, byte for byte.

    #[test]
    fn rfc_single_frame_unmasked_text() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Text, b"Hello", None);
        assert_eq!(out, wire);
        let msgs = decode_all(&mut unmasked_session(), &wire).unwrap();
        assert_eq!(msgs, [text("Hello")]);
        // A server refuses it: client frames must be masked.
        assert_eq!(err_code(&mut server(), &wire), 1002);
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(frame(true, Opcode::Text, b"Hello"), wire);
        assert_eq!(decode_all(&mut server(), &wire).unwrap(), [text("Hello")]);
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let mut out = Vec::new();
        encode_frame(&mut out, false, Opcode::Text, b"Hel", None);
        assert_eq!(out, first);
        out.clear();
        encode_frame(&mut out, true, Opcode::Continuation, b"lo", None);
        assert_eq!(out, second);
        let mut s = unmasked_session();
        assert_eq!(s.decode(&mut first.clone()).unwrap(), (5, None));
        assert!(s.in_message());
        assert_eq!(
            s.decode(&mut second.clone()).unwrap(),
            (4, Some(text("Hello")))
        );
        assert!(!s.in_message());
    }

    #[test]
    fn rfc_ping_and_masked_pong() {
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Ping, b"Hello", None);
        assert_eq!(out, ping);
        let msgs = decode_all(&mut unmasked_session(), &ping).unwrap();
        assert_eq!(msgs, [Message::Ping(b"Hello".to_vec())]);
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(frame(true, Opcode::Pong, b"Hello"), pong);
        let msgs = decode_all(&mut server(), &pong).unwrap();
        assert_eq!(msgs, [Message::Pong(b"Hello".to_vec())]);
    }

    #[test]
    fn rfc_256_byte_binary_uses_16_bit_length() {
        let payload: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Binary, &payload, None);
        assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out[4..], payload[..]);
        let msgs = decode_all(&mut unmasked_session(), &out).unwrap();
        assert_eq!(msgs, [Message::Binary(payload)]);
    }

    #[test]
    fn rfc_64k_binary_uses_64_bit_length() {
        let payload: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Binary, &payload, None);
        let head = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        assert_eq!(out[..10], head);
        assert_eq!(out.len(), 10 + 65536);
        let msgs = decode_all(&mut unmasked_session(), &out).unwrap();
        assert_eq!(msgs, [Message::Binary(payload)]);
    }

    #[test]
    fn header_round_trip_all_length_forms() {
        let sizes = [0, 1, 100, 125, 126, 127, 200, 65535, 65536, 70000];
        let opcodes = [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ];
        for &size in &sizes {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for &opcode in &opcodes {
                for mask in [None, Some(KEY), Some([1, 2, 3, 4])] {
                    for fin in [true, false] {
                        let mut out = Vec::new();
                        encode_frame(&mut out, fin, opcode, &payload, mask);
                        let (h, hl) = decode_header(&out).unwrap().unwrap();
                        let want = FrameHeader {
                            fin,
                            rsv: 0,
                            opcode,
                            mask,
                            len: size as u64,
                        };
                        assert_eq!(h, want);
                        assert_eq!(hl, header_len(size as u64, mask.is_some()));
                        assert_eq!(out.len(), hl + size);
                        let body = &mut out[hl..];
                        if let Some(key) = mask {
                            apply_mask(body, key, 0);
                        }
                        assert_eq!(body, &payload[..]);
                        // Every strict prefix of the header needs more bytes.
                        for cut in 0..hl {
                            assert_eq!(decode_header(&out[..cut]), Ok(None));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn header_round_trip_large_lengths_and_rsv() {
        for len in [65536u64, 1 << 32, (1 << 63) - 1] {
            for rsv in 0..8 {
                let h = FrameHeader {
                    fin: true,
                    rsv,
                    opcode: Opcode::Binary,
                    mask: Some(KEY),
                    len,
                };
                let mut out = Vec::new();
                encode_header(&mut out, &h);
                assert_eq!(decode_header(&out), Ok(Some((h, 14))));
            }
        }
    }

    #[test]
    fn header_errors() {
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            // Detected from the first byte alone.
            let err = decode_header(&[0x80 | op]).unwrap_err();
            assert_eq!(err.code, 1002);
        }
        let mut top_bit = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        top_bit.extend_from_slice(&KEY);
        assert_eq!(decode_header(&top_bit).unwrap_err().code, 1002);
        // Non-minimal length encodings are accepted.
        let (h, hl) = decode_header(&[0x82, 0x7E, 0x00, 0x05]).unwrap().unwrap();
        assert_eq!((h.len, hl), (5, 4));
    }

    fn mask_reference(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn apply_mask_matches_bytewise_reference() {
        let key = [0xA1, 0x5B, 0x0C, 0xF7];
        for offset in 0..8 {
            for len in 0..70 {
                let data: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                mask_reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
                // Unaligned start within a larger buffer too.
                let mut big = vec![0u8; len + 3];
                big[3..].copy_from_slice(&data);
                apply_mask(&mut big[3..], key, offset);
                assert_eq!(big[3..], slow[..]);
            }
        }
    }

    #[test]
    fn apply_mask_in_pieces_equals_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, KEY, 0);
        for split in [1, 3, 5, 8, 13, 500] {
            let mut pieces = data.clone();
            let mut pos = 0;
            while pos < pieces.len() {
                let end = (pos + split).min(pieces.len());
                apply_mask(&mut pieces[pos..end], KEY, pos);
                pos = end;
            }
            assert_eq!(pieces, whole, "split {split}");
        }
    }

    #[test]
    fn fragmented_message_with_interleaved_ping() {
        let mut wire = frame(false, Opcode::Text, b"Hel");
        wire.extend(frame(true, Opcode::Ping, b"are you there"));
        wire.extend(frame(false, Opcode::Continuation, b""));
        wire.extend(frame(true, Opcode::Pong, b""));
        wire.extend(frame(true, Opcode::Continuation, b"lo"));
        wire.extend(frame(true, Opcode::Binary, &[0, 1, 2]));
        let want = vec![
            Message::Ping(b"are you there".to_vec()),
            Message::Pong(Vec::new()),
            text("Hello"),
            Message::Binary(vec![0, 1, 2]),
        ];
        assert_eq!(decode_all(&mut server(), &wire).unwrap(), want);
        for piece in [1, 2, 3, 7, 64] {
            assert_eq!(drive_in_pieces(&mut server(), &wire, piece).unwrap(), want);
        }
    }

    #[test]
    fn large_frame_payload_is_consumed_piecewise() {
        let payload = vec![b'x'; 100_000];
        let wire = frame(true, Opcode::Text, &payload);
        let mut s = server();
        let mut buf = wire[..1000].to_vec();
        // Header (14 bytes) and the 986 payload bytes present are consumed.
        assert_eq!(s.decode(&mut buf).unwrap(), (1000, None));
        assert_eq!(s.decode(&mut []).unwrap(), (0, None));
        let mut rest = wire[1000..].to_vec();
        assert_eq!(
            s.decode(&mut rest).unwrap(),
            (wire.len() - 1000, Some(text(&"x".repeat(100_000))))
        );
    }

    #[test]
    fn incomplete_control_frame_is_not_consumed() {
        let wire = frame(true, Opcode::Ping, b"ping payload");
        let mut s = server();
        for cut in 0..wire.len() {
            let mut buf = wire[..cut].to_vec();
            assert_eq!(s.decode(&mut buf).unwrap(), (0, None), "cut {cut}");
            assert_eq!(buf, wire[..cut], "left masked");
        }
        let msgs = decode_all(&mut s, &wire).unwrap();
        assert_eq!(msgs, [Message::Ping(b"ping payload".to_vec())]);
    }

    #[test]
    fn protocol_errors_and_their_codes() {
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, true, Opcode::Binary, b"x", None);
        assert_eq!(err_code(&mut server(), &unmasked), 1002);

        for rsv in [1u8, 2, 4, 7] {
            let mut wire = frame(true, Opcode::Text, b"x");
            wire[0] |= rsv << 4;
            assert_eq!(err_code(&mut server(), &wire), 1002, "rsv {rsv}");
        }
        for op in [3u8, 7, 11, 15] {
            let mut wire = frame(true, Opcode::Binary, b"x");
            wire[0] = 0x80 | op;
            assert_eq!(err_code(&mut server(), &wire), 1002, "opcode {op}");
        }
        for op in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
            assert_eq!(err_code(&mut server(), &frame(false, op, b"")), 1002);
            assert_eq!(
                err_code(&mut server(), &frame(true, op, &[b'a'; 126])),
                1002
            );
        }
        let lone = frame(true, Opcode::Continuation, b"x");
        assert_eq!(err_code(&mut server(), &lone), 1002);

        let mut nested = frame(false, Opcode::Text, b"a");
        nested.extend(frame(true, Opcode::Binary, b"b"));
        assert_eq!(err_code(&mut server(), &nested), 1002);
        let mut nested = frame(false, Opcode::Binary, b"a");
        nested.extend(frame(true, Opcode::Text, b"b"));
        assert_eq!(err_code(&mut server(), &nested), 1002);
    }

    #[test]
    fn control_frame_of_125_bytes_is_fine() {
        let wire = frame(true, Opcode::Ping, &[7; 125]);
        let msgs = decode_all(&mut server(), &wire).unwrap();
        assert_eq!(msgs, [Message::Ping(vec![7; 125])]);
        // The same with a non-minimal 64-bit length: the largest frame decode waits for whole.
        let mut wire = vec![0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 125];
        wire.extend_from_slice(&KEY);
        let start = wire.len();
        wire.extend_from_slice(&[7; 125]);
        apply_mask(&mut wire[start..], KEY, 0);
        assert_eq!(wire.len(), PENDING_BYTES_MAX);
        let mut s = server();
        assert_eq!(
            s.decode(&mut wire[..PENDING_BYTES_MAX - 1].to_vec()),
            Ok((0, None))
        );
        assert_eq!(
            decode_all(&mut s, &wire).unwrap(),
            [Message::Ping(vec![7; 125])]
        );
    }

    #[test]
    fn session_is_closed_after_an_error() {
        let mut s = server();
        let mut lone = frame(true, Opcode::Continuation, b"x");
        assert!(s.decode(&mut lone).is_err());
        assert!(s.is_closed());
        let mut good = frame(true, Opcode::Text, b"x");
        assert_eq!(s.decode(&mut good).unwrap(), (0, None));
    }

    fn limited(max: usize) -> Session {
        Session::new(SessionLimits {
            message_bytes_max: max,
            require_mask: true,
        })
    }

    #[test]
    fn message_size_limit() {
        let at_limit = frame(true, Opcode::Binary, &[1; 100]);
        let msgs = decode_all(&mut limited(100), &at_limit).unwrap();
        assert_eq!(msgs, [Message::Binary(vec![1; 100])]);

        let over = frame(true, Opcode::Binary, &[1; 101]);
        assert_eq!(err_code(&mut limited(100), &over), 1009);
        // Checked from the header alone, before any payload byte arrives.
        let hl = header_len(101, true);
        assert_eq!(
            limited(100)
                .decode(&mut over[..hl].to_vec())
                .unwrap_err()
                .code,
            1009
        );

        // The sum of fragments counts.
        let mut frags = frame(false, Opcode::Text, &[b'a'; 60]);
        frags.extend(frame(true, Opcode::Ping, b""));
        frags.extend(frame(true, Opcode::Continuation, &[b'a'; 41]));
        assert_eq!(err_code(&mut limited(100), &frags), 1009);

        // Control frames do not count toward a message.
        let mut s = limited(10);
        let mut wire = frame(false, Opcode::Binary, &[0; 10]);
        wire.extend(frame(true, Opcode::Ping, &[0; 100]));
        wire.extend(frame(true, Opcode::Continuation, b""));
        let msgs = decode_all(&mut s, &wire).unwrap();
        assert_eq!(
            msgs,
            [Message::Ping(vec![0; 100]), Message::Binary(vec![0; 10])]
        );
    }

    #[test]
    fn utf8_split_at_every_byte_of_multibyte_chars_is_valid() {
        for s in [
            "é",
            "€",
            "𝄞",
            "a€b",
            "κόσμε",
            "x𝄞€éy",
            "\u{10FFFF}",
            "\u{FFFD}",
        ] {
            let bytes = s.as_bytes();
            for cut in 0..=bytes.len() {
                let mut wire = frame(false, Opcode::Text, &bytes[..cut]);
                wire.extend(frame(true, Opcode::Continuation, &bytes[cut..]));
                let msgs = decode_all(&mut server(), &wire).unwrap();
                assert_eq!(msgs, [text(s)], "{s:?} cut at {cut}");
                for cut2 in cut..=bytes.len() {
                    let mut wire = frame(false, Opcode::Text, &bytes[..cut]);
                    wire.extend(frame(false, Opcode::Continuation, &bytes[cut..cut2]));
                    wire.extend(frame(true, Opcode::Continuation, &bytes[cut2..]));
                    let msgs = decode_all(&mut server(), &wire).unwrap();
                    assert_eq!(msgs, [text(s)], "{s:?} cut at {cut}, {cut2}");
                }
            }
            // And split inside one frame's payload by the caller's reads.
            let wire = frame(true, Opcode::Text, bytes);
            assert_eq!(drive_in_pieces(&mut server(), &wire, 1).unwrap(), [text(s)]);
        }
    }

    /// Text fragments where the first is not final: the error must come before the last one.
    fn fails_before_final(first: &[u8], second: &[u8]) {
        let mut s = server();
        let mut wire = frame(false, Opcode::Text, first);
        wire.extend(frame(false, Opcode::Continuation, second));
        let r = drive(&mut s, &wire);
        assert_eq!(r.map_err(|e| e.code), Err(1007), "{first:x?} {second:x?}");
    }

    #[test]
    fn invalid_utf8_detected_before_final_fragment() {
        // Autobahn 6.4.1: "κόσμε" then a UTF-16 surrogate (ED A0 80).
        let autobahn = [
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ];
        fails_before_final(&autobahn, b"edited");
        // Invalid inside the first fragment, with a partial char at its end.
        fails_before_final(&[0xff, 0xe2], b"");
        // The carried lead byte is not followed by a continuation byte.
        fails_before_final(&[b'a', 0xe2], &[0x28, 0xa1]);
        fails_before_final(&[0xe2, 0x82], b"(");
        // Over U+10FFFF and an overlong form, each split after the lead byte.
        fails_before_final(&[0xf4], &[0x90, 0x80, 0x80]);
        fails_before_final(&[0xe0], &[0x80, 0x80]);
        fails_before_final(&[0xf0], &[0x8f]);
        // Surrogate split after the lead byte: ED A0 is already invalid.
        fails_before_final(&[0xed], &[0xa0]);
        // Bytes that never start a sequence.
        fails_before_final(&[0xc0, 0x80], b"");
        fails_before_final(&[0xf5], b"");
        fails_before_final(b"ok", &[0x80]);
    }

    #[test]
    fn invalid_utf8_detected_within_one_frame_as_it_arrives() {
        let mut payload = vec![b'a'; 1000];
        payload[10] = 0xff;
        let wire = frame(true, Opcode::Text, &payload);
        let mut s = server();
        // 14-byte header + the first 20 payload bytes: the bad byte is among them.
        assert_eq!(s.decode(&mut wire[..34].to_vec()).unwrap_err().code, 1007);
    }

    #[test]
    fn text_ending_inside_a_char_is_invalid() {
        let wire = frame(true, Opcode::Text, &[b'a', 0xe2, 0x82]);
        assert_eq!(err_code(&mut server(), &wire), 1007);
        let mut wire = frame(false, Opcode::Text, &[0xf0, 0x9d]);
        wire.extend(frame(true, Opcode::Continuation, &[0x84]));
        assert_eq!(err_code(&mut server(), &wire), 1007);
    }

    #[test]
    fn binary_is_not_utf8_checked() {
        let wire = frame(true, Opcode::Binary, &[0xff, 0xfe, 0xed, 0xa0]);
        let msgs = decode_all(&mut server(), &wire).unwrap();
        assert_eq!(msgs, [Message::Binary(vec![0xff, 0xfe, 0xed, 0xa0])]);
    }

    fn close_frame(payload: &[u8]) -> Vec<u8> {
        frame(true, Opcode::Close, payload)
    }

    #[test]
    fn close_payloads() {
        let msgs = decode_all(&mut server(), &close_frame(b"")).unwrap();
        let empty = Message::Close {
            code: None,
            reason: String::new(),
        };
        assert_eq!(msgs, [empty]);

        let mut payload = Vec::new();
        encode_close(&mut payload, 1000, "bye ✓");
        let msgs = decode_all(&mut server(), &close_frame(&payload)).unwrap();
        let bye = Message::Close {
            code: Some(1000),
            reason: "bye ✓".to_string(),
        };
        assert_eq!(msgs, [bye]);

        assert_eq!(err_code(&mut server(), &close_frame(&[0x03])), 1002);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let wire = close_frame(&code.to_be_bytes());
            assert_eq!(err_code(&mut server(), &wire), 1002, "code {code}");
        }
        for code in [1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let msgs = decode_all(&mut server(), &close_frame(&code.to_be_bytes())).unwrap();
            let want = Message::Close {
                code: Some(code),
                reason: String::new(),
            };
            assert_eq!(msgs, [want]);
        }
        let bad_reason = close_frame(&[0x03, 0xe8, b'a', 0xff]);
        assert_eq!(err_code(&mut server(), &bad_reason), 1007);
    }

    #[test]
    fn close_mid_message_ends_the_session() {
        let mut s = server();
        let mut wire = frame(false, Opcode::Text, b"partial");
        wire.extend(close_frame(&1001u16.to_be_bytes()));
        wire.extend(frame(true, Opcode::Text, b"after close"));
        let (msgs, used) = drive(&mut s, &wire).unwrap();
        let want = Message::Close {
            code: Some(1001),
            reason: String::new(),
        };
        assert_eq!(msgs, [want]);
        assert!(s.is_closed() && !s.in_message());
        // Bytes after the close frame are left alone.
        assert_eq!(
            used,
            wire.len() - frame(true, Opcode::Text, b"after close").len()
        );
    }

    #[test]
    fn valid_close_codes() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid_close_code(c)).collect();
        let mut want: Vec<u16> = vec![1000, 1001, 1002, 1003];
        want.extend(1007..=1014);
        want.extend(3000..=4999);
        assert_eq!(valid, want);
    }

    #[test]
    fn encode_close_truncates_on_a_char_boundary() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, "");
        assert_eq!(out, [0x03, 0xe8]);
        // 122 ASCII bytes then a 3-byte char that would end at byte 125: dropped whole.
        let reason = format!("{}€tail", "a".repeat(122));
        out.clear();
        encode_close(&mut out, 1001, &reason);
        assert_eq!(out.len(), 2 + 122);
        assert_eq!(out[2..], reason.as_bytes()[..122]);
        let long = "é".repeat(100);
        out.clear();
        encode_close(&mut out, 1011, &long);
        assert_eq!(out.len(), 2 + 122);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
        assert_eq!(out.len(), 2 + CLOSE_REASON_BYTES_MAX - 1);
    }

    #[test]
    fn encode_close_frame_round_trips() {
        let reason = "going away ".repeat(20);
        for mask in [None, Some(KEY)] {
            let mut out = Vec::new();
            encode_close_frame(&mut out, 1001, &reason, mask);
            let mut payload = Vec::new();
            encode_close(&mut payload, 1001, &reason);
            let mut want = Vec::new();
            encode_frame(&mut want, true, Opcode::Close, &payload, mask);
            assert_eq!(out, want);
            assert_eq!(out.len(), header_len(125, mask.is_some()) + 125);
        }
    }

    #[test]
    fn session_is_small() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 64, "Session is {size} bytes");
    }
}
