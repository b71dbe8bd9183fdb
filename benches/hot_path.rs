//! Criterion micro-benchmarks of the per-request work: GCRA, key hashing, path
//! normalisation, credential parsing and the whole in-memory admission.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use tollgate::auth::credential::{extract, CredentialPolicy};
use tollgate::auth::jwt::{looks_like_jwt, TokenClaims, TokenSigner};
use tollgate::auth::keys::{KeyFormat, KeyHash};
use tollgate::metering::credits::CreditCharge;
use tollgate::metering::{gcra, Admission};
use tollgate::routing::normalize;
use tollgate::store::memory::MemoryStore;
use tollgate::store::Meter;

fn benches(c: &mut Criterion) {
    c.bench_function("gcra_step", |b| {
        let mut tat = None;
        let mut now = 0i64;
        b.iter(|| {
            now += 1_000;
            let s = gcra::step(black_box(now), tat, 1_000_000, 60, 1);
            tat = Some(s.tat);
            s.allowed
        })
    });

    let token = KeyFormat::default().generate();
    c.bench_function("key_hash_sha256", |b| {
        b.iter(|| KeyHash::of(black_box(&token)))
    });
    c.bench_function("key_format_check", |b| {
        let f = KeyFormat::default();
        b.iter(|| f.matches(black_box(&token)))
    });

    c.bench_function("path_normalise_plain", |b| {
        b.iter(|| {
            normalize(black_box(
                b"/api/klines?symbol=BTCUSDT&interval=5m&limit=100",
            ))
        })
    });
    c.bench_function("path_normalise_tricky", |b| {
        b.iter(|| {
            normalize(black_box(
                b"/api//health/%2e%2e/./markets/binance/symbols?x=1",
            ))
        })
    });

    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(HeaderValue::from_static("x")),
    );
    headers.insert("user-agent", HeaderValue::from_static("bench"));
    let policy = CredentialPolicy::default();
    c.bench_function("credential_parse_bearer", |b| {
        b.iter(|| extract(black_box(&headers), &policy))
    });

    let signer = TokenSigner::new(
        "tollgate",
        "k1",
        &[(
            "k1".to_string(),
            "bench-secret-0123456789abcdef0123456789".to_string(),
        )],
    );
    let now = jsonwebtoken::get_current_timestamp();
    let claims = TokenClaims {
        iss: "tollgate".into(),
        sub: "acme".into(),
        jti: uuid::Uuid::new_v4(),
        parent: uuid::Uuid::new_v4(),
        plan: "startup".into(),
        lim: 5000,
        iat: now,
        nbf: now,
        exp: now + 3600,
    };
    let jwt = signer.mint(&claims).unwrap_or_else(|e| panic!("mint: {e}"));
    c.bench_function("jwt_verify_hs256", |b| {
        b.iter(|| signer.verify(black_box(&jwt), now))
    });
    c.bench_function("jwt_shape_check", |b| {
        b.iter(|| looks_like_jwt(black_box(&jwt)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let store = MemoryStore::new();
    let admission = Admission {
        owner: tollgate::metering::Owner::Account("bench".into()),
        bucket: tollgate::metering::Bucket::AccountKey(uuid::Uuid::from_u128(1)),
        interval_us: 1,
        burst: u32::MAX,
        credits: None,
        token: None,
    };
    let charged = Admission {
        credits: Some(CreditCharge {
            cost: 1,
            budget: u64::MAX / 4,
            refill_ms: Some(3_600_000),
        }),
        ..admission.clone()
    };
    c.bench_function("memory_admit", |b| {
        b.iter(|| rt.block_on(store.admit(black_box(&admission))))
    });
    c.bench_function("memory_admit_with_credits", |b| {
        b.iter(|| rt.block_on(store.admit(black_box(&charged))))
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
