//! TLS configuration: the server side for the HTTPS/WSS listeners (certificates chosen by SNI)
//! and the client side for origins reached over TLS.
//!
//! Only building and loading lives here; the per-connection record layer is
//! [`crate::io::tls_io`]. Everything is built on the main thread (start-up, SIGHUP), so a
//! worker never reads a file: it gets an `Arc` of the finished configs with its settings.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::{CertificateConfig, Config};

/// The ALPN protocol holdfast speaks to clients and origins.
const ALPN_HTTP1: &[u8] = b"http/1.1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("tls key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("origin.tls_ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("tls: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server config for the TLS listeners, or None when the config has no certificates.
pub fn server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    if config.tls.certificates.is_empty() {
        return Ok(None);
    }
    let provider = provider();
    let mut certs = Vec::with_capacity(config.tls.certificates.len());
    for c in &config.tls.certificates {
        certs.push(load_certificate(c, &provider)?);
    }
    let resolver = SniResolver { certs };
    for c in &resolver.certs {
        tracing::info!(
            "tls certificate {}: names {}",
            c.path.display(),
            if c.names.is_empty() {
                "(none: used only as the default)".to_string()
            } else {
                c.names.join(", ")
            }
        );
    }
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    server.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(Some(Arc::new(server)))
}

/// A loaded certificate and the DNS names it is valid for (lower case; `*.` wildcards kept).
struct NamedCert {
    path: PathBuf,
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

fn load_certificate(
    c: &CertificateConfig,
    provider: &CryptoProvider,
) -> Result<NamedCert, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: c.cert.clone(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| cert_err(pem_reason(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(pem_reason(e)))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    };
    let names = dns_names(leaf).map_err(cert_err)?;
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| TlsError::Key {
        path: c.key.clone(),
        reason: pem_reason(e),
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
        path: c.key.clone(),
        reason: match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("does not match the certificate {}", c.cert.display())
            }
            other => other.to_string(),
        },
    })?;
    Ok(NamedCert {
        path: c.cert.clone(),
        names,
        key: Arc::new(key),
    })
}

fn pem_reason(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind".into(),
        other => format!("invalid PEM: {other:?}"),
    }
}

fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    Ok(cert
        .valid_dns_names()
        .map(|n| n.to_ascii_lowercase())
        .collect())
}

/// Picks the certificate for a connection by its SNI name: the first one whose names cover it,
/// else the first one.
struct SniResolver {
    certs: Vec<NamedCert>,
}

impl SniResolver {
    fn pick(&self, sni: Option<&str>) -> Option<&NamedCert> {
        let chosen = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.certs
                .iter()
                .find(|c| c.names.iter().any(|n| name_matches(n, &name)))
        });
        chosen.or_else(|| self.certs.first())
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.certs.iter().map(|c| &c.names))
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name()).map(|c| c.key.clone())
    }
}

/// Whether a certificate name (`example.com`, `*.example.com`) covers a host name; a wildcard
/// covers exactly one leftmost label, as browsers apply it.
fn name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == host,
    }
}

/// Client configs for origins over TLS: one that verifies (configured CA file or system roots)
/// and one for `insecure` targets.
#[derive(Clone)]
pub struct OriginTls {
    pub verified: Arc<ClientConfig>,
    pub insecure: Arc<ClientConfig>,
}

impl fmt::Debug for OriginTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginTls")
    }
}

impl OriginTls {
    /// Built only when some route has a TLS target (loading the system roots takes time).
    pub fn build(ca_file: Option<&Path>) -> Result<OriginTls, TlsError> {
        let provider = provider();
        let roots = match ca_file {
            Some(path) => ca_roots(path)?,
            None => system_roots(),
        };
        let mut verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        verified.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        let mut insecure = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth();
        insecure.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(OriginTls {
            verified: Arc::new(verified),
            insecure: Arc::new(insecure),
        })
    }
}

fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let err = |reason: String| TlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(pem_reason(e)))? {
        let cert = cert.map_err(|e| err(pem_reason(e)))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(err("no CERTIFICATE block in the file".into()));
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("system CA certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "no system CA certificates found ({ignored} unusable): origins over TLS will fail \
             verification unless origin.tls_ca_file is set"
        );
    }
    roots
}

/// Accepts any origin certificate (the routes' `insecure` option), still checking that the
/// handshake itself is signed correctly.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name an origin certificate is checked against: an IP literal or a DNS name.
pub fn origin_server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|_| format!("`{host}` is not a valid TLS server name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsConfig;

    fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> CertificateConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let c = CertificateConfig {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        c
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("holdfast-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config_with(certificates: Vec<CertificateConfig>) -> Config {
        Config {
            tls: TlsConfig {
                listen: vec![],
                certificates,
            },
            ..Config::default()
        }
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("example.com", "example.com"));
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(!name_matches("example.com", "other.com"));
    }

    #[test]
    fn sni_picks_the_covering_certificate_else_the_first() {
        let dir = temp_dir("sni");
        let a = write_cert(&dir, "a", &["a.test", "www.a.test"]);
        let b = write_cert(&dir, "b", &["*.b.test"]);
        let provider = provider();
        let resolver = SniResolver {
            certs: vec![
                load_certificate(&a, &provider).unwrap(),
                load_certificate(&b, &provider).unwrap(),
            ],
        };
        assert_eq!(resolver.certs[0].names, vec!["a.test", "www.a.test"]);
        let pick = |sni| resolver.pick(sni).map(|c| c.path.clone());
        assert_eq!(pick(Some("x.B.test")), Some(b.cert.clone()));
        assert_eq!(pick(Some("www.a.test")), Some(a.cert.clone()));
        assert_eq!(pick(Some("unknown.test")), Some(a.cert.clone()));
        assert_eq!(pick(None), Some(a.cert.clone()));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = temp_dir("bad");
        let good = write_cert(&dir, "good", &["good.test"]);
        let other = write_cert(&dir, "other", &["other.test"]);
        let missing = CertificateConfig {
            cert: dir.join("missing.pem"),
            key: good.key.clone(),
        };
        let err = server_config(&config_with(vec![missing])).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let swapped = CertificateConfig {
            cert: good.cert.clone(),
            key: other.key.clone(),
        };
        let err = server_config(&config_with(vec![swapped])).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let key_as_cert = CertificateConfig {
            cert: good.key.clone(),
            key: good.key.clone(),
        };
        let err = server_config(&config_with(vec![key_as_cert])).unwrap_err();
        assert!(err.to_string().contains("good.key"), "{err}");
        let cert_as_key = CertificateConfig {
            cert: good.cert.clone(),
            key: good.cert.clone(),
        };
        let err = server_config(&config_with(vec![cert_as_key])).unwrap_err();
        assert!(err.to_string().starts_with("tls key"), "{err}");
        assert!(server_config(&config_with(vec![good])).unwrap().is_some());
        assert!(server_config(&config_with(vec![])).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn origin_names_accept_hosts_and_ips() {
        assert!(matches!(
            origin_server_name("api.example.com"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            origin_server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            origin_server_name("::1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(origin_server_name("bad name!").is_err());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = temp_dir("ca");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = OriginTls::build(Some(&empty)).err().unwrap().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let ca = write_cert(&dir, "ca", &["ca.test"]);
        assert!(OriginTls::build(Some(&ca.cert)).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
