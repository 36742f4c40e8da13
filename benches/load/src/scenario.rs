//! The coordinating commands: `subscribe`, `run` and `wsoh-batch`. They run in the parent on a
//! current-thread runtime, drive the worker processes and the publisher, and build the report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::client::{
    ClientRow, Kind, Progress, STATE_CLOSED, STATE_FAILED, STATE_READY, SendSpec, WorkerResult,
    WorkerSpec,
};
use crate::fleet::Fleet;
use crate::hist::Hist;
use crate::mem::{ProcSel, RssSample};
use crate::publish::{Format, HttpConn, PubResult, PubSpec, run_publisher, run_publisher_into};
use crate::util::{channel_name, now_ns, parse_ips, parse_target};

/// How the clients connect (shared by subscribe, run, wsoh-batch).
#[derive(clap::Args, Clone, Debug)]
pub struct ClientOpts {
    /// Proxy URL; `{ch}` is replaced by the client's channel (e.g. http://127.0.0.1:7999/sse/{ch}).
    /// Several, comma-separated, spread the clients over them (one proxy node per worker process,
    /// round-robin; at least one process per URL): a cluster of nodes behind no load balancer.
    #[arg(long)]
    pub url: String,
    /// Number of client connections
    #[arg(long, default_value_t = 1000)]
    pub clients: u64,
    /// Clients are spread round-robin over channels <prefix>0 .. <prefix>K-1
    #[arg(long, default_value_t = 1)]
    pub channels: u64,
    #[arg(long, default_value = "c")]
    pub channel_prefix: String,
    /// Worker processes (each holds clients/procs sockets; the open-files limit is per process).
    /// Default: one per 15 000 clients
    #[arg(long)]
    pub procs: Option<u64>,
    /// Local addresses to bind client sockets to, round-robin (e.g. 127.0.0.2-127.0.0.9)
    #[arg(long)]
    pub source_ips: Option<String>,
    /// Cap on new connections per second (over all workers)
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Connections being set up at once (over all workers). Pushpin 1.36 answers 502 to
    /// many requests in a burst of ~1000 (zurl/ZeroMQ queue limits)
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Seconds one connection attempt may take (connect + initial response)
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Attempts after the first for a connection that fails before it is ready
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Bytes per read (one buffer per worker process, shared by its connections)
    #[arg(long, default_value_t = 256 * 1024)]
    pub read_buf: usize,
    /// Seconds to wait for all clients to be connected
    #[arg(long, default_value_t = 120.0)]
    pub connect_wait: f64,
}

#[derive(clap::Args, Clone, Debug)]
pub struct MemOpts {
    /// Proxy processes whose VmRSS is summed (comma-separated pids)
    #[arg(long, value_delimiter = ',')]
    pub proxy_pids: Vec<u32>,
    /// Proxy processes with all their descendants (e.g. the pid of the `pushpin` runner)
    #[arg(long, value_delimiter = ',')]
    pub proxy_tree: Vec<u32>,
    /// Proxy processes by name: comm or program/script name contains NAME, plus descendants
    /// (e.g. "pushpin" also catches condure, zurl, pushpin-proxy, pushpin-handler)
    #[arg(long, value_delimiter = ',')]
    pub proxy_match: Vec<String>,
}

impl MemOpts {
    fn sel(&self) -> ProcSel {
        ProcSel {
            pids: self.proxy_pids.clone(),
            trees: self.proxy_tree.clone(),
            names: self.proxy_match.clone(),
        }
    }
}

/// What is published.
#[derive(clap::Args, Clone, Debug)]
pub struct PubOpts {
    /// Messages per channel (sequence numbers 0..count on every channel)
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Items per second over all channels, or "max"
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Instead of --rate: one round (the next message on every channel) every T ms
    #[arg(long)]
    pub publish_interval_ms: Option<u64>,
    /// Payload size in bytes as the client receives it (stamp + filler)
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Publish format(s), comma-separated (default: the one that fits --kind)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<Format>,
    /// Items per POST
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Concurrent publish connections (channels are split between them; per-channel order kept)
    #[arg(long, default_value_t = 4)]
    pub publish_conns: usize,
    /// Seconds one publish request may take
    #[arg(long, default_value_t = 10.0)]
    pub publish_timeout: f64,
}

