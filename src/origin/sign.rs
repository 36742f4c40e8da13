//! Grip-Sig: the JWT that tells the origin a request came through a trusted GRIP proxy.
//!
//! HS256 over the configured key with claims exactly `{"iss": .., "exp": now + 3600}` (as
//! Pushpin). A token is reused for up to a minute so signing does not cost a MAC per request.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::targets::RoutePlan;
use crate::config::{ConfigError, GripConfig, decode_key};

/// Token lifetime, as Pushpin.
const TOKEN_TTL_SECS: u64 = 3600;
/// How long one token is reused before a fresh one is signed.
const TOKEN_REUSE_SECS: u64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    exp: u64,
}

/// A Grip-Sig key: a shared secret (HS256), or a PEM private key (ES256 for EC keys, RS256 for
/// RSA keys, as Pushpin 1.36 can sign).
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
}

impl SigningKey {
    pub fn secret(bytes: &[u8]) -> SigningKey {
        SigningKey {
            key: EncodingKey::from_secret(bytes),
            alg: Algorithm::HS256,
        }
    }

    /// A key as configured: `file:PATH` (a PEM file or a raw secret), an inline PEM, a
    /// `base64:` secret, or the secret's text.
    pub fn parse(text: &str) -> Result<SigningKey, ConfigError> {
        let owned;
        let text = match text.strip_prefix("file:") {
            Some(path) => {
                owned = std::fs::read_to_string(path).map_err(|e| ConfigError::SecretFile {
                    key: "sig_key file:",
                    path: path.into(),
                    reason: e.to_string(),
                })?;
                owned.trim_end_matches(['\r', '\n'])
            }
            None => text,
        };
        if text.contains("-----BEGIN") {
            return SigningKey::from_pem(text.as_bytes());
        }
        Ok(SigningKey::secret(&decode_key(text)?))
    }

    fn from_pem(pem: &[u8]) -> Result<SigningKey, ConfigError> {
        let text = String::from_utf8_lossy(pem);
        let ec = EncodingKey::from_ec_pem(pem).map(|key| SigningKey {
            key,
            alg: Algorithm::ES256,
        });
        let rsa = || {
            EncodingKey::from_rsa_pem(pem).map(|key| SigningKey {
                key,
                alg: Algorithm::RS256,
            })
        };
        let parsed = if text.contains("RSA PRIVATE KEY") {
            rsa()
        } else {
            ec.or_else(|_| rsa())
        };
        parsed.map_err(|e| {
            ConfigError::Invalid(format!(
                "sig_key is not a usable private key ({e}): EC keys must be PKCS#8 PEM \
                 (BEGIN PRIVATE KEY; convert with `openssl pkcs8 -topk8 -nocrypt`), RSA keys \
                 PKCS#1 or PKCS#8 PEM"
            ))
        })
    }
}

pub struct Signer {
    iss: String,
    key: SigningKey,
    cached: RefCell<Option<(u64, String)>>,
}

impl Signer {
    pub fn new(iss: &str, key: SigningKey) -> Signer {
        Signer {
            iss: iss.to_string(),
            key,
            cached: RefCell::new(None),
        }
    }

    /// A valid token, fresh enough; None only if signing itself fails.
    pub fn token(&self) -> Option<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some((issued, token)) = &*self.cached.borrow()
            && now.saturating_sub(*issued) < TOKEN_REUSE_SECS
        {
            return Some(token.clone());
        }
        let claims = Claims {
            iss: &self.iss,
            exp: now + TOKEN_TTL_SECS,
        };
        match jsonwebtoken::encode(&Header::new(self.key.alg), &claims, &self.key.key) {
            Ok(token) => {
                *self.cached.borrow_mut() = Some((now, token.clone()));
                Some(token)
            }
            Err(e) => {
                tracing::error!("cannot sign Grip-Sig: {e}");
                None
            }
        }
    }
}

/// The signer for each route: its own `sig_iss`/`sig_key` if it has them, else the global one.
pub struct Signers {
    global: Option<Signer>,
    per_route: Vec<Option<Signer>>,
}

