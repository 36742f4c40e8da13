//! A connection to an origin: plain TCP, or TLS for targets with the `ssl` route option.
//!
//! The TLS side runs rustls over the socket's fd with the same non-blocking record layer as
//! client connections ([`crate::io::tls_io`]), awaiting the socket's readiness in between.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::ClientConnection;
use rustls_pki_types::ServerName;

use crate::io::Read;
use crate::io::tls_io;

/// Where an origin request goes: the target's addresses and, for an `ssl` target, how to
/// verify it.
#[derive(Clone)]
pub struct Dest<'a> {
    pub addrs: &'a [SocketAddr],
    pub tls: Option<TlsDest>,
}

/// The TLS side of a destination: the client config (verifying, or not for `insecure`) and the
/// name the certificate must be valid for.
#[derive(Clone)]
pub struct TlsDest {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
    pub insecure: bool,
}

/// What identifies interchangeable pooled connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    /// For TLS connections: the verified name and whether verification was skipped.
    pub tls: Option<(ServerName<'static>, bool)>,
}

impl PoolKey {
    pub fn new(addr: SocketAddr, tls: Option<&TlsDest>) -> PoolKey {
        PoolKey {
            addr,
            tls: tls.map(|t| (t.name.clone(), t.insecure)),
        }
    }
}

pub enum OriginStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    tcp: TcpStream,
    session: ClientConnection,
}

impl OriginStream {
    /// Runs the TLS handshake on a connected socket. Errors say why (certificate, protocol).
    pub async fn handshake(tcp: TcpStream, dest: &TlsDest) -> io::Result<OriginStream> {
        let session = ClientConnection::new(dest.config.clone(), dest.name.clone())
            .map_err(io::Error::other)?;
        let mut s = TlsStream { tcp, session };
        let fd = s.tcp.as_raw_fd();
        let mut scratch = Vec::new();
        loop {
            let flushed = tls_io::write_pending(&mut s.session, fd)?;
            if flushed && !s.session.is_handshaking() {
                break;
            }
            if !flushed {
                s.tcp.writable(false).await?;
                continue;
            }
            s.tcp.readable(false).await?;
            match tls_io::read_checked(&mut s.session, fd, &mut scratch) {
                Ok(Read::Eof) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "origin closed the connection during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(reason) => {
                    return Err(io::Error::other(format!("TLS handshake: {reason}")));
                }
            }
        }
        if !scratch.is_empty() {
            // An origin that speaks before the request is broken: those bytes would precede
            // the response.
            return Err(io::Error::other("origin sent data before the request"));
        }
        Ok(OriginStream::Tls(Box::new(s)))
    }

    pub async fn write_all(&mut self, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            OriginStream::Plain(tcp) => {
                let (res, bytes) = tcp.write_all(bytes).await;
                (res.map(|_| ()), bytes)
            }
            OriginStream::Tls(t) => {
                let res = t.write_all(&bytes).await;
                (res, bytes)
            }
        }
    }

    /// Appends one read's worth of bytes to `buf`; returns the count (0 at end of stream).
    pub async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            OriginStream::Plain(tcp) => {
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(16 * 1024);
                }
                let owned = std::mem::take(buf);
                let (len, cap) = (owned.len(), owned.capacity());
                let (res, slice) = tcp.read(owned.slice_mut(len..cap)).await;
                *buf = slice.into_inner();
                res
            }
            OriginStream::Tls(t) => t.read_into(buf).await,
        }
    }

    /// True when nothing has arrived since the last response was read: no unread byte, no EOF,
    /// no error. A pooled connection is reused only then (as Pingora and Pushpin check): bytes
    /// that came in unasked would otherwise be read as the answer to the next request, which
    /// may be another client's.
    pub fn is_quiet(&self) -> bool {
        let fd = match self {
            OriginStream::Plain(tcp) => tcp.as_raw_fd(),
            OriginStream::Tls(t) => t.tcp.as_raw_fd(),
        };
        let mut probe = [0u8; 1];
        // SAFETY: `probe` is a valid, writable 1-byte buffer for the duration of the call; with
        // MSG_PEEK nothing is consumed and MSG_DONTWAIT keeps the call from blocking.
        let n = unsafe {
            libc::recv(
                fd,
                probe.as_mut_ptr().cast(),
                probe.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }

    /// Resolves when the socket has bytes to read.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            OriginStream::Plain(tcp) => tcp.readable(false).await,
            OriginStream::Tls(t) => t.tcp.readable(false).await,
        }
    }
}

impl TlsStream {
    async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let fd = self.tcp.as_raw_fd();
        loop {
            if !bytes.is_empty() {
                let taken = tls_io::encrypt(&mut self.session, &[IoSlice::new(bytes)])?;
                bytes = &bytes[taken..];
            }
            let flushed = tls_io::write_pending(&mut self.session, fd)?;
            if flushed && bytes.is_empty() {
                return Ok(());
            }
            if !flushed {
                self.tcp.writable(false).await?;
            }
        }
    }

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let fd = self.tcp.as_raw_fd();
        loop {
            let got = tls_io::read_checked(&mut self.session, fd, buf).map_err(io::Error::other);
            // A read may owe the origin bytes (a key update): best effort, never blocking.
            let _ = tls_io::write_pending(&mut self.session, fd);
            match got? {
                Read::Bytes(n) => return Ok(n),
                Read::Eof => return Ok(0),
                Read::NotReady => self.tcp.readable(false).await?,
                Read::Failed => return Err(io::ErrorKind::ConnectionAborted.into()),
            }
        }
    }
}
