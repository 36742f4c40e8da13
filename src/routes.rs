//! Pushpin's routes file: parsing it and choosing a route for a request.
//!
//! Owns the routes syntax, its validation and the route-selection rules. It must do no I/O: the
//! caller reads the file (or takes inline text from the config) and hands over a `&str`; reloading,
//! connecting to targets and signing requests belong to the runtime.
//!
//! # Syntax (Pushpin `src/proxy/routesfile.cpp`, `src/proxy/domainmap.cpp`)
//! One route per line: `<condition>[,opt...] <target>[,opt...] [<target>[,opt...]...]`.
//! Sections are separated by spaces (holdfast also accepts tabs); `,` starts an option, written
//! `name` or `name=value` (split at the first `=`). `#` outside quotes ends the line, so it may
//! follow a value directly. A `"..."` part inside a value is taken literally (spaces, `,`, `#`
//! included) with `\\` and `\"` as its only escapes. Blank and comment-only lines are skipped; an
//! empty file is a valid table with no routes.
//!
//! * Condition value: `*` (any host) or one full host name. Pushpin compares it with the request
//!   URI's host, which has no port and is lower-cased, so holdfast lower-cases the condition and
//!   rejects one that carries a port or a partial wildcard (Pushpin would never match it).
//! * Target value: `host:port`, port 1-65535 and required (Pushpin has no default port).
//!   `[v6addr]:port` is a holdfast addition (Pushpin splits at the first `:`).
//!   Targets are tried in file order: the next one is used when connecting to one fails.
//!
//! # Choosing a route (Pushpin `DomainMap::entry`, `Rule::isMatch`, `Rule::isMoreSpecificMatch`)
//! 1. The request host is the Host header without its port, compared case-insensitively.
//! 2. If any route names that host, only those routes are candidates, even when none of them
//!    matches (the request then has no route); otherwise only the `*` routes are.
//! 3. A candidate matches when its `proto` (if set) equals the request's (WebSocket upgrade or
//!    not), its `ssl` (if set) equals whether the request came over TLS, and the request path,
//!    without the query, starts with its `path_beg` (if set).
//! 4. The candidates are walked in file order; the first match is the best so far, and a later
//!    match replaces it when: it sets `proto` and the best does not (and never when only the best
//!    does); else its `path_beg` is longer; else it sets `ssl` and the best does not. On a full
//!    tie the earlier line wins. (These are Pushpin's rules, quirks included: a later route that
//!    sets `ssl` beats an earlier one with a longer `path_beg`.)
//!
//! # Route options
//! * `id=`: route name for logs and stats. `debug`: verbose errors/logging for this route.
//! * `sig_iss=`, `sig_key=`: override the global Grip-Sig issuer and key (newer Pushpin applies
//!   each on its own). `sig_key=base64:<b64>` is a binary key; any other value is the key's UTF-8
//!   bytes; `sig_key=file:` (a key file) is refused here, as reading it would be I/O.
//! * `prefix=`: channel prefix, prepended to every channel this route's origin subscribes to.
//! * `as_host=host[:port]`: the Host sent to the origin instead of the client's (a target's
//!   `host=` then overrides the host part for that target).
//! * `path_rem=N`: drop the first N bytes of the path before forwarding. `replace_beg=S`: drop
//!   `path_beg` and put `S` in its place (Pushpin sets `path_rem` to `path_beg`'s length).
//! * `no_grip`: pass responses through without GRIP processing.
//! * Target `over_http`: WebSocket-over-HTTP to this target; `host=`: Host header for this target;
//!   `sub=<channel>` (repeatable): subscribe the connection to a channel without GRIP.
//!
//! # Where holdfast is stricter than Pushpin
//! Pushpin logs a warning and skips a bad line, and ignores options it does not know; holdfast
//! refuses the whole file with an error naming the line and the option. Also refused: an option
//! given twice (Pushpin keeps the last), a value on a flag (`over_http=no` turns it on in Pushpin),
//! a non-numeric `path_rem` (Pushpin reads 0), `path_rem` together with `replace_beg` (Pushpin
//! ignores `path_rem`), and a repeated condition (Pushpin drops the later line).
//! Pushpin features holdfast does not have yet are refused as "not supported by holdfast":
//! condition options `aco`, `session`, `sockjs`, `sockjs_as_path`, `header`, `orig_headers`,
//! `log_level`, `jsonp_*`; target options `untrusted`, `one_event`, `ipc_file_mode`; `test`,
//! `zhttp/` and `zhttpreq/` targets; `sig_key=file:`.

