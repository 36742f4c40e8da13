//! `holdfast status`: what a running instance holds and how busy it is, from its `/metrics`:
//! connections by kind, subscriptions and channels, queued bytes, and rates from two samples
//! an interval apart (accepts, publishes, deliveries, origin requests and errors per second).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::http::{self, Request};
use super::prom::Exposition;
use super::{Api, ApiArgs, Globals, Purpose};

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Time between the two samples the rates come from; 0: one sample, no rates.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// The counters whose rates are shown: label and metric.
const RATES: [(&str, &str); 5] = [
    ("accepts/s", "holdfast_accepted_connections_total"),
    ("publishes/s", "holdfast_publishes_received_total"),
    ("deliveries/s", "holdfast_messages_delivered_total"),
    ("origin requests/s", "holdfast_origin_requests_total"),
    ("origin errors/s", "holdfast_origin_errors_total"),
];

/// Reads /metrics (twice, `interval_ms` apart) and renders the summary.
pub fn run(args: &StatusArgs, globals: &Globals) -> Result<String, String> {
    let api = args.api.resolve(globals, Purpose::Metrics)?;
    let first = fetch(&api)?;
    let started = Instant::now();
    let mut out = header(&api, &first);
    if args.interval_ms == 0 {
        summary(&mut out, &first);
        return Ok(out);
    }
    std::thread::sleep(Duration::from_millis(args.interval_ms));
    let second = fetch(&api)?;
    let elapsed = started.elapsed();
    summary(&mut out, &second);
    rates(&mut out, &first, &second, elapsed);
    Ok(out)
}

fn fetch(api: &Api) -> Result<Exposition, String> {
    let authorization = api.credentials.authorization()?;
    let headers: Vec<(&str, &[u8])> = authorization
        .iter()
        .map(|a| ("Authorization", a.as_bytes()))
        .collect();
    let req = Request {
        method: "GET",
        path: "/metrics",
        headers: &headers,
        body: b"",
    };
    let reply = http::send(&api.endpoint, &req, api.timeout).map_err(|e| {
        format!(
            "{e}\n  (the address is from {}; is holdfast running?)",
            api.source
        )
    })?;
    match reply.status {
        200 => {}
        401 => {
            return Err(format!(
                "{} needs credentials: 401 {} (sent {}; with publish auth on, /metrics takes the \
                 publish credentials unless publish.metrics_auth = false)",
                api.endpoint.url("/metrics"),
                reply.text(),
                api.credentials.kind()
            ));
        }
        code => {
            return Err(format!(
                "{} answered {code} {}: {}",
                api.endpoint.url("/metrics"),
                reply.reason,
                reply.text()
            ));
        }
    }
    let text = String::from_utf8_lossy(&reply.body);
    Exposition::parse(&text).map_err(|e| {
        format!(
            "{} is not holdfast's metrics: {e}",
            api.endpoint.url("/metrics")
        )
    })
}

fn total(m: &Exposition, name: &str) -> f64 {
    m.sum(name, &[]).unwrap_or(0.0)
}

fn header(api: &Api, m: &Exposition) -> String {
    let workers = m.label_values("holdfast_connections", "worker").len();
    let plural = if workers == 1 { "" } else { "s" };
    format!(
        "holdfast at {} ({}), {workers} worker{plural}\n",
        api.endpoint.url("/metrics"),
        api.source
    )
}

/// Gauges and totals since start, from the latest sample.
fn summary(out: &mut String, m: &Exposition) {
    let kinds = ["http", "stream", "response", "websocket"];
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|k| {
            let n = m.sum("holdfast_connections", &[("kind", k)]).unwrap_or(0.0);
            format!("{k} {n}")
        })
        .collect();
    let _ = writeln!(
        out,
        "connections    {:>10}   ({})",
        total(m, "holdfast_connections"),
        by_kind.join(", ")
    );
    let _ = writeln!(
        out,
        "subscriptions  {:>10}   on {}",
        total(m, "holdfast_subscriptions"),
        channels(m)
    );
    let _ = writeln!(
        out,
        "queued         {:>10}   bytes for subscribers (outboxes)",
        total(m, "holdfast_outbox_bytes"),
    );
    let cuts: Vec<String> = m
        .label_values("holdfast_slow_consumer_cuts_total", "reason")
        .iter()
        .map(|r| {
            let n = m.sum("holdfast_slow_consumer_cuts_total", &[("reason", r)]);
            format!("{r} {}", n.unwrap_or(0.0))
        })
        .collect();
    let _ = writeln!(
        out,
        "since start    accepted {}, refused {}; publishes {} ({} refused, {} unauthorized); \
         delivered {}\n               slow-consumer cuts {} ({}), dropped {}; origin errors {}",
        total(m, "holdfast_accepted_connections_total"),
        total(m, "holdfast_rejected_connections_total"),
        total(m, "holdfast_publishes_received_total"),
        total(m, "holdfast_publish_rejected_total"),
        total(m, "holdfast_publish_unauthorized_total"),
        total(m, "holdfast_messages_delivered_total"),
        total(m, "holdfast_slow_consumer_cuts_total"),
        cuts.join(", "),
        total(m, "holdfast_slow_consumer_dropped_messages_total"),
        total(m, "holdfast_origin_errors_total"),
    );
    cluster(out, m);
}

