//! Start-up and shutdown of a whole holdfast instance.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};

use super::Shared;
use super::commands::{self, Command};
use super::listener;
use super::publish_api;
use super::settings::Settings;
use super::worker::Worker;
use crate::auth::PublishAuth;
use crate::config::{Config, ConfigError, DriverChoice};
use crate::hub::inbox::Inbox;
use crate::origin::targets::{ResolveError, RoutePlan};
use crate::routes::{RouteTable, RoutesError};
use crate::tls::OriginTls;

/// The runtime every holdfast thread runs: io_uring, or epoll where io_uring is missing.
pub type Runtime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Routes(#[from] RoutesError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("io_uring is required by server.driver = \"uring\" but this kernel does not offer it")]
    NoUring,
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    #[cfg(feature = "zmq")]
    #[error(transparent)]
    Zmq(#[from] crate::zmq::thread::OpenError),
}

/// How long a reload or shutdown waits for every worker to acknowledge it.
const COMMAND_ACK_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running instance. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    /// Client listener addresses, in config order (ports resolved if 0 was asked).
    pub http_addrs: Vec<SocketAddr>,
    /// TLS listener addresses, likewise.
    pub tls_addrs: Vec<SocketAddr>,
    pub publish_addr: SocketAddr,
    /// `publish.metrics_listen`'s address, when `/metrics` has a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    /// The ZeroMQ endpoints as bound, when `[zmq]` is enabled.
    pub zmq_endpoints: Option<crate::zmq::Endpoints>,
    shared: Arc<Shared>,
    /// Rung to stop the publish thread (a doorbell only: nothing is queued).
    publish_stop: Arc<Inbox<()>>,
    publish_thread: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    cluster_thread: Option<JoinHandle<()>>,
    zmq_thread: Option<JoinHandle<()>>,
}

/// Builds a runtime on the chosen driver.
pub fn build_runtime(use_uring: bool, entries: u32) -> io::Result<Runtime> {
    if use_uring {
        RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(entries)
            .enable_timer()
            .build()
            .map(Into::into)
    } else {
        RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Into::into)
    }
}

/// Whether workers run on io_uring, logging the choice once.
fn choose_driver(choice: DriverChoice) -> Result<bool, StartError> {
    // Probe on a throwaway thread: tearing the probe ring down queues task work that makes the
    // calling thread's next blocking syscall fail once with EINTR.
    let available = std::thread::spawn(monoio::utils::detect_uring)
        .join()
        .unwrap_or(false);
    match (choice, available) {
        (DriverChoice::Legacy, _) => {
            tracing::info!("driver: legacy (epoll), as configured");
            Ok(false)
        }
        (_, true) => {
            tracing::info!("driver: io_uring");
            Ok(true)
        }
        (DriverChoice::Uring, false) => Err(StartError::NoUring),
        (DriverChoice::Auto, false) => {
            tracing::warn!("io_uring is not available: falling back to the legacy (epoll) driver");
            Ok(false)
        }
    }
}

/// Checks a config, its routes and its certificates without starting anything, and builds the
/// reloadable settings from them.
pub fn check(config: &Config) -> Result<Settings, StartError> {
    // Secrets given as files are read here, so start-up, reload and check-config all see them.
    let config = &config.with_secret_files()?;
    config.validate()?;
    if let Some(key) = &config.grip.sig_key {
        crate::origin::sign::SigningKey::parse(key)?;
    }
    PublishAuth::from_config(&config.publish)?;
    let table = RouteTable::parse(&config.routes_text()?)?;
    let routes = RoutePlan::resolve(table)?;
    let tls = crate::tls::server_config(config)?;
    let any_ssl_target = routes
        .table
        .routes
        .iter()
        .any(|r| r.targets.iter().any(|t| t.ssl));
    let origin_tls = if any_ssl_target {
        Some(OriginTls::build(config.origin.tls_ca_file.as_deref())?)
    } else {
        None
    };
    Ok(Settings {
        config: config.clone(),
        routes,
        tls,
        origin_tls,
    })
}