use std::net::Ipv6Addr;
use std::str::CharIndices;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

/// Condition options Pushpin accepts that holdfast does not implement (`jsonp_*` is matched apart).
const UNSUPPORTED_CONDITION_OPTIONS: &str =
    "aco session sockjs sockjs_as_path header orig_headers log_level";
/// Target options Pushpin accepts that holdfast does not implement.
const UNSUPPORTED_TARGET_OPTIONS: &str = "untrusted one_event ipc_file_mode";

type Result<T, E = RoutesError> = std::result::Result<T, E>;

/// A parsed routes file: every route, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// The routes in file order (the order breaks ties when choosing a route).
    pub routes: Vec<Route>,
}

/// The `proto=` condition: which kind of request a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteProto {
    /// Plain HTTP requests only (no WebSocket upgrade).
    Http,
    /// WebSocket upgrade requests only.
    Ws,
}

/// One line of the routes file: a condition, its options and at least one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// 1-based line in the file, for error and log messages.
    pub line: usize,
    /// `id=`: the route's name.
    pub id: Option<String>,
    /// The condition host, lower-cased (IPv6 without brackets); `None` for `*`.
    pub host: Option<String>,
    /// `path_beg=`: the request path must start with this.
    pub path_beg: Option<String>,
    /// `ssl=yes|no`: the request must (not) have come over TLS.
    pub ssl: Option<bool>,
    /// `proto=http|ws`: the request must (not) be a WebSocket upgrade.
    pub proto: Option<RouteProto>,
    /// `sig_iss=`: Grip-Sig issuer for this route.
    pub sig_iss: Option<String>,
    /// `sig_key=`: Grip-Sig key, decoded (`base64:` prefix means a base64-encoded binary key).
    pub sig_key: Option<Vec<u8>>,
    /// `prefix=`: channel prefix, "" by default.
    pub prefix: String,
    /// `as_host=host[:port]`: Host to present to the origin.
    pub as_host: Option<String>,
    /// Bytes cut from the start of the path (`path_rem=`, or `path_beg`'s length with `replace_beg`).
    pub path_rem: usize,
    /// `replace_beg=`: put in front of the path after `path_rem` bytes are cut.
    pub replace_beg: Option<String>,
    /// `no_grip`: do not process GRIP instructions for this route.
    pub no_grip: bool,
    /// `debug`: verbose errors for this route.
    pub debug: bool,
    /// Targets, tried in order; never empty.
    pub targets: Vec<Target>,
}

/// One origin a route forwards to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port, 1-65535.
    pub port: u16,
    /// `over_http`: speak WebSocket-over-HTTP to this target.
    pub over_http: bool,
    /// `host=`: Host header to send to this target.
    pub host_header: Option<String>,
    /// `sub=<channel>` (repeatable): channels to subscribe the connection to.
    pub subs: Vec<String>,
    /// `ssl`: reach this target over TLS.
    pub ssl: bool,
    /// `insecure`: with `ssl`, accept any certificate (testing only).
    pub insecure: bool,
    /// `trust_connect_host`: with `ssl`, check the certificate against the target's host rather
    /// than the Host header sent to it.
    pub trust_connect_host: bool,
}

