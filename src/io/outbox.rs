//! A held connection's queue of bytes to send, and the non-blocking vectored write that drains it.
//!
//! Published payloads are shared `Bytes`, so queuing costs a reference count, not a copy. The
//! worker's fan-out writes straight from here with one `writev` per connection per batch; only a
//! connection whose socket buffer is full falls back to waiting for writability in its own task.
//! An empty outbox owns no allocation.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::{Buf, Bytes};

use super::tls_io;

/// iovecs per writev call.
const IOV_BATCH: usize = 64;

#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// The first entry has been partly written (dropping it would corrupt the stream).
    front_partial: bool,
    /// Bytes the socket took since progress was last counted (see [`Outbox::take_progress`]).
    taken: u32,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued has been written.
    Done,
    /// The socket buffer is full; wait for writability and flush again.
    Blocked,
}

impl Outbox {
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.bytes += bytes.len();
        self.queue.push_back(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued and not yet written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drops everything queued except the rest of a partly written first entry, so whatever is
    /// pushed next starts on a message boundary.
    pub fn truncate_to_partial_front(&mut self) {
        let keep = if self.front_partial { 1 } else { 0 };
        self.queue.truncate(keep);
        self.bytes = self.queue.iter().map(Bytes::len).sum();
    }

    /// Whether the socket took enough since the last time this said yes to count as progress:
    /// at least `min_bytes`, or everything queued.
    pub fn take_progress(&mut self, min_bytes: usize) -> bool {
        if self.taken as usize >= min_bytes || self.queue.is_empty() {
            self.taken = 0;
            return true;
        }
        false
    }

    /// Drops everything queued (the connection is going away).
    pub fn clear(&mut self) {
        *self = Outbox::default();
    }

    /// Writes as much as the socket takes without blocking.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<Flush> {
        while !self.queue.is_empty() {
            let written = match writev_nonblocking(fd, &self.queue) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.consume(written);
        }
        // Release the ring buffer so an idle connection holds no allocation.
        self.queue = VecDeque::new();
        Ok(Flush::Done)
    }

    /// Encrypts and writes as much as the socket takes without blocking: ciphertext rustls
    /// already holds goes first, then queued plaintext in slices its send buffer accepts.
    pub fn flush_tls<D>(
        &mut self,
        fd: RawFd,
        tls: &mut rustls::ConnectionCommon<D>,
    ) -> io::Result<Flush> {
        loop {
            if !tls_io::write_pending(tls, fd)? {
                return Ok(Flush::Blocked);
            }
            if self.queue.is_empty() {
                self.queue = VecDeque::new();
                return Ok(Flush::Done);
            }
            let mut slices = [IoSlice::new(&[]); IOV_BATCH];
            let mut count = 0;
            for (slot, b) in slices.iter_mut().zip(self.queue.iter()) {
                *slot = IoSlice::new(b);
                count += 1;
            }
            let taken = tls_io::encrypt(tls, &slices[..count])?;
            if taken == 0 {
                // Nothing pending and still refused: the session cannot send (not handshaken).
                return Err(io::Error::other("tls session refused application data"));
            }
            self.consume(taken);
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        self.taken = self
            .taken
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.queue.pop_front();
                self.front_partial = false;
            } else {
                front.advance(n);
                self.front_partial = true;
                return;
            }
        }
    }
}

fn writev_nonblocking(fd: RawFd, queue: &VecDeque<Bytes>) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; IOV_BATCH];
    let mut count = 0;
    for (slot, b) in iov.iter_mut().zip(queue.iter()) {
        slot.iov_base = b.as_ptr() as *mut libc::c_void;
        slot.iov_len = b.len();
        count += 1;
    }
    let msg = libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: iov.as_mut_ptr(),
        msg_iovlen: count,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    };
    // SAFETY: every iovec points into a `Bytes` that `queue` keeps alive for the call; sendmsg
    // only reads them. MSG_DONTWAIT makes the call non-blocking whatever the fd's mode;
    // MSG_NOSIGNAL turns a closed peer into EPIPE instead of SIGPIPE.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn flush_writes_everything_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut o = Outbox::default();
        for part in [&b"one "[..], b"two ", b"three"] {
            o.push(Bytes::copy_from_slice(part));
        }
        o.push(Bytes::new());
        assert_eq!(o.bytes(), 13);
        assert_eq!(o.flush(a.as_raw_fd()).unwrap(), Flush::Done);
        assert!(o.is_empty() && o.bytes() == 0);
        let mut got = [0u8; 13];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two three");
    }

    #[test]
    fn full_socket_blocks_and_resumes_where_it_stopped() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let big = Bytes::from(vec![7u8; 4 << 20]);
        let mut o = Outbox::default();
        o.push(big.clone());
        o.push(Bytes::from_static(b"tail"));
        assert_eq!(o.flush(a.as_raw_fd()).unwrap(), Flush::Blocked);
        let left = o.bytes();
        assert!(left > 4 && left < big.len() + 4);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        while o.flush(a.as_raw_fd()).unwrap() == Flush::Blocked {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(a);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), big.len() + 4);
        assert!(all.ends_with(b"tail"));
    }

    #[test]
    fn truncation_keeps_a_partly_written_front() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut o = Outbox::default();
        o.push(Bytes::from(vec![1u8; 4 << 20]));
        o.push(Bytes::from_static(b"next"));
        assert_eq!(o.flush(a.as_raw_fd()).unwrap(), Flush::Blocked);
        o.truncate_to_partial_front();
        let rest = o.bytes();
        assert!(
            rest > 0 && rest < 4 << 20,
            "the partial front stays: {rest}"
        );
        let mut o2 = Outbox::default();
        o2.push(Bytes::from_static(b"whole"));
        o2.truncate_to_partial_front();
        assert!(o2.is_empty());
        drop(a);
        let mut sink = Vec::new();
        let _ = b.read_to_end(&mut sink);
    }

    #[test]
    fn progress_needs_enough_bytes_or_an_empty_outbox() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut o = Outbox::default();
        o.push(Bytes::from(vec![1u8; 4 << 20]));
        assert_eq!(o.flush(a.as_raw_fd()).unwrap(), Flush::Blocked);
        let first = (4 << 20) - o.bytes();
        assert!(o.take_progress(1), "the first flush took {first} bytes");
        assert!(!o.take_progress(1), "nothing taken since");
        let mut chunk = [0u8; 1000];
        b.read_exact(&mut chunk).unwrap();
        // A little room: a few bytes go, not enough to count.
        let _ = o.flush(a.as_raw_fd());
        assert!(!o.take_progress(usize::MAX));
        drop(b);
        o.clear();
        assert!(
            o.take_progress(usize::MAX),
            "an empty outbox is never behind"
        );
    }

    #[test]
    fn closed_peer_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"x"));
        assert!(o.flush(a.as_raw_fd()).is_err());
    }
}
