//! Short-lived token endpoints, authenticated by a static key only:
//! create (`POST <tokens_path>`), list (`GET <tokens_path>`), revoke
//! (`DELETE <tokens_path>/<id>`) and inspect (`GET <inspect_path>?token=<jwt>`).
//! Creation is limited per static key and gated by the plan.

use super::{body, unavailable};
use crate::auth::jwt::TokenClaims;
use crate::config::ShortLivedSettings;
use crate::gateway::context::{Principal, RequestCtx};
use crate::gateway::{Charge, Gateway};
use crate::metering::{Bucket, Owner};
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::{Access, StoreFailure};
use crate::store::{rfc3339, KeyKind, TokenRecord};
use chrono::{TimeZone, Utc};
use http::Method;
use percent_encoding::percent_decode_str;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use uuid::Uuid;

/// The route name used in metrics for these endpoints.
const ROUTE: &str = "short_lived";

/// Which token endpoint a path is.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `<tokens_path>` (create, list).
    Tokens,
    /// `<tokens_path>/<id>` (revoke).
    Token(String),
    /// `<inspect_path>` (inspect).
    Inspect,
}

/// Matches a canonical path against the token endpoints.
pub fn endpoint(s: &ShortLivedSettings, path: &str) -> Option<Endpoint> {
    if path == s.inspect_path {
        return Some(Endpoint::Inspect);
    }
    let rest = path.strip_prefix(s.tokens_path.as_str())?;
    match rest.trim_end_matches('/') {
        "" => Some(Endpoint::Tokens),
        r if r.starts_with('/') && !r[1..].contains('/') => {
            Some(Endpoint::Token(r[1..].to_string()))
        }
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    request_limit: Option<String>,
}

fn bad(msg: String) -> ApiError {
    ApiError::detail(ErrorKind::BadRequest, msg)
}

fn view(t: &TokenRecord, remaining: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(t.id));
    m.insert("expiresTimeString".into(), json!(rfc3339(&t.expires_at)));
    m.insert("requestLimit".into(), json!(t.request_limit.to_string()));
    m.insert("remaining".into(), json!(remaining.to_string()));
    m
}