/// Why a routes file was refused. Every message names the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesError {
    /// The line could not be split into sections and options.
    #[error("routes line {line}: {reason}: `{text}`")]
    Syntax {
        line: usize,
        reason: &'static str,
        text: String,
    },
    /// A condition without any target.
    #[error("routes line {line}: a route needs a condition and at least one target: `{text}`")]
    MissingTarget { line: usize, text: String },
    /// The condition has options but no host (Pushpin-Route-only routes are not supported).
    #[error("routes line {line}: the condition has no host (use `*` for any host): `{text}`")]
    EmptyHost { line: usize, text: String },
    /// The condition host is not `*` or a bare host name.
    #[error("routes line {line}: condition host `{host}`: {reason}")]
    InvalidHost {
        line: usize,
        host: String,
        reason: &'static str,
    },
    /// A target that is not `host:port` / `[v6]:port`.
    #[error("routes line {line}: target `{target}`: {reason}")]
    BadTarget {
        line: usize,
        target: String,
        reason: &'static str,
    },
    /// A Pushpin target kind (`test`, `zhttp/`, `zhttpreq/`) holdfast does not implement.
    #[error("routes line {line}: target `{target}` is not supported by holdfast")]
    UnsupportedTarget { line: usize, target: String },
    /// A Pushpin option holdfast does not implement (`place` is "condition" or "target").
    #[error("routes line {line}: {place} option `{option}` is not supported by holdfast")]
    Unsupported {
        line: usize,
        option: String,
        place: &'static str,
    },
    /// An option Pushpin does not know either (`place` is "condition" or "target").
    #[error("routes line {line}: unknown {place} option `{option}`")]
    UnknownOption {
        line: usize,
        option: String,
        place: &'static str,
    },
    /// An option value of the wrong form.
    #[error("routes line {line}: option `{option}` has invalid value `{value}` ({expected})")]
    InvalidValue {
        line: usize,
        option: String,
        value: String,
        expected: &'static str,
    },
    /// A non-repeatable option given twice in one section.
    #[error("routes line {line}: option `{option}` is given more than once")]
    DuplicateOption { line: usize, option: String },
    /// `path_rem` and `replace_beg` together (`replace_beg` sets the cut length itself).
    #[error("routes line {line}: options `path_rem` and `replace_beg` cannot be combined")]
    PathRemWithReplaceBeg { line: usize },
    /// Same host, `proto`, `ssl` and `path_beg` as an earlier line.
    #[error("routes line {line}: duplicate condition (same as line {first_line}): `{text}`")]
    DuplicateCondition {
        line: usize,
        first_line: usize,
        text: String,
    },
}

impl RoutesError {
    /// The error with `sig_key` values masked: the messages quote the line (or the value) that
    /// failed, and these errors reach logs and the terminal.
    fn redacted(self) -> RoutesError {
        use crate::redact;
        let line_text = |text: String| redact::route_line(&text).into_owned();
        match self {
            RoutesError::Syntax { line, reason, text } => RoutesError::Syntax {
                line,
                reason,
                text: line_text(text),
            },
            RoutesError::MissingTarget { line, text } => RoutesError::MissingTarget {
                line,
                text: line_text(text),
            },
            RoutesError::EmptyHost { line, text } => RoutesError::EmptyHost {
                line,
                text: line_text(text),
            },
            RoutesError::DuplicateCondition {
                line,
                first_line,
                text,
            } => RoutesError::DuplicateCondition {
                line,
                first_line,
                text: line_text(text),
            },
            RoutesError::InvalidValue {
                line,
                option,
                expected,
                ..
            } if option.eq_ignore_ascii_case("sig_key") => RoutesError::InvalidValue {
                line,
                option,
                value: redact::MASK.to_string(),
                expected,
            },
            other => other,
        }
    }
}

/// One space-separated part of a line: its value and its `,name[=value]` options.
#[derive(Debug, Default)]
struct Section {
    value: String,
    opts: Vec<Opt>,
}

/// One option; `value` is `None` when written without `=`.
#[derive(Debug)]
struct Opt {
    line: usize,
    name: String,
    value: Option<String>,
}

