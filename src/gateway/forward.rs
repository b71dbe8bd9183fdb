//! What the origin receives: the canonical path, no caller credentials, no
//! client-supplied `x-tollgate-*` headers (however spelled), forwarding
//! headers tollgate vouches for, and tollgate's identity headers.

use super::context::RequestCtx;
use super::protected::{self, Protected};
use crate::config::Config;
use crate::gatekeeper::Principal;
use crate::origin::Origins;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use std::net::IpAddr;

/// `for=` of a `Forwarded` element: IPv6 addresses are quoted and bracketed.
fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    }
}

/// The values of every `name` header, joined as one list (`a, b`).
fn joined(req: &RequestHeader, name: &str) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Removes every header a client may not pass to the origin, and sets the
/// forwarding headers: from an untrusted peer they are replaced by the address
/// tollgate metered; a trusted proxy's `X-Forwarded-For` and `Forwarded` get
/// the peer's address appended, as proxies do.
fn scrub(config: &Config, req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    let client_ip = config.client_ip.header.as_ref().map(|h| h.as_str());
    let trusted = ctx.peer_trusted;
    // Exact, lower-case spellings a trusted proxy may pass (never underscored ones).
    let kept_from_proxy = |name: &str| {
        trusted && (protected::FORWARDING.contains(&name) || client_ip.is_some_and(|h| h == name))
    };
    let (xff, fwd) = if trusted {
        (joined(req, "x-forwarded-for"), joined(req, "forwarded"))
    } else {
        (None, None)
    };
    let drop: Vec<String> = req
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|name| match protected::classify(name, client_ip) {
            // Every spelling of the request id: tollgate sets its own.
            None => protected::loose_eq(name, "x-request-id"),
            Some(Protected::Forwarding | Protected::ClientIp) => !kept_from_proxy(name),
            Some(Protected::Own | Protected::Credential | Protected::Override) => true,
        })
        .map(str::to_string)
        .collect();
    for name in drop {
        req.remove_header(name.as_str());
    }
    let peer = ctx.peer.or(ctx.client_ip);
    match (trusted, peer) {
        (true, Some(peer)) => {
            let xff = match xff {
                Some(list) => format!("{list}, {peer}"),
                None => peer.to_string(),
            };
            req.insert_header("x-forwarded-for", xff)?;
            if let Some(list) = fwd {
                req.insert_header("forwarded", format!("{list}, {}", forwarded_for(peer)))?;
            }
            if !req.headers.contains_key("x-forwarded-proto") {
                req.insert_header("x-forwarded-proto", if ctx.tls { "https" } else { "http" })?;
            }
        }
        _ => {
            if let Some(ip) = ctx.client_ip {
                req.insert_header("x-forwarded-for", ip.to_string())?;
            }
            // The scheme the client used, which the origin cannot see.
            req.insert_header("x-forwarded-proto", if ctx.tls { "https" } else { "http" })?;
        }
    }
    Ok(())
}

/// Rewrites `req` in place for the origin.
pub fn prepare(
    config: &Config,
    origins: &Origins,
    req: &mut RequestHeader,
    ctx: &RequestCtx,
) -> Result<()> {
    if let Some(uri) = &ctx.upstream_uri {
        req.set_uri(uri.clone());
    }
    scrub(config, req, ctx)?;
    if let Some(route) = &ctx.route {
        if let Some(host) = origins
            .settings(&route.origin)
            .and_then(|o| o.host_header.as_deref())
        {
            req.insert_header("host", host)?;
        }
    }
    if let Some(ip) = ctx.client_ip {
        req.insert_header("x-tollgate-client-ip", ip.to_string())?;
    }
    req.insert_header(super::request_id::HEADER, ctx.request_id.as_str())?;
    match &ctx.principal {
        Some(Principal::Key(identity)) => {
            let key = &identity.key;
            if let Some(account) = &key.account {
                req.insert_header("x-tollgate-account", account.as_str())?;
            }
            req.insert_header("x-tollgate-key-id", key.id.to_string())?;
            req.insert_header("x-tollgate-key-prefix", key.key_prefix.as_str())?;
            req.insert_header("x-tollgate-plan", identity.plan.as_str())?;
        }
        Some(Principal::Token(claims)) => {
            req.insert_header("x-tollgate-account", claims.sub.as_str())?;
            req.insert_header("x-tollgate-key-id", claims.parent.to_string())?;
            req.insert_header("x-tollgate-token-id", claims.jti.to_string())?;
            req.insert_header("x-tollgate-plan", claims.plan.as_str())?;
        }
        Some(Principal::Anonymous { .. }) => {
            if let Some(plan) = &ctx.plan {
                req.insert_header("x-tollgate-plan", plan.name.as_str())?;
            }
        }
        None => {}
    }
    Ok(())
}
