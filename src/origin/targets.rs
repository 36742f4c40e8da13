//! Routes with their targets resolved to socket addresses.
//!
//! Resolution happens once, when the routes are loaded (start-up, later reload), not per request:
//! a worker must never block on DNS. A target that does not resolve is a start-up error naming the
//! route's line.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::routes::{Route, RouteTable};

/// A routes table plus, for route `r` and target `t`, the addresses `addrs[r][t]`.
#[derive(Clone)]
pub struct RoutePlan {
    pub table: RouteTable,
    pub addrs: Vec<Vec<Vec<SocketAddr>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("routes line {line}: cannot resolve target {host}:{port}: {reason}")]
    Unresolvable {
        line: usize,
        host: String,
        port: u16,
        reason: String,
    },
}

impl RoutePlan {
    pub fn resolve(table: RouteTable) -> Result<RoutePlan, ResolveError> {
        let mut addrs = Vec::with_capacity(table.routes.len());
        for route in &table.routes {
            let mut per_target = Vec::with_capacity(route.targets.len());
            for t in &route.targets {
                let found: Vec<SocketAddr> = (t.host.as_str(), t.port)
                    .to_socket_addrs()
                    .map_err(|e| unresolvable(route, &t.host, t.port, e.to_string()))?
                    .collect();
                if found.is_empty() {
                    return Err(unresolvable(route, &t.host, t.port, "no address".into()));
                }
                per_target.push(found);
            }
            addrs.push(per_target);
        }
        Ok(RoutePlan { table, addrs })
    }

    /// Index of the route for a request, if any.
    pub fn find(&self, host: &str, path: &str, is_tls: bool, is_ws: bool) -> Option<usize> {
        let route = self.table.find(host, path, is_tls, is_ws)?;
        self.table
            .routes
            .iter()
            .position(|r| std::ptr::eq(r, route))
    }

    pub fn route(&self, index: usize) -> &Route {
        &self.table.routes[index]
    }
}

fn unresolvable(route: &Route, host: &str, port: u16, reason: String) -> ResolveError {
    ResolveError::Unresolvable {
        line: route.line,
        host: host.to_string(),
        port,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_loopback_targets() {
        let table = RouteTable::parse("* 127.0.0.1:8080 localhost:9090\n").unwrap();
        let plan = RoutePlan::resolve(table).unwrap();
        assert_eq!(plan.addrs[0][0], vec!["127.0.0.1:8080".parse().unwrap()]);
        assert!(!plan.addrs[0][1].is_empty());
        assert_eq!(plan.find("anything", "/", false, false), Some(0));
    }

    #[test]
    fn unresolvable_target_names_the_line() {
        let table = RouteTable::parse("# c\n* no-such-host.invalid:80\n").unwrap();
        let err = RoutePlan::resolve(table).err().unwrap().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
