//! Secrets stay out of logs and error messages, and can be read from files (issue 15): route
//! `sig_key=` values, NATS URL credentials, secret config values, request query strings; the
//! `--sig-key-file` flag and the `*_file` config keys.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::binary::{Binary, Scratch, check_config};
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_bad_routes_line_is_reported_without_its_sig_key() {
    let dir = Scratch::new("secret-routes");
    for (i, text) in [
        "*,sig_key=S3CRETKEY\n",
        "* 127.0.0.1:80,sig_key=S3CRETKEY\n",
        "*,sig_key=base64:S3CRETKEY!! 127.0.0.1:80\n",
        "*,sig_key=\"S3CRETKEY 127.0.0.1:80\n",
    ]
    .into_iter()
    .enumerate()
    {
        let routes = dir.file(&format!("routes{i}"), text);
        let (ok, out) = check_config(&["--routes", arg(&routes)]);
        assert!(!ok, "{text}: accepted");
        assert!(out.contains("line 1"), "{text}: {out}");
        assert!(!out.contains("S3CRETKEY"), "{text}: {out}");
    }
}

#[test]
fn a_config_parse_error_does_not_quote_a_secret() {
    let dir = Scratch::new("secret-toml");
    for text in [
        "[grip]\nsig_key = \"S3CRETKEY\n",
        "[publish]\nbasic_auth = S3CRETKEY\n",
        "[cluster]\npassword = 'S3CRETKEY\n",
    ] {
        let config = dir.file("holdfast.toml", text);
        let (ok, out) = check_config(&["--config", arg(&config)]);
        assert!(!ok, "{text}: accepted");
        assert!(!out.contains("S3CRETKEY"), "{text}: {out}");
    }
}

#[test]
fn nats_url_credentials_are_never_printed() {
    let dir = Scratch::new("secret-nats");
    // check-config: an invalid URL is named, without its password.
    let config = dir.file(
        "bad.toml",
        "[cluster]\nenabled = true\nservers = [\"nats://alice:PA55WORD@[::1\"]\n",
    );
    let (ok, out) = check_config(&["--config", arg(&config)]);
    assert!(!ok);
    assert!(out.contains("nats://***@[::1"), "{out}");
    assert!(!out.contains("PA55WORD"), "{out}");
    // run: the "connecting to NATS" line names the server, without its password (nothing
    // listens on port 1, so holdfast keeps retrying in the background).
    let config = dir.file(
        "run.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[publish]\nlisten = \"127.0.0.1:0\"\n\
         [cluster]\nenabled = true\nservers = [\"nats://alice:PA55WORD@127.0.0.1:1\"]\n\
         connect_timeout_ms = 200\nreconnect_delay_max_ms = 200\n",
    );
    let hf = Binary::run(&["--config", arg(&config)]);
    let line = hf.wait_for("connecting to NATS");
    assert!(line.contains("nats://***@127.0.0.1:1"), "{line}");
    let all = hf.output(Duration::from_millis(1500));
    assert!(!all.contains("PA55WORD"), "{all}");
}

#[test]
fn origin_errors_log_the_path_without_the_query() {
    let dir = Scratch::new("secret-query");
    // Nothing listens on port 1: every request fails at the origin.
    let routes = dir.file("routes", "* 127.0.0.1:1\n");
    let hf = Binary::run(&[
        "--listen",
        "127.0.0.1:0",
        "--publish-listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--routes",
        arg(&routes),
    ]);
    let (http, _) = hf.addresses();
    let r = Client::connect(http).get("/feed?token=S3CRETTOKEN&x=1");
    assert_eq!(r.status, 502);
    let line = hf.wait_for("origin request failed");
    assert!(line.contains("/feed?***"), "{line}");
    let all = hf.output(Duration::from_millis(300));
    assert!(!all.contains("S3CRETTOKEN"), "{all}");
}

