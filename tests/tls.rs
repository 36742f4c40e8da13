//! HTTPS and WSS end to end, with certificates made by the test (rcgen) and clients holdfast did
//! not write: curl (OpenSSL or GnuTLS) and tungstenite over rustls' own blocking stream.
//!
//! Covered: the handshake and ALPN, SNI choosing between two certificates, a WSS round trip
//! through the bundled demo origin, publishes fanned out over TLS (many, to a slow reader, in
//! order), reload with new certificates keeping held TLS connections, origins over TLS (`ssl`,
//! `insecure`, `trust_connect_host`, `origin.tls_ca_file`), and clear errors for bad files.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use holdfast::Config;
use holdfast::config::CertificateConfig;
use rustls::{ClientConnection, RootCertStore, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;

/// A directory of certificates for one test, removed at the end.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("holdfast-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    /// A self-signed certificate for `names` (it is its own CA: pass its `cert` as the root).
    fn cert(&self, stem: &str, names: &[&str]) -> CertificateConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = CertificateConfig {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        c
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_config(routes: &str, certs: Vec<CertificateConfig>) -> Config {
    let mut c = config(routes);
    c.tls.listen = vec!["127.0.0.1:0".parse().unwrap()];
    c.tls.certificates = certs;
    c
}

struct TlsProxy {
    proxy: Proxy,
    tls: SocketAddr,
}

fn start(config: Config) -> TlsProxy {
    let server = holdfast::Server::start(config).expect("holdfast starts");
    let tls = server.tls_addrs[0];
    TlsProxy {
        proxy: Proxy::from_server(server),
        tls,
    }
}

/// A rustls client connection to `addr` asking for `name`, trusting only `root`.
fn connect(addr: SocketAddr, name: &str, root: &Path) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(name.to_string()).unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Reads until `done` says the bytes so far are enough (or the deadline passes).
fn read_until(s: &mut impl Read, limit: Duration, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    while !done(&got) && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("read: {e} after {} bytes", got.len()),
        }
    }
    got
}

fn has_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

