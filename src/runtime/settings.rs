//! What a reload (SIGHUP) can change: the configuration and the routes, resolved. Each worker
//! keeps its own copy behind an `Rc` (with the Grip-Sig signers built from it), so reading it on
//! the request path costs no atomic operation; a request takes the snapshot current when it
//! starts, so a reload never changes a request half-way.

use std::sync::Arc;

use crate::config::Config;
use crate::origin::sign::Signers;
use crate::origin::targets::RoutePlan;
use crate::tls::OriginTls;

/// The reloadable settings, as the main thread builds and sends them.
#[derive(Clone)]
pub struct Settings {
    pub config: Config,
    pub routes: RoutePlan,
    /// The TLS listeners' config (certificates re-read on reload); None without certificates.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client configs for `ssl` targets; None when no route has one.
    pub origin_tls: Option<OriginTls>,
}

/// One worker's copy of the settings.
pub struct WorkerSettings {
    pub config: Config,
    pub routes: RoutePlan,
    pub signers: Signers,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub origin_tls: Option<OriginTls>,
    /// `[hold]`'s slow-consumer limits, copied out for the per-message check.
    pub slow: super::slow_consumer::Limits,
}

impl WorkerSettings {
    pub fn new(s: &Settings) -> WorkerSettings {
        WorkerSettings {
            signers: Signers::new(&s.routes, &s.config.grip),
            config: s.config.clone(),
            routes: s.routes.clone(),
            tls: s.tls.clone(),
            origin_tls: s.origin_tls.clone(),
            slow: super::slow_consumer::Limits::new(&s.config.hold),
        }
    }
}

/// Settings a reload cannot change (they need a restart), named when they differ.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if old.server.listen != new.server.listen {
        fields.push("server.listen");
    }
    if old.server.workers != new.server.workers {
        fields.push("server.workers");
    }
    if old.server.driver != new.server.driver {
        fields.push("server.driver");
    }
    if old.server.transparent_huge_pages != new.server.transparent_huge_pages {
        fields.push("server.transparent_huge_pages");
    }
    if old.tls.listen != new.tls.listen {
        fields.push("tls.listen");
    }
    if old.publish.listen != new.publish.listen {
        fields.push("publish.listen");
    }
    let auth = |c: &Config| {
        (
            c.publish.basic_auth.clone(),
            c.publish.jwt_key.clone(),
            c.publish.jwt_iss.clone(),
        )
    };
    if auth(old) != auth(new) {
        fields.push("publish auth");
    }
    if old.cluster != new.cluster {
        fields.push("cluster");
    }
    fields
}