/// Each worker counts the channels its own subscribers hold, so a channel held on several
/// workers is counted by each: the distinct number is between the largest count and the sum.
fn channels(m: &Exposition) -> String {
    let counts: Vec<f64> = m
        .select("holdfast_channels", &[])
        .map(|s| s.value)
        .collect();
    let sum: f64 = counts.iter().sum();
    let max = counts.iter().copied().fold(0.0, f64::max);
    if sum == max {
        format!("{sum} channels")
    } else {
        format!("{max} to {sum} channels (each worker counts its own)")
    }
}

fn cluster(out: &mut String, m: &Exposition) {
    let Some(connected) = m.sum("holdfast_cluster_connected", &[]) else {
        let _ = writeln!(out, "cluster        off");
        return;
    };
    let state = if connected >= 1.0 {
        "connected to NATS"
    } else {
        "NOT connected to NATS (publishes reach this node's subscribers only)"
    };
    let _ = writeln!(
        out,
        "cluster        {state}; {} subjects; sent {}, received {}, lost {}",
        total(m, "holdfast_cluster_subjects"),
        total(m, "holdfast_cluster_published_total"),
        total(m, "holdfast_cluster_received_total"),
        total(m, "holdfast_cluster_lost_total"),
    );
}

/// Per-second rates between two samples. A counter that went down means holdfast restarted
/// in between: no rate then.
fn rates(out: &mut String, first: &Exposition, second: &Exposition, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let _ = writeln!(out, "rates over {secs:.2} s");
    for (label, name) in RATES {
        let delta = total(second, name) - total(first, name);
        if delta < 0.0 {
            let _ = writeln!(out, "  {label:<18} n/a (holdfast restarted)");
        } else {
            let _ = writeln!(out, "  {label:<18}{:>10.1}", delta / secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accepted: u64, delivered: u64, cluster: bool) -> Exposition {
        let mut text = format!(
            "holdfast_connections{{worker=\"0\",kind=\"http\"}} 1\n\
             holdfast_connections{{worker=\"1\",kind=\"stream\"}} 2\n\
             holdfast_connections{{worker=\"1\",kind=\"websocket\"}} 3\n\
             holdfast_subscriptions{{worker=\"0\"}} 4\n\
             holdfast_channels{{worker=\"0\"}} 2\n\
             holdfast_channels{{worker=\"1\"}} 1\n\
             holdfast_accepted_connections_total{{worker=\"0\"}} {accepted}\n\
             holdfast_messages_delivered_total{{worker=\"1\"}} {delivered}\n\
             holdfast_slow_consumer_cuts_total{{worker=\"0\",reason=\"stalled\"}} 1\n"
        );
        if cluster {
            text.push_str("holdfast_cluster_connected 0\nholdfast_cluster_subjects 5\n");
        }
        Exposition::parse(&text).unwrap()
    }

    #[test]
    fn summary_sums_workers_and_rates_use_the_interval() {
        let mut out = String::new();
        summary(&mut out, &metrics(10, 100, false));
        assert!(
            out.contains("connections             6   (http 1, stream 2, response 0, websocket 3)"),
            "{out}"
        );
        assert!(
            out.contains(
                "subscriptions           4   on 2 to 3 channels (each worker counts its own)"
            ),
            "{out}"
        );
        assert!(out.contains("slow-consumer cuts 1 (stalled 1)"), "{out}");
        assert!(out.contains("cluster        off"), "{out}");
        let mut out = String::new();
        rates(
            &mut out,
            &metrics(10, 100, false),
            &metrics(14, 300, false),
            Duration::from_secs(2),
        );
        assert!(out.contains("accepts/s                2.0"), "{out}");
        assert!(out.contains("deliveries/s           100.0"), "{out}");
        let mut out = String::new();
        rates(
            &mut out,
            &metrics(10, 100, false),
            &metrics(1, 100, false),
            Duration::from_secs(1),
        );
        assert!(
            out.contains("accepts/s          n/a (holdfast restarted)"),
            "{out}"
        );
    }

    #[test]
    fn cluster_state_is_shown_when_on() {
        let mut out = String::new();
        summary(&mut out, &metrics(0, 0, true));
        assert!(out.contains("NOT connected to NATS"), "{out}");
        assert!(out.contains("5 subjects"), "{out}");
    }
}