/// `curl -v` over HTTPS for `name`, resolved to the proxy, trusting `ca`: (status, body, log).
fn curl(tls: SocketAddr, name: &str, ca: &Path, path: &str) -> (String, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "10", "--http1.1", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", tls.port()))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://{name}:{}{path}", tls.port()))
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (
        code.to_string(),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn https_with_curl_alpn_and_sni() {
    if !has_curl() {
        eprintln!("curl not installed: skipped");
        return;
    }
    let pki = Pki::new("sni");
    let a = pki.cert("a", &["a.test"]);
    let b = pki.cert("b", &["*.b.test"]);
    let origin = Origin::start(|r| {
        let proto = r.header("X-Forwarded-Proto").unwrap_or("none").to_string();
        Reply::Send(ok(format!("{} {proto}", r.path).as_bytes()))
    });
    let p = start(tls_config(&route_to(&origin), vec![a.clone(), b.clone()]));

    let (code, body, log) = curl(p.tls, "a.test", &a.cert, "/hello?x=1");
    assert_eq!(code, "200", "{log}");
    assert_eq!(body, "/hello?x=1 https");
    assert!(
        log.contains("ALPN: server accepted http/1.1") || log.contains("ALPN, server accepted"),
        "ALPN not negotiated: {log}"
    );
    // SNI: a name under the wildcard gets the second certificate (curl verifies it).
    let (code, _, log) = curl(p.tls, "www.b.test", &b.cert, "/");
    assert_eq!(code, "200", "{log}");
    // An unknown name gets the first certificate, which does not cover it: curl refuses.
    let (code, _, _) = curl(p.tls, "other.test", &a.cert, "/");
    assert_eq!(
        code, "000",
        "verification must fail for a name no certificate covers"
    );
    // The plain listener still answers, and says http.
    let mut c = p.proxy.client();
    assert_eq!(c.get("/plain").text(), "/plain http");
    // Plain HTTP on the TLS port is a failed handshake (the client gets an alert), counted.
    let mut raw = Client::connect(p.tls);
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (answer, _) = raw.wait_closed(IO_TIMEOUT);
    assert_eq!(answer.first(), Some(&21), "a TLS alert record");
    let metrics = publish_request(p.proxy.publish, "GET", "/metrics", &[], b"").text();
    let total = |name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // Four attempts: two completed, the plain request failed, and the one curl abandons after
    // refusing the certificate counts either way (depending on when its alert lands).
    let done = total("holdfast_tls_handshakes_total{");
    let failed = total("holdfast_tls_handshake_failures_total{");
    assert_eq!(done + failed, 4, "{metrics}");
    assert!(done >= 2 && failed >= 1, "{metrics}");
}

#[test]
fn routes_can_require_tls() {
    let pki = Pki::new("sslcond");
    let a = pki.cert("a", &["a.test"]);
    let secure = Origin::fixed(ok(b"secure"));
    let plain = Origin::fixed(ok(b"plain"));
    let routes = format!(
        "*,ssl=yes 127.0.0.1:{}\n* 127.0.0.1:{}\n",
        secure.port(),
        plain.port()
    );
    let p = start(tls_config(&routes, vec![a.clone()]));
    let mut s = connect(p.tls, "a.test", &a.cert);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let got = read_until(&mut s, IO_TIMEOUT, |b| b.ends_with(b"secure"));
    assert!(
        got.ends_with(b"secure"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(p.proxy.client().get("/").text(), "plain");
}

/// Many publishes to a stream subscriber over TLS that reads slowly at first: the fan-out
/// encrypts from the worker, blocks on the full socket, resumes, and nothing is lost or reordered.
#[test]
fn published_items_reach_a_tls_subscriber_in_order() {
    let pki = Pki::new("fanout");
    let a = pki.cert("a", &["a.test"]);
    let origin = Origin::fixed(stream_hold("tls-news", b"ready\n"));
    let mut config = tls_config(&route_to(&origin), vec![a.clone()]);
    // Small socket buffers (as for a host of idle connections): the fan-out blocks sooner.
    config.server.socket_send_buffer_bytes = 8192;
    config.server.socket_recv_buffer_bytes = 8192;
    let p = start(config);
    let mut s = connect(p.tls, "a.test", &a.cert);
    s.write_all(b"GET /s HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let head = read_until(&mut s, IO_TIMEOUT, |b| find(b, b"ready\n").is_some());
    assert!(
        find(&head, b"200 OK").is_some(),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // The accepted socket has them (Linux reports double what was set).
    if let Ok(out) = Command::new("ss")
        .args(["-tmnH", "state", "established"])
        .arg(format!("( sport = :{} )", p.tls.port()))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("rb16384") && text.contains("tb16384"),
            "socket buffers not applied: {text}"
        );
    }

    const ITEMS: usize = 3000;
    let filler = "x".repeat(1000);
    for batch in 0..ITEMS / 100 {
        let list = (batch * 100..(batch + 1) * 100)
            .map(|i| stream_item("tls-news", &format!("<{i}>{filler}\n")))
            .collect();
        p.proxy.publish(&items(list));
    }
    // Read everything now (3 MB: more than the socket buffers took while nobody read).
    let last = format!("<{}>", ITEMS - 1);
    let got = read_until(&mut s, Duration::from_secs(20), |b| {
        find(b, last.as_bytes()).is_some()
    });
    let text = String::from_utf8_lossy(&got);
    let seen: Vec<usize> = text
        .split('<')
        .skip(1)
        .filter_map(|part| part.split_once('>').and_then(|(n, _)| n.parse().ok()))
        .collect();
    assert_eq!(seen.len(), ITEMS, "every item arrives once");
    assert!(seen.iter().enumerate().all(|(i, &n)| i == n), "in order");
}

#[test]
fn wss_round_trip_through_the_demo_origin() {
    let pki = Pki::new("wss");
    let a = pki.cert("a", &["a.test"]);
    let demo = holdfast::demo::DemoOrigin::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let routes = format!("*,proto=ws {addr},over_http\n* {addr}\n", addr = demo.addr);
    let p = start(tls_config(&routes, vec![a.clone()]));
    let stream = connect(p.tls, "a.test", &a.cert);
    let url = format!("wss://a.test:{}/ws", p.tls.port());
    let (mut ws, resp) = tungstenite::client(url.as_str(), stream).expect("WSS handshake");
    assert_eq!(resp.status(), 101);
    ws.send(tungstenite::Message::text("hello over tls"))
        .unwrap();
    let echoed = ws.read().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello over tls");
    // A publish to the demo's channel reaches the socket, encrypted by the fan-out.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        p.proxy.publish(&items(vec![json!({
            "channel": "test",
            "formats": {"ws-message": {"content": "published"}}
        })]));
        ws.get_mut()
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match ws.read() {
            Ok(m) => {
                assert_eq!(m.into_text().unwrap().as_str(), "published");
                break;
            }
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                // The subscription may not be in place yet: publish again.
                assert!(Instant::now() < deadline, "publish never arrived");
            }
            Err(e) => panic!("{e}"),
        }
    }
    ws.close(None).unwrap();
}

