//! Publish API authentication: HTTP Basic and Bearer JWT (HS256), both off by default.
//!
//! Pushpin has none (it binds the publish port to localhost); Fastly Fanout and the GRIP client
//! libraries send `Authorization: Basic ...` or `Authorization: Bearer <JWT signed with the key,
//! claims iss and exp>`. Sans-IO: [`PublishAuth`] takes the header value and answers yes or why
//! not; [`Credentials`] is the publisher's side (the demo apps, `holdfast publish`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{ConfigError, PublishConfig, decode_key};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authorization required")]
    Missing,
    #[error("unsupported authorization scheme")]
    Scheme,
    #[error("invalid credentials")]
    BadCredentials,
    #[error("invalid token: {0}")]
    BadToken(String),
}

pub struct PublishAuth {
    basic: Option<Vec<u8>>,
    jwt: Option<(DecodingKey, Validation)>,
}

impl PublishAuth {
    pub fn from_config(c: &PublishConfig) -> Result<PublishAuth, ConfigError> {
        let jwt = match &c.jwt_key {
            Some(key) => {
                let key = decode_key(key)?;
                let mut v = Validation::new(Algorithm::HS256);
                v.set_required_spec_claims(&["exp"]);
                // A token whose `nbf` is still ahead is not valid yet (jsonwebtoken ignores
                // `nbf` unless asked); the leeway covers clock skew both ways.
                v.validate_nbf = true;
                v.leeway = 5;
                v.validate_aud = false;
                if let Some(iss) = &c.jwt_iss {
                    v.set_issuer(&[iss]);
                }
                Some((DecodingKey::from_secret(&key), v))
            }
            None => None,
        };
        Ok(PublishAuth {
            basic: c.basic_auth.as_ref().map(|s| s.as_bytes().to_vec()),
            jwt,
        })
    }

    pub fn required(&self) -> bool {
        self.basic.is_some() || self.jwt.is_some()
    }

    /// Checks an `Authorization` header value (None: header absent).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), AuthError> {
        if !self.required() {
            return Ok(());
        }
        let value = authorization.ok_or(AuthError::Missing)?;
        let value = std::str::from_utf8(value)
            .map_err(|_| AuthError::Scheme)?
            .trim();
        let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Scheme)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let expected = self.basic.as_deref().ok_or(AuthError::Scheme)?;
            let given = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::BadCredentials)?;
            return if constant_time_eq(&given, expected) {
                Ok(())
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let (key, validation) = self.jwt.as_ref().ok_or(AuthError::Scheme)?;
            return jsonwebtoken::decode::<serde_json::Value>(rest, key, validation)
                .map(|_| ())
                .map_err(|e| AuthError::BadToken(e.to_string()));
        }
        Err(AuthError::Scheme)
    }
}

/// Lifetime of the Bearer tokens [`Credentials`] signs: one publish needs seconds; a token
/// that leaks from a log is stale soon.
const TOKEN_TTL_SECS: u64 = 600;

/// How a publisher authenticates to the publish API: the client side of [`PublishAuth`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    None,
    /// `user:password`, sent as `Authorization: Basic ...`.
    Basic(String),
    /// An HS256 key (`base64:` prefix for binary keys) and the `iss` claim to sign a Bearer
    /// token with.
    Bearer { key: String, iss: Option<String> },
}

impl Credentials {
    /// What the config asks of every publisher (secret files already read, see
    /// `Config::with_secret_files`): Basic when set, else Bearer, else none.
    pub fn from_config(c: &PublishConfig) -> Credentials {
        match (&c.basic_auth, &c.jwt_key) {
            (Some(userpass), _) => Credentials::Basic(userpass.clone()),
            (None, Some(key)) => Credentials::Bearer {
                key: key.clone(),
                iss: c.jwt_iss.clone(),
            },
            (None, None) => Credentials::None,
        }
    }

