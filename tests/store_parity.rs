//! The two stores and the Lua scripts agree, without wall-clock tolerances.
//!
//! - The parity tables feed the same cases to the Rust arithmetic the memory
//!   store runs ([`admit_at`] on `gcra::step` and `CreditCharge`, and
//!   `CreditCharge::add`) and to `EVALSHA` of the real `admit.lua` and
//!   `credits.lua` on a real Redis, with the scripts' clock fixed by their
//!   test-only `now` argument, and assert identical outcomes and stored state.
//! - The conformance suite runs one sequence of store calls on a `MemoryStore`
//!   and on a `RedisStore` and asserts the same concrete answers from both.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use redis::AsyncCommands;
use tollgate::auth::keys::KeyHash;
use tollgate::metering::credits::{CreditCharge, CreditState, MAX_CREDITS};
use tollgate::metering::{Admission, AdmitOutcome, Bucket, Owner, Verdict};
use tollgate::store::memory::{admit_at, AdmitState, MemoryStore};
use tollgate::store::redis::{bucket_key, credits_key, token_key, RedisStore};
use tollgate::store::{
    Account, AccountStore, CallRecord, Identity, KeyKind, KeyRecord, KeyStore, KeyUsage, Store,
    StoreError, TokenRecord, UsageEvent,
};
use uuid::Uuid;

const SEC: i64 = 1_000_000;
/// A fixed "now" in µs (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000 * SEC;
const MAX: i64 = MAX_CREDITS as i64;
/// One hour, in ms.
const HOUR_MS: i64 = 3_600_000;
/// The first hourly refill boundary after `T0`, in ms.
const NEXT_HOUR_MS: i64 = (T0 / 1000 / HOUR_MS + 1) * HOUR_MS;

// ---------------------------------------------------------------------------
// Parity: admit.lua against admit_at (gcra::step and CreditCharge).

fn hourly(budget: u64, cost: u64) -> Option<CreditCharge> {
    Some(CreditCharge {
        cost,
        budget,
        refill_ms: Some(HOUR_MS),
    })
}

fn prepaid(cost: u64) -> Option<CreditCharge> {
    Some(CreditCharge {
        cost,
        budget: 0,
        refill_ms: None,
    })
}

/// A credit state in the refill window of `now_us` (hourly windows).
fn in_window(balance: i64, now_us: i64) -> Option<CreditState> {
    Some(CreditState {
        balance,
        window: now_us / 1000 / HOUR_MS,
    })
}

fn balance(balance: i64) -> Option<CreditState> {
    Some(CreditState { balance, window: 0 })
}

/// One admission case: the state before, the clock, and what must happen.
struct Case {
    name: &'static str,
    now: i64,
    interval: i64,
    burst: u32,
    tat: Option<i64>,
    credits: Option<CreditCharge>,
    balance: Option<CreditState>,
    /// `None`: no short-lived token; `Some(None)`: a revoked one;
    /// `Some(Some(n))`: one with `n` requests left.
    token: Option<Option<i64>>,
    verdict: Verdict,
    remaining: u32,
}

/// Ten per minute, burst ten: one token every 6 s.
const I: i64 = 6 * SEC;

fn case(name: &'static str, now: i64, tat: Option<i64>, verdict: Verdict, remaining: u32) -> Case {
    Case {
        name,
        now,
        interval: I,
        burst: 10,
        tat,
        credits: None,
        balance: None,
        token: None,
        verdict,
        remaining,
    }
}

