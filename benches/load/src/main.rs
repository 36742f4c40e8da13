//! holdfast-load: load generator for GRIP proxies (holdfast, Pushpin).
//!
//! One binary: a fast GRIP origin, subscriber fleets (HTTP streaming, SSE, WebSocket,
//! long-polling) in worker processes, a publisher, and whole scenarios with one JSON report.
//! It speaks only HTTP/1.1, WebSocket and the GRIP publish API, so it works against any GRIP
//! proxy.

mod client;
mod fleet;
mod floor;
mod hist;
mod http;
mod mem;
mod origin;
mod publish;
mod scenario;
mod util;
mod ws;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "holdfast-load",
    version,
    about = "Load generator for GRIP proxies (holdfast, Pushpin)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A fast GRIP origin: /stream/<ch>, /sse/<ch>, /poll/<ch>, POST /ws/<ch> (WebSocket-over-HTTP),
    /// /plain, /stats
    Origin {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// Runtime threads
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Answer each request only after this many ms (a slow origin: thousands of requests
        /// in flight at once during a connect storm)
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    /// Open N subscribers and report what they receive (publish with another tool meanwhile)
    Subscribe(scenario::SubscribeArgs),
    /// Publish stamped messages
    Publish(scenario::PublishArgs),
    /// A whole scenario: connect subscribers, publish, wait for every delivery, report
    Run(scenario::RunArgs),
    /// WebSocket-over-HTTP batching: clients send messages through the proxy to the origin
    WsohBatch(scenario::WsohArgs),
    /// The kernel's floor: an ideal proxy that writes one stamped SSE event to each of N held
    /// connections per round (measure it with `subscribe --kind sse`)
    Floor(floor::FloorArgs),
    /// (internal) a subscriber worker process
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        spec: String,
    },
}

fn parent<F>(f: F) -> Result<i32, String>
where
    F: std::future::Future<Output = Result<i32, String>>,
{
    util::raise_nofile();
    // Current-thread: the thread that spawns the workers is the main thread, so their
    // PR_SET_PDEATHSIG fires only when this process goes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, f)
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Origin {
            listen,
            threads,
            delay_ms,
        } => origin::origin_main(listen, threads, delay_ms).map(|_| 0),
        Cmd::Worker { spec } => client::worker_main(&spec).map(|_| 0),
        Cmd::Subscribe(a) => parent(scenario::subscribe(a)),
        Cmd::Publish(a) => parent(scenario::publish(a)),
        Cmd::Run(a) => parent(scenario::run(a)),
        Cmd::WsohBatch(a) => parent(scenario::wsoh_batch(a)),
        Cmd::Floor(a) => floor::floor_main(a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("holdfast-load: {e}");
            std::process::exit(2);
        }
    }
}