    /// The `Authorization` header value (a freshly signed token for Bearer), None for none.
    pub fn authorization(&self) -> Result<Option<String>, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Credentials::None => Ok(None),
            Credentials::Basic(userpass) => Ok(Some(format!("Basic {}", b64.encode(userpass)))),
            Credentials::Bearer { key, iss } => {
                let secret = decode_key(key).map_err(|e| e.to_string())?;
                let exp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + TOKEN_TTL_SECS;
                let mut claims = serde_json::json!({ "exp": exp });
                if let Some(iss) = iss {
                    claims["iss"] = serde_json::Value::from(iss.as_str());
                }
                let token = jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(Algorithm::HS256),
                    &claims,
                    &jsonwebtoken::EncodingKey::from_secret(&secret),
                )
                .map_err(|e| format!("cannot sign a token: {e}"))?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// How these credentials are described in messages (never the secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "no credentials",
            Credentials::Basic(_) => "Basic credentials",
            Credentials::Bearer { .. } => "a Bearer token",
        }
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn auth(basic: Option<&str>, key: Option<&str>, iss: Option<&str>) -> PublishAuth {
        let c = PublishConfig {
            basic_auth: basic.map(String::from),
            jwt_key: key.map(String::from),
            jwt_iss: iss.map(String::from),
            ..PublishConfig::default()
        };
        PublishAuth::from_config(&c).unwrap()
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn token(key: &[u8], iss: &str, exp_offset: i64) -> String {
        let claims = serde_json::json!({"iss": iss, "exp": now() + exp_offset});
        encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn bearer_is_refused_before_its_nbf() {
        let a = auth(None, Some("k3y"), None);
        let with_nbf = |nbf: i64| {
            let claims = serde_json::json!({"exp": now() + 600, "nbf": now() + nbf});
            let t = encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(b"k3y"),
            );
            format!("Bearer {}", t.unwrap())
        };
        let early = a.check(Some(with_nbf(600).as_bytes()));
        assert!(
            matches!(&early, Err(AuthError::BadToken(m)) if m.contains("Immature")),
            "{early:?}"
        );
        assert!(a.check(Some(with_nbf(-10).as_bytes())).is_ok());
        // Within the leeway (clock skew): accepted.
        assert!(a.check(Some(with_nbf(3).as_bytes())).is_ok());
    }

    #[test]
    fn credentials_from_config_pass_the_check() {
        let basic = auth(Some("user:secret"), None, None);
        let creds = Credentials::Basic("user:secret".into());
        let header = creds.authorization().unwrap().unwrap();
        assert!(basic.check(Some(header.as_bytes())).is_ok());

        let c = PublishConfig {
            jwt_key: Some("base64:azN5".into()),
            jwt_iss: Some("pub".into()),
            ..PublishConfig::default()
        };
        let creds = Credentials::from_config(&c);
        assert_eq!(creds.kind(), "a Bearer token");
        let header = creds.authorization().unwrap().unwrap();
        // "azN5" is base64 for "k3y": the same key the check decodes.
        assert!(
            auth(None, Some("k3y"), Some("pub"))
                .check(Some(header.as_bytes()))
                .is_ok()
        );
        assert_eq!(Credentials::None.authorization(), Ok(None));
    }

    #[test]
    fn off_by_default() {
        assert!(auth(None, None, None).check(None).is_ok());
    }

    #[test]
    fn basic() {
        let a = auth(Some("user:secret"), None, None);
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:secret")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:nope")
        );
        assert!(a.check(Some(good.as_bytes())).is_ok());
        assert_eq!(
            a.check(Some(bad.as_bytes())),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(a.check(None), Err(AuthError::Missing));
        assert_eq!(a.check(Some(b"Bearer x")), Err(AuthError::Scheme));
    }

    #[test]
    fn bearer_checks_signature_expiry_and_issuer() {
        let a = auth(None, Some("k3y"), Some("pub"));
        let ok = format!("Bearer {}", token(b"k3y", "pub", 600));
        assert!(a.check(Some(ok.as_bytes())).is_ok());
        let expired = format!("Bearer {}", token(b"k3y", "pub", -600));
        assert!(matches!(
            a.check(Some(expired.as_bytes())),
            Err(AuthError::BadToken(_))
        ));
        let wrong_key = format!("Bearer {}", token(b"other", "pub", 600));
        assert!(matches!(
            a.check(Some(wrong_key.as_bytes())),
            Err(AuthError::BadToken(_))
        ));
        let wrong_iss = format!("Bearer {}", token(b"k3y", "someone", 600));
        assert!(matches!(
            a.check(Some(wrong_iss.as_bytes())),
            Err(AuthError::BadToken(_))
        ));
        assert!(matches!(
            a.check(Some(b"Bearer garbage")),
            Err(AuthError::BadToken(_))
        ));
    }
}
