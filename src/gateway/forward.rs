//! What the origin receives: the canonical path, no caller credentials, no
//! client-supplied `x-tollgate-*` headers, and tollgate's identity headers.

use super::context::{Principal, RequestCtx};
use super::Gateway;
use crate::auth::credential::X_API_KEY;
use pingora::http::RequestHeader;
use pingora::prelude::*;

/// Prefix of the headers tollgate owns; anything the client sends with it is removed.
pub const OWN_PREFIX: &str = "x-tollgate-";

/// Rewrites `req` in place for the origin.
pub fn prepare(gw: &Gateway, req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    if let Some(path) = &ctx.path {
        let uri = path
            .upstream_target()
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "upstream target", e))?;
        req.set_uri(uri);
    }
    // A client-IP header from an untrusted peer is a claim, not a fact: it does
    // not reach the origin. The address tollgate used is always sent as
    // `x-tollgate-client-ip`, the one to rely on.
    if let Some(header) = &gw.config.client_ip.header {
        if !ctx.peer_trusted {
            req.remove_header(header.as_str());
        }
    }
    req.remove_header("authorization");
    req.remove_header(X_API_KEY);
    let own: Vec<String> = req
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with(OWN_PREFIX))
        .map(|k| k.as_str().to_string())
        .collect();
    for name in own {
        req.remove_header(name.as_str());
    }
    if let Some(route) = &ctx.route {
        if let Some(host) = gw
            .origins
            .settings(&route.origin)
            .and_then(|o| o.host_header.as_deref())
        {
            req.insert_header("host", host)?;
        }
    }
    if let Some(ip) = ctx.client_ip {
        req.insert_header("x-tollgate-client-ip", ip.to_string())?;
    }
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
            req.insert_header("x-tollgate-key-id", claims.key.to_string())?;
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
