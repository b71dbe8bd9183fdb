//! The Redis store itself, in process, on the harness's Redis: for tests of
//! the store's scripts and batching without a tollgate process.

use std::time::Duration;
use tollgate::config::RedisSettings;
use tollgate::store::redis::RedisStore;

/// A store on `urls` (Cluster seeds when `cluster`), connected in the current
/// runtime, with a deadline and a breaker no test run trips.
pub async fn connected_store(urls: Vec<String>, cluster: bool) -> RedisStore {
    let store = RedisStore::new(RedisSettings {
        urls,
        cluster,
        ca_pem: None,
        timeout: Duration::from_secs(5),
        breaker_failures: 1_000,
        breaker_cooldown: Duration::from_secs(1),
        auth_cache_ttl: Duration::from_secs(30),
        negative_cache_ttl: Duration::from_secs(2),
    });
    store.connect().await.expect("connect to redis");
    store
}

/// A plain connection, to set up and inspect what the store wrote.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}
