//! A minimal RFC 6455 client codec: unmasked frames in (parsed in place, only the first bytes
//! of each message kept), masked frames out.

use crate::http::PREFIX;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

pub enum WsEvent<'a> {
    /// First bytes (at most PREFIX) of a complete data message.
    Message(&'a [u8]),
    Ping(&'a [u8]),
    Close,
}

#[derive(Clone)]
pub struct WsParser {
    hdr: [u8; 14],
    hlen: usize,
    hneed: usize,
    in_frame: bool,
    rem: u64,
    opcode: u8,
    fin: bool,
    pre: [u8; PREFIX],
    plen: usize,
    ctrl: Vec<u8>,
}

impl Default for WsParser {
    fn default() -> Self {
        WsParser {
            hdr: [0; 14],
            hlen: 0,
            hneed: 2,
            in_frame: false,
            rem: 0,
            opcode: 0,
            fin: false,
            pre: [0; PREFIX],
            plen: 0,
            ctrl: Vec::new(),
        }
    }
}

impl WsParser {
    pub fn feed(&mut self, d: &[u8], on: &mut impl FnMut(WsEvent<'_>)) -> Result<(), &'static str> {
        let mut i = 0;
        while i < d.len() {
            if !self.in_frame {
                self.hdr[self.hlen] = d[i];
                self.hlen += 1;
                i += 1;
                if self.hlen == 2 {
                    if self.hdr[1] & 0x80 != 0 {
                        return Err("server sent a masked frame");
                    }
                    if self.hdr[0] & 0x70 != 0 {
                        return Err("reserved bits set (no extension negotiated)");
                    }
                    self.hneed = match self.hdr[1] & 0x7f {
                        126 => 4,
                        127 => 10,
                        _ => 2,
                    };
                }
                if self.hlen >= 2 && self.hlen == self.hneed {
                    self.start_frame()?;
                    if self.rem == 0 {
                        self.end_frame(on);
                    }
                }
                continue;
            }
            let take = self.rem.min((d.len() - i) as u64) as usize;
            let piece = &d[i..i + take];
            if self.opcode >= 8 {
                self.ctrl.extend_from_slice(piece);
            } else if self.plen < PREFIX {
                let n = (PREFIX - self.plen).min(piece.len());
                self.pre[self.plen..self.plen + n].copy_from_slice(&piece[..n]);
                self.plen += n;
            }
            i += take;
            self.rem -= take as u64;
            if self.rem == 0 {
                self.end_frame(on);
            }
        }
        Ok(())
    }

    fn start_frame(&mut self) -> Result<(), &'static str> {
        let h = &self.hdr;
        self.fin = h[0] & 0x80 != 0;
        self.opcode = h[0] & 0x0f;
        self.rem = match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => n as u64,
        };
        if self.opcode >= 8 && (self.rem > 125 || !self.fin) {
            return Err("bad control frame");
        }
        if !matches!(
            self.opcode,
            OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err("unknown opcode");
        }
        self.in_frame = true;
        self.hlen = 0;
        self.hneed = 2;
        Ok(())
    }

    fn end_frame(&mut self, on: &mut impl FnMut(WsEvent<'_>)) {
        self.in_frame = false;
        match self.opcode {
            OP_PING => on(WsEvent::Ping(&self.ctrl)),
            OP_CLOSE => on(WsEvent::Close),
            OP_PONG => {}
            _ => {
                if self.fin {
                    on(WsEvent::Message(&self.pre[..self.plen]));
                    self.plen = 0;
                }
            }
        }
        if self.opcode >= 8 {
            self.ctrl.clear();
        }
    }
}

/// Append one masked client frame.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![if fin { 0x80 } else { 0 } | op];
        let n = payload.len();
        if n < 126 {
            v.push(n as u8);
        } else if n <= 0xffff {
            v.push(126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_any_split() {
        let big = format!("seq=7 ts=99 {}", "x".repeat(70_000));
        let mut input = frame(OP_TEXT, true, b"seq=1 ts=2 xxx");
        input.extend(frame(OP_PING, true, b"p"));
        input.extend(frame(OP_TEXT, false, b"seq=3 ts="));
        input.extend(frame(OP_CONT, true, b"4 yy"));
        input.extend(frame(OP_TEXT, true, big.as_bytes()));
        input.extend(frame(OP_TEXT, true, b""));
        input.extend(frame(OP_CLOSE, true, &[3, 232]));
        for split in [1, 2, 3, 7, 100, 1000, input.len()] {
            let mut p = WsParser::default();
            let mut msgs = Vec::new();
            let mut pings = 0;
            let mut closes = 0;
            for piece in input.chunks(split) {
                p.feed(piece, &mut |e| match e {
                    WsEvent::Message(m) => msgs.push(crate::http::parse_stamp(m)),
                    WsEvent::Ping(b) => {
                        assert_eq!(b, b"p");
                        pings += 1
                    }
                    WsEvent::Close => closes += 1,
                })
                .unwrap();
            }
            assert_eq!(msgs, vec![Some((1, 2)), Some((3, 4)), Some((7, 99)), None]);
            assert_eq!((pings, closes), (1, 1));
        }
    }

    #[test]
    fn encodes_masked() {
        let mut out = Vec::new();
        encode_frame(&mut out, OP_TEXT, b"hi", [1, 2, 3, 4]);
        assert_eq!(out, vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    }
}
