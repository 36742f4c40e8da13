//! The Grafana dashboard (`dashboards/holdfast.json`) against the real `/metrics`: every metric
//! a query names is one holdfast exports (histograms through their `_bucket`, `_sum`, `_count`
//! series), every label it filters or groups on is one that metric has, every `=` label value
//! is one holdfast writes, and every metric holdfast exports is on the dashboard.
//!
//! The cluster metrics are rendered only with `[cluster]` on, so the instance here runs with
//! the cluster enabled and a NATS address where nothing listens: a node starts without NATS
//! (and retries), and its `/metrics` then has every family, the cluster's included. No NATS
//! server is needed and nothing is mocked: this is the endpoint Prometheus scrapes.

mod common;

use std::collections::BTreeSet;

use common::binary::metrics;
use common::*;
use holdfast::cli::prom::Exposition;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../dashboards/holdfast.json");

/// Labels Prometheus adds to every series it scrapes (the target's), not in `/metrics`.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

// ---------------------------------------------------------------------------------------------
// A PromQL reader: just enough to find the series selectors and grouping labels of a query.

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number,
    /// A Grafana variable: `$name`, `${name}`, `$__rate_interval`.
    Var,
    Punct(char),
    /// `=`, `!=`, `=~`, `!~`, comparison and arithmetic operators.
    Op(String),
}

fn tokens(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        match c {
            c if c.is_whitespace() => {}
            '"' | '\'' => {
                let mut s = String::new();
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    s.extend(chars.get(i));
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unterminated string in {expr:?}"));
                }
                i += 1;
                out.push(Token::Str(s));
            }
            '$' => {
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
                out.push(Token::Var);
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push(Token::Number);
            }
            '(' | ')' | '{' | '}' | '[' | ']' | ',' => out.push(Token::Punct(c)),
            '=' | '!' | '<' | '>' | '~' | '+' | '-' | '*' | '/' | '%' | '^' => {
                while i < chars.len() && matches!(chars[i], '=' | '~') {
                    i += 1;
                }
                out.push(Token::Op(chars[start..i].iter().collect()));
            }
            _ => return Err(format!("unexpected {c:?} in {expr:?}")),
        }
    }
    Ok(out)
}

/// A series selector: `metric{label op "value", ...}`.
#[derive(Debug, Default)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// What a query reads: its selectors, its grouping labels, and the functions it calls.
#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
    functions: Vec<String>,
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
];

fn parse_query(expr: &str) -> Result<Query, String> {
    let t = tokens(expr)?;
    let mut q = Query::default();
    let mut i = 0;
    while i < t.len() {
        match &t[i] {
            Token::Punct('[') => {
                // A range or subquery: durations and variables, no series.
                while i < t.len() && t[i] != Token::Punct(']') {
                    i += 1;
                }
            }
            Token::Ident(word) if matches!(word.as_str(), "by" | "without" | "on" | "ignoring") => {
                i += 1;
                if t.get(i) != Some(&Token::Punct('(')) {
                    return Err(format!("{word} without a label list in {expr:?}"));
                }
                i += 1;
                while let Some(Token::Ident(label)) = t.get(i) {
                    q.grouping.push(label.clone());
                    i += 1;
                    if t.get(i) == Some(&Token::Punct(',')) {
                        i += 1;
                    }
                }
            }
            Token::Ident(word) if t.get(i + 1) == Some(&Token::Punct('(')) => {
                q.functions.push(word.clone());
            }
            Token::Ident(word)
                if AGGREGATIONS.contains(&word.as_str()) || KEYWORDS.contains(&word.as_str()) => {}
            Token::Ident(metric) => {
                let mut s = Selector {
                    metric: metric.clone(),
                    ..Selector::default()
                };
                if t.get(i + 1) == Some(&Token::Punct('{')) {
                    i = matchers(&t, i + 2, &mut s.matchers)
                        .ok_or_else(|| format!("bad label matchers in {expr:?}"))?;
                }
                q.selectors.push(s);
            }
            _ => {}
        }
        i += 1;
    }
    Ok(q)
}

/// Reads `label op "value", ...}` from `i`; the index of the closing brace.
fn matchers(t: &[Token], mut i: usize, out: &mut Vec<(String, String, String)>) -> Option<usize> {
    loop {
        match (t.get(i)?, t.get(i + 1), t.get(i + 2)) {
            (Token::Punct('}'), _, _) => return Some(i),
            (Token::Punct(','), _, _) => i += 1,
            (Token::Ident(label), Some(Token::Op(op)), Some(Token::Str(value))) => {
                out.push((label.clone(), op.clone(), value.clone()));
                i += 3;
            }
            _ => return None,
        }
    }
}

#[test]
fn the_promql_reader_finds_selectors_and_grouping() {
    let q = parse_query(
        "histogram_quantile(0.99, sum by (le, kind) (rate(x_bucket{instance=~\"$instance\",\
         kind=\"a\"}[$__rate_interval]))) / sum(y) without (worker) + on(instance) z",
    )
    .unwrap();
    let metrics: Vec<&str> = q.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["x_bucket", "y", "z"]);
    assert_eq!(q.grouping, ["le", "kind", "worker", "instance"]);
    // Calls written `f(...)`; `sum by (..) (...)` is an aggregation, found all the same.
    assert_eq!(q.functions, ["histogram_quantile", "rate", "sum"]);
    assert_eq!(
        q.selectors[0].matchers[1],
        ("kind".into(), "=".into(), "a".into())
    );
    assert!(parse_query("x{a=}").is_err());
    assert!(parse_query("sum by x").is_err());
}

