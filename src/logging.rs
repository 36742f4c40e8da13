//! Logging set-up: text or JSON lines, a level filter, and a per-call-site rate limit so a flood
//! of bad clients cannot turn into a flood of log lines (each call site logs at most N lines a
//! second; a reporter thread says once a second how many each one held back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. RUST_LOG, when set, overrides `config.level`.
pub fn init(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(with_quiet_deps(&config.level)))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let limit = Arc::new(RateLimit::new(config.lines_per_second));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(Limited(limit.clone()));
    let result = match config.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("holdfast: logging already set up: {e}");
        return;
    }
    if config.lines_per_second > 0 {
        // Reports are logged from a thread of their own: an event cannot be logged from
        // inside the dispatch of another.
        let spawned = std::thread::Builder::new()
            .name("log-reporter".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    limit.report();
                }
            });
        if let Err(e) = spawned {
            eprintln!("holdfast: cannot start the log reporter: {e}");
        }
    }
}

/// The NATS client logs every connection attempt and event at info; holdfast logs what matters
/// of those itself (`cluster: ...`), so the client says only warnings unless the level names it.
fn with_quiet_deps(level: &str) -> String {
    if level.contains("async_nats") {
        level.to_string()
    } else {
        format!("{level},async_nats=warn")
    }
}

/// Lets each call site through at most `per_second` times in each second (0: no limit).
pub struct RateLimit {
    per_second: u32,
    epoch: Instant,
    windows: Mutex<HashMap<Identifier, Window>>,
}

#[derive(Default)]
struct Window {
    second: u64,
    passed: u32,
    /// Lines held back and not reported yet.
    held_back: u64,
    /// Where the call site is, for the report.
    place: Option<(&'static str, u32)>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            epoch: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the call site may log now.
    fn admit(&self, event: &Event<'_>) -> bool {
        let meta = event.metadata();
        let second = self.epoch.elapsed().as_secs();
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let w = windows.entry(meta.callsite()).or_default();
        if w.second != second {
            w.second = second;
            w.passed = 0;
        }
        if w.passed < self.per_second {
            w.passed += 1;
            true
        } else {
            w.held_back += 1;
            w.place = Some((meta.file().unwrap_or("?"), meta.line().unwrap_or(0)));
            false
        }
    }

    /// Logs one line per call site that held lines back since the last report.
    pub fn report(&self) {
        let held: Vec<(u64, (&'static str, u32))> = match self.windows.lock() {
            Ok(mut windows) => windows
                .values_mut()
                .filter(|w| w.held_back > 0)
                .map(|w| {
                    (
                        std::mem::take(&mut w.held_back),
                        w.place.unwrap_or(("?", 0)),
                    )
                })
                .collect(),
            Err(_) => return,
        };
        for (count, (file, line)) in held {
            tracing::warn!(
                "{count} log lines from {file}:{line} were held back (log.lines_per_second = {})",
                self.per_second
            );
        }
    }
}

/// The rate limit as a layer, sharing its counts with the reporter thread.
pub struct Limited(pub Arc<RateLimit>);

impl<S: Subscriber> Layer<S> for Limited {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        self.0.per_second == 0 || self.0.admit(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(c: &Capture) -> Vec<String> {
        String::from_utf8(c.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_flooding_call_site_is_held_back_and_counted() {
        let capture = Capture::default();
        let writer = capture.clone();
        let limit = Arc::new(RateLimit::new(5));
        let subscriber = tracing_subscriber::registry()
            .with(Limited(limit.clone()))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .with_ansi(false),
            );
        tracing::subscriber::with_default(subscriber, || {
            let start = Instant::now();
            let noisy = |i: u32| tracing::info!("flood {i}");
            for i in 0..1000 {
                noisy(i);
            }
            tracing::info!("another call site");
            limit.report();
            // Into the next second: the next line of the flooding site reports what it held.
            let wait = 1000 - (start.elapsed().as_millis() as u64 % 1000) + 20;
            std::thread::sleep(std::time::Duration::from_millis(wait));
            noisy(1000);
            for _ in 0..3 {
                tracing::info!("another call site");
            }
        });
        let got = lines(&capture);
        let flood = got.iter().filter(|l| l.contains("flood ")).count();
        assert!(
            (6..=10).contains(&flood),
            "5 a second pass (the burst may straddle two seconds): {got:?}"
        );
        assert!(got.iter().any(|l| l.contains("flood 1000")), "{got:?}");
        assert!(
            got.iter().any(|l| l.contains("another call site")),
            "other call sites are not held back"
        );
        assert_eq!(
            got.iter()
                .filter(|l| l.contains("another call site"))
                .count(),
            4
        );
        let report: Vec<&String> = got.iter().filter(|l| l.contains("held back")).collect();
        assert_eq!(report.len(), 1, "{got:?}");
        let held: usize = report[0]
            .split(" log lines from src/logging.rs:")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{got:?}"));
        assert_eq!(
            held + flood - 1,
            1000,
            "every line passed or counted: {got:?}"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let limit = Arc::new(RateLimit::new(0));
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::registry().with(Limited(limit)).with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        );
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..200 {
                tracing::info!("line {i}");
            }
        });
        assert_eq!(lines(&capture).len(), 200);
    }
}
