//! Reachability of the Redis store: one `PING` on the shared connection,
//! through [`super::Link::call`] (the request-path deadline and the breaker).

use super::RedisStore;
use crate::store::{Reachability, StoreError};
use async_trait::async_trait;

#[async_trait]
impl Reachability for RedisStore {
    /// `PING` under the store's deadline. Fails at once while the shared
    /// connection is not made yet or the circuit breaker is open; a failure
    /// counts towards the breaker like any other call's.
    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self
            .link
            .call("ping", self.settings.timeout, |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "redis answered PING with {pong:?}"
            )))
        }
    }
}
