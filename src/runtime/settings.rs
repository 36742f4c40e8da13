//! What a reload (SIGHUP) can change: the configuration and the routes, resolved. Each worker
//! keeps its own copy behind an `Rc` (with the Grip-Sig signers built from it), so reading it on
//! the request path costs no atomic operation; a request takes the snapshot current when it
//! starts, so a reload never changes a request half-way.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::origin::sign::{Signer, Signers};
use crate::origin::targets::RoutePlan;
use crate::routes::Route;
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
    pub slow: crate::hub::slow_consumer::Limits,
}

impl WorkerSettings {
    pub fn new(s: &Settings) -> WorkerSettings {
        WorkerSettings {
            signers: Signers::new(&s.routes, &s.config.grip),
            config: s.config.clone(),
            routes: s.routes.clone(),
            tls: s.tls.clone(),
            origin_tls: s.origin_tls.clone(),
            slow: crate::hub::slow_consumer::Limits::new(&s.config.hold),
        }
    }
}

/// One route of one settings snapshot. A request, a hold and a WebSocket session keep this across
/// awaits rather than an index into the current table: a reload that reorders or shrinks the
/// routes can then neither pull the route from under them nor make them sign for, or talk to,
/// another route's origin.
#[derive(Clone)]
pub struct RouteRef {
    settings: Rc<WorkerSettings>,
    index: usize,
}

impl RouteRef {
    /// Route `index` of `settings`; None when there is no such route.
    pub fn new(settings: Rc<WorkerSettings>, index: usize) -> Option<RouteRef> {
        (index < settings.routes.table.routes.len()).then_some(RouteRef { settings, index })
    }

    pub fn route(&self) -> &Route {
        self.settings.routes.route(self.index)
    }

    /// The snapshot this route belongs to (its config and TLS clients go with it).
    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// Addresses of target `t`.
    pub fn addrs(&self, t: usize) -> &[SocketAddr] {
        &self.settings.routes.addrs[self.index][t]
    }

    pub fn target_count(&self) -> usize {
        self.settings.routes.addrs[self.index].len()
    }

    /// The route's Grip-Sig signer, if signing is configured.
    pub fn signer(&self) -> Option<&Signer> {
        self.settings.signers.for_route(self.index)
    }

    /// The first route of a routes text, with the default config: for unit tests.
    #[cfg(test)]
    pub fn for_tests(routes: &str) -> RouteRef {
        let table = crate::routes::RouteTable::parse(routes).expect("test routes parse");
        let settings = Settings {
            config: Config::default(),
            routes: RoutePlan::resolve(table).expect("test routes resolve"),
            tls: None,
            origin_tls: None,
        };
        RouteRef::new(Rc::new(WorkerSettings::new(&settings)), 0).expect("a route")
    }
}

impl crate::origin::client::OriginRoute for RouteRef {
    fn targets(&self) -> &[crate::routes::Target] {
        &self.route().targets
    }

    fn target_addrs(&self, t: usize) -> &[SocketAddr] {
        self.addrs(t)
    }

    fn origin_tls(&self) -> Option<&OriginTls> {
        self.settings.origin_tls.as_ref()
    }

    fn config(&self) -> &Config {
        &self.settings.config
    }
}

/// The identifier bounds of the `[grip]` section, as the codecs take them.
pub fn name_limits(grip: &crate::config::GripConfig) -> crate::proto::names::NameLimits {
    crate::proto::names::NameLimits {
        channel_bytes_max: grip.channel_bytes_max,
        id_bytes_max: grip.id_bytes_max,
        meta_value_bytes_max: grip.meta_value_bytes_max,
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
    if old.publish.metrics_listen != new.publish.metrics_listen {
        fields.push("publish.metrics_listen");
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
    if old.zmq != new.zmq {
        fields.push("zmq");
    }
    fields
}