impl PubOpts {
    pub fn spec(
        &self,
        url: &str,
        channels: Vec<String>,
        kind: Option<Kind>,
    ) -> Result<PubSpec, String> {
        let rate = if self.rate == "max" {
            None
        } else {
            let r: f64 = self
                .rate
                .parse()
                .map_err(|_| format!("--rate {}: a number or max", self.rate))?;
            if r <= 0.0 {
                return Err("--rate must be positive".into());
            }
            Some(r)
        };
        let formats = if self.format.is_empty() {
            vec![match kind {
                Some(Kind::Stream) | None => Format::HttpStream,
                Some(Kind::Sse) => Format::Sse,
                Some(Kind::Ws) => Format::WsMessage,
                Some(Kind::Poll) => Format::HttpResponse,
            }]
        } else {
            self.format.clone()
        };
        if formats.contains(&Format::Sse) && formats.contains(&Format::HttpStream) {
            return Err(
                "--format: sse and http-stream are both http-stream content; pick one".into(),
            );
        }
        Ok(PubSpec {
            target: parse_target(url)?,
            channels,
            count: self.count,
            rate,
            interval_ms: self.publish_interval_ms,
            size: self.size,
            formats,
            batch: self.batch.max(1),
            conns: self.publish_conns.max(1),
            timeout: Duration::from_secs_f64(self.publish_timeout),
        })
    }
}

pub fn channels(prefix: &str, k: u64) -> Vec<String> {
    (0..k.max(1)).map(|i| channel_name(prefix, i)).collect()
}

pub fn worker_specs(
    c: &ClientOpts,
    kind: Kind,
    expect: u64,
    send: Option<SendSpec>,
) -> Result<Vec<WorkerSpec>, String> {
    let targets = c
        .url
        .split(',')
        .map(parse_target)
        .collect::<Result<Vec<_>, _>>()?;
    let n = c.clients;
    if n == 0 {
        return Err("--clients must be > 0".into());
    }
    let procs = c
        .procs
        .unwrap_or(n.div_ceil(15_000))
        .max(targets.len() as u64)
        .clamp(1, n);
    let per = n.div_ceil(procs);
    if per > 19_500 {
        return Err(format!(
            "{per} clients per worker exceed the 20 000 open-files limit: use --procs {}",
            n.div_ceil(15_000)
        ));
    }
    let ips = match &c.source_ips {
        Some(s) => parse_ips(s)?,
        None => Vec::new(),
    };
    if ips.is_empty() && n > 25_000 {
        eprintln!(
            "holdfast-load: warning: {n} clients from one source address may run out of ephemeral \
             ports (~28 000 per address): use --source-ips 127.0.0.2-127.0.0.9"
        );
    }
    let mut specs = Vec::new();
    let mut first = 0;
    for p in 0..procs {
        let count = n / procs + u64::from(p < n % procs);
        let target = &targets[p as usize % targets.len()];
        specs.push(WorkerSpec {
            kind,
            host: target.host.clone(),
            addr: target.addr,
            path: target.path.clone(),
            first_index: first,
            clients: count,
            channels: c.channels.max(1),
            channel_prefix: c.channel_prefix.clone(),
            source_ips: ips.clone(),
            connect_rate: c.connect_rate.map_or(0.0, |r| r / procs as f64),
            concurrency: (c.connect_concurrency / procs as usize).max(1),
            connect_timeout_ms: (c.connect_timeout * 1000.0) as u64,
            retries: c.retries,
            expect,
            send: send.clone(),
            progress_ms: 100,
            read_buf: c.read_buf,
        });
        first += count;
    }
    Ok(specs)
}

/// Start `holdfast-load origin` as a child (killed when dropped) and wait until it listens.
pub async fn spawn_origin(addr: SocketAddr) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("origin")
        .arg("--listen")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn origin: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(child);
        }
        sleep(Duration::from_millis(20)).await;
    }
    Err(format!("origin did not listen on {addr}"))
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Wait for all clients to be ready (or failed); prints progress to stderr.
async fn wait_connected(fleet: &Fleet, clients: u64, wait: Duration, quiet: bool) -> Progress {
    let start = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let t = fleet.totals();
        if t.ready + t.failed >= clients || fleet.dead() > 0 {
            return t;
        }
        if start.elapsed() >= wait {
            eprintln!(
                "holdfast-load: connect wait of {:.0} s ran out",
                wait.as_secs_f64()
            );
            return t;
        }
        if !quiet && last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "[{:5.1}s] connecting: {} ready, {} failed of {clients}",
                start.elapsed().as_secs_f64(),
                t.ready,
                t.failed
            );
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Serialize, Default, Debug)]
pub struct Connect {
    pub ready: u64,
    pub failed: u64,
    pub secs: f64,
    pub per_s: f64,
}

