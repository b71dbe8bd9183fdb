//! Coalesced admissions (`src/store/redis/batch.rs`, `admit.lua`) on a real
//! redis-server and a real Redis Cluster:
//!
//! - a batch of admissions, in one script call, answers and stores exactly what
//!   the same admissions one call each do (and what the memory store's
//!   arithmetic does), on a fixed clock;
//! - concurrent `Meter::admit` calls on one thread share script calls and stay
//!   exact: a bucket admits its burst, a prepaid balance pays exactly what it
//!   holds, on a single node and (per slot) on a Cluster;
//! - an admission whose key holds the wrong type fails alone, not its batch;
//! - a flushed script cache falls back to `EVAL`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::*;

use futures_util::future::join_all;
use redis::AsyncCommands;
use std::collections::HashMap;
use tollgate::metering::credits::{CreditCharge, CreditState};
use tollgate::metering::{Admission, AdmitOutcome, Bucket, Owner, Verdict};
use tollgate::store::memory::{admit_at, AdmitState};
use tollgate::store::redis::{bucket_key, credits_key, token_key};
use tollgate::store::{AccountStore, Meter, StoreError};
use uuid::Uuid;

/// A fixed "now" in µs (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000_000_000;
/// One token a minute: every bucket key outlives a test by far.
const MINUTE: i64 = 60_000_000;
/// One token an hour: no token comes back during a concurrency test.
const HOUR: i64 = 3_600_000_000;

fn admission(owner: &Owner, bucket: Bucket, interval_us: i64, burst: u32) -> Admission {
    Admission {
        owner: owner.clone(),
        bucket,
        interval_us,
        burst,
        credits: None,
        token: None,
    }
}

fn prepaid(cost: u64) -> Option<CreditCharge> {
    Some(CreditCharge {
        cost,
        budget: 0,
        refill_ms: None,
    })
}

fn hourly(budget: u64, cost: u64) -> Option<CreditCharge> {
    Some(CreditCharge {
        cost,
        budget,
        refill_ms: Some(3_600_000),
    })
}

/// One letter per outcome: Allowed, rate Limited, Credits short, token
/// limit eXhausted, token Revoked, or Error.
fn verdicts<'a>(
    outcomes: impl IntoIterator<Item = &'a Result<AdmitOutcome, StoreError>>,
) -> String {
    let letter = |o: &Result<AdmitOutcome, StoreError>| match o.as_ref().map(|o| o.verdict) {
        Ok(Verdict::Allowed) => 'A',
        Ok(Verdict::RateLimited) => 'L',
        Ok(Verdict::InsufficientCredits) => 'C',
        Ok(Verdict::RequestLimitExhausted) => 'X',
        Ok(Verdict::TokenRevoked) => 'R',
        Err(_) => 'E',
    };
    outcomes.into_iter().map(letter).collect()
}

/// State before the sequence: prepaid balances and short-lived token counters.
#[derive(Default)]
struct Seed {
    balances: Vec<(Owner, i64)>,
    tokens: Vec<(Owner, Uuid, i64)>,
}

async fn plant(c: &mut redis::aio::MultiplexedConnection, seed: &Seed) {
    let mut p = redis::pipe();
    p.cmd("FLUSHALL");
    for (owner, bal) in &seed.balances {
        p.hset_multiple(credits_key(owner), &[("bal", *bal), ("win", 0)]);
    }
    for (owner, id, left) in &seed.tokens {
        p.set(token_key(owner, Some(*id)), left);
    }
    p.query_async::<()>(c).await.expect("seed");
}

/// Every key with what it holds (strings and hashes), sorted.
async fn dump(c: &mut redis::aio::MultiplexedConnection) -> Vec<(String, String)> {
    let mut keys: Vec<String> = c.keys("*").await.expect("keys");
    keys.sort();
    let mut all = Vec::new();
    for k in keys {
        let kind: String = c.key_type(&k).await.expect("type");
        let value = if kind == "hash" {
            let mut h: Vec<(String, String)> = c.hgetall(&k).await.expect("hgetall");
            h.sort();
            format!("{h:?}")
        } else {
            c.get::<_, String>(&k).await.expect("get")
        };
        all.push((k, value));
    }
    all
}

/// The sequence through the memory store's arithmetic, on the seeded state.
fn reference(list: &[Admission], seed: &Seed) -> Vec<Result<AdmitOutcome, StoreError>> {
    let mut tats = HashMap::new();
    let held = |balance| CreditState { balance, window: 0 };
    let mut credits: HashMap<String, CreditState> = (seed.balances.iter())
        .map(|(o, b)| (credits_key(o), held(*b)))
        .collect();
    let mut tokens: HashMap<String, i64> = (seed.tokens.iter())
        .map(|(o, id, left)| (token_key(o, Some(*id)), *left))
        .collect();
    let mut out = Vec::new();
    for a in list {
        let (bk, ck) = (bucket_key(&a.owner, &a.bucket), credits_key(&a.owner));
        let tk = a.token.map(|id| token_key(&a.owner, Some(id)));
        let before = AdmitState {
            tat: tats.get(&bk).copied(),
            credits: credits.get(&ck).copied(),
            token_left: tk.as_ref().and_then(|k| tokens.get(k).copied()),
        };
        let (outcome, after) = admit_at(T0, a, before);
        tats.extend(after.tat.map(|t| (bk, t)));
        credits.extend(after.credits.map(|c| (ck, c)));
        tokens.extend(tk.zip(after.token_left));
        out.push(Ok(outcome));
    }
    out
}

