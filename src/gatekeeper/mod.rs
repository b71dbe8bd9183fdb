//! The gatekeeper: who is calling and what it costs. Credential → principal,
//! principal → plan, and the one atomic admission call, with the store-failure
//! policy. Both the proxy ([`crate::gateway`]) and tollgate's own endpoints
//! ([`crate::management`]) sit on top of it; it depends on neither.

mod admission;
pub mod failure;
mod principal;

pub use admission::{Charge, CREDITS_HEADER};
pub use failure::{store_failure, OrUnavailable};
pub use principal::Principal;

use crate::auth::failures::FailureThrottle;
use crate::auth::jwt::TokenSigner;
use crate::config::Config;
use crate::store::memory::MemoryStore;
use crate::store::Store;
use std::sync::Arc;

/// Everything that decides who a caller is and whether a call is admitted.
pub struct Gatekeeper {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// The per-instance limiter `fail_open` routes use while the store is unreachable.
    pub fallback: MemoryStore,
    /// Signs and verifies short-lived tokens, when the profile has them.
    pub signer: Option<TokenSigner>,
    /// Invalid credentials per client IP.
    pub failures: FailureThrottle,
}

impl Gatekeeper {
    /// A gatekeeper over `store` for `config`.
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Self {
        let signer = config
            .short_lived
            .as_ref()
            .map(|s| TokenSigner::new(&s.issuer, &s.signing_kid, &s.secrets));
        let failures = FailureThrottle::new(config.credentials.failure_limit);
        Self {
            config,
            store,
            fallback: MemoryStore::new(),
            signer,
            failures,
        }
    }
}