#[derive(Serialize, Default, Debug)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Serialize, Default, Debug)]
pub struct Rss {
    pub before_kib: u64,
    pub connected_kib: u64,
    pub after_kib: u64,
    pub per_conn_kib: f64,
    pub procs: Vec<crate::mem::ProcRss>,
    /// Kernel memory (system-wide) before and once connected, and its growth per connection: on
    /// loopback that covers both ends of each connection, the client's socket and the proxy's.
    pub kernel_before: crate::mem::KernelMem,
    pub kernel_connected: crate::mem::KernelMem,
    pub kernel_slab_per_conn_kib: f64,
    pub kernel_tcp_buf_per_conn_kib: f64,
    /// The proxy's CPU time from before the first connection until all were connected and
    /// settled, per connection: what setting up one held connection costs the proxy.
    pub proxy_cpu_ms: u64,
    pub proxy_cpu_us_per_conn: f64,
}

#[derive(Serialize, Default, Debug)]
pub struct Report {
    pub scenario: String,
    pub kind: String,
    pub url: String,
    pub clients: u64,
    pub procs: usize,
    pub channels: u64,
    /// Messages per channel.
    pub messages: u64,
    pub size: usize,
    pub connect: Connect,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PubResult>,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub deliveries_per_s: f64,
    pub delivery_secs: f64,
    pub latency: Latency,
    /// Publish -> the kernel's receive time of the message (SO_TIMESTAMPNS): what the proxy
    /// and the loopback take, without the time a message waits for this tool to read it. With
    /// thousands of subscribers in one load process that wait dominates `latency`.
    pub latency_kernel: Latency,
    /// From the first publish until the last client had its first message.
    pub last_client_first_message_ms: f64,
    /// From the first publish until the last client had all its messages (or its last one).
    pub last_client_last_message_ms: f64,
    pub clients_complete: u64,
    pub clients_without_messages: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    pub closed: u64,
    pub reconnects: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<Rss>,
    pub timed_out: bool,
}

fn build_report(results: &[WorkerResult], expect: u64, publish_first_ns: Option<u64>) -> Report {
    let mut r = Report::default();
    let mut hist = Hist::new();
    let mut khist = Hist::new();
    let mut start_ns = u64::MAX;
    let mut last_ready = 0u64;
    let mut max_first = 0u64;
    let mut max_last = 0u64;
    let mut min_first = u64::MAX;
    let mut last_delivery = 0u64;
    for w in results {
        hist.merge_wire(&w.latency);
        khist.merge_wire(&w.kernel_latency);
        if w.start_ns > 0 {
            start_ns = start_ns.min(w.start_ns);
        }
        r.reconnects += w.progress.reconnects;
        for (k, v) in &w.errors {
            *r.errors.entry(k.clone()).or_default() += v;
        }
        for ClientRow(
            _,
            state,
            ready_ns,
            received,
            _distinct,
            lost,
            dup,
            reord,
            first,
            last,
            done,
        ) in &w.clients
        {
            match *state {
                STATE_READY | STATE_CLOSED => {
                    r.connect.ready += 1;
                    last_ready = last_ready.max(*ready_ns);
                    if *state == STATE_CLOSED {
                        r.closed += 1;
                    }
                }
                STATE_FAILED => {
                    r.connect.failed += 1;
                    continue;
                }
                _ => continue,
            }
            r.deliveries += *received as u64;
            r.lost += lost;
            r.duplicated += *dup as u64;
            r.reordered += *reord as u64;
            if *first == 0 {
                r.clients_without_messages += 1;
            } else {
                max_first = max_first.max(*first);
                min_first = min_first.min(*first);
            }
            if *done > 0 {
                r.clients_complete += 1;
                max_last = max_last.max(*done);
            } else {
                max_last = max_last.max(*last);
            }
            last_delivery = last_delivery.max(*last);
        }
    }
    if start_ns != u64::MAX && last_ready > start_ns {
        r.connect.secs = (secs(last_ready - start_ns) * 1000.0).round() / 1000.0;
        r.connect.per_s = r2(r.connect.ready as f64 / secs(last_ready - start_ns));
    }
    r.expected_deliveries = expect * r.connect.ready;
    let t0 = publish_first_ns.unwrap_or(if min_first == u64::MAX { 0 } else { min_first });
    if last_delivery > t0 && t0 > 0 {
        r.delivery_secs = secs(last_delivery - t0);
        r.deliveries_per_s = r2(r.deliveries as f64 / r.delivery_secs);
    }
    if t0 > 0 {
        r.last_client_first_message_ms = ms(max_first.saturating_sub(t0));
        r.last_client_last_message_ms = ms(max_last.saturating_sub(t0));
    }
    r.latency = Latency::of(&hist);
    r.latency_kernel = Latency::of(&khist);
    r
}

