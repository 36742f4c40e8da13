//! Sans-IO HTTP/1.1 pieces shared by the clients, the publisher and the origin: response heads,
//! body framing (length, chunked, close-delimited) as byte-level state machines that accept any
//! split of the input, and the line scanner that pulls publisher stamps out of a byte stream.

use memchr::memchr;

/// What a response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// `Connection: close` or HTTP/1.0 without keep-alive.
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Body runs until the connection closes.
    Close,
    /// No body (1xx, 204, 304, or a 101 switch).
    Empty,
}

/// Find the end of a head (`\r\n\r\n`); returns its length.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
}

/// Parse a complete response head (`buf` ends right after `\r\n\r\n`).
pub fn parse_response_head(buf: &[u8]) -> Result<Head, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(e) => return Err(format!("bad response head: {e}")),
    }
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            length = Some(v.parse::<u64>().map_err(|_| "bad content-length")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = contains_token(h.value, b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, b"close") {
                close = true;
            } else if contains_token(h.value, b"keep-alive") {
                close = false;
            }
        }
    }
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        framing,
        close,
    })
}

pub fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { val: u64, digits: u8, ext: bool },
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    Done,
}

/// Chunked transfer-coding decoder. Feeds data pieces to a callback without copying.
#[derive(Debug, Clone)]
pub struct Chunked {
    st: Chunk,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            st: Chunk::Size {
                val: 0,
                digits: 0,
                ext: false,
            },
        }
    }
}

impl Chunked {
    /// Consume bytes from `d`; returns how many were consumed (all of them unless the body
    /// ended) and whether the body is complete.
    pub fn feed(
        &mut self,
        d: &[u8],
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<(usize, bool), &'static str> {
        let mut i = 0;
        while i < d.len() {
            let b = d[i];
            match &mut self.st {
                Chunk::Size { val, digits, ext } => {
                    i += 1;
                    if *ext {
                        if b == b'\r' {
                            self.st = Chunk::SizeLf(*val);
                        } else if b == b'\n' {
                            self.st = Self::after_size(*val);
                        }
                        continue;
                    }
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                            if *digits >= 15 {
                                return Err("chunk size too large");
                            }
                            *val = *val * 16 + v;
                            *digits += 1;
                        }
                        b';' | b' ' | b'\t' => *ext = true,
                        b'\r' => {
                            if *digits == 0 {
                                return Err("empty chunk size");
                            }
                            self.st = Chunk::SizeLf(*val);
                        }
                        b'\n' => {
                            if *digits == 0 {
                                return Err("empty chunk size");
                            }
                            self.st = Self::after_size(*val);
                        }
                        _ => return Err("bad chunk size"),
                    }
                }
                Chunk::SizeLf(val) => {
                    i += 1;
                    if b != b'\n' {
                        return Err("bad chunk size line");
                    }
                    self.st = Self::after_size(*val);
                }
                Chunk::Data(rem) => {
                    let take = (*rem).min((d.len() - i) as u64) as usize;
                    on_data(&d[i..i + take]);
                    i += take;
                    *rem -= take as u64;
                    if *rem == 0 {
                        self.st = Chunk::DataCr;
                    }
                }
                Chunk::DataCr => {
                    i += 1;
                    match b {
                        b'\r' => self.st = Chunk::DataLf,
                        b'\n' => self.reset_size(),
                        _ => return Err("missing CRLF after chunk"),
                    }
                }
                Chunk::DataLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err("missing LF after chunk");
                    }
                    self.reset_size();
                }
                Chunk::TrailerStart => {
                    i += 1;
                    match b {
                        b'\r' => self.st = Chunk::TrailerLf,
                        b'\n' => {
                            self.st = Chunk::Done;
                            return Ok((i, true));
                        }
                        _ => self.st = Chunk::TrailerLine,
                    }
                }
                Chunk::TrailerLine => {
                    i += 1;
                    if b == b'\n' {
                        self.st = Chunk::TrailerStart;
                    }
                }
                Chunk::TrailerLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err("bad trailer end");
                    }
                    self.st = Chunk::Done;
                    return Ok((i, true));
                }
                Chunk::Done => return Ok((i, true)),
            }
        }
        Ok((i, self.st == Chunk::Done))
    }

    fn after_size(val: u64) -> Chunk {
        if val == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data(val)
        }
    }

    fn reset_size(&mut self) {
        self.st = Chunk::Size {
            val: 0,
            digits: 0,
            ext: false,
        };
    }
}

/// A response body being received.
#[derive(Debug, Clone)]
pub enum Body {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

impl Body {
    pub fn new(f: Framing) -> Body {
        match f {
            Framing::Length(0) | Framing::Empty => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::default()),
            Framing::Close => Body::Close,
        }
    }