impl Server {
    pub fn start(config: Config) -> Result<Server, StartError> {
        let settings = check(&config)?;
        let config = settings.config.clone();
        let use_uring = choose_driver(config.server.driver)?;
        let workers = config.worker_count();
        for warning in super::host::limit_warnings(&config, workers) {
            tracing::warn!("{warning}");
        }
        if let Err(e) = super::host::set_huge_pages(config.server.transparent_huge_pages) {
            tracing::warn!("cannot turn transparent huge pages off: {e}");
        }
        let mut per_worker: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
        let mut http_addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        let plain = config.server.listen.iter().map(|a| (a, false));
        for (&addr, tls) in plain.chain(config.tls.listen.iter().map(|a| (a, true))) {
            let group = listener::bind_group(addr, workers, config.server.listen_backlog)
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = group[0]
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            if tls { &mut tls_addrs } else { &mut http_addrs }.push(bound);
            for (i, socket) in group.into_iter().enumerate() {
                per_worker[i].push(Listener { socket, tls });
            }
        }
        let paddr = config.publish.listen;
        let publish_listener =
            listener::bind_single(paddr, config.server.listen_backlog).map_err(|source| {
                StartError::Bind {
                    addr: paddr,
                    source,
                }
            })?;
        let publish_addr = publish_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: paddr,
                source,
            })?;
        let metrics_listener = match config.publish.metrics_listen {
            Some(addr) => {
                let bind = |addr| {
                    let l = listener::bind_single(addr, config.server.listen_backlog)?;
                    let bound = l.local_addr()?;
                    Ok::<_, io::Error>((l, bound))
                };
                Some(bind(addr).map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, addr)| *addr);
        let cluster_link = config
            .cluster
            .enabled
            .then(|| Arc::new(crate::cluster::ClusterLink::new(config.cluster.clone())));
        let zmq_link = config
            .zmq
            .enabled
            .then(|| Arc::new(crate::zmq::ZmqLink::new(config.zmq.clone())));
        #[cfg(feature = "zmq")]
        let zmq_sockets = zmq_link
            .as_deref()
            .map(crate::zmq::thread::open)
            .transpose()?;
        let inboxes = (0..workers)
            .map(|_| Arc::new(Inbox::new(config.publish.inbox_capacity)))
            .collect();
        let config_limits = (
            config.server.connections_max,
            config.server.connections_max_per_ip,
        );
        let shared = Arc::new(Shared {
            initial: settings,
            config,
            inboxes,
            commands: (0..workers).map(|_| Arc::default()).collect(),
            metrics: (0..workers).map(|_| Arc::default()).collect(),
            publish_metrics: Arc::default(),
            admission: super::admission::Admission::new(config_limits.0, config_limits.1),
            cluster: cluster_link,
            zmq: zmq_link,
        });
        let mut handles = Vec::with_capacity(workers);
        for (index, listeners) in per_worker.into_iter().enumerate() {
            handles.push(spawn_worker(index, shared.clone(), listeners, use_uring)?);
        }
        let cluster_thread = match &shared.cluster {
            Some(link) => Some(
                crate::cluster::node::spawn(link.clone(), cluster_limits(&shared.config))
                    .map_err(StartError::Thread)?,
            ),
            None => None,
        };
        #[cfg(feature = "zmq")]
        let (zmq_endpoints, zmq_thread) = match (zmq_sockets, &shared.zmq) {
            (Some(sockets), Some(link)) => {
                let endpoints = sockets.endpoints.clone();
                let cx = crate::zmq::thread::Context {
                    link: link.clone(),
                    limits: cluster_limits(&shared.config),
                    workers: shared.metrics.clone(),
                    publish: shared.publish_metrics.clone(),
                };
                let thread = crate::zmq::thread::spawn(sockets, cx).map_err(StartError::Thread)?;
                (Some(endpoints), Some(thread))
            }
            _ => (None, None),
        };
        #[cfg(not(feature = "zmq"))]
        let (zmq_endpoints, zmq_thread) = (None, None);
        let publish_stop = Arc::new(Inbox::new(1));
        let publish_thread = publish_api::spawn(
            publish_listener,
            metrics_listener.map(|(l, _)| l),
            shared.clone(),
            publish_stop.clone(),
            use_uring,
        )
        .map_err(StartError::Thread)?;
        tracing::info!(
            "holdfast listening on {http_addrs:?}, TLS on {tls_addrs:?} (publish API on \
             {publish_addr}) with {workers} workers",
        );
        if let Some(addr) = metrics_addr {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        Ok(Server {
            http_addrs,
            tls_addrs,
            publish_addr,
            metrics_addr,
            zmq_endpoints,
            shared,
            publish_stop,
            publish_thread: Some(publish_thread),
            workers: handles,
            cluster_thread,
            zmq_thread,
        })
    }

    /// Replaces the reloadable settings (routes, limits, timeouts, signing) on every worker,
    /// without touching a connection. An invalid config changes nothing and says why. Settings
    /// that need a restart (listeners, workers, driver, publish listener and auth) keep their
    /// start-up values; the returned list names the ones that differ.
    pub fn reload(&self, config: Config) -> Result<Vec<&'static str>, StartError> {
        let settings = Arc::new(check(&config)?);
        let restart = super::settings::needs_restart(&self.shared.config, &settings.config);
        let missing = commands::broadcast(
            &self.shared.commands,
            &self.shared.inboxes,
            || Command::Reload(settings.clone()),
            COMMAND_ACK_LIMIT,
        );
        if !missing.is_empty() {
            tracing::error!(?missing, "workers did not acknowledge the reload in time");
        }
        Ok(restart)
    }

    /// Stops accepting, ends held connections, and waits for every thread.
    pub fn shutdown(mut self) {
        // The ZeroMQ thread first: it may be waiting for room in the publish thread's queue.
        if let (Some(link), Some(t)) = (&self.shared.zmq, self.zmq_thread.take()) {
            link.stop();
            let _ = t.join();
        }
        // Then the publish thread: it may be waiting on a worker inbox.
        self.publish_stop.ring();
        if let Some(t) = self.publish_thread.take() {
            let _ = t.join();
        }
        if let (Some(link), Some(t)) = (&self.shared.cluster, self.cluster_thread.take()) {
            crate::cluster::node::stop(link);
            let _ = t.join();
        }
        let missing = commands::broadcast(
            &self.shared.commands,
            &self.shared.inboxes,
            || Command::Shutdown,
            COMMAND_ACK_LIMIT,
        );
        if !missing.is_empty() {
            tracing::error!(?missing, "workers did not acknowledge the shutdown in time");
        }
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
    }
}

