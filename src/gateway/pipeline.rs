//! The request pipeline of `request_filter`, in one direction: screening and
//! path normalisation, the endpoint resolved once ([`cors::resolve`] over
//! `endpoint::resolve`), its CORS applied (a preflight is answered here, or
//! forwarded where the route leaves CORS to the origin), then the endpoint:
//! one of tollgate's own endpoints answers here; a route's caller is
//! resolved, checked against the plan and admitted, and the request forwarded.

use super::context::{Caller, Decision, RequestCtx};
use super::cors::{self, CorsState};
use super::endpoint::Endpoint;
use super::screening;
use super::Proxy;
use crate::cors::Cors;
use crate::gatekeeper::{Charge, Principal};
use crate::management::{self, Managed};
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::{self, Access, NormalPath, Route};
use http::Method;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// What the pipeline decided.
#[derive(Debug)]
pub enum Flow {
    /// Send the request to the origin.
    Forward,
    /// Answer with this reply (a management endpoint's success).
    Respond(Reply),
}

fn header_bytes(req: &RequestHeader) -> usize {
    req.raw_path().len()
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// The TCP peer's address (loopback for non-IP sockets).
pub fn peer_ip(session: &Session) -> IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|s| s.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The request target the origin receives, parsed once per request; `None`
/// when it is the request's own (already canonical) target, which is then
/// sent as it is.
fn upstream_uri(req: &RequestHeader, path: &NormalPath) -> Result<Option<http::Uri>, ApiError> {
    let own = req.uri.path_and_query().map(|pq| pq.as_str());
    let unchanged = match &path.query {
        None => own == Some(path.canonical.as_str()),
        Some(q) => {
            own.and_then(|o| o.strip_prefix(path.canonical.as_str()))
                .and_then(|rest| rest.strip_prefix('?'))
                == Some(q.as_str())
        }
    };
    if unchanged && req.uri.scheme().is_none() {
        return Ok(None);
    }
    path.upstream_target().parse().map(Some).map_err(|_| {
        ApiError::detail(
            ErrorKind::BadRequest,
            "the request target has characters that must be percent-encoded",
        )
    })
}

impl Proxy {
    /// Runs the pipeline for one request.
    pub async fn pipeline(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Flow, ApiError> {
        let cfg = &self.gatekeeper.config;
        let req = session.req_header();
        // First, before anything can refuse the request: every answer carries it.
        ctx.decide_request_id(&req.headers);
        ctx.cors = CorsState::new(req, &cfg.cors.global);
        if header_bytes(req) > cfg.server.max_header_bytes {
            return Err(ApiError::new(ErrorKind::HeadersTooLarge));
        }
        screening::method(&req.method)?;
        screening::connection(
            &req.headers,
            cfg.client_ip.header.as_ref().map(|h| h.as_str()),
        )?;
        let path = routing::normalize(req.raw_path())
            .map_err(|e| ApiError::detail(ErrorKind::BadRequest, e.to_string()))?;
        let method = req.method.clone();
        let peer = peer_ip(session);
        let client_ip = cfg.client_ip.client_ip(peer, &req.headers);
        ctx.client_ip = Some(client_ip);
        ctx.peer = Some(peer);
        ctx.peer_trusted = cfg.client_ip.is_trusted(peer);
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let announced = cors::announced_method(cfg, req, &ctx.cors);
        let (endpoint, preflight) = cors::resolve(cfg, &method, &path, announced);
        ctx.path = Some(path);
        let endpoint = endpoint?;
        // Right after the endpoint is known, before any credential: its CORS
        // headers go on every answer from here on, refusals included.
        let mode = cors::mode_of(cfg, &endpoint);
        ctx.cors.enter(mode);
        let forward_preflight = preflight && matches!(mode, Cors::Origin);
        if preflight && !forward_preflight {
            return Self::preflight(ctx, &endpoint);
        }
        match endpoint {
            Endpoint::Route(route) => {
                self.route(session, ctx, route, client_ip, forward_preflight)
                    .await
            }
            own => {
                ctx.decision = Decision::Managed;
                ctx.endpoint = own.label();
                let managed = self.manage(session, ctx, own, &method, client_ip).await?;
                if let Some((principal, plan)) = managed.admitted {
                    ctx.principal = Some(principal);
                    ctx.plan = Some(plan);
                }
                Ok(Flow::Respond(managed.reply))
            }
        }
    }

    /// Answers a preflight for an endpoint whose CORS tollgate handles:
    /// without a credential, unmetered, never forwarded.
    fn preflight(ctx: &mut RequestCtx, endpoint: &Endpoint) -> Result<Flow, ApiError> {
        match endpoint {
            Endpoint::Route(route) => ctx.route = Some(route.clone()),
            own => ctx.endpoint = own.label(),
        }
        let reply = ctx.cors.preflight()?;
        ctx.decision = Decision::Preflight;
        Ok(Flow::Respond(reply))
    }

    /// Answers one of tollgate's own endpoints.
    async fn manage(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        endpoint: Endpoint,
        method: &Method,
        client_ip: IpAddr,
    ) -> Result<Managed, ApiError> {
        let gk = &self.gatekeeper;
        match endpoint {
            Endpoint::Trial => {
                if *method != Method::POST {
                    return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "POST"));
                }
                let reply = management::trial::issue(gk, &self.http, session, client_ip).await?;
                Ok(Managed {
                    reply,
                    admitted: None,
                })
            }
            Endpoint::ShortLived(token_endpoint) => {
                let query = ctx.path.as_ref().and_then(|p| p.query.clone());
                let call = management::Call {
                    method,
                    query: query.as_deref(),
                    client_ip,
                };
                management::short_lived::handle(gk, session, call, token_endpoint).await
            }
            Endpoint::SelfService(rest) => {
                let call = management::Call {
                    method,
                    query: None,
                    client_ip,
                };
                management::self_service::handle(gk, session, call, &rest).await
            }
            Endpoint::Route(_) => Err(ApiError::new(ErrorKind::Internal)),
        }
    }

    /// Whether the caller's plan may use this route with this request: the
    /// route's plans, and the plan's parameter and query policies (a capped
    /// query changes the target the origin receives).
    fn plan_allows(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
        route: &Route,
        plan: &Plan,
        path: &mut NormalPath,
    ) -> Result<(), ApiError> {
        if !route.plans.is_empty() && !route.plans.contains(&plan.name) {
            return Err(ApiError::detail(
                ErrorKind::Forbidden,
                format!("this endpoint is not available on the {} plan", plan.name),
            ));
        }
        screening::plan_parameters(&req.headers, &path.canonical, plan)?;
        let query =
            super::policy::check_query(path.query.as_deref(), plan, &self.gatekeeper.config.query)
                .map_err(|reason| ApiError::detail(ErrorKind::BadRequest, reason))?;
        if query != path.query {
            // The plan's cap was added to the query: the target changed.
            path.query = query;
            ctx.upstream_uri = upstream_uri(req, path)?;
        }
        Ok(())
    }

    /// A route: public routes forward as they are, and so do preflights for
    /// a route that leaves CORS to the origin (`preflight`), without a body;
    /// others resolve the caller, check the plan and admit the call.
    async fn route(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: Arc<Route>,
        client_ip: IpAddr,
        preflight: bool,
    ) -> Result<Flow, ApiError> {
        let gk = &self.gatekeeper;
        let Some(mut path) = ctx.path.take() else {
            return Err(ApiError::new(ErrorKind::Internal));
        };
        ctx.upstream_uri = upstream_uri(session.req_header(), &path)?;
        screening::upgrade(session.req_header_mut(), &route)?;
        ctx.route = Some(route.clone());
        if route.access == Access::Public {
            ctx.path = Some(path);
            ctx.decision = Decision::Public;
            return Ok(Flow::Forward);
        }
        if preflight {
            screening::no_body(&session.req_header().headers, "a CORS preflight")?;
            ctx.path = Some(path);
            ctx.decision = Decision::Preflight;
            return Ok(Flow::Forward);
        }
        let headers = &session.req_header().headers;
        let principal = gk
            .principal(
                headers,
                route.access,
                route.on_store_failure,
                &route.name,
                client_ip,
            )
            .await?;
        if self.access_log.is_some() {
            // For the access log of a refusal from here on (402, 429, …):
            // `principal` is kept only once the call is admitted.
            ctx.caller = Some(Caller::of(&principal));
        }
        let plan = gk.plan_of(&principal)?;
        self.plan_allows(session.req_header(), ctx, &route, &plan, &mut path)?;
        ctx.path = Some(path);
        let (owner, bucket) = gk.metering_target(&principal, &plan);
        ctx.plan = Some(plan.clone());
        let token = match &principal {
            Principal::Token(claims) => Some(claims.as_ref()),
            _ => None,
        };
        ctx.response_headers = gk
            .admit(Charge {
                plan: &plan,
                owner,
                bucket,
                cost: route.cost,
                token,
                policy: route.on_store_failure,
                route: &route.name,
            })
            .await?;
        // What the access log reports: the credits charged (none on a plan
        // without credits) and the balance sent back.
        ctx.cost = Some(if plan.credits.is_some() {
            route.cost
        } else {
            0
        });
        ctx.credits_remaining = super::credits_remaining(&ctx.response_headers);
        // Set only once admitted: a key's usage records admitted calls, not refusals.
        ctx.principal = Some(principal);
        ctx.decision = Decision::Admitted;
        Ok(Flow::Forward)
    }
}
