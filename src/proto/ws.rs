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
#[path = "ws_tests.rs"]
mod tests;