/// SIGHUP's path: new certificates are used for new connections; a held TLS connection
/// established before keeps working (and keeps receiving publishes).
#[test]
fn reload_swaps_certificates_and_keeps_held_connections() {
    let pki = Pki::new("reload");
    let old = pki.cert("old", &["a.test"]);
    let new = pki.cert("new", &["a.test"]);
    let origin = Origin::fixed(stream_hold("reload", b"ready\n"));
    let routes = route_to(&origin);
    let p = start(tls_config(&routes, vec![old.clone()]));
    let mut held = connect(p.tls, "a.test", &old.cert);
    held.write_all(b"GET /s HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    read_until(&mut held, IO_TIMEOUT, |b| find(b, b"ready\n").is_some());

    let server = p.proxy.server().expect("running");
    let restart = server
        .reload(tls_config(&routes, vec![new.clone()]))
        .expect("reload accepted");
    assert!(
        restart.is_empty() || restart == ["tls.listen"],
        "{restart:?}"
    );
    // The workers apply the reload from their inboxes: wait until new connections see it.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut s = connect(p.tls, "a.test", &new.cert);
        if s.write_all(b"GET /s HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .is_ok()
        {
            let got = read_until(&mut s, Duration::from_secs(1), |b| {
                find(b, b"ready\n").is_some()
            });
            if find(&got, b"ready\n").is_some() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "new certificate never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The old certificate is no longer served to new clients.
    let mut s = connect(p.tls, "a.test", &old.cert);
    assert!(
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .is_err()
            || read_until(&mut s, Duration::from_secs(1), |b| !b.is_empty()).is_empty(),
        "the old certificate is still served"
    );
    // The connection held from before the reload still gets publishes.
    p.proxy
        .publish(&items(vec![stream_item("reload", "after reload\n")]));
    let got = read_until(&mut held, IO_TIMEOUT, |b| {
        find(b, b"after reload").is_some()
    });
    assert!(find(&got, b"after reload").is_some());
}

#[test]
fn bad_certificate_files_are_start_up_errors() {
    let pki = Pki::new("bad");
    let a = pki.cert("a", &["a.test"]);
    let b = pki.cert("b", &["b.test"]);
    let cases = [
        (
            CertificateConfig {
                cert: pki.dir.join("nope.pem"),
                key: a.key.clone(),
            },
            "nope.pem",
        ),
        (
            CertificateConfig {
                cert: a.cert.clone(),
                key: b.key.clone(),
            },
            "does not match",
        ),
        (
            CertificateConfig {
                cert: a.cert.clone(),
                key: pki.dir.join("nope.key"),
            },
            "nope.key",
        ),
    ];
    for (cert, expect) in cases {
        let err = holdfast::Server::start(tls_config("", vec![cert]))
            .err()
            .expect("start fails")
            .to_string();
        assert!(err.contains(expect), "{err} lacks {expect}");
    }
    let mut c = tls_config("", vec![]);
    c.tls.certificates.clear();
    let err = holdfast::Server::start(c).err().unwrap().to_string();
    assert!(err.contains("tls.certificates"), "{err}");
}

/// A tiny HTTPS origin (rustls, a thread per connection) answering every request with its Host
/// header; the certificate covers `names`.
fn tls_origin(cert: &CertificateConfig) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                tcp.set_read_timeout(Some(IO_TIMEOUT)).ok();
                let mut s = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
                loop {
                    let head = read_until(&mut s, IO_TIMEOUT, |b| find(b, b"\r\n\r\n").is_some());
                    let Ok(text) = std::str::from_utf8(&head) else {
                        return;
                    };
                    let Some(host) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Host: ").or(l.strip_prefix("host: ")))
                    else {
                        return;
                    };
                    let body = format!("tls origin saw {host}");
                    if s.write_all(&ok(body.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn origins_over_tls() {
    let pki = Pki::new("origin");
    let origin_cert = pki.cert("origin", &["origin.test"]);
    let origin = tls_origin(&origin_cert);
    let port = origin.port();
    let routes = format!(
        "api.test 127.0.0.1:{port},ssl,host=origin.test\n\
         wrong.test 127.0.0.1:{port},ssl\n\
         insecure.test 127.0.0.1:{port},ssl,insecure\n\
         connect.test localhost:{port},ssl,trust_connect_host\n"
    );
    let mut c = config(&routes);
    c.origin.tls_ca_file = Some(origin_cert.cert.clone());
    let p = Proxy::start(c);
    let get = |host: &str| {
        let mut client = p.client();
        client.send(&request("GET", "/", &[("Host", host)], b""));
        client.read_response()
    };
    // Verified against the Host header sent to the origin (host=origin.test).
    let r = get("api.test");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "tls origin saw origin.test")
    );
    // The client's Host (wrong.test) is not a name the origin's certificate covers.
    assert_eq!(get("wrong.test").status, 502);
    // insecure: not verified.
    let r = get("insecure.test");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "tls origin saw insecure.test")
    );
    // trust_connect_host: verified against the target's host (localhost), which the origin's
    // certificate does not cover either.
    assert_eq!(get("connect.test").status, 502);
    // Keep-alive: the pooled TLS connection serves the next request too.
    let r = get("api.test");
    assert_eq!(r.status, 200);

    // Without the CA file, the system roots do not know the test CA: 502.
    let mut c = config(&format!("* 127.0.0.1:{port},ssl,host=origin.test\n"));
    c.origin.tls_ca_file = None;
    let p = Proxy::start(c);
    let mut client = p.client();
    client.send(&request("GET", "/", &[], b""));
    assert_eq!(client.read_response().status, 502);
}
