//! Listening sockets: one SO_REUSEPORT socket per worker on the same address, so the kernel
//! spreads new connections over the workers without any user-space hand-off.

use std::io;
use std::net::SocketAddr;

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

/// A single listener (the publish API).
pub fn bind_single(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    bind_one(addr, backlog, false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