impl Gateway {
    /// Handles a token endpoint.
    pub async fn short_lived(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        method: &Method,
        endpoint: Endpoint,
        query: Option<&str>,
        client_ip: IpAddr,
    ) -> Result<Reply, ApiError> {
        let Some(s) = self.config.short_lived.clone() else {
            return Err(ApiError::detail(ErrorKind::NotFound, "no token endpoints"));
        };
        let principal = self
            .principal(
                session,
                Access::Key,
                StoreFailure::FailClosed,
                ROUTE,
                client_ip,
            )
            .await?;
        let identity = match &principal {
            Principal::Key(identity) if identity.key.kind == KeyKind::Standard => identity.clone(),
            _ => {
                return Err(ApiError::detail(
                    ErrorKind::Unauthorized,
                    "token endpoints need your static API key",
                ))
            }
        };
        let plan = self.plan_of(&principal)?;
        let Some(account) = identity.key.account.clone() else {
            return Err(ApiError::detail(
                ErrorKind::Forbidden,
                "this key has no account",
            ));
        };
        if !plan.short_lived_tokens || plan.shared {
            return Err(ApiError::detail(
                ErrorKind::Forbidden,
                format!(
                    "short-lived tokens are not available on the {} plan",
                    plan.name
                ),
            ));
        }
        ctx.plan = Some(plan.clone());
        let owner = Owner::Account(account.clone());
        let parent = identity.key.id;
        let [create_field, list_field, inspect_field, delete_field] = s.fields.clone();
        let now = Utc::now();
        let (mut reply, headers) = match (method, endpoint) {
            (&Method::POST, Endpoint::Tokens) => {
                let raw = body::read(session, self.config.server.max_body_bytes).await?;
                let b: CreateBody = body::parse(&raw)?;
                if b.expires_in.is_none() && b.count.is_none() && b.request_limit.is_none() {
                    return Err(bad(
                        "provide at least one of expiresIn, count, requestLimit".into(),
                    ));
                }
                let (min, max) = (s.min_expires_in.as_millis(), s.max_expires_in.as_millis());
                let expires_in = match b.expires_in {
                    None => s.default_expires_in.as_millis(),
                    Some(ms) if (min..=max).contains(&u128::from(ms)) => u128::from(ms),
                    Some(_) => {
                        return Err(bad(format!(
                            "field expiresIn: must be between {min} and {max} (milliseconds)"
                        )))
                    }
                };
                let count = match b.count {
                    None => 1,
                    Some(n) if (1..=s.max_count).contains(&n) => n,
                    Some(_) => {
                        return Err(bad(format!(
                            "field count: must be between 1 and {}",
                            s.max_count
                        )))
                    }
                };
                let limit = match b.request_limit.as_deref() {
                    None => s.default_request_limit,
                    Some(text) => match text.parse::<u64>() {
                        Ok(n)
                            if text.bytes().all(|c| c.is_ascii_digit())
                                && (1..=s.max_request_limit).contains(&n) =>
                        {
                            n
                        }
                        _ => {
                            return Err(bad(format!(
                            "field requestLimit: must be a positive integer up to {}, as a string",
                            s.max_request_limit
                        )))
                        }
                    },
                };
                let Some(signer) = &self.signer else {
                    return Err(ApiError::new(ErrorKind::Internal));
                };
                // At most `creation_rate` valid creations per window per static key.
                let headers = self
                    .admit(Charge::free(
                        &s.creation,
                        owner.clone(),
                        Bucket::Minting(parent),
                        ROUTE,
                    ))
                    .await?;
                // Recorded in the key's usage from here on: only admitted calls are.
                ctx.principal = Some(principal.clone());
                let mut exp_ms = now
                    .timestamp_millis()
                    .saturating_add(i64::try_from(expires_in).unwrap_or(0));
                // A token never outlives the key it was minted from.
                if let Some(parent_exp) = identity.key.expires_at {
                    exp_ms = exp_ms.min(parent_exp.timestamp_millis());
                }
                let exp_s = exp_ms.div_euclid(1000);
                let expires_at = Utc.timestamp_opt(exp_s, 0).single().unwrap_or(now);
                let iat = u64::try_from(now.timestamp()).unwrap_or(0);
                let mut records = Vec::new();
                let mut items = Vec::new();
                for _ in 0..count {
                    let record = TokenRecord {
                        id: Uuid::new_v4(),
                        parent,
                        request_limit: limit,
                        created_at: now,
                        expires_at,
                    };
                    let claims = TokenClaims {
                        iss: s.issuer.clone(),
                        sub: account.clone(),
                        jti: record.id,
                        key: parent,
                        plan: plan.name.clone(),
                        lim: limit,
                        iat,
                        // Instances' clocks may differ slightly: valid from 5 s ago.
                        nbf: iat.saturating_sub(5),
                        exp: u64::try_from(exp_s).unwrap_or(0),
                    };
                    let jwt = signer.mint(&claims).map_err(|e| {
                        log::warn!("token not signed: {e}");
                        ApiError::new(ErrorKind::Internal)
                    })?;
                    let mut item = view(&record, limit);
                    item.insert("token".into(), json!(jwt));
                    let mut ordered = Map::new();
                    for k in [
                        "id",
                        "token",
                        "expiresTimeString",
                        "requestLimit",
                        "remaining",
                    ] {
                        if let Some(v) = item.remove(k) {
                            ordered.insert(k.into(), v);
                        }
                    }
                    items.push(Value::Object(ordered));
                    records.push(record);
                }
                self.store
                    .create_tokens(&owner, &records)
                    .await
                    .map_err(unavailable)?;
                metrics()
                    .short_lived_tokens
                    .with_label_values(&["created"])
                    .inc_by(u64::from(count));
                log::info!(
                    "{count} short-lived token(s) minted from key {} ({parent})",
                    identity.key.key_prefix
                );
                (Reply::json(200, &json!({ create_field: items })), headers)
            }
            (method, endpoint) => {
                let (own, bucket) = self.metering_target(&principal, &plan);
                let headers = self.admit(Charge::free(&plan, own, bucket, ROUTE)).await?;
                ctx.principal = Some(principal.clone());
                let not_found = || ApiError::detail(ErrorKind::NotFound, "token not found");
                let reply =
                    match (method, endpoint) {
                        (&Method::GET, Endpoint::Tokens) => {
                            let tokens = self
                                .store
                                .list_tokens(&owner, parent, now)
                                .await
                                .map_err(unavailable)?;
                            let items: Vec<Value> = tokens
                                .iter()
                                .map(|(t, left)| Value::Object(view(t, *left)))
                                .collect();
                            Reply::json(200, &json!({ list_field: items }))
                        }
                        (&Method::DELETE, Endpoint::Token(id)) => {
                            let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
                            if !self
                                .store
                                .revoke_token(&owner, parent, id)
                                .await
                                .map_err(unavailable)?
                            {
                                return Err(not_found());
                            }
                            metrics()
                                .short_lived_tokens
                                .with_label_values(&["revoked"])
                                .inc();
                            log::info!(
                                "short-lived token {id} of key {} revoked",
                                identity.key.key_prefix
                            );
                            Reply::json(200, &json!({ delete_field: id }))
                        }
                        (&Method::GET, Endpoint::Inspect) => {
                            let jwt = query
                                .unwrap_or("")
                                .split('&')
                                .find_map(|p| p.strip_prefix("token="))
                                .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
                                .filter(|v| !v.is_empty())
                                .ok_or_else(|| bad("query parameter token is required".into()))?;
                            let Some(signer) = &self.signer else {
                                return Err(not_found());
                            };
                            let claims = signer
                                .verify(&jwt, u64::try_from(now.timestamp()).unwrap_or(0))
                                .map_err(|_| not_found())?;
                            if claims.key != parent {
                                return Err(not_found());
                            }
                            let (t, left) = self
                                .store
                                .token(&owner, claims.jti, now)
                                .await
                                .map_err(unavailable)?
                                .ok_or_else(not_found)?;
                            Reply::json(200, &json!({ inspect_field: view(&t, left) }))
                        }
                        (_, Endpoint::Tokens) => {
                            return Err(ApiError::new(ErrorKind::MethodNotAllowed)
                                .header("Allow", "GET, POST"))
                        }
                        (_, Endpoint::Token(_)) => {
                            return Err(ApiError::new(ErrorKind::MethodNotAllowed)
                                .header("Allow", "DELETE"))
                        }
                        (_, Endpoint::Inspect) => {
                            return Err(
                                ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "GET")
                            )
                        }
                    };
                (reply, headers)
            }
        };
        reply.headers = headers;
        Ok(reply)
    }
}
