//! Management: tollgate's own endpoints. Issuing keys (shared by every path
//! that creates one), the public trial endpoint, self-service key management,
//! short-lived token endpoints, and the operator's admin API. All of them sit
//! on the [`Gatekeeper`](crate::gatekeeper::Gatekeeper); none depends on the proxy.

pub mod admin;
pub mod body;
pub mod keys;
pub mod self_service;
pub mod short_lived;
pub mod trial;

use crate::gatekeeper::Principal;
use crate::metering::Plan;
use crate::reply::Reply;
use http::Method;
use std::net::IpAddr;
use std::sync::Arc;

/// The parts of a request an endpoint reads besides its body and credential.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub method: &'a Method,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The address the caller is metered by.
    pub client_ip: IpAddr,
}

/// An endpoint's answer, with the caller it admitted (for usage and logs).
#[derive(Debug)]
pub struct Managed {
    pub reply: Reply,
    /// The caller and plan, once the call was admitted.
    pub admitted: Option<(Principal, Arc<Plan>)>,
}
