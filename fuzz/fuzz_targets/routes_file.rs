//! Routes file: `RouteTable::parse` on any text, then route selection and path rewriting.
//!
//! Properties: no panic; an accepted table keeps the documented guarantees (every route has a
//! target, ports are 1-65535, condition hosts are lower-case, no two routes share a condition,
//! line numbers increase); `find` agrees with a plain re-implementation of the selection rules in
//! the module docs (host, then `proto`, `ssl`, `path_beg`, with Pushpin's tie-breaks); a route can
//! be found by its own host and `path_beg` (where such a request exists); and `origin_path` keeps
//! the query and returns an absolute-looking path whenever no `replace_beg` is set.
#![no_main]
use holdfast::routes::{Route, RouteProto, RouteTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = RouteTable::parse(text) else {
        return;
    };
    let mut last_line = 0;
    for (i, r) in table.routes.iter().enumerate() {
        assert!(r.line > last_line);
        last_line = r.line;
        assert!(!r.targets.is_empty());
        for t in &r.targets {
            assert!(t.port != 0 && !t.host.is_empty());
        }
        if let Some(h) = &r.host {
            assert_eq!(*h, h.to_ascii_lowercase());
            assert!(!h.is_empty());
        }
        for other in &table.routes[..i] {
            let same = other.host == r.host
                && other.path_beg == r.path_beg
                && other.proto == r.proto
                && other.ssl == r.ssl;
            assert!(
                !same,
                "duplicate condition accepted on lines {} and {}",
                other.line, r.line
            );
        }
    }

    // Requests: each route's own host and path_beg, plus a few fixed ones.
    let mut hosts: Vec<String> = vec![
        "example.com:80".into(),
        "EXAMPLE.com".into(),
        "[::1]:80".into(),
    ];
    let mut paths: Vec<String> = vec!["/".into(), "/a/b?c".into()];
    for r in &table.routes {
        if let Some(h) = &r.host {
            hosts.push(if h.contains(':') {
                format!("[{h}]:8080")
            } else {
                format!("{}:443", h.to_ascii_uppercase())
            });
        }
        if let Some(p) = &r.path_beg {
            paths.push(format!("{p}/x?q=1"));
        }
    }
    hosts.truncate(8);
    paths.truncate(8);
    for host in &hosts {
        for path in &paths {
            for (is_tls, is_ws) in [(false, false), (true, false), (false, true), (true, true)] {
                let got = table.find(host, path, is_tls, is_ws);
                let want = reference_find(&table, host, path, is_tls, is_ws);
                assert_eq!(
                    got.map(|r| r.line),
                    want.map(|r| r.line),
                    "{host} {path} tls={is_tls} ws={is_ws}"
                );
                if let Some(route) = got {
                    check_origin_path(route, path);
                }
            }
        }
    }

    // A route is reachable by a request made for it, when such a request can be written: its host
    // as the Host header, a path that starts with its path_beg and has no `?` before its end.
    for r in &table.routes {
        let Some(host) = &r.host else { continue };
        let host_ok = !host.is_empty() && host.trim() == host && !host.contains(['[', ']']);
        let path = r.path_beg.clone().unwrap_or_else(|| "/".into());
        if !host_ok || path.contains('?') {
            continue;
        }
        let header = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let is_tls = r.ssl.unwrap_or(false);
        let is_ws = r.proto == Some(RouteProto::Ws);
        assert!(
            table.find(&header, &path, is_tls, is_ws).is_some(),
            "route on line {} cannot be reached by {header} {path}",
            r.line
        );
    }
});

fn reference_host(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.matches(':').count() {
        1 => host.split(':').next().unwrap_or(host),
        _ => host,
    }
}

/// The selection rules of the module docs, written out plainly.
fn reference_find<'t>(
    table: &'t RouteTable,
    host: &str,
    path: &str,
    is_tls: bool,
    is_ws: bool,
) -> Option<&'t Route> {
    let host = reference_host(host).to_ascii_lowercase();
    let path = path.split('?').next().unwrap_or(path);
    let named: Vec<&Route> = table
        .routes
        .iter()
        .filter(|r| r.host.as_deref() == Some(host.as_str()))
        .collect();
    let candidates = if named.is_empty() {
        table.routes.iter().filter(|r| r.host.is_none()).collect()
    } else {
        named
    };
    let mut best: Option<&Route> = None;
    for r in candidates {
        let matches = r.proto.is_none_or(|p| (p == RouteProto::Ws) == is_ws)
            && r.ssl.is_none_or(|s| s == is_tls)
            && path.starts_with(r.path_beg.as_deref().unwrap_or(""));
        if !matches {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                if r.proto.is_some() != b.proto.is_some() {
                    r.proto.is_some()
                } else {
                    let len = |x: &Route| x.path_beg.as_ref().map_or(0, String::len);
                    len(r) > len(b) || (r.ssl.is_some() && b.ssl.is_none())
                }
            }
        };
        if better {
            best = Some(r);
        }
    }
    best
}

fn check_origin_path(route: &Route, path: &str) {
    let out = route.origin_path(path);
    let query = path.find('?').map_or("", |i| &path[i..]);
    assert!(out.ends_with(query));
    let rest = &out[..out.len() - query.len()];
    assert!(!rest.is_empty());
    match &route.replace_beg {
        Some(r) => assert!(rest.starts_with(r.as_str()) || (r.is_empty() && rest == "/")),
        None if route.path_rem == 0 => {
            // Unchanged, except that an empty path becomes "/".
            let want = path.split('?').next().unwrap_or("");
            assert_eq!(rest, if want.is_empty() { "/" } else { want });
        }
        None => {}
    }
}
