//! The TLS record layer over a raw, non-blocking socket fd, for both sides (clients and origins).
//!
//! rustls is sans-IO: it takes ciphertext in and hands ciphertext out. These helpers feed it with
//! direct `recv`/`sendmsg` calls (MSG_DONTWAIT), the same way the plain paths read and write, so a
//! TLS connection waits on the same readiness polls and keeps no I/O future while idle. The
//! session of a client connection lives in its slot, so the fan-out encrypts and writes from the
//! worker like it writes plain bytes.

use std::io::{self, IoSlice, Read as _, Write as _};
use std::os::fd::RawFd;

use rustls::ConnectionCommon;

use super::Read;

/// A borrowed socket fd as `io::Read`/`io::Write`, never blocking.
pub struct Fd(pub RawFd);

impl io::Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::recv(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl io::Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let msg = libc::msghdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            // IoSlice is ABI-compatible with iovec; sendmsg only reads through the pointer.
            msg_iov: bufs.as_ptr() as *mut libc::iovec,
            msg_iovlen: bufs.len(),
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        };
        // SAFETY: the iovecs point into `bufs`, alive for the call. MSG_NOSIGNAL turns a closed
        // peer into EPIPE instead of SIGPIPE.
        let n = unsafe { libc::sendmsg(self.0, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads ciphertext once, decrypts it and appends all the plaintext it yields to `out`.
///
/// All plaintext is taken each time, so readiness of the socket stays the only signal the
/// caller needs: rustls never holds decrypted bytes between calls. The caller must flush
/// afterwards (see [`write_pending`]): a handshake step, a key update or an alert may be waiting.
/// A failed read is `Err` with the reason (never `Ok(Read::Failed)`).
pub fn read_checked<D>(
    tls: &mut ConnectionCommon<D>,
    fd: RawFd,
    out: &mut Vec<u8>,
) -> Result<Read, String> {
    let eof = match tls.read_tls(&mut Fd(fd)) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if is_retry(&e) => return Ok(Read::NotReady),
        Err(e) => return Err(e.to_string()),
    };
    let state = match tls.process_new_packets() {
        Ok(state) => state,
        Err(e) => {
            // rustls queued an alert saying why: a best-effort write, the connection ends.
            let _ = write_pending(tls, fd);
            return Err(e.to_string());
        }
    };
    let n = state.plaintext_bytes_to_read();
    if n > 0 {
        let start = out.len();
        out.resize(start + n, 0);
        return match tls.reader().read_exact(&mut out[start..]) {
            Ok(()) => Ok(Read::Bytes(n)),
            Err(e) => {
                out.truncate(start);
                Err(e.to_string())
            }
        };
    }
    if eof || state.peer_has_closed() {
        Ok(Read::Eof)
    } else {
        Ok(Read::NotReady)
    }
}

/// Writes the ciphertext rustls has ready without blocking: Ok(true) when all of it went out,
/// Ok(false) when the socket is full.
pub fn write_pending<D>(tls: &mut ConnectionCommon<D>, fd: RawFd) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut Fd(fd)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Hands plaintext to rustls to encrypt, as much as its send buffer takes; returns the count.
pub fn encrypt<D>(tls: &mut ConnectionCommon<D>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    tls.writer().write_vectored(bufs)
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use rustls::{ClientConnection, ServerConnection};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["tls.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()];
        let der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain.clone(), der)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(chain[0].clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Drives both ends over a socket pair until the handshake is done and `msg` went across.
    #[test]
    fn handshake_and_data_over_nonblocking_fds() {
        let (server_cfg, client_cfg) = configs();
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut server = ServerConnection::new(server_cfg).unwrap();
        let name = ServerName::try_from("tls.test").unwrap();
        let mut client = ClientConnection::new(client_cfg, name).unwrap();
        let msg = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            encrypt(&mut client, &[IoSlice::new(msg)]).unwrap(),
            msg.len()
        );
        let mut got = Vec::new();
        let mut reply = Vec::new();
        for _ in 0..50 {
            assert!(write_pending(&mut client, b.as_raw_fd()).unwrap());
            match read_checked(&mut server, a.as_raw_fd(), &mut got) {
                Ok(Read::Bytes(_) | Read::NotReady) => {}
                other => panic!("server read {other:?}"),
            }
            if got.len() == msg.len() && reply.is_empty() {
                encrypt(
                    &mut server,
                    &[IoSlice::new(b"HTTP/1.1 "), IoSlice::new(b"200")],
                )
                .unwrap();
            }
            assert!(write_pending(&mut server, a.as_raw_fd()).unwrap());
            match read_checked(&mut client, b.as_raw_fd(), &mut reply) {
                Ok(Read::Bytes(_) | Read::NotReady) => {}
                other => panic!("client read {other:?}"),
            }
            if reply.len() == 12 {
                break;
            }
        }
        assert_eq!(got, msg);
        assert_eq!(reply, b"HTTP/1.1 200");
        // A clean close: close_notify, then the peer sees the end.
        server.send_close_notify();
        assert!(write_pending(&mut server, a.as_raw_fd()).unwrap());
        let mut rest = Vec::new();
        assert_eq!(
            read_checked(&mut client, b.as_raw_fd(), &mut rest),
            Ok(Read::Eof)
        );
    }

    #[test]
    fn garbage_fails_and_the_peer_gets_an_alert() {
        let (server_cfg, _) = configs();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut server = ServerConnection::new(server_cfg).unwrap();
        b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = Vec::new();
        assert!(read_checked(&mut server, a.as_raw_fd(), &mut out).is_err());
        assert!(out.is_empty());
        let mut alert = [0u8; 7];
        b.read_exact(&mut alert).unwrap();
        assert_eq!(alert[0], 21, "an alert record");
    }

    #[test]
    fn nothing_to_read_is_not_ready_and_a_closed_peer_is_eof() {
        let (server_cfg, _) = configs();
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut server = ServerConnection::new(server_cfg).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            read_checked(&mut server, a.as_raw_fd(), &mut out),
            Ok(Read::NotReady)
        );
        drop(b);
        assert_eq!(
            read_checked(&mut server, a.as_raw_fd(), &mut out),
            Ok(Read::Eof)
        );
    }
}
