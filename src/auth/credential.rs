//! Credential extraction from request headers.
//!
//! A credential that is present but malformed, duplicated, conflicting or
//! oversized is an error (401), never "no credential": a caller who sent
//! something must not silently fall back to the anonymous tier.

use http::header::AUTHORIZATION;
use http::HeaderMap;
use thiserror::Error;

/// The `x-api-key` header name.
pub const X_API_KEY: &str = "x-api-key";

/// Which header forms the profile accepts.
#[derive(Debug, Clone)]
pub struct CredentialPolicy {
    /// `Authorization: Bearer <token>` (scheme is case-insensitive).
    pub bearer: bool,
    /// `Authorization: <token>`.
    pub raw_authorization: bool,
    /// `x-api-key: <token>`.
    pub x_api_key: bool,
    /// Longest accepted credential.
    pub max_length: usize,
    /// Invalid credentials per client per minute before 429; 0: off.
    pub failure_limit: u32,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self {
            bearer: true,
            raw_authorization: false,
            x_api_key: false,
            max_length: 512,
            failure_limit: 0,
        }
    }
}

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Bearer,
    RawAuthorization,
    ApiKeyHeader,
}

/// A credential as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub source: CredentialSource,
    pub token: String,
}

/// Why a credential header was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("the credential header is sent more than once")]
    Duplicate,
    #[error("credentials are sent in more than one header")]
    Conflicting,
    #[error("the credential header is malformed")]
    Malformed,
    #[error("the credential is too long")]
    TooLong,
    #[error("this form of credential is not accepted")]
    FormNotAccepted,
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, CredentialError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(CredentialError::Duplicate);
    }
    Ok(first.map(|v| v.as_bytes()))
}

fn token_text(raw: &[u8], policy: &CredentialPolicy) -> Result<String, CredentialError> {
    if raw.len() > policy.max_length {
        return Err(CredentialError::TooLong);
    }
    if raw.is_empty() || !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(CredentialError::Malformed);
    }
    String::from_utf8(raw.to_vec()).map_err(|_| CredentialError::Malformed)
}

/// Reads the credential, if any, from `headers`.
pub fn extract(
    headers: &HeaderMap,
    policy: &CredentialPolicy,
) -> Result<Option<Credential>, CredentialError> {
    let auth = single(headers, AUTHORIZATION.as_str())?;
    let api_key = if policy.x_api_key {
        single(headers, X_API_KEY)?
    } else {
        None
    };
    match (auth, api_key) {
        (Some(_), Some(_)) => Err(CredentialError::Conflicting),
        (None, None) => Ok(None),
        (None, Some(raw)) => Ok(Some(Credential {
            source: CredentialSource::ApiKeyHeader,
            token: token_text(raw, policy)?,
        })),
        (Some(raw), None) => {
            if raw.len() > policy.max_length + 16 {
                return Err(CredentialError::TooLong);
            }
            let trimmed = raw.trim_ascii();
            match trimmed.iter().position(|&b| b == b' ') {
                Some(space) => {
                    let (scheme, rest) = trimmed.split_at(space);
                    if !scheme.eq_ignore_ascii_case(b"bearer") {
                        return Err(CredentialError::Malformed);
                    }
                    if !policy.bearer {
                        return Err(CredentialError::FormNotAccepted);
                    }
                    Ok(Some(Credential {
                        source: CredentialSource::Bearer,
                        token: token_text(rest.trim_ascii_start(), policy)?,
                    }))
                }
                None if trimmed.eq_ignore_ascii_case(b"bearer") => Err(CredentialError::Malformed),
                None if policy.raw_authorization => Ok(Some(Credential {
                    source: CredentialSource::RawAuthorization,
                    token: token_text(trimmed, policy)?,
                })),
                None => Err(CredentialError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn bearer_any_case() {
        let p = CredentialPolicy::default();
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let h = headers(&[("authorization", format!("{scheme} mq_abc").as_bytes())]);
            assert_eq!(
                extract(&h, &p),
                Ok(Some(Credential {
                    source: CredentialSource::Bearer,
                    token: "mq_abc".into()
                }))
            );
        }
        assert_eq!(extract(&HeaderMap::new(), &p), Ok(None));
    }

    #[test]
    fn refuses_bad_forms() {
        let p = CredentialPolicy::default();
        let cases: Vec<(HeaderMap, CredentialError)> = vec![
            (
                headers(&[("authorization", b"Basic abc")]),
                CredentialError::Malformed,
            ),
            (
                headers(&[("authorization", b"Bearer")]),
                CredentialError::Malformed,
            ),
            (
                headers(&[("authorization", b"Bearer a b")]),
                CredentialError::Malformed,
            ),
            (
                headers(&[("authorization", b"mq_abc")]),
                CredentialError::Malformed,
            ),
            (
                headers(&[("authorization", b"Bearer \xff\xfe")]),
                CredentialError::Malformed,
            ),
            (
                headers(&[
                    ("authorization", b"Bearer a"),
                    ("authorization", b"Bearer b"),
                ]),
                CredentialError::Duplicate,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(extract(&h, &p), Err(want));
        }
        let long = format!("Bearer {}", "a".repeat(600));
        assert_eq!(
            extract(&headers(&[("authorization", long.as_bytes())]), &p),
            Err(CredentialError::TooLong)
        );
    }

    #[test]
    fn raw_and_api_key_when_allowed() {
        let p = CredentialPolicy {
            raw_authorization: true,
            x_api_key: true,
            ..CredentialPolicy::default()
        };
        assert_eq!(
            extract(&headers(&[("authorization", b"key123")]), &p).map(|c| c.map(|c| c.source)),
            Ok(Some(CredentialSource::RawAuthorization))
        );
        assert_eq!(
            extract(&headers(&[("x-api-key", b"key123")]), &p).map(|c| c.map(|c| c.source)),
            Ok(Some(CredentialSource::ApiKeyHeader))
        );
        assert_eq!(
            extract(
                &headers(&[("x-api-key", b"a"), ("authorization", b"b")]),
                &p
            ),
            Err(CredentialError::Conflicting)
        );
        // Not allowed: x-api-key is ignored, not trusted.
        assert_eq!(
            extract(
                &headers(&[("x-api-key", b"a")]),
                &CredentialPolicy::default()
            ),
            Ok(None)
        );
    }
}
