//! tollgate: an edge proxy for market-data APIs on Pingora.
//!
//! It authenticates API keys, meters calls with token buckets, answers 401, 402
//! and 429 itself, and forwards everything else to the origin servers. See
//! `ARCHITECTURE.md` for how the modules fit together.

pub mod auth;
pub mod config;
pub mod metering;
pub mod reply;
pub mod routing;
pub mod store;
pub mod gateway;
pub mod management;
pub mod metrics;
pub mod origin;
pub mod usage;
pub mod app;
pub mod sample_origin;
pub mod cli;
