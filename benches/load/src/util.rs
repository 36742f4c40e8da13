//! Small helpers: clocks, URLs, address lists, process limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_REALTIME in nanoseconds (vDSO: no syscall).
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain libc calls on a stack-allocated struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

/// Ask the kernel to SIGKILL this process when the thread that spawned it exits.
pub fn die_with_parent() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    // If the parent is already gone (re-parented to init/subreaper), go too.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(1);
    }
}

/// An http:// or ws:// URL, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    /// Value for the Host header.
    pub host: String,
    pub addr: SocketAddr,
    /// Path and query, may contain `{ch}`.
    pub path: String,
}

pub fn parse_target(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url}: expected http://host:port/path"))?;
    let default_port = match scheme {
        "http" | "ws" => 80,
        "https" | "wss" => return Err(format!("{url}: TLS is not supported")),
        _ => return Err(format!("{url}: unknown scheme {scheme}")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    Ok(Target {
        host: authority.to_string(),
        addr,
        path: path.to_string(),
    })
}

/// `127.0.0.2-127.0.0.9`, `127.0.0.2,127.0.0.3`, or a mix; IPv6 only as single addresses.
pub fn parse_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|e| format!("{part}: {e}"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|e| format!("{part}: {e}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 65_536 {
                return Err(format!("{part}: bad range"));
            }
            out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
        } else {
            out.push(part.parse().map_err(|e| format!("{part}: {e}"))?);
        }
    }
    Ok(out)
}

pub fn channel_name(prefix: &str, i: u64) -> String {
    format!("{prefix}{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_target("http://127.0.0.1:7999/sse/{ch}").unwrap();
        assert_eq!(t.host, "127.0.0.1:7999");
        assert_eq!(t.addr.port(), 7999);
        assert_eq!(t.path, "/sse/{ch}");
        let t = parse_target("ws://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(parse_target("https://x").is_err());
        let t = parse_target("http://[::1]:8080/x").unwrap();
        assert!(t.addr.is_ipv6());
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(parse_target("ws://[::1]/").unwrap().addr.port(), 80);
    }

    #[test]
    fn ips() {
        let v = parse_ips("127.0.0.2-127.0.0.4,127.0.0.9").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].to_string(), "127.0.0.9");
    }
}
