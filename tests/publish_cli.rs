//! `holdfast publish` and `holdfast status` as an operator runs them: the binary against a
//! running holdfast (also the binary), finding the publish listener and credentials in the
//! config file it is given.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::binary::{BIN, Holdfast, Scratch, driver_name, wait_for_metric};
use common::*;

/// How long one CLI run may take.
const RUN_LIMIT: Duration = Duration::from_secs(15);

/// A holdfast in front of an origin that holds `/poll` as a long-poll and anything else as a
/// stream, both on channel "news", with `publish_auth` (TOML lines for [publish]).
struct Setup {
    holdfast: Holdfast,
    _origin: Origin,
    _scratch: Scratch,
    /// The config the CLI is given: the same as holdfast's, with the bound publish address.
    cli_config: PathBuf,
}

impl Setup {
    fn start(name: &str, publish_auth: &str) -> Setup {
        Setup::start_with(name, publish_auth, Scratch::new(&format!("{name}-cli")))
    }

    /// With `scratch` (where the CLI's config goes) made beforehand, for files the configs name.
    fn start_with(name: &str, publish_auth: &str, scratch: Scratch) -> Setup {
        let origin = Origin::start(|req| {
            Reply::Send(if req.path == "/poll" {
                let hold = [("Grip-Hold", "response"), ("Grip-Channel", "news")];
                response(200, "OK", &hold, b"nothing yet\n")
            } else {
                stream_hold("news", b"hi\n")
            })
        });
        let config = |publish_listen: &str| {
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\npin_workers = false\n\
                 driver = \"{}\"\nroutes = \"* 127.0.0.1:{}\\n\"\n\n\
                 [publish]\nlisten = \"{publish_listen}\"\n{publish_auth}\n",
                driver_name(),
                origin.port()
            )
        };
        let holdfast = Holdfast::start(name, &config("127.0.0.1:0"), "info");
        let cli_config = scratch.file("holdfast.toml", &config(&holdfast.publish.to_string()));
        Setup {
            holdfast,
            _origin: origin,
            _scratch: scratch,
            cli_config,
        }
    }

    /// A stream subscriber on "news", subscribed once its initial body has arrived.
    fn subscriber(&self) -> Client {
        let mut c = Client::connect(self.holdfast.http);
        c.send(&request("GET", "/feed", &[], b""));
        assert_eq!(c.read_stream_head().status, 200);
        assert_eq!(c.next_text(), "hi\n");
        c
    }

    /// `holdfast --config CLI_CONFIG ARGS`, with `stdin` written to it.
    fn cli(&self, args: &[&str], stdin: &[u8]) -> Output {
        let config = self.cli_config.to_str().expect("UTF-8 path");
        run_cli(&[&["--config", config], args].concat(), stdin)
    }
}

/// Runs the binary to its end (within RUN_LIMIT); its output.
fn run_cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run holdfast");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("holdfast {args:?} still running after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_published(out: &Output) {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "{}: {stdout}{stderr}", out.status);
    assert_eq!(stdout.trim(), "Published", "{stderr}");
}

#[test]
fn publish_with_basic_auth_from_the_config_reaches_a_stream() {
    let s = Setup::start("cli-basic", "basic_auth = \"pub:s3cret\"");
    let mut sub = s.subscriber();
    assert_published(&s.cli(&["publish", "news", "from an argument"], b""));
    assert_eq!(sub.next_text(), "from an argument\n");
    // From standard input, byte for byte; "-" says so explicitly.
    assert_published(&s.cli(&["publish", "news"], b"line one\nline two\n"));
    assert_eq!(sub.next_text(), "line one\nline two\n");
    assert_published(&s.cli(&["publish", "news", "-", "--id", "7"], b"dash"));
    assert_eq!(sub.next_text(), "dash");
    // --close ends the stream.
    assert_published(&s.cli(&["publish", "news", "--close"], b""));
    assert_eq!(sub.read_chunk(), None);
}

