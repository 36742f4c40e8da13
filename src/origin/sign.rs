//! Grip-Sig: the JWT that tells the origin a request came through a trusted GRIP proxy.
//!
//! HS256 over the configured key with claims exactly `{"iss": .., "exp": now + 3600}` (as
//! Pushpin). A token is reused for up to a minute so signing does not cost a MAC per request.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::targets::RoutePlan;
use crate::config::{GripConfig, decode_key};

/// Token lifetime, as Pushpin.
const TOKEN_TTL_SECS: u64 = 3600;
/// How long one token is reused before a fresh one is signed.
const TOKEN_REUSE_SECS: u64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    exp: u64,
}

pub struct Signer {
    iss: String,
    key: EncodingKey,
    cached: RefCell<Option<(u64, String)>>,
}

impl Signer {
    pub fn new(iss: &str, key: &[u8]) -> Signer {
        Signer {
            iss: iss.to_string(),
            key: EncodingKey::from_secret(key),
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
        match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key) {
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
        let global_key = grip.sig_key.as_deref().and_then(|k| decode_key(k).ok());
        let global = global_key.as_deref().map(|k| Signer::new(&grip.sig_iss, k));
        let per_route = plan
            .table
            .routes
            .iter()
            .map(|r| {
                if r.sig_key.is_none() && r.sig_iss.is_none() {
                    return None;
                }
                let key = r.sig_key.as_deref().or(global_key.as_deref())?;
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
        let s = Signer::new("pushpin", b"changeme");
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