#[tokio::test]
async fn a_batch_answers_and_stores_what_the_same_admissions_one_by_one_do() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let mut c = raw(&server.url()).await;
    let id = Uuid::from_u128;
    let [acme, beta, gamma] = ["acme", "beta", "gamma"].map(|a| Owner::Account(a.into()));
    let plan = Owner::Plan("demo".into());
    let addr = Owner::Client("10.0.0.1".into());
    let trial = Owner::Key(id(9));
    // Burst 3; burst 4 charging an hourly budget of 6 by 2.
    let k1 = || admission(&acme, Bucket::AccountKey(id(1)), MINUTE, 3);
    let k2 = || Admission {
        credits: hourly(6, 2),
        ..admission(&acme, Bucket::AccountKey(id(2)), MINUTE, 4)
    };
    let paid = |cost| Admission {
        credits: prepaid(cost),
        ..admission(&beta, Bucket::AccountKey(id(3)), MINUTE, 10)
    };
    let sh = || admission(&plan, Bucket::Shared, MINUTE, 2);
    let ip = || admission(&addr, Bucket::Client, MINUTE, 1);
    let tok = |t| Admission {
        token: Some(id(t)),
        ..admission(&trial, Bucket::OwnKey, MINUTE, 5)
    };
    // Prepaid (when cost > 0) and a token.
    let g = |cost, t| Admission {
        credits: (cost > 0).then_some(prepaid(cost)).flatten(),
        token: Some(id(t)),
        ..admission(&gamma, Bucket::AccountKey(id(4)), MINUTE, 2)
    };
    let seed = Seed {
        balances: vec![(beta.clone(), 7), (gamma.clone(), 3)],
        // Token 11 has 2 requests left, 13 none, 14 five; 12 is revoked.
        tokens: vec![
            (trial.clone(), id(11), 2),
            (trial.clone(), id(13), 0),
            (gamma.clone(), id(14), 5),
        ],
    };
    let list = [
        [k1(), paid(3), sh(), tok(11), k2(), ip()],
        [k1(), ip(), paid(3), tok(12), k2(), sh()],
        [paid(3), tok(11), k1(), k1(), sh(), tok(11)],
        [k2(), k2(), paid(1), tok(13), paid(1), g(2, 14)],
        [g(2, 14), g(0, 14), g(2, 14), g(1, 12), ip(), paid(0)],
    ]
    .concat();

    plant(&mut c, &seed).await;
    let mut one_by_one = Vec::new();
    for a in &list {
        one_by_one.push(store.admit_at(a, Some(T0)).await);
    }
    let state_one_by_one = dump(&mut c).await;

    plant(&mut c, &seed).await;
    let batched = store
        .admit_all_at(&list, Some(T0))
        .await
        .expect("one script call");
    let state_batched = dump(&mut c).await;

    assert_eq!(verdicts(&one_by_one), "AAAAAAALARAACAALLXACAXCACALRLA");
    assert_eq!(batched, one_by_one, "a batch is its admissions in order");
    assert_eq!(state_batched, state_one_by_one, "and stores the same");
    assert_eq!(batched, reference(&list, &seed), "as the memory store");
    assert!(state_batched.len() >= 10, "{state_batched:?}");
    assert_eq!(store.admit_all_at(&[], Some(T0)).await, Ok(vec![]));
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_admissions_share_script_calls_and_admit_exactly_the_burst() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let owner = Owner::Account("crowd".into());
    // Loads the script, so that every call below is an EVALSHA.
    let warm = admission(&owner, Bucket::Shared, HOUR, 1);
    assert_eq!(store.admit(&warm).await.unwrap().verdict, Verdict::Allowed);
    server.cli(&["CONFIG", "RESETSTAT"]);

    let a = admission(&owner, Bucket::AccountKey(Uuid::from_u128(1)), HOUR, 150);
    let outcomes = join_all((0..400).map(|_| store.admit(&a))).await;
    let v = verdicts(&outcomes);
    assert_eq!((v.matches('A').count(), v.matches('L').count()), (150, 250));

    let evalsha = server.command_calls("evalsha");
    eprintln!("{evalsha} EVALSHA for 400 concurrent admissions");
    assert!((1..400).contains(&evalsha), "{evalsha} EVALSHA for 400");
    // A script call reads each key once, however many of its admissions use it.
    assert_eq!(server.command_calls("get"), evalsha, "one GET per call");
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_admissions_on_a_cluster_are_exact_per_owner() {
    let cluster = RedisCluster::start();
    let urls = cluster.nodes.iter().map(RedisServer::url).collect();
    let store = connected_store(urls, true).await;
    let owners: Vec<Owner> = (0..20).map(|i| Owner::Account(format!("o{i}"))).collect();
    let slots: std::collections::HashSet<String> = (owners.iter())
        .map(|o| cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", &credits_key(o)]))
        .collect();
    assert!(slots.len() > 10, "owners in {} slots", slots.len());
    cluster.reset_stats();

    // Round after round, every owner once: each batch spans many slots.
    let round = owners
        .iter()
        .map(|o| admission(o, Bucket::Shared, HOUR, 10));
    let all: Vec<Admission> = round.cycle().take(30 * owners.len()).collect();
    let outcomes = join_all(all.iter().map(|a| store.admit(a))).await;
    for (i, owner) in owners.iter().enumerate() {
        let v = verdicts(outcomes.iter().skip(i).step_by(owners.len()));
        let counts = (v.matches('A').count(), v.matches('L').count());
        assert_eq!(counts, (10, 20), "{owner}: {v}");
    }
    let evalsha = cluster.command_calls("evalsha");
    eprintln!("{evalsha} EVALSHA for 600 concurrent admissions on the cluster");
    assert!(evalsha < 600, "{evalsha} EVALSHA: not coalesced");
    // One GET per bucket per call: at least one per call, never one per admission.
    let gets = cluster.command_calls("get");
    assert!(
        (evalsha..600).contains(&gets),
        "{gets} GET for {evalsha} calls"
    );
}

#[tokio::test]
async fn a_key_of_the_wrong_type_fails_its_admission_alone() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let mut c = raw(&server.url()).await;
    let [good, bad, broke] = ["good", "bad", "broke"].map(|a| Owner::Account(a.into()));
    let bad_bucket = admission(&bad, Bucket::Shared, MINUTE, 5);
    // A credit balance that is not a hash fails too, before anything is written.
    let bad_credits = Admission {
        credits: prepaid(1),
        ..admission(&broke, Bucket::Shared, MINUTE, 5)
    };
    let _: () = (redis::pipe().lpush(bucket_key(&bad, &Bucket::Shared), "x"))
        .set(credits_key(&broke), "x")
        .query_async(&mut c)
        .await
        .expect("wrong types");
    let ok = Admission {
        credits: hourly(10, 4),
        ..admission(&good, Bucket::Shared, MINUTE, 5)
    };
    let list = [ok.clone(), bad_bucket, ok.clone(), bad_credits, ok.clone()];
    let outcomes = store.admit_all_at(&list, Some(T0)).await.expect("batch");

    assert_eq!(verdicts(&outcomes), "AEAEC");
    for i in [1, 3] {
        let Err(StoreError::Unavailable(m)) = &outcomes[i] else {
            panic!("{i}: {:?}", outcomes[i]);
        };
        assert!(m.contains("WRONGTYPE"), "{m}");
    }
    let good_ones = [0, 2, 4].map(|i| outcomes[i].clone()).to_vec();
    let three = [ok.clone(), ok.clone(), ok];
    assert_eq!(good_ones, reference(&three, &Seed::default()));
    // The failed admissions changed nothing; the good ones took 8 credits.
    let after: (i64, Option<String>, String) = (redis::pipe())
        .llen(bucket_key(&bad, &Bucket::Shared))
        .get(bucket_key(&broke, &Bucket::Shared))
        .hget(credits_key(&good), "bal")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(after, (1, None, "2".into()));
}

