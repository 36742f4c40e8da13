//! The holdfast command line: run the proxy, run the demo, check a config, or talk to a running
//! instance (`publish`, `status`: `holdfast::cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use holdfast::auth::Credentials;
use holdfast::cli::publish::PublishArgs;
use holdfast::cli::status::StatusArgs;
use holdfast::demo::{DemoOptions, DemoOrigin};
use holdfast::{Config, Server};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "holdfast",
    version,
    about = "A thread-per-core GRIP proxy (Pushpin-compatible)"
)]
struct Cli {
    /// TOML config file. Without it `run` uses the embedded default config; `publish` and
    /// `status` read /etc/holdfast/holdfast.toml if it exists.
    #[arg(long, global = true, help_heading = "Global options")]
    config: Option<PathBuf>,
    /// Client listen address (repeatable); replaces server.listen.
    #[arg(long = "listen", global = true, help_heading = "Global options")]
    listen: Vec<SocketAddr>,
    /// Publish API listen address; replaces publish.listen.
    #[arg(long, global = true, help_heading = "Global options")]
    publish_listen: Option<SocketAddr>,
    /// Routes file (Pushpin syntax); replaces server.routes_file.
    #[arg(long, global = true, help_heading = "Global options")]
    routes: Option<PathBuf>,
    /// Worker threads (0 = one per CPU).
    #[arg(long, global = true, help_heading = "Global options")]
    workers: Option<usize>,
    /// Grip-Sig signing key (`base64:` prefix for binary keys). Visible to other local users in
    /// the process list: prefer --sig-key-file.
    #[arg(
        long,
        global = true,
        conflicts_with = "sig_key_file",
        help_heading = "Global options"
    )]
    sig_key: Option<String>,
    /// A file holding the Grip-Sig key (the same forms as --sig-key; trailing newlines stripped);
    /// replaces grip.sig_key and grip.sig_key_file.
    #[arg(long, global = true, help_heading = "Global options")]
    sig_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Run the proxy in front of the bundled demo origin.
    Demo {
        /// Where the demo origin listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        origin_listen: SocketAddr,
        /// The demo apps' SQLite database (created if missing); `:memory:` keeps nothing.
        #[arg(long, default_value = "holdfast-demo.db")]
        db: PathBuf,
    },
    /// Validate the config and routes, then exit.
    CheckConfig,
    /// Publish one item to a running holdfast (like pushpin-publish). The publish listener and
    /// credentials come from --config, else /etc/holdfast/holdfast.toml if present, else the
    /// embedded default; flags replace them.
    Publish(Box<PublishArgs>),
    /// Show what a running holdfast holds and how busy it is (from its /metrics).
    Status(StatusArgs),
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::embedded(),
    };
    if !cli.listen.is_empty() {
        config.server.listen = cli.listen.clone();
    }
    if let Some(addr) = cli.publish_listen {
        config.publish.listen = addr;
    }
    if let Some(routes) = &cli.routes {
        config.server.routes_file = Some(routes.clone());
    }
    if let Some(n) = cli.workers {
        config.server.workers = n;
    }
    if let Some(key) = &cli.sig_key {
        config.grip.sig_key = Some(key.clone());
        config.grip.sig_key_file = None;
    }
    if let Some(path) = &cli.sig_key_file {
        config.grip.sig_key = None;
        config.grip.sig_key_file = Some(path.clone());
    }
    Ok(config)
}

/// Installs the SIGTERM/SIGINT/SIGHUP handlers; done before start so a signal that arrives right
/// after readiness is reported is still handled.
fn signals() -> Result<signal_hook::iterator::Signals, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))
}

/// Serves signals until SIGTERM or SIGINT; SIGHUP reloads the config and routes.
fn wait_for_stop(
    mut signals: signal_hook::iterator::Signals,
    server: &Server,
    reload: &dyn Fn() -> Result<Config, String>,
) {
    for sig in signals.forever() {
        if sig != signal_hook::consts::SIGHUP {
            tracing::info!("signal {sig}: stopping");
            return;
        }
        holdfast::runtime::host::notify_reloading();
        match reload().and_then(|c| server.reload(c).map_err(|e| e.to_string())) {
            Ok(restart) if restart.is_empty() => {
                tracing::info!("SIGHUP: config and routes reloaded")
            }
            Ok(restart) => tracing::warn!(
                "SIGHUP: reloaded; changes to {} need a restart and were not applied",
                restart.join(", ")
            ),
            Err(e) => tracing::error!("SIGHUP: reload refused, the previous config stays: {e}"),
        }
        holdfast::runtime::host::notify_ready();
    }
}