impl RouteTable {
    /// Parses a whole routes file. Any bad line fails the whole file.
    pub fn parse(text: &str) -> Result<RouteTable, RoutesError> {
        RouteTable::parse_lines(text).map_err(RoutesError::redacted)
    }

    fn parse_lines(text: &str) -> Result<RouteTable, RoutesError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut routes: Vec<Route> = Vec::new();
        for (index, text_line) in text.lines().enumerate() {
            let line = index + 1;
            let sections = split_line(line, text_line)?;
            if sections.is_empty() {
                continue;
            }
            let route = parse_route(line, text_line, &sections)?;
            if let Some(first) = routes.iter().find(|r| r.same_condition(&route)) {
                let text = text_line.trim().to_string();
                return Err(RoutesError::DuplicateCondition {
                    line,
                    first_line: first.line,
                    text,
                });
            }
            routes.push(route);
        }
        Ok(RouteTable { routes })
    }

    /// Chooses the route for a request, by the rules in the module docs; `None` means no route.
    ///
    /// host: the request's Host header value (may contain :port, any case); path: request path
    /// incl. query; is_tls: request came over TLS; is_ws: the request is a WebSocket upgrade.
    pub fn find(&self, host: &str, path: &str, is_tls: bool, is_ws: bool) -> Option<&Route> {
        let host = request_host(host);
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let specific = self.routes.iter().any(|r| r.names_host(host));
        // If no route names the host, `names_host` is false for all and the `*` routes remain.
        let candidates = self
            .routes
            .iter()
            .filter(|r| r.names_host(host) || (!specific && r.host.is_none()))
            .filter(|r| r.matches(path, is_tls, is_ws));
        let mut best: Option<&Route> = None;
        for route in candidates {
            if best.is_none_or(|b| route.beats(b)) {
                best = Some(route);
            }
        }
        best
    }
}

impl Route {
    /// The path to send to the origin after path_rem / replace_beg are applied.
    ///
    /// Works on the path without its query; the query is kept as is. An empty result becomes `/`.
    pub fn origin_path(&self, path: &str) -> String {
        let (path, query) = path.find('?').map_or((path, ""), |at| path.split_at(at));
        let kept = path.as_bytes().get(self.path_rem..).unwrap_or_default();
        let kept = String::from_utf8_lossy(kept);
        let prepend = self.replace_beg.as_deref().unwrap_or("");
        let mut out = String::with_capacity(prepend.len() + kept.len() + query.len() + 1);
        out.push_str(prepend);
        out.push_str(&kept);
        if out.is_empty() {
            out.push('/');
        }
        out.push_str(query);
        out
    }

    fn names_host(&self, host: &str) -> bool {
        matches!(&self.host, Some(h) if h.eq_ignore_ascii_case(host))
    }

    /// Pushpin's `isMatch`: every condition that is set holds for the request.
    fn matches(&self, path: &str, is_tls: bool, is_ws: bool) -> bool {
        self.proto.is_none_or(|p| (p == RouteProto::Ws) == is_ws)
            && self.ssl.is_none_or(|ssl| ssl == is_tls)
            && path.starts_with(self.path_beg.as_deref().unwrap_or(""))
    }

    /// Pushpin's `isMoreSpecificMatch` for a route that already matches: does it replace `best`?
    fn beats(&self, best: &Route) -> bool {
        match (self.proto.is_some(), best.proto.is_some()) {
            (true, false) => return true,
            (false, true) => return false,
            _ => {}
        }
        let len = |r: &Route| r.path_beg.as_ref().map_or(0, String::len);
        if len(self) > len(best) {
            return true;
        }
        self.ssl.is_some() && best.ssl.is_none()
    }

    /// Pushpin's duplicate check: same host, proto, ssl and path_beg.
    fn same_condition(&self, other: &Route) -> bool {
        (self.host == other.host && self.path_beg == other.path_beg)
            && (self.proto == other.proto && self.ssl == other.ssl)
    }
}

