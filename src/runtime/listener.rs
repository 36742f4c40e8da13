//! Listening sockets: one SO_REUSEPORT socket per worker on the same address, so the kernel
//! spreads new connections over the workers without any user-space hand-off.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::{Domain, Protocol, Socket, Type};

fn bind_one(addr: SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// `count` sockets bound to `addr`; with port 0, all share the port the first one got.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr, backlog, true)?;
    let actual = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind_one(actual, backlog, true)?);
    }
    Ok(group)
}

/// Sets an accepted socket's send and receive buffer sizes (0: leave the kernel's default).
pub fn set_buffer_sizes(fd: RawFd, send: usize, recv: usize) -> io::Result<()> {
    for (option, bytes) in [(libc::SO_SNDBUF, send), (libc::SO_RCVBUF, recv)] {
        if bytes == 0 {
            continue;
        }
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a plain setsockopt with a pointer to a c_int that lives for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A single listener (the publish API).
pub fn bind_single(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    bind_one(addr, backlog, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_are_applied() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let get = |option| {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt into a c_int of the given length.
            let rc = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            value
        };
        let default_send = get(libc::SO_SNDBUF);
        set_buffer_sizes(s.as_raw_fd(), 8192, 0).unwrap();
        // Linux doubles the value for its bookkeeping.
        assert_eq!(get(libc::SO_SNDBUF), 16384);
        set_buffer_sizes(s.as_raw_fd(), 0, 8192).unwrap();
        assert_eq!(get(libc::SO_RCVBUF), 16384);
        assert_eq!(get(libc::SO_SNDBUF), 16384, "0 leaves it alone");
        assert_ne!(default_send, 16384);
    }

    #[test]
    fn group_shares_one_ephemeral_port() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let ports: Vec<u16> = group
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(ports.iter().all(|&p| p == ports[0] && p != 0), "{ports:?}");
    }
}