/// The Grip-Sig key of the request the origin got, checked against `key`.
fn assert_signed_with(origin: &Origin, key: &[u8]) {
    let sig = origin
        .first_request()
        .header("grip-sig")
        .expect("a Grip-Sig header")
        .to_string();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&["pushpin"]);
    jsonwebtoken::decode::<serde_json::Value>(&sig, &DecodingKey::from_secret(key), &v)
        .expect("Grip-Sig verifies with the key from the file");
}

#[test]
fn sig_key_file_flag_signs_with_the_files_key() {
    let origin = Origin::fixed(ok(b"hi\n"));
    let dir = Scratch::new("sig-key-file");
    let routes = dir.file("routes", &route_to(&origin));
    let key = dir.file("grip.key", "file-s3cret\n");
    let hf = Binary::run(&[
        "--listen",
        "127.0.0.1:0",
        "--publish-listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--routes",
        arg(&routes),
        "--sig-key-file",
        arg(&key),
    ]);
    let (http, _) = hf.addresses();
    assert_eq!(Client::connect(http).get("/").status, 200);
    // The trailing newline is not part of the key.
    assert_signed_with(&origin, b"file-s3cret");
}

#[test]
fn an_unreadable_key_file_is_a_clear_start_up_error() {
    let dir = Scratch::new("key-file-missing");
    let missing = dir.0.join("no-such.key");
    let (ok, out) = check_config(&["--sig-key-file", arg(&missing)]);
    assert!(!ok);
    assert!(out.contains("grip.sig_key_file"), "{out}");
    assert!(out.contains(arg(&missing)), "{out}");
    // The contents are never shown: not even of a file that is there but unusable.
    let binary = dir.0.join("binary.key");
    std::fs::write(&binary, [0xff, b'S', b'3', b'C', 0xfe]).unwrap();
    let config = dir.file(
        "holdfast.toml",
        "[publish]\njwt_key_file = \"binary.key\"\n",
    );
    let (ok, out) = check_config(&["--config", arg(&config)]);
    assert!(!ok);
    assert!(
        out.contains("publish.jwt_key_file") && out.contains("not UTF-8"),
        "{out}"
    );
    assert!(!out.contains("S3C"), "{out}");
    // A key and its file together: refused, so it is never unclear which one signs.
    let key = dir.file("grip.key", "k\n");
    let (ok, out) = check_config(&["--sig-key", "inline", "--sig-key-file", arg(&key)]);
    assert!(!ok, "{out}");
}

/// `grip.sig_key_file`, `publish.basic_auth_file` and `publish.jwt_key_file`, relative to the
/// config file, in the running server.
#[test]
fn secret_files_in_the_config_are_used() {
    let origin = Origin::fixed(stream_hold("sf", b"init\n"));
    let dir = Scratch::new("secret-files");
    dir.file("grip.key", "grip-s3cret\r\n");
    dir.file("basic", "pub:pa55\n");
    let text = format!(
        "[server]\nroutes = \"{}\"\n[grip]\nsig_key_file = \"grip.key\"\n\
         [publish]\nbasic_auth_file = \"basic\"\n",
        route_to(&origin).trim()
    );
    let path = dir.file("holdfast.toml", &text);
    let mut config = holdfast::Config::load(&path).unwrap();
    let test = common::config("");
    config.server.listen = test.server.listen;
    config.publish.listen = test.publish.listen;
    config.server.workers = 1;
    config.server.pin_workers = false;
    let proxy = Proxy::start(config);
    let _sub = proxy.subscribe("/", b"init\n");
    assert_signed_with(&origin, b"grip-s3cret");
    let body = items(vec![stream_item("sf", "x\n")]).to_string();
    assert_eq!(
        post_publish(proxy.publish, &[], body.as_bytes()).status,
        401
    );
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("pub:pa55")
    );
    let r = post_publish(proxy.publish, &[("Authorization", &auth)], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
}
