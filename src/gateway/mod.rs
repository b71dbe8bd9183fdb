//! The proxy: its state and the Pingora `ProxyHttp` hooks, which only delegate
//! to the pipeline, the forwarding rules and the response writer.

mod access;
pub mod context;
pub mod cors;
mod endpoint;
mod forward;
pub mod pipeline;
pub mod policy;
pub mod protected;
pub mod request_id;
mod screening;
pub mod writer;

use crate::access_log::AccessLog;
use crate::gatekeeper::{Gatekeeper, Principal, CREDITS_HEADER};
use crate::metrics::{metrics, per_thread};
use crate::origin::Origins;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{CallRecord, UsageEvent};
use crate::usage::UsageRecorder;
use async_trait::async_trait;
use context::{Decision, RequestCtx};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pipeline::Flow;
use std::sync::Arc;
use std::time::Instant;

/// Seconds a client is told to wait after an origin failure.
pub const ORIGIN_RETRY_SECS: u64 = 30;

/// The Pingora proxy service: its state, and the `ProxyHttp` hooks, which
/// only delegate to the pipeline, the forwarding rules and the response writer.
pub struct Proxy {
    /// Who is calling and whether a call is admitted.
    pub gatekeeper: Arc<Gatekeeper>,
    pub origins: Origins,
    pub usage: Arc<UsageRecorder>,
    /// Client for outbound calls (human verification).
    pub http: reqwest::Client,
    /// `None`: no access log.
    pub access_log: Option<Arc<AccessLog>>,
}

/// The balance in an `X-Credits-Remaining` header among `headers`.
fn credits_remaining(headers: &[(String, String)]) -> Option<i64> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(CREDITS_HEADER))
        .and_then(|(_, value)| value.parse().ok())
}

impl Proxy {
    /// Renders an error with the profile's template, counts it, and writes it.
    async fn reject(&self, session: &mut Session, ctx: &mut RequestCtx, err: ApiError) {
        metrics()
            .rejections
            .with_label_values(&[err.kind.name()])
            .inc();
        ctx.decision = Decision::Rejected(err.kind.name());
        if ctx.credits_remaining.is_none() {
            ctx.credits_remaining = credits_remaining(&err.headers);
        }
        let reply = self.gatekeeper.config.errors.render(&err);
        if let Err(e) = Self::respond(session, ctx, reply).await {
            log::debug!("could not write error response: {e}");
        }
    }

    /// Writes a reply of tollgate's own with the request's CORS headers and id.
    async fn respond(session: &mut Session, ctx: &mut RequestCtx, mut reply: Reply) -> Result<()> {
        ctx.decide_request_id(&session.req_header().headers);
        ctx.cors.decorate(&mut reply);
        reply
            .headers
            .push((request_id::HEADER.to_string(), ctx.request_id.clone()));
        ctx.local_reply_status = Some(reply.status);
        writer::write(session, reply).await
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::new()
    }

    /// Runs the pipeline; answers refusals and management calls here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        match self.pipeline(session, ctx).await {
            Ok(Flow::Forward) => Ok(false),
            Ok(Flow::Respond(reply)) => {
                if let Err(e) = Self::respond(session, ctx, reply).await {
                    log::debug!("could not write response: {e}");
                }
                Ok(true)
            }
            Err(err) => {
                self.reject(session, ctx, err).await;
                Ok(true)
            }
        }
    }

    /// Picks a healthy server of the route's origin.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let origin = ctx
            .route
            .as_ref()
            .map(|r| r.origin.as_str())
            .unwrap_or_default();
        self.origins.peer(origin).ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectNoRoute,
                format!("origin {origin} has no healthy server"),
            )
        })
    }

    /// Rewrites the request for the origin: canonical path, no credentials,
    /// no client-sent `x-tollgate-*`, identity headers added.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        forward::prepare(
            &self.gatekeeper.config,
            &self.origins,
            upstream_request,
            ctx,
        )?;
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    /// Adds the rate-limit headers to the origin's response, and writes its
    /// CORS headers where tollgate handles CORS.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(start) = ctx.upstream_started {
            let elapsed = start.elapsed();
            ctx.upstream_elapsed = Some(elapsed);
            if let Some(route) = &ctx.route {
                per_thread::upstream_answered(&route.origin, elapsed);
            }
        }
        for (name, value) in &ctx.response_headers {
            upstream_response.insert_header(name.clone(), value.as_str())?;
        }
        upstream_response.insert_header(request_id::HEADER, ctx.request_id.as_str())?;
        ctx.cors.rewrite(upstream_response)
    }

    /// Answers an origin failure with the profile's JSON 502, and anything else
    /// with a JSON error of the right status.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let kind = match e.esource() {
            ErrorSource::Upstream => Some(ErrorKind::BadGateway),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
                _ => Some(ErrorKind::BadRequest),
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ErrorType::ConnectNoRoute => Some(ErrorKind::BadGateway),
                _ => Some(ErrorKind::Internal),
            },
        };
        let Some(kind) = kind else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if kind == ErrorKind::BadGateway {
            let origin = ctx
                .route
                .as_ref()
                .map(|r| r.origin.as_str())
                .unwrap_or("none");
            metrics().upstream_errors.with_label_values(&[origin]).inc();
            log::warn!("origin {origin} failed: {e}");
        } else {
            log::debug!("request failed: {e}");
        }
        let err = match kind {
            ErrorKind::BadGateway => ApiError::new(kind)
                .var("retry", ORIGIN_RETRY_SECS.to_string())
                .header("Retry-After", ORIGIN_RETRY_SECS.to_string()),
            ErrorKind::BadRequest => ApiError::detail(kind, "malformed request"),
            _ => ApiError::new(kind),
        };
        let status = kind.status();
        if session.response_written().is_none() {
            // Pingora will not reuse this connection: say so, so that a client
            // does not send its next request into a closing socket.
            session.set_keepalive(None);
            self.reject(session, ctx, err.header("Connection", "close"))
                .await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Metrics, usage and the access log, queued off the critical path.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_reply_status)
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        per_thread::request_done(ctx.route_label(), status, ctx.decision.label(), elapsed);
        if let Some(log) = &self.access_log {
            ctx.decide_request_id(&session.req_header().headers);
            access::record(log, session, ctx, status, elapsed);
        }
        let key = ctx.principal.as_ref().and_then(Principal::usage_key);
        if let (Some(key), Some(path)) = (key, &ctx.path) {
            let token = match &ctx.principal {
                Some(Principal::Token(claims)) => Some(claims.jti),
                _ => None,
            };
            self.usage.push(UsageEvent {
                key,
                call: CallRecord {
                    token,
                    at: chrono::Utc::now(),
                    method: session.req_header().method.to_string(),
                    path: path.canonical.clone(),
                    status,
                    latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                },
            });
        }
    }
}
