//! Short-lived tokens: HS256 JWTs signed with a server secret chosen by `kid`,
//! verified in process (signature, `exp`, `nbf`, `iss`) with no store lookup.
//! `alg: none`, other algorithms, unknown `kid`s, a missing or non-numeric
//! `exp`, a future `nbf`, and a token used at or after its `exp` are refused.

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thiserror::Error;
use uuid::Uuid;

/// The claims of a short-lived token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    /// The account.
    pub sub: String,
    /// The token's id.
    pub jti: Uuid,
    /// The static key it was minted from (the `key` claim).
    #[serde(rename = "key")]
    pub parent: Uuid,
    pub plan: String,
    /// Its request limit.
    pub lim: u64,
    pub iat: u64,
    pub nbf: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT")]
    Malformed,
    #[error("unknown key id")]
    UnknownKid,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
}

/// Signs and verifies short-lived tokens.
pub struct TokenSigner {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `text` has the shape of a JWS compact token (three base64url parts).
pub fn looks_like_jwt(text: &str) -> bool {
    let mut parts = text.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    text.starts_with("eyJ")
        && ok(parts.next())
        && ok(parts.next())
        && ok(parts.next())
        && parts.next().is_none()
}

impl TokenSigner {
    /// A signer from `(kid, secret)` pairs. An empty signing secret gets a
    /// random one (tokens then verify only in this process); other empty
    /// secrets are left out.
    pub fn new(issuer: &str, signing_kid: &str, secrets: &[(String, String)]) -> Self {
        let mut verifying = HashMap::new();
        let mut signing = None;
        for (kid, secret) in secrets {
            if secret.is_empty() && kid != signing_kid {
                continue;
            }
            let bytes = if secret.is_empty() {
                let mut random = [0u8; 32];
                // The thread RNG is a CSPRNG seeded from the OS; it never yields
                // a predictable all-zero key.
                rand::Rng::fill(&mut rand::rng(), &mut random[..]);
                random.to_vec()
            } else {
                secret.as_bytes().to_vec()
            };
            if kid == signing_kid {
                signing = Some(EncodingKey::from_secret(&bytes));
            }
            verifying.insert(kid.clone(), DecodingKey::from_secret(&bytes));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.set_issuer(&[issuer]);
        Self {
            signing_kid: signing_kid.to_string(),
            signing: signing.unwrap_or_else(|| EncodingKey::from_secret(&[0u8; 32])),
            verifying,
            validation,
        }
    }

    /// Signs claims with the signing secret.
    pub fn mint(&self, claims: &TokenClaims) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        encode(&header, claims, &self.signing).map_err(|e| JwtError::Invalid(e.to_string()))
    }

    /// Verifies a token at `now` (seconds): signature, algorithm, `kid`, `iss`,
    /// `nbf`, and `exp` (a token is dead from its `exp` second on).
    pub fn verify(&self, token: &str, now: u64) -> Result<TokenClaims, JwtError> {
        if !looks_like_jwt(token) {
            return Err(JwtError::Malformed);
        }
        let header = decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtError::Invalid("algorithm not allowed".into()));
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(JwtError::UnknownKid)?;
        let data =
            decode::<TokenClaims>(token, key, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(e.to_string()),
            })?;
        if now >= data.claims.exp {
            return Err(JwtError::Expired);
        }
        if data.claims.nbf > now {
            return Err(JwtError::Invalid("not yet valid".into()));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn signer() -> TokenSigner {
        TokenSigner::new(
            "tollgate",
            "k1",
            &[
                ("k1".into(), SECRET.into()),
                ("k0".into(), "fedcba9876543210fedcba9876543210".into()),
            ],
        )
    }

    fn claims(now: u64) -> TokenClaims {
        TokenClaims {
            iss: "tollgate".into(),
            sub: "acme".into(),
            jti: Uuid::new_v4(),
            parent: Uuid::new_v4(),
            plan: "startup".into(),
            lim: 10,
            iat: now,
            nbf: now,
            exp: now + 60,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn hs256(secret: &[u8], input: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
        mac.update(input.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn forge(header: serde_json::Value, payload: serde_json::Value, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(&header), b64(&payload));
        format!("{input}.{}", hs256(secret, &input))
    }

    #[test]
    fn round_trip_and_rotation() {
        let s = signer();
        let now = jsonwebtoken::get_current_timestamp();
        let c = claims(now);
        let t = s.mint(&c).expect("mint");
        assert_eq!(s.verify(&t, now), Ok(c.clone()));
        // A token signed with the previous secret still verifies.
        let old = TokenSigner::new(
            "tollgate",
            "k0",
            &[("k0".into(), "fedcba9876543210fedcba9876543210".into())],
        );
        let t0 = old.mint(&c).expect("mint");
        assert_eq!(s.verify(&t0, now), Ok(c));
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn payload() -> serde_json::Value {
        serde_json::to_value(claims(now())).expect("json")
    }

    fn header() -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    }

    fn refused(token: &str) -> bool {
        signer().verify(token, now()).is_err()
    }

    #[test]
    fn a_hand_made_token_verifies() {
        assert!(!refused(&forge(header(), payload(), SECRET.as_bytes())));
    }

    #[test]
    fn alg_none_is_refused() {
        let unsigned = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "kid": "k1"})),
            b64(&payload())
        );
        assert!(refused(&unsigned));
        let signed = forge(
            serde_json::json!({"alg": "none", "kid": "k1"}),
            payload(),
            SECRET.as_bytes(),
        );
        assert!(refused(&signed));
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        for alg in ["HS384", "HS512", "RS256", "ES256", "EdDSA"] {
            let t = forge(
                serde_json::json!({"alg": alg, "kid": "k1"}),
                payload(),
                SECRET.as_bytes(),
            );
            assert!(refused(&t), "{alg}");
        }
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let good = forge(header(), payload(), SECRET.as_bytes());
        let mut parts: Vec<&str> = good.split('.').collect();
        let bad = hs256(b"another-secret-another-secret-xx", "x");
        parts[2] = &bad;
        assert!(refused(&parts.join(".")));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let good = forge(header(), payload(), SECRET.as_bytes());
        let mut tampered = payload();
        tampered["lim"] = serde_json::json!(1_000_000);
        let sig = good.split('.').nth(2).unwrap_or("");
        assert!(refused(&format!(
            "{}.{}.{sig}",
            b64(&header()),
            b64(&tampered)
        )));
    }