/// The Host header's host: port and IPv6 brackets removed (case is left to the comparison).
fn request_host(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(inner, _)| inner);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// Splits one line into sections; an empty result means a blank or comment-only line.
fn split_line(line: usize, text: &str) -> Result<Vec<Section>> {
    let syntax = |reason| RoutesError::Syntax {
        line,
        reason,
        text: text.trim().to_string(),
    };
    let mut sections = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with('#') {
            return Ok(sections);
        }
        let (part, after) = read_part(rest).map_err(syntax)?;
        rest = after;
        let mut section = Section::default();
        // Like Pushpin, a first part containing `=` is an option of a section with no value.
        if part.contains('=') {
            section.opts.push(split_opt(line, part).map_err(syntax)?);
        } else {
            section.value = part;
        }
        while let Some(after_comma) = rest.strip_prefix(',') {
            let (part, after) = read_part(after_comma).map_err(syntax)?;
            rest = after;
            if part.is_empty() {
                return Err(syntax("expected an option after `,`"));
            }
            section.opts.push(split_opt(line, part).map_err(syntax)?);
        }
        sections.push(section);
    }
}

/// Reads up to an unquoted `,`, space, tab or `#`, decoding `"..."` parts; returns the rest too.
fn read_part(s: &str) -> Result<(String, &str), &'static str> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            ',' | ' ' | '\t' | '#' => return Ok((out, &s[at..])),
            '"' => read_quoted(&mut chars, &mut out)?,
            _ => out.push(c),
        }
    }
    Ok((out, ""))
}

/// Decodes a quoted part after its opening `"`, through the closing one.
fn read_quoted(chars: &mut CharIndices<'_>, out: &mut String) -> Result<(), &'static str> {
    loop {
        match chars.next() {
            None => return Err("unterminated quote"),
            Some((_, '"')) => return Ok(()),
            Some((_, '\\')) => match chars.next() {
                Some((_, c @ ('\\' | '"'))) => out.push(c),
                _ => return Err("bad escape in quotes (only \\\\ and \\\" are allowed)"),
            },
            Some((_, c)) => out.push(c),
        }
    }
}

fn split_opt(line: usize, part: String) -> Result<Opt, &'static str> {
    let (name, value) = match part.split_once('=') {
        Some((name, value)) => (name.to_string(), Some(value.to_string())),
        None => (part, None),
    };
    if name.is_empty() {
        return Err("empty option name");
    }
    Ok(Opt { line, name, value })
}

fn parse_route(line: usize, text: &str, sections: &[Section]) -> Result<Route> {
    let missing = || RoutesError::MissingTarget {
        line,
        text: text.trim().to_string(),
    };
    let [condition, targets @ ..] = sections else {
        return Err(missing());
    };
    if targets.is_empty() {
        return Err(missing());
    }
    let mut route = parse_condition(line, text, condition)?;
    route.targets = targets
        .iter()
        .map(|t| parse_target(line, t))
        .collect::<Result<_>>()?;
    Ok(route)
}

fn parse_condition(line: usize, text: &str, section: &Section) -> Result<Route> {
    let host = parse_condition_host(line, text, &section.value)?;
    let mut route = Route {
        line,
        host,
        ..Route::default()
    };
    for opt in &section.opts {
        apply_condition_option(&mut route, opt)?;
    }
    check_repeats(&section.opts, &[])?;
    if route.replace_beg.is_some() {
        if section.opts.iter().any(|o| o.name == "path_rem") {
            return Err(RoutesError::PathRemWithReplaceBeg { line });
        }
        route.path_rem = route.path_beg.as_ref().map_or(0, String::len);
    }
    Ok(route)
}