/// One of a worker's listening sockets, and whether it speaks TLS.
pub struct Listener {
    pub socket: std::net::TcpListener,
    pub tls: bool,
}

/// The limits an item from another node (or from ZeroMQ) is checked against: this node's own
/// publish limits.
fn cluster_limits(config: &Config) -> crate::proto::publish::PublishLimits {
    crate::proto::publish::PublishLimits {
        items_max: config.publish.items_max,
        content_bytes_max: config.publish.body_bytes_max,
        names: super::settings::name_limits(&config.grip),
        body_patch_ops_max: config.publish.body_patch_ops_max,
    }
}

fn spawn_worker(
    index: usize,
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
    use_uring: bool,
) -> Result<JoinHandle<()>, StartError> {
    let entries = shared.config.server.uring_entries;
    let pin = shared.config.server.pin_workers;
    std::thread::Builder::new()
        .name(format!("holdfast-w{index}"))
        .spawn(move || {
            if pin {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                if let Err(e) = monoio::utils::bind_to_cpu_set([index % cpus]) {
                    tracing::warn!(worker = index, "cannot pin to a core: {e}");
                }
            }
            let mut rt = match build_runtime(use_uring, entries) {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = index, "cannot build runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let worker = Rc::new(Worker::new(index, shared));
                worker.run(listeners).await;
            });
        })
        .map_err(StartError::Thread)
}
