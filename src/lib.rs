//! tollgate: an edge proxy for market-data APIs on Pingora.
//!
//! It authenticates API keys, meters calls with token buckets, answers 401, 402
//! and 429 itself, and forwards everything else to the origin servers. See
//! `ARCHITECTURE.md` for how the modules fit together.

pub(crate) mod access_log;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cors;
pub mod edge;
pub(crate) mod gatekeeper;
pub(crate) mod gateway;
pub mod logging;
pub(crate) mod management;
pub mod metering;
pub(crate) mod metrics;
pub mod openapi;
pub(crate) mod origin;
pub(crate) mod reply;
pub mod routing;
pub mod sample_origin;
pub mod store;
pub(crate) mod usage;