fn admit_cases() -> Vec<Case> {
    use Verdict::*;
    let burst1 = |c: Case| Case { burst: 1, ..c };
    let with = |c: Case, credits, balance| Case {
        credits,
        balance,
        ..c
    };
    let token = |c: Case, left| Case {
        token: Some(left),
        ..c
    };
    let edge = NEXT_HOUR_MS * 1000;
    vec![
        // GCRA: window edges.
        case("fresh bucket", T0, None, Allowed, 9),
        burst1(case("burst 1, fresh", T0, None, Allowed, 0)),
        burst1(case(
            "burst 1, 1µs before the interval",
            T0 + I - 1,
            Some(T0 + I),
            RateLimited,
            0,
        )),
        burst1(case(
            "burst 1, exactly at the interval",
            T0 + I,
            Some(T0 + I),
            Allowed,
            0,
        )),
        burst1(case(
            "burst 1, 1µs after the interval",
            T0 + I + 1,
            Some(T0 + I),
            Allowed,
            0,
        )),
        case("burst spent", T0, Some(T0 + 10 * I), RateLimited, 0),
        case(
            "burst spent, 1µs before one token",
            T0 + I - 1,
            Some(T0 + 10 * I),
            RateLimited,
            0,
        ),
        case(
            "burst spent, exactly one token",
            T0 + I,
            Some(T0 + 10 * I),
            Allowed,
            0,
        ),
        case(
            "burst spent, 1µs after one token",
            T0 + I + 1,
            Some(T0 + 10 * I),
            Allowed,
            0,
        ),
        case(
            "burst spent, 1µs before two tokens",
            T0 + 2 * I - 1,
            Some(T0 + 10 * I),
            Allowed,
            0,
        ),
        case(
            "burst spent, half refilled",
            T0 + 5 * I,
            Some(T0 + 10 * I),
            Allowed,
            4,
        ),
        case(
            "burst spent, exactly refilled",
            T0 + 10 * I,
            Some(T0 + 10 * I),
            Allowed,
            9,
        ),
        case("TAT long past", T0, Some(T0 - 100 * I), Allowed, 9),
        Case {
            interval: 86_400 * SEC,
            burst: 1_000,
            ..case(
                "one per day, burst 1000, 1µs short",
                T0 + 86_400 * SEC - 1,
                Some(T0 + 1_000 * 86_400 * SEC),
                RateLimited,
                0,
            )
        },
        // Refilling balances.
        with(
            case("hourly, nothing stored", T0, None, Allowed, 9),
            hourly(100, 1),
            None,
        ),
        with(
            case("hourly, spent", T0, None, InsufficientCredits, 9),
            hourly(100, 1),
            in_window(0, T0),
        ),
        with(
            case(
                "hourly, spent, 1µs before the refill",
                edge - 1,
                Some(T0 + 3 * I),
                InsufficientCredits,
                9,
            ),
            hourly(100, 1),
            in_window(0, T0),
        ),
        with(
            case(
                "hourly, spent, exactly at the refill",
                edge,
                None,
                Allowed,
                9,
            ),
            hourly(100, 1),
            in_window(0, T0),
        ),
        with(
            case("hourly, cost equals balance", T0, None, Allowed, 9),
            hourly(100, 5),
            in_window(5, T0),
        ),
        with(
            case(
                "hourly, cost above balance",
                T0,
                Some(T0 + 3 * I),
                InsufficientCredits,
                6,
            ),
            hourly(100, 6),
            in_window(5, T0),
        ),
        with(
            case(
                "hourly, rate limited first",
                T0,
                Some(T0 + 10 * I),
                RateLimited,
                0,
            ),
            hourly(100, 1),
            in_window(50, T0),
        ),
        // Prepaid balances.
        with(
            case("prepaid, nothing stored", T0, None, InsufficientCredits, 9),
            prepaid(1),
            None,
        ),
        with(
            case("prepaid, cost equals balance", T0, None, Allowed, 9),
            prepaid(10),
            balance(10),
        ),
        with(
            case(
                "prepaid, cost above balance",
                T0,
                None,
                InsufficientCredits,
                9,
            ),
            prepaid(11),
            balance(10),
        ),
        with(
            case("prepaid, free call, nothing stored", T0, None, Allowed, 9),
            prepaid(0),
            None,
        ),
        with(
            case(
                "prepaid, negative balance",
                T0,
                None,
                InsufficientCredits,
                9,
            ),
            prepaid(1),
            balance(-MAX),
        ),
        // Near the bound.
        with(
            case(
                "prepaid, cost = balance = MAX_CREDITS",
                T0,
                None,
                Allowed,
                9,
            ),
            prepaid(MAX_CREDITS),
            balance(MAX),
        ),
        with(
            case("hourly, budget MAX_CREDITS", T0, None, Allowed, 9),
            hourly(MAX_CREDITS, MAX_CREDITS),
            None,
        ),
        with(
            case(
                "hourly, MAX_CREDITS - 1 left",
                T0,
                None,
                InsufficientCredits,
                9,
            ),
            hourly(MAX_CREDITS, MAX_CREDITS),
            in_window(MAX - 1, T0),
        ),
        with(
            case("cost above 2^63", T0, None, InsufficientCredits, 9),
            prepaid(1 << 63),
            balance(MAX),
        ),
        // Short-lived tokens.
        token(case("token, 2 left", T0, None, Allowed, 9), Some(2)),
        token(
            case("token, used up", T0, None, RequestLimitExhausted, 9),
            Some(0),
        ),
        token(case("token revoked", T0, None, TokenRevoked, 0), None),
        token(
            with(
                case("token, credits short", T0, None, InsufficientCredits, 9),
                prepaid(3),
                balance(2),
            ),
            Some(5),
        ),
        token(
            case("token, rate limited", T0, Some(T0 + 10 * I), RateLimited, 0),
            Some(5),
        ),
        token(
            with(
                case("token and credits, all taken", T0, None, Allowed, 9),
                hourly(100, 7),
                None,
            ),
            Some(1),
        ),
    ]
}