fn run(
    config: Config,
    demo: Option<DemoOrigin>,
    reload: &dyn Fn() -> Result<Config, String>,
) -> Result<(), String> {
    let signals = signals()?;
    let config = config.with_secret_files().map_err(|e| e.to_string())?;
    // The demo apps publish as the config asks of every publisher.
    let auth = Credentials::from_config(&config.publish);
    let server = Server::start(config).map_err(|e| e.to_string())?;
    if let Some(d) = &demo {
        // The apps publish their changes to this holdfast, as any app would.
        d.set_publish(server.publish_addr, auth);
    }
    holdfast::runtime::host::notify_ready();
    if let Some(d) = &demo {
        let http = server.http_addrs.first().map(|a| a.port()).unwrap_or(7999);
        println!("holdfast demo: origin on {}, proxy on port {http}", d.addr);
        println!("  open:     http://127.0.0.1:{http}/   (Q&A board: /qa/, chat: /chat/)");
        println!("  watch:    curl -N http://127.0.0.1:{http}/stream   (also /sse, /response)");
        println!(
            "  ws:       a WebSocket client on ws://127.0.0.1:{http}/ws (echoes, gets 'test')"
        );
        println!(
            "  publish:  curl -d '{{\"items\":[{{\"channel\":\"test\",\"formats\":{{\"http-stream\":{{\"content\":\"hello\\n\"}}}}}}]}}' http://{}/publish/",
            server.publish_addr
        );
    }
    wait_for_stop(signals, &server, reload);
    holdfast::runtime::host::notify_stopping();
    server.shutdown();
    if let Some(d) = demo {
        d.stop();
    }
    Ok(())
}

/// `publish` and `status`: print the answer, or the error with exit status 1.
fn talk_to_instance(cli: &Cli) -> Option<ExitCode> {
    let globals = holdfast::cli::Globals {
        config: cli.config.clone(),
        publish_listen: cli.publish_listen,
    };
    let (name, result) = match &cli.command {
        Some(Command::Publish(args)) => ("publish", holdfast::cli::publish::run(args, &globals)),
        Some(Command::Status(args)) => ("status", holdfast::cli::status::run(args, &globals)),
        _ => return None,
    };
    Some(match result {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("holdfast {name}: {e}");
            ExitCode::FAILURE
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = talk_to_instance(&cli) {
        return code;
    }
    let mut config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("holdfast: {e}");
            return ExitCode::from(2);
        }
    };
    holdfast::logging::init(&config.log);
    let result = match &cli.command {
        None | Some(Command::Run) => run(config, None, &|| load_config(&cli)),
        Some(Command::Publish(_) | Command::Status(_)) => Ok(()),
        Some(Command::CheckConfig) => holdfast::runtime::server::check(&config)
            .map(|s| {
                println!(
                    "config OK: {} routes, {} TLS certificates",
                    s.routes.table.routes.len(),
                    s.config.tls.certificates.len()
                )
            })
            .map_err(|e| e.to_string()),
        Some(Command::Demo { origin_listen, db }) => match DemoOrigin::start_with(
            *origin_listen,
            DemoOptions {
                db_path: (db.as_os_str() != ":memory:").then(|| db.clone()),
                ..DemoOptions::default()
            },
        ) {
            Ok(origin) => {
                config.server.routes_file = None;
                // WebSocket clients reach the demo origin over HTTP; everything else as is.
                config.server.routes = format!(
                    "*,proto=ws {addr},over_http\n* {addr}\n",
                    addr = origin.addr
                );
                let routes = config.server.routes.clone();
                let reload = move || {
                    let mut c = load_config(&cli)?;
                    c.server.routes_file = None;
                    c.server.routes = routes.clone();
                    Ok(c)
                };
                run(config, Some(origin), &reload)
            }
            Err(e) => Err(format!("cannot start the demo origin: {e}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("holdfast: {e}");
            ExitCode::FAILURE
        }
    }
}