impl Latency {
    fn of(hist: &Hist) -> Latency {
        Latency {
            p50_ms: ms(hist.quantile(0.5)),
            p90_ms: ms(hist.quantile(0.9)),
            p99_ms: ms(hist.quantile(0.99)),
            p999_ms: ms(hist.quantile(0.999)),
            max_ms: ms(hist.max),
            mean_ms: ms(hist.mean() as u64),
        }
    }
}

fn print_summary(r: &Report) {
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "holdfast-load {}: {} {} clients ({} procs) on {} channel(s) via {}",
        r.scenario, r.clients, r.kind, r.procs, r.channels, r.url
    );
    let _ = writeln!(
        s,
        "  connect    {} ready, {} failed in {:.2} s = {:.0} conn/s",
        r.connect.ready, r.connect.failed, r.connect.secs, r.connect.per_s
    );
    if let Some(p) = &r.publish {
        let _ = writeln!(
            s,
            "  publish    {} items ({} per channel, {} B) in {} POSTs, {} failed, {:.3} s = {:.0} items/s",
            p.items, r.messages, r.size, p.posts, p.failed_posts, p.secs, p.items_per_s
        );
        for e in &p.errors {
            let _ = writeln!(s, "             publish error: {e}");
        }
    }
    let _ = writeln!(
        s,
        "  delivery   {} of {} expected in {:.3} s = {:.0} deliveries/s",
        r.deliveries, r.expected_deliveries, r.delivery_secs, r.deliveries_per_s
    );
    let l = &r.latency;
    let _ = writeln!(
        s,
        "  latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    );
    let k = &r.latency_kernel;
    let _ = writeln!(
        s,
        "  (kernel)   p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  \
         (publish -> the kernel received it, SO_TIMESTAMPNS)",
        k.p50_ms, k.p90_ms, k.p99_ms, k.p999_ms, k.max_ms
    );
    let _ = writeln!(
        s,
        "  timeline   last client's first message at {:.1} ms, last client complete at {:.1} ms",
        r.last_client_first_message_ms, r.last_client_last_message_ms
    );
    let _ = writeln!(
        s,
        "  integrity  lost {}  reordered {}  duplicated {}  | complete {}/{}  without messages {}  closed {}  reconnects {}{}",
        r.lost,
        r.reordered,
        r.duplicated,
        r.clients_complete,
        r.connect.ready,
        r.clients_without_messages,
        r.closed,
        r.reconnects,
        if r.timed_out { "  (TIMED OUT)" } else { "" }
    );
    if let Some(m) = &r.rss {
        let _ = writeln!(
            s,
            "  proxy RSS  before {:.1} MiB, connected {:.1} MiB ({:+.2} KiB/conn), after {:.1} MiB  [{} procs]",
            m.before_kib as f64 / 1024.0,
            m.connected_kib as f64 / 1024.0,
            m.per_conn_kib,
            m.after_kib as f64 / 1024.0,
            m.procs.len()
        );
    }
    for (e, n) in &r.errors {
        let _ = writeln!(s, "  error      {n} × {e}");
    }
    eprint!("{s}");
}

