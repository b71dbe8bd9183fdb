//! Management: issuing keys (shared by every path that creates one), the public
//! trial endpoint, and the operator's admin API.

pub mod admin;
pub mod body;
pub mod keys;
pub mod self_service;
pub mod short_lived;
pub mod trial;