#[tokio::test]
async fn a_flushed_script_cache_falls_back_to_eval() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let a = admission(&Owner::Plan("demo".into()), Bucket::Shared, HOUR, 10);
    assert_eq!(store.admit(&a).await.unwrap().remaining, 9);
    server.cli(&["SCRIPT", "FLUSH"]);
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert_eq!(store.admit(&a).await.unwrap().remaining, 8);
    assert_eq!(server.command_calls("eval"), 1, "the text, once");
    assert_eq!(store.admit(&a).await.unwrap().remaining, 7);
    assert_eq!(server.command_calls("eval"), 1, "then by its SHA1 again");
    assert_eq!(server.command_calls("evalsha"), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_charges_spend_exactly_the_prepaid_balance() {
    let server = RedisServer::start();
    let store = connected_store(vec![server.url()], false).await;
    let owner = Owner::Account("payer".into());
    let policy = prepaid(3).unwrap();
    assert_eq!(store.add_credits(&owner, 100, &policy).await, Ok(100));
    let a = Admission {
        credits: Some(policy),
        ..admission(&owner, Bucket::Shared, HOUR, 1_000)
    };
    let outcomes = join_all((0..200).map(|_| store.admit(&a))).await;
    let v = verdicts(&outcomes);
    assert_eq!((v.matches('A').count(), v.matches('C').count()), (33, 167));
    // Each admitted charge saw the balance the previous one left.
    let mut balances: Vec<i64> = (outcomes.iter().flatten())
        .filter(|o| o.verdict == Verdict::Allowed)
        .map(|o| o.credits.unwrap())
        .collect();
    balances.sort_unstable();
    assert_eq!(balances, (0..33).map(|k| 1 + 3 * k).collect::<Vec<_>>());
    assert_eq!(store.credit_balance(&owner, &policy).await, Ok(1));
}