fn parse_condition_host(line: usize, text: &str, value: &str) -> Result<Option<String>> {
    let invalid = |reason| RoutesError::InvalidHost {
        line,
        host: value.to_string(),
        reason,
    };
    let host = value.to_ascii_lowercase();
    let is_v6 = |s: &str| s.parse::<Ipv6Addr>().is_ok();
    match host.as_str() {
        "" => Err(RoutesError::EmptyHost {
            line,
            text: text.trim().to_string(),
        }),
        "*" => Ok(None),
        _ if host.starts_with('[') => match host[1..].strip_suffix(']') {
            Some(inner) if is_v6(inner) => Ok(Some(inner.to_string())),
            _ => Err(invalid("missing `]` or not a valid IPv6 address")),
        },
        _ if host.contains(':') && !is_v6(&host) => Err(invalid(
            "must not include a port (the host is matched without its port)",
        )),
        _ if host.contains(['/', '*']) => Err(invalid(
            "must be `*` or a full host name (no paths, no partial wildcards)",
        )),
        _ => Ok(Some(host)),
    }
}

fn apply_condition_option(route: &mut Route, opt: &Opt) -> Result<()> {
    let name = opt.name.as_str();
    match name {
        "path_beg" => route.path_beg = Some(non_empty(opt)?),
        "ssl" => {
            route.ssl = Some(choice(
                opt,
                &[("yes", true), ("no", false)],
                "expected yes or no",
            )?)
        }
        "proto" => {
            let protos = [("http", RouteProto::Http), ("ws", RouteProto::Ws)];
            route.proto = Some(choice(opt, &protos, "expected http or ws")?);
        }
        "id" => route.id = Some(non_empty(opt)?),
        "sig_iss" => route.sig_iss = Some(non_empty(opt)?),
        "sig_key" => route.sig_key = Some(parse_sig_key(opt)?),
        "prefix" => route.prefix = opt.value.clone().unwrap_or_default(),
        "as_host" => route.as_host = Some(non_empty(opt)?),
        "path_rem" => route.path_rem = count(opt)?,
        "replace_beg" => route.replace_beg = Some(opt.value.clone().unwrap_or_default()),
        "no_grip" => route.no_grip = flag(opt)?,
        "debug" => route.debug = flag(opt)?,
        _ if is_listed(UNSUPPORTED_CONDITION_OPTIONS, name) || name.starts_with("jsonp_") => {
            return Err(unsupported(opt.line, name, "condition"));
        }
        _ => return Err(unknown(opt, "condition")),
    }
    Ok(())
}

fn parse_target(line: usize, section: &Section) -> Result<Target> {
    let mut target = parse_target_addr(line, &section.value)?;
    for opt in &section.opts {
        let name = opt.name.as_str();
        match name {
            "over_http" => target.over_http = flag(opt)?,
            "host" => target.host_header = Some(non_empty(opt)?),
            "sub" => target.subs.push(non_empty(opt)?),
            "ssl" => target.ssl = flag(opt)?,
            "insecure" => target.insecure = flag(opt)?,
            "trust_connect_host" => target.trust_connect_host = flag(opt)?,
            _ if is_listed(UNSUPPORTED_TARGET_OPTIONS, name) => {
                return Err(unsupported(opt.line, name, "target"));
            }
            _ => return Err(unknown(opt, "target")),
        }
    }
    check_repeats(&section.opts, &["sub"])?;
    let tls_only = ["insecure", "trust_connect_host"];
    if let Some(opt) = section
        .opts
        .iter()
        .find(|o| tls_only.contains(&o.name.as_str()))
        && !target.ssl
    {
        return Err(invalid(opt, "this option needs `ssl` on the same target"));
    }
    Ok(target)
}

/// A target's `host:port` / `[v6]:port`, options not yet applied.
fn parse_target_addr(line: usize, value: &str) -> Result<Target> {
    if value == "test" || value.starts_with("zhttp/") || value.starts_with("zhttpreq/") {
        return Err(RoutesError::UnsupportedTarget {
            line,
            target: value.to_string(),
        });
    }
    let bad = |reason| RoutesError::BadTarget {
        line,
        target: value.to_string(),
        reason,
    };
    let (host, port) = split_host_port(value).map_err(bad)?;
    let port = parse_port(port).ok_or_else(|| bad("invalid port (expected 1-65535)"))?;
    Ok(Target {
        host: host.to_string(),
        port,
        ..Target::default()
    })
}