#[test]
fn publish_answers_long_polls_with_its_code_and_headers() {
    let s = Setup::start("cli-poll", "");
    let mut stream = s.subscriber();
    let mut poll = Client::connect(s.holdfast.http);
    poll.send(&request("GET", "/poll", &[], b""));
    // Both held: the long-poll has no initial body to wait for, /metrics tells.
    let held = wait_for_metric(
        s.holdfast.publish,
        "holdfast_subscriptions",
        &[],
        2,
        Duration::from_secs(10),
    );
    assert!(held.is_some(), "the long-poll was never held");
    let out = s.cli(
        &[
            "publish",
            "news",
            "polled",
            "--id",
            "1",
            "--code",
            "201",
            "-H",
            "X-Test: yes",
        ],
        b"",
    );
    assert_published(&out);
    let r = poll.read_response();
    assert_eq!((r.status, r.text().as_str()), (201, "polled\n"));
    assert_eq!(r.header("X-Test"), Some("yes"));
    assert_eq!(stream.next_text(), "polled\n");
}

#[test]
fn publish_with_a_jwt_key_file_signs_a_bearer_token() {
    let scratch = Scratch::new("cli-jwt-cli");
    let key = scratch.file("jwt.key", "base64:c2VjcmV0LWtleQ==\n");
    let auth = format!(
        "jwt_key_file = {:?}\njwt_iss = \"ops\"",
        key.to_str().unwrap()
    );
    let s = Setup::start_with("cli-jwt", &auth, scratch);
    let mut sub = s.subscriber();
    assert_published(&s.cli(&["publish", "news", "signed"], b""));
    assert_eq!(sub.next_text(), "signed\n");
    // The same key from the command line, with the wrong issuer: refused.
    let out = s.cli(
        &[
            "publish",
            "news",
            "x",
            "--jwt-key",
            "base64:c2VjcmV0LWtleQ==",
            "--jwt-iss",
            "other",
        ],
        b"",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}

#[test]
fn publish_refused_for_credentials_says_401_and_exits_non_zero() {
    let s = Setup::start("cli-401", "basic_auth = \"pub:s3cret\"");
    let mut sub = s.subscriber();
    for flags in [&["--no-auth"][..], &["--user", "pub:wrong"][..]] {
        let out = s.cli(&[&["publish", "news", "nope"], flags].concat(), b"");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("refused the publish: 401 Unauthorized"),
            "{flags:?}: {stderr}"
        );
    }
    assert!(!sub.has_data_within(Duration::from_millis(300)));
}

#[test]
fn publish_to_nothing_listening_fails_clearly() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let out = run_cli(&["publish", "news", "x", "--url", &url, "--no-auth"], b"");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to http://{addr}/publish/"))
            && stderr.contains("refused")
            && stderr.contains("is holdfast running?"),
        "{stderr}"
    );
    // The same from a config's publish.listen, which the message names.
    let scratch = Scratch::new("cli-refused");
    let config = scratch.file(
        "holdfast.toml",
        &format!("[publish]\nlisten = \"{addr}\"\n"),
    );
    let out = run_cli(&["--config", config.to_str().unwrap(), "status"], b"");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect") && stderr.contains("publish.listen in"),
        "{stderr}"
    );
}

#[test]
fn status_counts_held_connections_and_rates() {
    let s = Setup::start("cli-status", "basic_auth = \"pub:s3cret\"");
    let mut subs = vec![s.subscriber(), s.subscriber(), s.subscriber()];
    assert_published(&s.cli(&["publish", "news", "one"], b""));
    for sub in &mut subs {
        assert_eq!(sub.next_text(), "one\n");
    }
    // /metrics needs the publish credentials here: status takes them from the config.
    let out = s.cli(&["status", "--interval-ms", "300"], b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("connections"),
        "connections 3 (http 0, stream 3, response 0, websocket 0)"
    );
    // One channel: counted once, or once by each of the two workers.
    let subs = line("subscriptions");
    assert!(
        subs == "subscriptions 3 on 1 channels"
            || subs == "subscriptions 3 on 1 to 2 channels (each worker counts its own)",
        "{stdout}"
    );
    assert!(line("since start").contains("publishes 1"), "{stdout}");
    assert!(line("since start").contains("delivered 3"), "{stdout}");
    assert!(stdout.contains("rates over 0.3"), "{stdout}");
    assert_eq!(line("  deliveries/s"), "deliveries/s 0.0");
    drop(subs);
    // Without credentials: 401, said so.
    let out = s.cli(&["status", "--no-auth", "--interval-ms", "0"], b"");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs credentials: 401"), "{stderr}");
}
