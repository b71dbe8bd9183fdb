//! Test harness: real processes on real loopback sockets. A sample origin, a
//! siteverify stub, redis-servers and a Redis Cluster, and tollgate started
//! from a shipped profile with its `TOLLGATE_*` variables. Every port comes
//! from [`ports`] and every child is started through
//! [`processes::start_listening`], which makes sure the listener a test talks
//! to is its own child's.
//!
//! Test files use `mod common; use common::*;` (`#[macro_use]` for
//! `on_both_stores!`); everything they use is re-exported here.
#![allow(dead_code, unused_imports, clippy::expect_used)]

#[macro_use]
mod backend;
mod certs;
mod gate;
mod http;
mod https;
mod origin;
mod ports;
mod processes;
mod redis;
mod store;
mod wait;

pub use backend::*;
pub use certs::*;
pub use gate::*;
pub use http::*;
pub use https::*;
pub use origin::*;
pub use ports::*;
pub use processes::*;
pub use redis::*;
pub use store::*;
pub use wait::*;
