//! Authentication: credential extraction, key format and hashing, client IP.

pub mod client_ip;
pub mod credential;
pub mod failures;
pub mod jwt;
pub mod keys;