fn split_host_port(value: &str) -> Result<(&str, &str), &'static str> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or("missing `]` after the IPv6 address")?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| "not a valid IPv6 address")?;
        (
            addr,
            after.strip_prefix(':').ok_or("expected [v6addr]:port")?,
        )
    } else if value.is_empty() {
        return Err("missing host:port before the target's options");
    } else {
        let (host, port) = value
            .rsplit_once(':')
            .ok_or("expected host:port (the port is required)")?;
        if host.contains(':') {
            return Err("an IPv6 address must be in brackets, e.g. [::1]:8080");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("empty host");
    }
    Ok((host, port))
}

fn parse_port(s: &str) -> Option<u16> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    s.parse().ok().filter(|&port| digits && port != 0)
}

/// `base64:<b64>` is a binary key; `file:` needs I/O and is refused; anything else is UTF-8 bytes.
fn parse_sig_key(opt: &Opt) -> Result<Vec<u8>> {
    let value = non_empty(opt)?;
    if let Some(encoded) = value.strip_prefix("base64:") {
        return match STANDARD_PAD_INDIFFERENT.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(key),
            _ => Err(invalid(opt, "expected base64:<non-empty standard base64>")),
        };
    }
    if value.starts_with("file:") {
        return Err(unsupported(opt.line, "sig_key=file:", "condition"));
    }
    Ok(value.into_bytes())
}

fn non_empty(opt: &Opt) -> Result<String> {
    match opt.value.as_deref() {
        Some(value) if !value.is_empty() => Ok(value.to_string()),
        _ => Err(invalid(opt, "expected a non-empty value")),
    }
}

fn choice<T: Copy>(opt: &Opt, choices: &[(&str, T)], expected: &'static str) -> Result<T> {
    let value = opt.value.as_deref().unwrap_or("");
    let found = choices.iter().find(|(word, _)| *word == value);
    found.map(|&(_, v)| v).ok_or_else(|| invalid(opt, expected))
}

fn count(opt: &Opt) -> Result<usize> {
    let value = opt.value.as_deref().unwrap_or("");
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let parsed = value.parse().ok().filter(|_| digits);
    parsed.ok_or_else(|| invalid(opt, "expected a non-negative integer"))
}

/// A flag is written bare (or with an empty value); any value is refused rather than misread.
fn flag(opt: &Opt) -> Result<bool> {
    match opt.value.as_deref() {
        None | Some("") => Ok(true),
        Some(_) => Err(invalid(opt, "this option is a flag and takes no value")),
    }
}

fn check_repeats(opts: &[Opt], repeatable: &[&str]) -> Result<()> {
    for (index, opt) in opts.iter().enumerate() {
        let repeated = opts[..index].iter().any(|o| o.name == opt.name);
        if repeated && !repeatable.contains(&opt.name.as_str()) {
            let option = opt.name.clone();
            return Err(RoutesError::DuplicateOption {
                line: opt.line,
                option,
            });
        }
    }
    Ok(())
}

fn is_listed(list: &str, name: &str) -> bool {
    list.split(' ').any(|listed| listed == name)
}

fn invalid(opt: &Opt, expected: &'static str) -> RoutesError {
    let (line, option) = (opt.line, opt.name.clone());
    let value = opt.value.clone().unwrap_or_default();
    RoutesError::InvalidValue {
        line,
        option,
        value,
        expected,
    }
}

fn unsupported(line: usize, option: &str, place: &'static str) -> RoutesError {
    let option = option.to_string();
    RoutesError::Unsupported {
        line,
        option,
        place,
    }
}

fn unknown(opt: &Opt, place: &'static str) -> RoutesError {
    let (line, option) = (opt.line, opt.name.clone());
    RoutesError::UnknownOption {
        line,
        option,
        place,
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