impl Signers {
    pub fn new(plan: &RoutePlan, grip: &GripConfig) -> Signers {
        // The key was validated at start-up (`server::check`).
        let global_key = grip
            .sig_key
            .as_deref()
            .and_then(|k| SigningKey::parse(k).ok());
        let global = global_key.clone().map(|k| Signer::new(&grip.sig_iss, k));
        let per_route = plan
            .table
            .routes
            .iter()
            .map(|r| {
                if r.sig_key.is_none() && r.sig_iss.is_none() {
                    return None;
                }
                let key = match r.sig_key.as_deref() {
                    Some(secret) => SigningKey::secret(secret),
                    None => global_key.clone()?,
                };
                let iss = r.sig_iss.as_deref().unwrap_or(&grip.sig_iss);
                Some(Signer::new(iss, key))
            })
            .collect();
        Signers { global, per_route }
    }

    pub fn for_route(&self, route: usize) -> Option<&Signer> {
        self.per_route
            .get(route)
            .and_then(Option::as_ref)
            .or(self.global.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[derive(serde::Deserialize)]
    struct Seen {
        iss: String,
        exp: u64,
    }

    #[test]
    fn token_verifies_with_the_key_and_has_exactly_iss_and_exp() {
        let s = Signer::new("pushpin", SigningKey::secret(b"changeme"));
        let token = s.token().unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&["pushpin"]);
        let data = decode::<serde_json::Value>(&token, &DecodingKey::from_secret(b"changeme"), &v)
            .unwrap();
        let obj = data.claims.as_object().unwrap();
        assert_eq!(obj.len(), 2, "claims: {obj:?}");
        let seen: Seen = serde_json::from_value(data.claims.clone()).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(seen.iss, "pushpin");
        assert!(seen.exp >= now + 3590 && seen.exp <= now + 3601);
        assert_eq!(s.token().unwrap(), token, "reused within a minute");
        assert!(decode::<Seen>(&token, &DecodingKey::from_secret(b"wrong"), &v).is_err());
    }

    /// An EC (P-256) key signs ES256 and an RSA key RS256; both verify with the public key.
    #[test]
    fn pem_keys_sign_es256_and_rs256() {
        let dir = std::env::temp_dir().join(format!("holdfast-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let ok = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "openssl {args:?}");
        };
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.pem",
        ]);
        openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "sec1.pem", "-out", "ec.pem",
        ]);
        openssl(&["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
        openssl(&["genrsa", "-out", "rsa.pem", "2048"]);
        openssl(&["rsa", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"]);
        for (key, public, alg) in [
            ("ec.pem", "ec.pub", Algorithm::ES256),
            ("rsa.pem", "rsa.pub", Algorithm::RS256),
        ] {
            let path = dir.join(key);
            let signing = SigningKey::parse(&format!("file:{}", path.display())).unwrap();
            assert_eq!(signing.alg, alg);
            let token = Signer::new("pushpin", signing).token().unwrap();
            let public = std::fs::read(dir.join(public)).unwrap();
            let decoding = match alg {
                Algorithm::ES256 => DecodingKey::from_ec_pem(&public).unwrap(),
                _ => DecodingKey::from_rsa_pem(&public).unwrap(),
            };
            let mut v = Validation::new(alg);
            v.set_issuer(&["pushpin"]);
            assert!(decode::<Seen>(&token, &decoding, &v).is_ok(), "{alg:?}");
        }
        assert!(
            SigningKey::parse("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----")
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn route_overrides_and_global_fallback() {
        let table = crate::routes::RouteTable::parse(
            "*,path_beg=/a,sig_iss=other 127.0.0.1:1\n* 127.0.0.1:2\n",
        )
        .unwrap();
        let plan = RoutePlan::resolve(table).unwrap();
        let grip = GripConfig {
            sig_key: Some("k".into()),
            ..GripConfig::default()
        };
        let signers = Signers::new(&plan, &grip);
        assert_eq!(signers.for_route(0).map(|s| s.iss.as_str()), Some("other"));
        assert_eq!(
            signers.for_route(1).map(|s| s.iss.as_str()),
            Some("pushpin")
        );
        let none = Signers::new(&plan, &GripConfig::default());
        assert!(none.for_route(1).is_none());
    }
}
