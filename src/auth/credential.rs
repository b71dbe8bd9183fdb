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

    /// Property tests: `extract` on arbitrary header names, values and bytes.
    mod properties {
        use super::super::*;
        use http::{HeaderName, HeaderValue};
        use proptest::prelude::*;

        /// Header values as Pingora may hand them over: any byte a
        /// `HeaderValue` admits (visible ASCII, SP, HTAB, obs-text), biased
        /// towards credential-looking text.
        fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
            // Any bytes, with those a HeaderValue refuses (controls other
            // than HTAB, DEL) mapped onto HTAB and SP.
            let any_bytes = || {
                proptest::collection::vec(any::<u8>(), 0..420).prop_map(|v| {
                    v.into_iter()
                        .map(|b| match b {
                            0x00..=0x08 => b'\t',
                            0x0a..=0x1f | 0x7f => b' ',
                            _ => b,
                        })
                        .collect::<Vec<u8>>()
                })
            };
            let scheme = || {
                prop_oneof![
                    Just(""),
                    Just("Bearer "),
                    Just("bearer "),
                    Just("BEARER\t"),
                    Just("Bearer"),
                    Just(" Bearer  "),
                    Just("Basic "),
                    Just("Token "),
                ]
            };
            let join = |(scheme, rest): (&str, Vec<u8>)| {
                let mut v = scheme.as_bytes().to_vec();
                v.extend(rest);
                v
            };
            prop_oneof![
                any_bytes(),
                (scheme(), any_bytes()).prop_map(join),
                // Mostly well-formed credentials, some over any length limit.
                (scheme(), "[!-~]{0,40}|[!-~]{380,420}")
                    .prop_map(move |(s, t)| join((s, t.into_bytes()))),
            ]
        }

        /// A header name, in any letter case: the credential headers and others.
        fn name() -> impl Strategy<Value = String> {
            let known = prop_oneof![
                Just("authorization".to_string()),
                Just("x-api-key".to_string()),
                Just("proxy-authorization".to_string()),
                Just("x-api-key-2".to_string()),
                Just("cookie".to_string()),
                "[a-z][a-z0-9-]{0,20}",
            ];
            (known, any::<u64>()).prop_map(|(n, mask)| {
                n.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if (mask >> (i % 64)) & 1 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            })
        }

        fn header_map() -> impl Strategy<Value = HeaderMap> {
            proptest::collection::vec((name(), value_bytes()), 0..6).prop_map(|pairs| {
                let mut h = HeaderMap::new();
                for (k, v) in pairs {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_bytes(&v),
                    ) {
                        h.append(k, v);
                    }
                }
                h
            })
        }

        fn policy() -> impl Strategy<Value = CredentialPolicy> {
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0usize..400,
                any::<u32>(),
            )
                .prop_map(
                    |(bearer, raw_authorization, x_api_key, max_length, failure_limit)| {
                        CredentialPolicy {
                            bearer,
                            raw_authorization,
                            x_api_key,
                            max_length,
                            failure_limit,
                        }
                    },
                )
        }

        /// Whether a header the policy reads credentials from is present.
        fn credential_header_present(h: &HeaderMap, p: &CredentialPolicy) -> bool {
            h.contains_key(AUTHORIZATION) || (p.x_api_key && h.contains_key(X_API_KEY))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Never panics; a configured credential header with any value
            /// (any count of them) gives a credential or an error, never
            /// "no credential"; without one the answer is always "no credential".
            #[test]
            fn never_anonymous_when_a_credential_header_is_sent(
                h in header_map(),
                p in policy(),
            ) {
                let got = extract(&h, &p);
                if credential_header_present(&h, &p) {
                    prop_assert_ne!(&got, &Ok(None));
                } else {
                    prop_assert_eq!(&got, &Ok(None));
                }
            }

            /// One `authorization` header with any bytes at all, among any
            /// others: a credential or an error, never "no credential".
            #[test]
            fn any_authorization_value_is_a_credential_or_an_error(
                v in value_bytes(),
                rest in header_map(),
                p in policy(),
            ) {
                let mut h = rest;
                h.remove(AUTHORIZATION);
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.insert(AUTHORIZATION, v);
                    prop_assert_ne!(extract(&h, &p), Ok(None));
                }
            }

            /// The same for `x-api-key` when the profile accepts it.
            #[test]
            fn any_x_api_key_value_is_a_credential_or_an_error_when_accepted(
                v in value_bytes(),
                rest in header_map(),
                p in policy(),
            ) {
                let p = CredentialPolicy { x_api_key: true, ..p };
                let mut h = rest;
                h.remove(X_API_KEY);
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.insert(X_API_KEY, v);
                    prop_assert_ne!(extract(&h, &p), Ok(None));
                }
            }

            /// A credential that is returned is non-empty visible ASCII within
            /// `max_length`, comes from a form the policy accepts, and is
            /// taken verbatim from the header it names.
            #[test]
            fn a_returned_credential_is_well_formed_and_allowed(
                h in header_map(),
                p in policy(),
            ) {
                if let Ok(Some(c)) = extract(&h, &p) {
                    prop_assert!(!c.token.is_empty());
                    prop_assert!(c.token.len() <= p.max_length);
                    prop_assert!(c.token.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    let (allowed, header) = match c.source {
                        CredentialSource::Bearer => (p.bearer, AUTHORIZATION.as_str()),
                        CredentialSource::RawAuthorization => {
                            (p.raw_authorization, AUTHORIZATION.as_str())
                        }
                        CredentialSource::ApiKeyHeader => (p.x_api_key, X_API_KEY),
                    };
                    prop_assert!(allowed, "{:?} not accepted by {:?}", c.source, p);
                    let sent = h.get(header).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
                    let sent = String::from_utf8_lossy(&sent).into_owned();
                    prop_assert!(sent.trim_ascii().ends_with(&c.token), "{:?} from {:?}", c, sent);
                }
            }

            /// Two `authorization` headers, or one of each when `x-api-key`
            /// is accepted, are always an error, whatever their values.
            #[test]
            fn duplicated_or_conflicting_credentials_are_errors(
                a in value_bytes(),
                b in value_bytes(),
                p in policy(),
                second_is_api_key in any::<bool>(),
            ) {
                let (Ok(a), Ok(b)) = (HeaderValue::from_bytes(&a), HeaderValue::from_bytes(&b)) else {
                    return Ok(());
                };
                let mut h = HeaderMap::new();
                h.append(AUTHORIZATION, a);
                if second_is_api_key {
                    h.append(X_API_KEY, b);
                    let p = CredentialPolicy { x_api_key: true, ..p };
                    prop_assert_eq!(extract(&h, &p), Err(CredentialError::Conflicting));
                } else {
                    h.append(AUTHORIZATION, b);
                    prop_assert_eq!(extract(&h, &p), Err(CredentialError::Duplicate));
                }
            }
        }
    }
}