    #[test]
    fn a_missing_exp_is_refused() {
        let mut p = payload();
        p.as_object_mut().map(|o| o.remove("exp"));
        assert!(refused(&forge(header(), p, SECRET.as_bytes())));
    }

    #[test]
    fn a_non_numeric_exp_is_refused() {
        let mut p = payload();
        p["exp"] = serde_json::json!("tomorrow");
        assert!(refused(&forge(header(), p, SECRET.as_bytes())));
    }

    #[test]
    fn a_token_used_exactly_at_exp_is_refused() {
        let p = payload();
        let exp = p["exp"].as_u64().unwrap_or(0);
        let t = forge(header(), p, SECRET.as_bytes());
        assert_eq!(signer().verify(&t, exp), Err(JwtError::Expired));
        assert!(signer().verify(&t, exp - 1).is_ok());
    }

    #[test]
    fn a_past_exp_is_refused() {
        let mut p = payload();
        p["exp"] = serde_json::json!(now() - 1);
        assert!(refused(&forge(header(), p, SECRET.as_bytes())));
    }

    #[test]
    fn a_future_nbf_is_refused() {
        let mut p = payload();
        p["nbf"] = serde_json::json!(now() + 30);
        assert!(refused(&forge(header(), p, SECRET.as_bytes())));
    }

    #[test]
    fn an_unknown_or_missing_kid_is_refused() {
        let t = forge(
            serde_json::json!({"alg": "HS256", "kid": "k9"}),
            payload(),
            SECRET.as_bytes(),
        );
        assert_eq!(signer().verify(&t, now()), Err(JwtError::UnknownKid));
        let t = forge(
            serde_json::json!({"alg": "HS256"}),
            payload(),
            SECRET.as_bytes(),
        );
        assert_eq!(signer().verify(&t, now()), Err(JwtError::UnknownKid));
    }

    #[test]
    fn another_deployments_secret_is_refused() {
        assert!(refused(&forge(
            header(),
            payload(),
            b"someone-elses-secret-0123456789ab"
        )));
        let theirs = TokenSigner::new(
            "tollgate",
            "k1",
            &[("k1".into(), "someone-elses-secret-0123456789ab".into())],
        );
        let t = theirs.mint(&claims(now())).expect("mint");
        assert!(refused(&t));
    }

    #[test]
    fn another_issuer_is_refused() {
        let mut p = payload();
        p["iss"] = serde_json::json!("elsewhere");
        assert!(refused(&forge(header(), p, SECRET.as_bytes())));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(signer().verify("mtk_demo", now()), Err(JwtError::Malformed));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("eyJ.a.b.c"));
        assert!(refused("eyJhbGciOiJIUzI1NiJ9.eyJ9.e30"));
    }
}