fn write_outputs(
    r: &Report,
    json_out: &Option<PathBuf>,
    results: &[WorkerResult],
    per_client: &Option<PathBuf>,
) {
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    println!("{json}");
    if let Some(p) = json_out
        && let Err(e) = std::fs::write(p, &json)
    {
        eprintln!("holdfast-load: write {}: {e}", p.display());
    }
    if let Some(p) = per_client {
        let mut s = String::from(
            "client,state,ready_ns,received,distinct,lost,duplicated,reordered,first_ns,last_ns,complete_ns\n",
        );
        for w in results {
            for ClientRow(i, st, rd, rc, ds, l, du, ro, f, la, d) in &w.clients {
                s.push_str(&format!(
                    "{i},{st},{rd},{rc},{ds},{l},{du},{ro},{f},{la},{d}\n"
                ));
            }
        }
        if let Err(e) = std::fs::write(p, s) {
            eprintln!("holdfast-load: write {}: {e}", p.display());
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Client kind
    #[arg(long, value_enum, default_value = "sse")]
    pub kind: Kind,
    #[command(flatten)]
    pub client: ClientOpts,
    /// The proxy's publish endpoint
    #[arg(long, default_value = "http://127.0.0.1:5561/publish/")]
    pub publish_url: String,
    #[command(flatten)]
    pub publish: PubOpts,
    #[command(flatten)]
    pub mem: MemOpts,
    /// Seconds from the first publish until the run is cut short
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Stop once publishing is over and nothing arrived for this many seconds
    #[arg(long, default_value_t = 5.0)]
    pub idle_timeout: f64,
    /// Pause between "all connected" and the first publish (subscriptions settle in the proxy)
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// Exit 1 if any message was lost, reordered or duplicated, or a client failed
    #[arg(long)]
    pub strict: bool,
    /// Also write the JSON report to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write per-client results (CSV) to this file
    #[arg(long)]
    pub per_client_out: Option<PathBuf>,
    /// Start `holdfast-load origin` on this address for the duration of the run
    #[arg(long)]
    pub spawn_origin: Option<SocketAddr>,
}

pub async fn run(a: RunArgs) -> Result<i32, String> {
    let _origin = match a.spawn_origin {
        Some(addr) => Some(spawn_origin(addr).await?),
        None => None,
    };
    let sel = a.mem.sel();
    let rss_before = (!sel.is_empty()).then(|| sel.sample());
    let expect = a.publish.count;
    let chans = channels(&a.client.channel_prefix, a.client.channels);
    let pub_spec = a.publish.spec(&a.publish_url, chans, Some(a.kind))?;
    let specs = worker_specs(&a.client, a.kind, expect, None)?;
    let mut fleet = Fleet::spawn(&specs)?;
    let clients = a.client.clients;
    let t = wait_connected(
        &fleet,
        clients,
        Duration::from_secs_f64(a.client.connect_wait),
        false,
    )
    .await;
    eprintln!("connected: {} ready, {} failed", t.ready, t.failed);
    sleep(Duration::from_millis(a.settle_ms)).await;
    let rss_connected = (!sel.is_empty()).then(|| sel.sample());

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.timeout);
    let pub_live = std::rc::Rc::new(std::cell::RefCell::new(PubResult::default()));
    let mut publisher = tokio::task::spawn_local(run_publisher_into(pub_spec, pub_live.clone()));
    let pub_res: Option<PubResult>;
    let mut last_received = 0;
    let mut timed_out = false;
    let idle = Duration::from_secs_f64(a.idle_timeout);
    loop {
        tokio::select! {
            r = &mut publisher => {
                pub_res = Some(r.map_err(|e| e.to_string())?);
                break;
            }
            _ = sleep(Duration::from_secs(1)) => {
                let t = fleet.totals();
                eprintln!(
                    "[{:5.1}s] publishing: {} received, {} clients complete",
                    start.elapsed().as_secs_f64(),
                    t.received,
                    t.done
                );
                if Instant::now() >= deadline {
                    publisher.abort();
                    pub_res = Some(crate::publish::finish(&pub_live.borrow()));
                    timed_out = true;
                    break;
                }
            }
        }
    }
    let mut last_change = Instant::now();
    let mut last_print = Instant::now();
    if let Some(p) = &pub_res
        && p.items == 0
        && p.failed_posts > 0
    {
        eprintln!("holdfast-load: every publish failed");
    }
    if timed_out {
        eprintln!("holdfast-load: publishing did not finish before --timeout");
    }
    if pub_res.as_ref().is_some_and(|p| p.gave_up) {
        eprintln!("holdfast-load: the publisher gave up (see publish errors)");
    }
    while !timed_out {
        let t = fleet.totals();
        if t.done + t.closed >= t.ready && t.done > 0 || t.ready == 0 {
            break;
        }
        if t.received != last_received {
            last_received = t.received;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= idle {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "[{:5.1}s] delivering: {} received, {} of {} clients complete",
                start.elapsed().as_secs_f64(),
                t.received,
                t.done,
                t.ready
            );
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(5)).await;
    }
    let results = fleet.collect(Duration::from_secs(15)).await;
    let rss_after = (!sel.is_empty()).then(|| sel.sample());

    let first_ns = pub_res.as_ref().map(|p| p.first_ns).filter(|&t| t > 0);
    let mut r = build_report(&results, expect, first_ns);
    r.scenario = "run".into();
    r.kind = a.kind.name().into();
    r.url = a.client.url.clone();
    r.clients = clients;
    r.procs = specs.len();
    r.channels = a.client.channels;
    r.messages = expect;
    r.size = a.publish.size;
    r.publish = pub_res;
    r.timed_out = timed_out;
    r.rss = rss_report(rss_before, rss_connected, rss_after, r.connect.ready);
    print_summary(&r);
    write_outputs(&r, &a.json_out, &results, &a.per_client_out);
    let bad = r.lost + r.reordered + r.duplicated + r.connect.failed;
    Ok(if a.strict && (bad > 0 || timed_out) {
        1
    } else {
        0
    })
}

fn rss_report(
    before: Option<RssSample>,
    connected: Option<RssSample>,
    after: Option<RssSample>,
    ready: u64,
) -> Option<Rss> {
    let before = before?;
    let connected = connected.unwrap_or_default();
    let after = after.unwrap_or_default();
    Some(Rss {
        before_kib: before.total_kib,
        connected_kib: connected.total_kib,
        after_kib: after.total_kib,
        per_conn_kib: per_conn(before.total_kib, connected.total_kib, ready),
        procs: connected.procs,
        kernel_before: before.kernel,
        kernel_connected: connected.kernel,
        kernel_slab_per_conn_kib: per_conn(
            before.kernel.slab_kib,
            connected.kernel.slab_kib,
            ready,
        ),
        kernel_tcp_buf_per_conn_kib: per_conn(
            before.kernel.tcp_buf_kib,
            connected.kernel.tcp_buf_kib,
            ready,
        ),
        proxy_cpu_ms: connected.cpu_ms.saturating_sub(before.cpu_ms),
        proxy_cpu_us_per_conn: per_conn(before.cpu_ms * 1000, connected.cpu_ms * 1000, ready),
    })
}

/// The growth from `before` to `after` per ready connection (in the unit of the two).
fn per_conn(before: u64, after: u64, ready: u64) -> f64 {
    if ready > 0 {
        r2((after as f64 - before as f64) / ready as f64)
    } else {
        0.0
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct SubscribeArgs {
    #[arg(long, value_enum, default_value = "sse")]
    pub kind: Kind,
    #[command(flatten)]
    pub client: ClientOpts,
    /// Messages each client should receive (0: unknown; then lost counts gaps below the highest seq)
    #[arg(long, default_value_t = 0)]
    pub expect: u64,
    /// Seconds to stay subscribed after all are connected (ends earlier once all have --expect)
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    #[command(flatten)]
    pub mem: MemOpts,
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    #[arg(long)]
    pub per_client_out: Option<PathBuf>,
    #[arg(long)]
    pub strict: bool,
}

pub async fn subscribe(a: SubscribeArgs) -> Result<i32, String> {
    let sel = a.mem.sel();
    let rss_before = (!sel.is_empty()).then(|| sel.sample());
    let specs = worker_specs(&a.client, a.kind, a.expect, None)?;
    let mut fleet = Fleet::spawn(&specs)?;
    let t = wait_connected(
        &fleet,
        a.client.clients,
        Duration::from_secs_f64(a.client.connect_wait),
        false,
    )
    .await;
    eprintln!(
        "connected: {} ready, {} failed; subscribed for up to {:.0} s (publish now)",
        t.ready, t.failed, a.duration
    );
    let rss_connected = (!sel.is_empty()).then(|| sel.sample());
    let start = Instant::now();
    let mut last_print = Instant::now();
    while start.elapsed().as_secs_f64() < a.duration {
        let t = fleet.totals();
        if a.expect > 0 && t.ready > 0 && t.done + t.closed >= t.ready {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "[{:5.1}s] {} received, {} clients complete, {} closed",
                start.elapsed().as_secs_f64(),
                t.received,
                t.done,
                t.closed
            );
            last_print = Instant::now();
        }
        sleep(Duration::from_millis(10)).await;
    }
    let results = fleet.collect(Duration::from_secs(15)).await;
    let rss_after = (!sel.is_empty()).then(|| sel.sample());
    let mut r = build_report(&results, a.expect, None);
    r.scenario = "subscribe".into();
    r.kind = a.kind.name().into();
    r.url = a.client.url.clone();
    r.clients = a.client.clients;
    r.procs = specs.len();
    r.channels = a.client.channels;
    r.messages = a.expect;
    r.rss = rss_report(rss_before, rss_connected, rss_after, r.connect.ready);
    print_summary(&r);
    write_outputs(&r, &a.json_out, &results, &a.per_client_out);
    let bad = r.lost + r.reordered + r.duplicated + r.connect.failed;
    Ok(if a.strict && bad > 0 { 1 } else { 0 })
}

#[derive(clap::Args, Clone, Debug)]
pub struct PublishArgs {
    /// Publish endpoint
    #[arg(long, default_value = "http://127.0.0.1:5561/publish/")]
    pub url: String,
    #[arg(long, default_value_t = 1)]
    pub channels: u64,
    #[arg(long, default_value = "c")]
    pub channel_prefix: String,
    #[command(flatten)]
    pub publish: PubOpts,
}

pub async fn publish(a: PublishArgs) -> Result<i32, String> {
    let spec = a
        .publish
        .spec(&a.url, channels(&a.channel_prefix, a.channels), None)?;
    let r = run_publisher(spec).await;
    eprintln!(
        "published {} items in {} POSTs ({} failed) in {:.3} s = {:.0} items/s",
        r.items, r.posts, r.failed_posts, r.secs, r.items_per_s
    );
    for e in &r.errors {
        eprintln!("  error: {e}");
    }
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    Ok(if r.failed_posts > 0 { 1 } else { 0 })
}

#[derive(clap::Args, Clone, Debug)]
pub struct WsohArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Messages each client sends
    #[arg(long, default_value_t = 100)]
    pub messages: u64,
    /// Bytes per message
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// The origin's stats URL (the holdfast-load origin the proxy forwards /ws/<ch> to)
    #[arg(long)]
    pub origin_stats: Option<String>,
    /// Start `holdfast-load origin` on this address (then --origin-stats defaults to it)
    #[arg(long)]
    pub spawn_origin: Option<SocketAddr>,
    /// Seconds from "go" until the run is cut short
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Stop once nothing reached the origin for this many seconds
    #[arg(long, default_value_t = 3.0)]
    pub idle_timeout: f64,
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

#[derive(Serialize, Default, Debug, Clone, Copy, serde::Deserialize)]
struct OriginStats {
    requests: u64,
    text_events: u64,
    #[serde(default)]
    last_text_ns: u64,
}

async fn origin_stats(c: &mut HttpConn) -> Result<OriginStats, String> {
    let (status, body) = c.get(Duration::from_secs(5)).await?;
    if status != 200 {
        return Err(format!("origin stats: status {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("origin stats: {e}"))
}

#[derive(Serialize, Default, Debug)]
pub struct WsohReport {
    pub scenario: String,
    pub url: String,
    pub clients: u64,
    pub connect: Connect,
    pub messages_per_client: u64,
    pub size: usize,
    pub sent: u64,
    pub reached_origin: u64,
    pub secs: f64,
    pub send_secs: f64,
    pub messages_per_s: f64,
    pub origin_requests: u64,
    pub requests_per_1000_messages: f64,
    pub mean_events_per_request: f64,
    pub closed: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub timed_out: bool,
}

pub async fn wsoh_batch(a: WsohArgs) -> Result<i32, String> {
    let _origin = match a.spawn_origin {
        Some(addr) => Some(spawn_origin(addr).await?),
        None => None,
    };
    let stats_url = match (&a.origin_stats, a.spawn_origin) {
        (Some(u), _) => u.clone(),
        (None, Some(addr)) => format!("http://{addr}/stats"),
        (None, None) => return Err("give --origin-stats URL or --spawn-origin ADDR".into()),
    };
    let mut stats_conn = HttpConn::new(parse_target(&stats_url)?);
    origin_stats(&mut stats_conn).await?;
    let send = SendSpec {
        messages: a.messages,
        size: a.size,
    };
    let specs = worker_specs(&a.client, Kind::Ws, 0, Some(send))?;
    let mut fleet = Fleet::spawn(&specs)?;
    let t = wait_connected(
        &fleet,
        a.client.clients,
        Duration::from_secs_f64(a.client.connect_wait),
        false,
    )
    .await;
    eprintln!("connected: {} ready, {} failed", t.ready, t.failed);
    sleep(Duration::from_millis(300)).await;
    let s0 = origin_stats(&mut stats_conn).await?;
    let want = t.ready * a.messages;
    let go_ns = now_ns();
    fleet.broadcast("go").await;
    let start = Instant::now();
    let mut last = s0;
    let mut last_change = Instant::now();
    let mut timed_out = false;
    let mut last_print = Instant::now();
    loop {
        sleep(Duration::from_millis(20)).await;
        let s = origin_stats(&mut stats_conn).await?;
        if s.text_events != last.text_events {
            last_change = Instant::now();
        }
        last = s;
        if s.text_events - s0.text_events >= want {
            break;
        }
        let p = fleet.totals();
        if p.senders_done + p.closed >= p.ready
            && last_change.elapsed().as_secs_f64() >= a.idle_timeout
        {
            break;
        }
        if start.elapsed().as_secs_f64() >= a.timeout {
            timed_out = true;
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "[{:5.1}s] sent {}, reached origin {} of {want}",
                start.elapsed().as_secs_f64(),
                p.sent,
                s.text_events - s0.text_events
            );
            last_print = Instant::now();
        }
    }
    let results = fleet.collect(Duration::from_secs(15)).await;
    let base = build_report(&results, 0, None);
    let mut r = WsohReport {
        scenario: "wsoh-batch".into(),
        url: a.client.url.clone(),
        clients: a.client.clients,
        connect: base.connect,
        messages_per_client: a.messages,
        size: a.size,
        closed: base.closed,
        errors: base.errors,
        timed_out,
        ..Default::default()
    };
    r.sent = results.iter().map(|w| w.progress.sent).sum();
    r.reached_origin = last.text_events - s0.text_events;
    r.origin_requests = last.requests - s0.requests;
    let end = last.last_text_ns.max(go_ns);
    r.secs = secs(end - go_ns);
    let sent_ns = results.iter().map(|w| w.sent_ns).max().unwrap_or(0);
    r.send_secs = secs(sent_ns.saturating_sub(go_ns));
    if r.secs > 0.0 {
        r.messages_per_s = r2(r.reached_origin as f64 / r.secs);
    }
    if r.reached_origin > 0 {
        r.requests_per_1000_messages =
            r2(r.origin_requests as f64 * 1000.0 / r.reached_origin as f64);
    }
    if r.origin_requests > 0 {
        r.mean_events_per_request = r2(r.reached_origin as f64 / r.origin_requests as f64);
    }
    eprintln!(
        "holdfast-load wsoh-batch: {} ws clients via {}\n  connect    {} ready, {} failed in {:.2} s = {:.0} conn/s\n  \
         sent       {} messages ({} per client, {} B) in {:.3} s\n  \
         origin     {} reached it in {:.3} s = {:.0} messages/s, in {} requests = {:.1} requests per 1000 messages ({:.1} messages per request){}",
        r.clients,
        r.url,
        r.connect.ready,
        r.connect.failed,
        r.connect.secs,
        r.connect.per_s,
        r.sent,
        r.messages_per_client,
        r.size,
        r.send_secs,
        r.reached_origin,
        r.secs,
        r.messages_per_s,
        r.origin_requests,
        r.requests_per_1000_messages,
        r.mean_events_per_request,
        if timed_out { "  (TIMED OUT)" } else { "" }
    );
    for (e, n) in &r.errors {
        eprintln!("  error      {n} × {e}");
    }
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    println!("{json}");
    if let Some(p) = &a.json_out {
        let _ = std::fs::write(p, &json);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str, clients: u64, procs: Option<u64>) -> ClientOpts {
        ClientOpts {
            url: url.into(),
            clients,
            channels: 1,
            channel_prefix: "c".into(),
            procs,
            source_ips: None,
            connect_rate: None,
            connect_concurrency: 256,
            connect_timeout: 10.0,
            retries: 2,
            read_buf: 1024,
            connect_wait: 1.0,
        }
    }

    #[test]
    fn several_urls_spread_clients_over_nodes() {
        let urls = "http://127.0.0.1:1/s/{ch},http://127.0.0.1:2/s/{ch},http://127.0.0.1:3/s/{ch}";
        let specs = worker_specs(&opts(urls, 300, None), Kind::Sse, 0, None).unwrap();
        let ports: Vec<u16> = specs.iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [1, 2, 3], "one process per URL at least");
        assert_eq!(specs.iter().map(|s| s.clients).sum::<u64>(), 300);
        let specs = worker_specs(&opts(urls, 300, Some(6)), Kind::Sse, 0, None).unwrap();
        let ports: Vec<u16> = specs.iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3]);
        let one = worker_specs(&opts("http://127.0.0.1:9/s", 10, None), Kind::Sse, 0, None);
        assert_eq!(one.unwrap().len(), 1);
        assert!(worker_specs(&opts("http://a,ftp://b", 10, None), Kind::Sse, 0, None).is_err());
    }
}
