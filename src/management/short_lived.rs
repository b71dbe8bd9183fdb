//! Short-lived token endpoints, authenticated by a static key only:
//! create (`POST <tokens_path>`), list (`GET <tokens_path>`), revoke
//! (`DELETE <tokens_path>/<id>`) and inspect (`GET <inspect_path>?token=<jwt>`).
//! Creation is limited per static key and gated by the plan.

use super::{body, Call, Managed};
use crate::auth::jwt::{TokenClaims, TokenSigner};
use crate::config::ShortLivedSettings;
use crate::gatekeeper::{Charge, Gatekeeper, OrUnavailable, Principal};
use crate::metering::{Bucket, Owner, Plan};
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{rfc3339, Identity, KeyKind, TokenRecord};
use chrono::{DateTime, TimeZone, Utc};
use http::Method;
use percent_encoding::percent_decode_str;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// The route name used in metrics for these endpoints.
const ROUTE: &str = "short_lived";

/// Which token endpoint a path is.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// `<tokens_path>`: create (POST) and list (GET) a key's tokens.
    Collection,
    /// `<tokens_path>/<id>`: one token (DELETE revokes it).
    Item(String),
    /// `<inspect_path>?token=<jwt>`: inspect a token.
    Inspect,
}

/// Matches a canonical path against the token endpoints.
pub fn endpoint(s: &ShortLivedSettings, path: &str) -> Option<TokenEndpoint> {
    if path == s.inspect_path {
        return Some(TokenEndpoint::Inspect);
    }
    let rest = path.strip_prefix(s.tokens_path.as_str())?;
    match rest.trim_end_matches('/') {
        "" => Some(TokenEndpoint::Collection),
        r if r.starts_with('/') && !r[1..].contains('/') => {
            Some(TokenEndpoint::Item(r[1..].to_string()))
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

/// The caller of a token endpoint: a standard key of an account whose plan
/// has short-lived tokens.
struct Minter {
    identity: Identity,
    account: String,
    plan: Arc<Plan>,
}

impl Minter {
    fn owner(&self) -> Owner {
        Owner::Account(self.account.clone())
    }

    fn parent(&self) -> Uuid {
        self.identity.key.id
    }
}

fn minter(principal: &Principal, plan: Arc<Plan>) -> Result<Minter, ApiError> {
    let identity = match principal {
        Principal::Key(identity) if identity.key.kind == KeyKind::Standard => identity,
        _ => {
            return Err(ApiError::detail(
                ErrorKind::Unauthorized,
                "token endpoints need your static API key",
            ))
        }
    };
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
    Ok(Minter {
        identity: identity.as_ref().clone(),
        account,
        plan,
    })
}

/// Handles a token endpoint.
pub async fn handle(
    gk: &Gatekeeper,
    session: &mut Session,
    call: Call<'_>,
    endpoint: TokenEndpoint,
) -> Result<Managed, ApiError> {
    let Some(s) = gk.config.short_lived.clone() else {
        return Err(ApiError::detail(ErrorKind::NotFound, "no token endpoints"));
    };
    let (principal, plan) = gk
        .key_caller(&session.req_header().headers, ROUTE, call.client_ip)
        .await?;
    let m = minter(&principal, plan.clone())?;
    // Creation has its own limit per static key; the other calls are metered
    // like any call of the key.
    let (owner, bucket) = match (call.method, &endpoint) {
        (&Method::POST, TokenEndpoint::Collection) => (m.owner(), Bucket::Minting(m.parent())),
        _ => gk.metering_target(&principal, &plan),
    };
    let limit_plan = match (call.method, &endpoint) {
        (&Method::POST, TokenEndpoint::Collection) => &s.creation,
        _ => &plan,
    };
    let allowed = allowed_methods(&endpoint);
    if !allowed.split(", ").any(|a| a == call.method.as_str()) {
        return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", allowed));
    }
    // A creation body is checked before it takes from the creation limit.
    let create = match (call.method, &endpoint) {
        (&Method::POST, TokenEndpoint::Collection) => {
            let raw = body::read(session, gk.config.server.max_body_bytes).await?;
            Some(creation(&s, &raw)?)
        }
        _ => None,
    };
    let rate_headers = gk
        .admit(Charge::rate_only_fail_closed(
            limit_plan, owner, bucket, ROUTE,
        ))
        .await?;
    let mut reply = match (create, endpoint) {
        (Some(c), _) => mint(gk, &s, &m, c).await?,
        (None, TokenEndpoint::Collection) => list(gk, &s, &m).await?,
        (None, TokenEndpoint::Item(id)) => revoke(gk, &s, &m, &id).await?,
        (None, TokenEndpoint::Inspect) => inspect(gk, &s, &m, call.query).await?,
    };
    reply.headers = rate_headers;
    Ok(Managed {
        reply,
        admitted: Some((principal, plan)),
    })
}

/// The methods each token endpoint answers.
fn allowed_methods(endpoint: &TokenEndpoint) -> &'static str {
    match endpoint {
        TokenEndpoint::Collection => "GET, POST",
        TokenEndpoint::Item(_) => "DELETE",
        TokenEndpoint::Inspect => "GET",
    }
}

/// A valid creation request.
struct Creation {
    expires_in_ms: u128,
    count: u32,
    request_limit: u64,
}

/// Checks a creation body against the profile's bounds.
fn creation(s: &ShortLivedSettings, raw: &[u8]) -> Result<Creation, ApiError> {
    let b: CreateBody = body::parse(raw)?;
    if b.expires_in.is_none() && b.count.is_none() && b.request_limit.is_none() {
        return Err(bad(
            "provide at least one of expiresIn, count, requestLimit".into(),
        ));
    }
    let (min, max) = (s.min_expires_in.as_millis(), s.max_expires_in.as_millis());
    let expires_in_ms = match b.expires_in {
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
    let request_limit = match b.request_limit.as_deref() {
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
    Ok(Creation {
        expires_in_ms,
        count,
        request_limit,
    })
}

fn signer(gk: &Gatekeeper) -> Result<&TokenSigner, ApiError> {
    gk.signer
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::Internal))
}

/// When a new token expires: `expires_in_ms` from now, never after the key
/// it is minted from, in whole seconds.
fn token_expiry(now: DateTime<Utc>, expires_in_ms: u128, parent: Option<DateTime<Utc>>) -> i64 {
    let mut exp_ms = now
        .timestamp_millis()
        .saturating_add(i64::try_from(expires_in_ms).unwrap_or(0));
    if let Some(parent_exp) = parent {
        exp_ms = exp_ms.min(parent_exp.timestamp_millis());
    }
    exp_ms.div_euclid(1000)
}

/// One minted token as the creation response lists it.
fn minted_item(record: &TokenRecord, jwt: String) -> Value {
    let mut item = view(record, record.request_limit);
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
    Value::Object(ordered)
}

/// `POST <tokens_path>`: mints `count` tokens.
async fn mint(
    gk: &Gatekeeper,
    s: &ShortLivedSettings,
    m: &Minter,
    c: Creation,
) -> Result<Reply, ApiError> {
    let signer = signer(gk)?;
    let now = Utc::now();
    let exp_s = token_expiry(now, c.expires_in_ms, m.identity.key.expires_at);
    let expires_at = Utc.timestamp_opt(exp_s, 0).single().unwrap_or(now);
    let iat = u64::try_from(now.timestamp()).unwrap_or(0);
    let mut records = Vec::new();
    let mut items = Vec::new();
    for _ in 0..c.count {
        let record = TokenRecord {
            id: Uuid::new_v4(),
            parent: m.parent(),
            request_limit: c.request_limit,
            created_at: now,
            expires_at,
        };
        let claims = TokenClaims {
            iss: s.issuer.clone(),
            sub: m.account.clone(),
            jti: record.id,
            parent: m.parent(),
            plan: m.plan.name.clone(),
            lim: c.request_limit,
            iat,
            // Instances' clocks may differ slightly: valid from 5 s ago.
            nbf: iat.saturating_sub(5),
            exp: u64::try_from(exp_s).unwrap_or(0),
        };
        let jwt = signer.mint(&claims).map_err(|e| {
            log::warn!("token not signed: {e}");
            ApiError::new(ErrorKind::Internal)
        })?;
        items.push(minted_item(&record, jwt));
        records.push(record);
    }
    gk.store
        .create_tokens(&m.owner(), &records)
        .await
        .or_unavailable("create_tokens")?;
    metrics()
        .short_lived_tokens
        .with_label_values(&["created"])
        .inc_by(u64::from(c.count));
    log::info!(
        "{} short-lived token(s) minted from key {} ({})",
        c.count,
        m.identity.key.key_prefix,
        m.parent()
    );
    Ok(Reply::json(200, &wrapped(&s.fields.create, json!(items))))
}

/// `GET <tokens_path>`: the key's active tokens.
async fn list(gk: &Gatekeeper, s: &ShortLivedSettings, m: &Minter) -> Result<Reply, ApiError> {
    let tokens = gk
        .store
        .list_tokens(&m.owner(), m.parent(), Utc::now())
        .await
        .or_unavailable("list_tokens")?;
    let items: Vec<Value> = tokens
        .iter()
        .map(|(t, left)| Value::Object(view(t, *left)))
        .collect();
    Ok(Reply::json(200, &wrapped(&s.fields.list, json!(items))))
}

/// `{"<field>": value}`: a response under the profile's field name.
fn wrapped(field: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(field.to_string(), value);
    Value::Object(m)
}

fn not_found() -> ApiError {
    ApiError::detail(ErrorKind::NotFound, "token not found")
}

/// `DELETE <tokens_path>/<id>`: revokes one of the key's tokens.
async fn revoke(
    gk: &Gatekeeper,
    s: &ShortLivedSettings,
    m: &Minter,
    id: &str,
) -> Result<Reply, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let revoked = gk
        .store
        .revoke_token(&m.owner(), m.parent(), id)
        .await
        .or_unavailable("revoke_token")?;
    if !revoked {
        return Err(not_found());
    }
    metrics()
        .short_lived_tokens
        .with_label_values(&["revoked"])
        .inc();
    log::info!(
        "short-lived token {id} of key {} revoked",
        m.identity.key.key_prefix
    );
    Ok(Reply::json(200, &wrapped(&s.fields.delete, json!(id))))
}

/// `GET <inspect_path>?token=<jwt>`: one of the key's tokens, by its JWT.
async fn inspect(
    gk: &Gatekeeper,
    s: &ShortLivedSettings,
    m: &Minter,
    query: Option<&str>,
) -> Result<Reply, ApiError> {
    let jwt = query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("query parameter token is required".into()))?;
    let Some(signer) = &gk.signer else {
        return Err(not_found());
    };
    let now = Utc::now();
    let claims = signer
        .verify(&jwt, u64::try_from(now.timestamp()).unwrap_or(0))
        .map_err(|_| not_found())?;
    if claims.parent != m.parent() {
        return Err(not_found());
    }
    let (t, left) = gk
        .store
        .token(&m.owner(), claims.jti, now)
        .await
        .or_unavailable("token")?
        .ok_or_else(not_found)?;
    Ok(Reply::json(
        200,
        &wrapped(&s.fields.inspect, Value::Object(view(&t, left))),
    ))
}