    /// Consume body bytes; returns (consumed, complete).
    pub fn feed(
        &mut self,
        d: &[u8],
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<(usize, bool), &'static str> {
        match self {
            Body::Length(rem) => {
                let take = (*rem).min(d.len() as u64) as usize;
                on_data(&d[..take]);
                *rem -= take as u64;
                if *rem == 0 {
                    *self = Body::Done;
                    Ok((take, true))
                } else {
                    Ok((take, false))
                }
            }
            Body::Chunked(c) => {
                let r = c.feed(d, on_data)?;
                if r.1 {
                    *self = Body::Done;
                }
                Ok(r)
            }
            Body::Close => {
                on_data(d);
                Ok((d.len(), false))
            }
            Body::Done => Ok((0, true)),
        }
    }
}

/// How many bytes of each line are kept for stamp parsing; the rest (filler) is skipped.
pub const PREFIX: usize = 96;

/// Splits a byte stream into lines without copying complete lines; only the first
/// [`PREFIX`] bytes of a line split across reads are buffered.
#[derive(Debug, Clone)]
pub struct LineScan {
    pre: [u8; PREFIX],
    len: usize,
    partial: bool,
}

impl Default for LineScan {
    fn default() -> Self {
        LineScan {
            pre: [0; PREFIX],
            len: 0,
            partial: false,
        }
    }
}

impl LineScan {
    /// Calls `on_line` with the first bytes (at most PREFIX) of every completed line.
    #[inline]
    pub fn feed(&mut self, mut d: &[u8], on_line: &mut impl FnMut(&[u8])) {
        while let Some(i) = memchr(b'\n', d) {
            if self.partial {
                self.push(&d[..i]);
                on_line(&self.pre[..self.len]);
                self.len = 0;
                self.partial = false;
            } else {
                on_line(&d[..i.min(PREFIX)]);
            }
            d = &d[i + 1..];
        }
        if !d.is_empty() {
            self.push(d);
            self.partial = true;
        }
    }

    /// End of a body: a last line without a newline still counts.
    pub fn flush(&mut self, on_line: &mut impl FnMut(&[u8])) {
        if self.partial {
            on_line(&self.pre[..self.len]);
        }
        self.len = 0;
        self.partial = false;
    }

    fn push(&mut self, d: &[u8]) {
        let room = PREFIX - self.len;
        let n = room.min(d.len());
        self.pre[self.len..self.len + n].copy_from_slice(&d[..n]);
        self.len += n;
    }
}

/// Finds `seq=<n> ts=<nanos>` in a message prefix.
#[inline]
pub fn parse_stamp(b: &[u8]) -> Option<(u64, u64)> {
    let at = memchr::memmem::find(b, b"seq=")? + 4;
    let (seq, used) = parse_u64(&b[at..])?;
    let rest = &b[at + used..];
    let rest = rest.strip_prefix(b" ts=")?;
    let (ts, _) = parse_u64(rest)?;
    Some((seq, ts))
}

#[inline]
fn parse_u64(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        n += 1;
    }
    if n == 0 { None } else { Some((v, n)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk_split(input: &[u8], split: usize) -> (Vec<u8>, usize, bool) {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        let mut done = false;
        for piece in input.chunks(split) {
            let (n, d) = c.feed(piece, &mut |x| out.extend_from_slice(x)).unwrap();
            used += n;
            if d {
                done = true;
                break;
            }
        }
        (out, used, done)
    }

    #[test]
    fn chunked_any_split() {
        let input = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld\n\r\n0\r\nX-T: 1\r\n\r\nEXTRA";
        for split in 1..input.len() {
            let (out, used, done) = dechunk_split(input, split);
            assert!(done, "split {split}");
            assert_eq!(out, b"hello world\n");
            assert_eq!(used, input.len() - 5);
        }
    }

    #[test]
    fn lines_and_stamps() {
        let stream = b"ok\ndata: seq=12 ts=1700000000000000000 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n\nseq=13 ts=5\n";
        for split in 1..stream.len() {
            let mut ls = LineScan::default();
            let mut got = Vec::new();
            for piece in stream.chunks(split) {
                ls.feed(piece, &mut |l| {
                    if let Some(s) = parse_stamp(l) {
                        got.push(s)
                    }
                });
            }
            assert_eq!(
                got,
                vec![(12, 1_700_000_000_000_000_000), (13, 5)],
                "split {split}"
            );
        }
    }

    #[test]
    fn heads() {
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.close);
        let h = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Close);
        assert!(h.close);
        let h =
            parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
    }
}