/// What the Redis keys of an admission hold.
async fn redis_state(
    c: &mut redis::aio::MultiplexedConnection,
    a: &Admission,
) -> (Option<i64>, Option<CreditState>, Option<i64>) {
    let tat: Option<i64> = c.get(bucket_key(&a.owner, &a.bucket)).await.expect("tat");
    // Lua writes numbers as doubles ("1e+15" is possible): read them so.
    let (bal, win): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(credits_key(&a.owner))
        .arg("bal")
        .arg("win")
        .query_async(c)
        .await
        .expect("credits");
    let num = |s: String| s.parse::<f64>().expect("a number") as i64;
    let credits = bal.map(|b| CreditState {
        balance: num(b),
        window: win.map(num).unwrap_or(0),
    });
    let token: Option<i64> = match a.token {
        Some(id) => c.get(token_key(&a.owner, Some(id))).await.expect("token"),
        None => None,
    };
    (tat, credits, token)
}

#[tokio::test]
async fn admit_lua_and_the_rust_arithmetic_agree() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let mut c = raw(&server.url()).await;
    let cases = admit_cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut disagreements = Vec::new();
    for (i, k) in cases.iter().enumerate() {
        let id = Uuid::from_u128(i as u128 + 1);
        let a = Admission {
            owner: Owner::Account(format!("parity-{i}")),
            bucket: Bucket::AccountKey(id),
            interval_us: k.interval,
            burst: k.burst,
            credits: k.credits,
            token: k.token.map(|_| id),
        };
        let before = AdmitState {
            tat: k.tat,
            credits: k.balance,
            token_left: k.token.flatten(),
        };
        // The same state in Redis.
        if let Some(tat) = k.tat {
            let _: () = c
                .set(bucket_key(&a.owner, &a.bucket), tat)
                .await
                .expect("set tat");
        }
        if let Some(s) = k.balance {
            let _: () = c
                .hset_multiple(
                    credits_key(&a.owner),
                    &[("bal", s.balance), ("win", s.window)],
                )
                .await
                .expect("set credits");
        }
        if let Some(Some(left)) = k.token {
            let _: () = c
                .set(token_key(&a.owner, Some(id)), left)
                .await
                .expect("set token");
        }

        let (rust, after) = admit_at(k.now, &a, before);
        let lua = store.admit_at(&a, Some(k.now)).await;
        let (tat, credits, token_left) = redis_state(&mut c, &a).await;

        assert_eq!(rust.verdict, k.verdict, "{}: rust verdict", k.name);
        assert_eq!(rust.remaining, k.remaining, "{}: rust remaining", k.name);
        if rust.verdict == Verdict::Allowed {
            assert_eq!(
                after.tat,
                Some(k.tat.unwrap_or(k.now).max(k.now) + k.interval)
            );
        } else {
            assert_eq!(after, before, "{}: a refusal takes nothing", k.name);
        }
        let lua_state = AdmitState {
            tat,
            credits,
            token_left,
        };
        if lua.as_ref() != Ok(&rust) || lua_state != after {
            disagreements.push(format!(
                "{}:\n  rust {rust:?}\n       {after:?}\n  lua  {lua:?}\n       {lua_state:?}",
                k.name
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Parity: credits.lua against CreditCharge::add.

struct CreditCase {
    name: &'static str,
    now_ms: i64,
    policy: CreditCharge,
    state: Option<CreditState>,
    delta: i64,
    /// `Ok(new balance)` or `Err(balance unchanged)`.
    expect: Result<i64, i64>,
}

fn credit_cases() -> Vec<CreditCase> {
    let now_ms = T0 / 1000;
    let prepaid = CreditCharge {
        cost: 0,
        budget: 0,
        refill_ms: None,
    };
    let hourly = CreditCharge {
        cost: 0,
        budget: 100,
        refill_ms: Some(HOUR_MS),
    };
    let c = |name, state, delta, expect| CreditCase {
        name,
        now_ms,
        policy: prepaid,
        state,
        delta,
        expect,
    };
    let h = |name, now_ms, state, delta, expect| CreditCase {
        name,
        now_ms,
        policy: hourly,
        state,
        delta,
        expect,
    };
    let window = now_ms / HOUR_MS;
    let st = |balance, window| Some(CreditState { balance, window });
    vec![
        c("prepaid, read nothing", None, 0, Ok(0)),
        c("prepaid, top up nothing", None, 100, Ok(100)),
        c("prepaid, remove", st(100, 0), -30, Ok(70)),
        c("prepaid, up to the bound", st(0, 0), MAX, Ok(MAX)),
        c("prepaid, 1 past the bound", st(1, 0), MAX, Err(1)),
        c("prepaid, down to -bound", st(MAX, 0), -2 * MAX, Ok(-MAX)),
        c("prepaid, 1 below -bound", st(-MAX, 0), -1, Err(-MAX)),
        c("prepaid, i64::MIN", st(0, 0), i64::MIN, Err(0)),
        c("prepaid, i64::MAX", st(0, 0), i64::MAX, Err(0)),
        h("hourly, read nothing", now_ms, None, 0, Ok(100)),
        h("hourly, add in window", now_ms, st(3, window), 5, Ok(8)),
        h(
            "hourly, add 1 ms before the refill",
            NEXT_HOUR_MS - 1,
            st(3, window),
            5,
            Ok(8),
        ),
        h(
            "hourly, add exactly at the refill",
            NEXT_HOUR_MS,
            st(3, window),
            5,
            Ok(105),
        ),
        h(
            "hourly, read exactly at the refill",
            NEXT_HOUR_MS,
            st(3, window),
            0,
            Ok(100),
        ),
        h(
            "hourly, down to -bound",
            now_ms,
            None,
            -(100 + MAX),
            Ok(-MAX),
        ),
        CreditCase {
            policy: CreditCharge {
                budget: MAX_CREDITS,
                ..hourly
            },
            ..h("hourly, budget at the bound, +1", now_ms, None, 1, Err(MAX))
        },
    ]
}

#[tokio::test]
async fn credits_lua_and_the_rust_arithmetic_agree() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let mut c = raw(&server.url()).await;
    let mut disagreements = Vec::new();
    for (i, k) in credit_cases().iter().enumerate() {
        let owner = Owner::Account(format!("credits-{i}"));
        if let Some(s) = k.state {
            let _: () = c
                .hset_multiple(
                    credits_key(&owner),
                    &[("bal", s.balance), ("win", s.window)],
                )
                .await
                .expect("set credits");
        }
        let rust = k.policy.add(k.state, k.delta, k.now_ms);
        assert_eq!(rust.map(|s| s.balance), k.expect, "{}: rust", k.name);
        let lua = store
            .add_credits_at(&owner, k.delta, &k.policy, Some(k.now_ms))
            .await;
        let lua = match lua {
            Ok(b) => Ok(b),
            Err(StoreError::CreditRange { balance }) => Err(balance),
            Err(e) => panic!("{}: {e}", k.name),
        };
        let stored = redis_state(
            &mut c,
            &Admission {
                owner: owner.clone(),
                bucket: Bucket::Shared,
                interval_us: 1,
                burst: 1,
                credits: None,
                token: None,
            },
        )
        .await
        .1;
        // A read or a refused change writes nothing; a change writes the state.
        let written = match rust {
            Ok(s) if k.delta != 0 => Some(s),
            _ => k.state,
        };
        if lua != rust.map(|s| s.balance) || stored != written {
            disagreements.push(format!(
                "{}: rust {rust:?} (stored {written:?}), lua {lua:?} (stored {stored:?})",
                k.name
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Conformance: the same calls, the same answers, on both stores.

/// What the suite does to a store from outside its API: no endpoint changes
/// an account's plan, so the suite rewrites the account as an operator would.
enum Backdoor<'a> {
    Memory(&'a MemoryStore),
    Redis(&'a RedisStore, String),
}

impl Backdoor<'_> {
    async fn set_plan(&self, account: &str, plan: &str) {
        match self {
            Backdoor::Memory(m) => assert!(m.set_account_plan(account, plan)),
            Backdoor::Redis(store, url) => {
                let mut c = raw(url).await;
                let key = format!("tg:{{a:{account}}}:acct");
                let json: String = c.get(&key).await.expect("account record");
                let mut a: Account = serde_json::from_str(&json).expect("account json");
                a.plan = plan.to_string();
                let _: () = c
                    .set(&key, serde_json::to_string(&a).expect("json"))
                    .await
                    .expect("rewrite account");
                // What the listener does on an `*` invalidation.
                store.cache.expire_all();
            }
        }
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn key(
    token: &str,
    account: Option<&str>,
    plan: Option<&str>,
    created_at: DateTime<Utc>,
) -> KeyRecord {
    KeyRecord {
        id: Uuid::new_v4(),
        hash: KeyHash::of(token),
        account: account.map(str::to_string),
        plan: plan.map(str::to_string),
        name: token.to_string(),
        key_prefix: token.chars().take(12).collect(),
        kind: if account.is_some() {
            KeyKind::Standard
        } else {
            KeyKind::Trial
        },
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

fn call(path: &str, at: DateTime<Utc>) -> CallRecord {
    CallRecord {
        token: None,
        at,
        method: "GET".into(),
        path: path.into(),
        status: 200,
        latency_ms: 3,
    }
}

async fn conformance(store: &dyn Store, backdoor: Backdoor<'_>) {
    let now = Utc::now();
    let created = |minutes: i64| now - Span::minutes(60 - minutes);

    // Accounts.
    let acme = Account {
        id: "acme".into(),
        plan: "starter".into(),
        created_at: at("2025-01-02T03:04:05.678Z"),
    };
    assert_eq!(store.create_account(acme.clone()).await, Ok(acme.clone()));
    assert_eq!(
        store.create_account(acme.clone()).await,
        Err(StoreError::Conflict("account acme".into()))
    );
    assert_eq!(store.account("acme").await, Ok(Some(acme.clone())));
    assert_eq!(store.account("nobody").await, Ok(None));

    // The plan is the account's, read when the key is resolved.
    let k1 = key("tg_live_k1", Some("acme"), None, created(1));
    assert_eq!(
        store.insert_key(k1.clone(), None, now).await,
        Ok(k1.clone())
    );
    let identity = |key: &KeyRecord, plan: &str| {
        Ok(Some(Identity {
            key: key.clone(),
            plan: plan.into(),
        }))
    };
    assert_eq!(store.resolve(&k1.hash).await, identity(&k1, "starter"));
    backdoor.set_plan("acme", "pro").await;
    assert_eq!(store.resolve(&k1.hash).await, identity(&k1, "pro"));
    assert_eq!(
        store.account("acme").await.expect("ok").expect("acme").plan,
        "pro"
    );
    // A key's own plan wins (trial keys have one and no account).
    let trial = key("tg_trial_t1", None, Some("trial"), created(2));
    assert_eq!(
        store.insert_key(trial.clone(), Some(1), now).await,
        Ok(trial.clone())
    );
    assert_eq!(store.resolve(&trial.hash).await, identity(&trial, "trial"));
    // A key with neither an account that exists nor a plan is refused.
    assert_eq!(
        store
            .insert_key(key("tg_ghost", Some("ghost"), None, now), None, now)
            .await,
        Err(StoreError::NotFound("account ghost".into()))
    );
    assert_eq!(
        store
            .insert_key(key("tg_nothing", None, None, now), None, now)
            .await,
        Err(StoreError::NotFound("plan".into()))
    );
    assert_eq!(store.resolve(&KeyHash::of("tg_ghost")).await, Ok(None));
    assert_eq!(store.resolve(&KeyHash::of("tg_unknown")).await, Ok(None));

    // A duplicate hash is refused and changes nothing.
    let dup = key("tg_live_k1", Some("acme"), None, created(3));
    assert_eq!(
        store.insert_key(dup.clone(), None, now).await,
        Err(StoreError::Conflict("key".into()))
    );
    let dup_trial = key("tg_trial_t1", None, Some("other"), created(3));
    assert_eq!(
        store.insert_key(dup_trial.clone(), None, now).await,
        Err(StoreError::Conflict("key".into()))
    );
    assert_eq!(store.resolve(&k1.hash).await, identity(&k1, "pro"));
    assert_eq!(store.resolve(&trial.hash).await, identity(&trial, "trial"));
    assert_eq!(store.key(dup.id).await, Ok(None));
    assert_eq!(store.key(dup_trial.id).await, Ok(None));
    assert_eq!(store.list_keys("acme").await, Ok(vec![k1.clone()]));

    // The active-key cap counts neither revoked nor expired keys.
    let capped = Account {
        id: "capped".into(),
        plan: "two".into(),
        created_at: now,
    };
    store.create_account(capped).await.expect("account");
    let c1 = key("tg_c1", Some("capped"), None, created(10));
    let c2 = key("tg_c2", Some("capped"), None, created(11));
    let c3 = KeyRecord {
        expires_at: Some(now - Span::minutes(10)),
        ..key("tg_c3", Some("capped"), None, created(12))
    };
    let c4 = key("tg_c4", Some("capped"), None, created(13));
    let c5 = key("tg_c5", Some("capped"), None, created(14));
    let cap = Some(2);
    assert_eq!(store.insert_key(c1.clone(), cap, now).await, Ok(c1.clone()));
    assert_eq!(store.insert_key(c2.clone(), cap, now).await, Ok(c2.clone()));
    assert_eq!(
        store.insert_key(c5.clone(), cap, now).await,
        Err(StoreError::KeyLimit { max: 2 })
    );
    let revoked_at = now - Span::seconds(30);
    let c2_revoked = KeyRecord {
        revoked_at: Some(revoked_at),
        ..c2.clone()
    };
    assert_eq!(
        store.revoke_key(c2.id, revoked_at).await,
        Ok(Some(c2_revoked.clone()))
    );
    assert_eq!(store.insert_key(c3.clone(), cap, now).await, Ok(c3.clone()));
    assert_eq!(store.insert_key(c4.clone(), cap, now).await, Ok(c4.clone()));
    assert_eq!(
        store.insert_key(c5.clone(), cap, now).await,
        Err(StoreError::KeyLimit { max: 2 })
    );
    assert_eq!(store.key(c5.id).await, Ok(None));
    assert_eq!(
        store.insert_key(c5.clone(), None, now).await,
        Ok(c5.clone())
    );
    assert_eq!(
        store.list_keys("capped").await,
        Ok(vec![
            c5.clone(),
            c4.clone(),
            c3.clone(),
            c2_revoked.clone(),
            c1.clone()
        ])
    );

    // Revocation is idempotent: the first time stays.
    assert_eq!(
        store.revoke_key(c2.id, now).await,
        Ok(Some(c2_revoked.clone()))
    );
    assert_eq!(store.key(c2.id).await, Ok(Some(c2_revoked.clone())));
    assert_eq!(store.resolve(&c2.hash).await, identity(&c2_revoked, "two"));
    assert_eq!(store.revoke_key(Uuid::new_v4(), now).await, Ok(None));
    assert_eq!(store.list_keys("nobody").await, Ok(vec![]));

    // Credits: a prepaid balance, its bound, and a refilling one.
    let acme_owner = Owner::Account("acme".into());
    let prepaid = CreditCharge {
        cost: 0,
        budget: 0,
        refill_ms: None,
    };
    assert_eq!(store.credit_balance(&acme_owner, &prepaid).await, Ok(0));
    assert_eq!(store.add_credits(&acme_owner, 100, &prepaid).await, Ok(100));
    assert_eq!(store.add_credits(&acme_owner, -30, &prepaid).await, Ok(70));
    assert_eq!(
        store.add_credits(&acme_owner, MAX, &prepaid).await,
        Err(StoreError::CreditRange { balance: 70 })
    );
    assert_eq!(store.credit_balance(&acme_owner, &prepaid).await, Ok(70));
    assert_eq!(
        store.add_credits(&acme_owner, -(MAX + 70), &prepaid).await,
        Ok(-MAX)
    );
    assert_eq!(
        store.add_credits(&acme_owner, -1, &prepaid).await,
        Err(StoreError::CreditRange { balance: -MAX })
    );
    assert_eq!(
        store.add_credits(&acme_owner, MAX + 5, &prepaid).await,
        Ok(5)
    );
    // A century-long window: no refill boundary can fall inside the test.
    let pooled = CreditCharge {
        cost: 0,
        budget: 500,
        refill_ms: Some(100 * 365 * 86_400_000),
    };
    let pool = Owner::Plan("pool".into());
    assert_eq!(store.credit_balance(&pool, &pooled).await, Ok(500));
    assert_eq!(store.add_credits(&pool, 25, &pooled).await, Ok(525));
    assert_eq!(store.credit_balance(&pool, &pooled).await, Ok(525));

    // Admission with credits (hourly bucket, burst 10: nothing refills here).
    let admission = |bucket: Uuid, credits, token| Admission {
        owner: acme_owner.clone(),
        bucket: Bucket::AccountKey(bucket),
        interval_us: 3_600 * SEC,
        burst: 10,
        credits,
        token,
    };
    let charge = |cost| Some(CreditCharge { cost, ..prepaid });
    let bucket = Uuid::new_v4();
    let summary = |o: AdmitOutcome| {
        (
            o.verdict,
            o.remaining,
            o.credits,
            o.credits_refill_in,
            o.token_remaining,
        )
    };
    let o = store
        .admit(&admission(bucket, charge(5), None))
        .await
        .expect("admit");
    assert_eq!(summary(o), (Verdict::Allowed, 9, Some(0), None, None));
    let o = store
        .admit(&admission(bucket, charge(1), None))
        .await
        .expect("admit");
    assert_eq!(
        summary(o),
        (Verdict::InsufficientCredits, 8, Some(0), None, None)
    );
    let o = store
        .admit(&admission(bucket, None, None))
        .await
        .expect("admit");
    assert_eq!(summary(o), (Verdict::Allowed, 8, None, None, None));

    // Short-lived tokens.
    let parent = k1.id;
    let other_parent = Uuid::new_v4();
    let token = |minute: i64, parent: Uuid, limit: u64| TokenRecord {
        id: Uuid::new_v4(),
        parent,
        request_limit: limit,
        created_at: created(20 + minute),
        expires_at: now + Span::hours(1),
    };
    let t1 = token(1, parent, 2);
    let t2 = token(2, parent, 3);
    let t3 = token(3, other_parent, 4);
    let expired = TokenRecord {
        expires_at: now - Span::seconds(1),
        ..token(4, parent, 5)
    };
    store
        .create_tokens(
            &acme_owner,
            &[t1.clone(), t2.clone(), t3.clone(), expired.clone()],
        )
        .await
        .expect("create tokens");
    assert_eq!(
        store.list_tokens(&acme_owner, parent, now).await,
        Ok(vec![(t1.clone(), 2), (t2.clone(), 3)])
    );
    assert_eq!(
        store.token(&acme_owner, t1.id, now).await,
        Ok(Some((t1.clone(), 2)))
    );
    assert_eq!(store.token(&acme_owner, expired.id, now).await, Ok(None));
    let stranger = Owner::Account("capped".into());
    assert_eq!(store.token(&stranger, t1.id, now).await, Ok(None));
    assert_eq!(store.list_tokens(&stranger, parent, now).await, Ok(vec![]));
    // A token's requests are taken by admission.
    let tb = Uuid::new_v4();
    for (remaining, left) in [(9, 1), (8, 0)] {
        let o = store
            .admit(&admission(tb, None, Some(t1.id)))
            .await
            .expect("admit");
        assert_eq!(
            summary(o),
            (Verdict::Allowed, remaining, None, None, Some(left))
        );
    }
    let o = store
        .admit(&admission(tb, None, Some(t1.id)))
        .await
        .expect("admit");
    assert_eq!(
        summary(o),
        (Verdict::RequestLimitExhausted, 7, None, None, Some(0))
    );
    assert_eq!(
        store.token(&acme_owner, t1.id, now).await,
        Ok(Some((t1.clone(), 0)))
    );
    // Revocation: only by the token's own parent, once.
    assert_eq!(
        store.revoke_token(&acme_owner, other_parent, t1.id).await,
        Ok(false)
    );
    assert_eq!(
        store.revoke_token(&acme_owner, parent, t1.id).await,
        Ok(true)
    );
    assert_eq!(
        store.revoke_token(&acme_owner, parent, t1.id).await,
        Ok(false)
    );
    assert_eq!(
        store
            .revoke_token(&acme_owner, parent, Uuid::new_v4())
            .await,
        Ok(false)
    );
    let o = store
        .admit(&admission(tb, None, Some(t1.id)))
        .await
        .expect("admit");
    assert_eq!(summary(o), (Verdict::TokenRevoked, 0, None, None, None));
    assert_eq!(
        store.list_tokens(&acme_owner, parent, now).await,
        Ok(vec![(t2.clone(), 3)])
    );
    assert_eq!(store.revoke_tokens_of(&acme_owner, parent).await, Ok(1));
    assert_eq!(store.revoke_tokens_of(&acme_owner, parent).await, Ok(0));
    assert_eq!(
        store.list_tokens(&acme_owner, parent, now).await,
        Ok(vec![])
    );
    assert_eq!(store.token(&acme_owner, t2.id, now).await, Ok(None));
    assert_eq!(
        store.list_tokens(&acme_owner, other_parent, now).await,
        Ok(vec![(t3.clone(), 4)])
    );
    assert_eq!(
        store.revoke_tokens_of(&acme_owner, other_parent).await,
        Ok(1)
    );

    // Usage: the last use, the recent calls newest first, daily counts.
    let day = |d: u32, h: u32| {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0)
            .single()
            .expect("date")
    };
    let used = k1.id;
    let batch = |calls: Vec<CallRecord>| {
        calls
            .into_iter()
            .map(|call| UsageEvent { key: used, call })
            .collect::<Vec<_>>()
    };
    let c_a = call("/a", day(8, 23));
    let c_b = call("/b", day(10, 9));
    let c_c = call("/c", day(10, 8));
    let c_d = call("/d", day(10, 12));
    store
        .record_usage(batch(vec![c_a.clone(), c_b.clone(), c_c.clone()]))
        .await
        .expect("usage");
    store
        .record_usage(batch(vec![c_d.clone()]))
        .await
        .expect("usage");
    let days = |counts: [u64; 3]| {
        ["2025-03-08", "2025-03-09", "2025-03-10"]
            .iter()
            .zip(counts)
            .map(|(d, n)| (d.to_string(), n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        store.usage(used, 3, day(10, 20)).await,
        Ok(KeyUsage {
            last_used_at: Some(day(10, 12)),
            recent: vec![c_d, c_c, c_b, c_a],
            daily: days([1, 0, 3]),
        })
    );
    assert_eq!(
        store.usage(Uuid::new_v4(), 3, day(10, 20)).await,
        Ok(KeyUsage {
            last_used_at: None,
            recent: vec![],
            daily: days([0, 0, 0]),
        })
    );
}

#[tokio::test]
async fn conformance_memory() {
    let store = MemoryStore::new();
    conformance(&store, Backdoor::Memory(&store)).await;
}

#[tokio::test]
async fn conformance_redis() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    conformance(&store, Backdoor::Redis(&store, server.url())).await;
}

/// A record that does not parse is `Corrupt`, not `Unavailable`.
#[tokio::test]
async fn a_corrupt_record_in_redis_is_reported_as_corrupt() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let mut c = raw(&server.url()).await;
    let hash = KeyHash::of("tg_corrupt");
    let kh = format!("tg:kh:{}", hash.to_hex());
    let _: () = c.set(&kh, "{\"key\":").await.expect("set");
    let _: () = c.set("tg:{a:bad}:acct", "not json").await.expect("set");
    assert_eq!(
        store.resolve(&hash).await,
        Err(StoreError::Corrupt {
            what: format!("key record {kh}"),
            detail: "EOF while parsing a value at line 1 column 7".into(),
        })
    );
    assert_eq!(
        store.account("bad").await,
        Err(StoreError::Corrupt {
            what: "account tg:{a:bad}:acct".into(),
            detail: "expected ident at line 1 column 2".into(),
        })
    );
}
