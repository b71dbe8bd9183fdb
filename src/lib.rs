//! tollgate: an edge proxy for market-data APIs on Pingora.
//!
//! It authenticates API keys, meters calls with token buckets, answers 401, 402
//! and 429 itself, and forwards everything else to the origin servers. See
//! `ARCHITECTURE.md` for how the modules fit together.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod gatekeeper;
pub mod gateway;
pub mod logging;
pub mod management;
pub mod metering;
pub mod metrics;
pub mod origin;
pub mod reply;
pub mod routing;
pub mod sample_origin;
pub mod store;
pub mod usage;