// ---------------------------------------------------------------------------------------------
// The dashboard

/// (panel title, expression) for every query: panel targets (rows' nested panels too) and
/// template variables.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((title.clone(), expr.to_string()));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            let q = q.expect("a query variable has a query");
            // label_values(metric, label): the metric is a selector like any other.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .expect("variables use label_values(metric, label)");
            let (metric, label) = inner.split_once(',').expect("label_values(metric, label)");
            let expr = format!("sum by ({}) ({})", label.trim(), metric.trim());
            out.push((format!("variable {}", v["name"]), expr));
        }
    }
    out
}

/// holdfast's real /metrics, cluster on (see the module doc).
fn exposition() -> Exposition {
    let mut c = config("* 127.0.0.1:9\n");
    c.cluster.enabled = true;
    // Nothing listens on the discard port: the node runs without NATS.
    c.cluster.servers = vec!["nats://127.0.0.1:9".into()];
    c.cluster.connect_timeout_ms = 200;
    let proxy = Proxy::start(c);
    let text = metrics(proxy.publish);
    Exposition::parse(&text).expect("/metrics parses")
}

/// Why a selector does not match what holdfast exports, if it does not.
fn check_selector(m: &Exposition, s: &Selector) -> Result<(), String> {
    let names = m.sample_names();
    if !names.contains(s.metric.as_str()) {
        if m.types.get(&s.metric).map(String::as_str) == Some("histogram") {
            return Err(format!(
                "{} is a histogram: query its _bucket, _sum or _count series",
                s.metric
            ));
        }
        return Err(format!("{} is not in /metrics", s.metric));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = s.metric.strip_suffix(suffix)
            && m.types.contains_key(base)
            && m.types[base] != "histogram"
        {
            return Err(format!("{} is not a histogram series", s.metric));
        }
    }
    for (label, op, value) in &s.matchers {
        if TARGET_LABELS.contains(&label.as_str()) {
            continue;
        }
        let values = m.label_values(&s.metric, label);
        if values.is_empty() {
            return Err(format!("{} has no label {label}", s.metric));
        }
        if op == "=" && !values.contains(value) {
            return Err(format!(
                "{}{{{label}=\"{value}\"}}: holdfast writes only {values:?}",
                s.metric
            ));
        }
    }
    Ok(())
}

/// Why a query does not fit /metrics, if it does not. A panel's query must follow the
/// instance variable; the variable's own query lists the instances.
fn check_query(m: &Exposition, expr: &str, panel: bool) -> Result<BTreeSet<String>, String> {
    let q = parse_query(expr)?;
    if q.selectors.is_empty() {
        return Err("no series selector".into());
    }
    for s in &q.selectors {
        check_selector(m, s)?;
        if panel
            && !s
                .matchers
                .iter()
                .any(|(l, op, v)| l == "instance" && op == "=~" && v == "$instance")
        {
            return Err(format!(
                "{} is not filtered by instance=~\"$instance\"",
                s.metric
            ));
        }
    }
    for label in &q.grouping {
        let has = |s: &Selector| !m.label_values(&s.metric, label).is_empty();
        if !TARGET_LABELS.contains(&label.as_str()) && !q.selectors.iter().any(has) {
            return Err(format!("groups by {label}, which none of its metrics has"));
        }
    }
    if q.functions.iter().any(|f| f == "histogram_quantile")
        && !q.selectors.iter().any(|s| s.metric.ends_with("_bucket"))
    {
        return Err("histogram_quantile over no _bucket series".into());
    }
    Ok(q.selectors.into_iter().map(|s| s.metric).collect())
}

#[test]
fn every_query_names_metrics_and_labels_holdfast_exports() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let m = exposition();
    assert!(
        m.sample_names().contains("holdfast_cluster_connected"),
        "the cluster metrics are rendered"
    );
    let queries = queries(&dashboard);
    assert!(queries.len() > 20, "{} queries", queries.len());
    let mut problems = Vec::new();
    let mut queried = BTreeSet::new();
    for (panel, expr) in &queries {
        match check_query(&m, expr, !panel.starts_with("variable ")) {
            Ok(metrics) => queried.extend(metrics),
            Err(e) => problems.push(format!("{panel}: {e}\n    {expr}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // What the dashboard is for (issue 21): each of these is queried.
    for needed in [
        "holdfast_connections",
        "holdfast_accepted_connections_total",
        "holdfast_messages_delivered_total",
        "holdfast_publish_to_write_seconds_bucket",
        "holdfast_slow_consumer_cuts_total",
        "holdfast_origin_errors_total",
        "holdfast_cluster_connected",
    ] {
        assert!(queried.contains(needed), "no panel shows {needed}");
    }
    // And nothing holdfast measures is left off (a histogram counts once any of its series is
    // queried).
    let family = |name: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| m.types.contains_key(*b)))
            .unwrap_or(name)
            .to_string()
    };
    let shown: BTreeSet<String> = queried.iter().map(|q| family(q)).collect();
    let missing: Vec<&String> = m.types.keys().filter(|f| !shown.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "metrics on no panel of dashboards/holdfast.json: {missing:?} (add a panel)"
    );
}

#[test]
fn panels_use_the_datasource_variable_and_have_unique_titles() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["type"] == "datasource").unwrap();
    assert_eq!(
        (ds["name"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let mut titles = BTreeSet::new();
    for p in dashboard["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(titles.insert(title), "two panels titled {title:?}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
}
