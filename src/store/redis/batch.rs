//! Coalesced admissions: the admissions that queue up on a proxy thread while
//! its previous script call is in flight go to Redis together, as one
//! `EVALSHA` of `admit.lua` per batch (per Cluster slot on a Cluster). Redis
//! runs them one after the other on one clock, each all or nothing, so the
//! answers are those of one call each at that instant; Redis parses one
//! command, reads the clock once and wakes once for the whole batch, and the
//! proxy makes one write and one read.
//!
//! Each runtime thread has its own queue, batcher task and Redis connection
//! (in a thread local): no request wakes another thread, neither to be
//! queued nor to reach Redis, and its reply comes back on its own thread.
//! Until a thread's own connection is up, its batches use the store's shared
//! one. The queue is unbounded, but it holds at most the requests in flight
//! on that thread; each caller waits for its reply under the store's
//! deadline.

use super::conn::Conn;
use super::{Link, StoreError};
use crate::config::RedisSettings;
use crate::metrics::metrics;
use redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The script; [`Admissions`] calls it by its SHA1 and sends the text only
/// when Redis does not have it yet.
pub(super) const ADMIT_LUA: &str = include_str!("admit.lua");

/// Most admissions in one script call (Redis runs a call to its end before
/// anything else: this bounds the time other clients wait, ~2 µs each).
pub const MAX_BATCH: usize = 128;

/// `admit.lua`'s reply for one admission: code, remaining, retry after (µs),
/// reset after (µs), balance, refill in (ms), token requests left.
pub(super) type Reply = [i64; 7];

/// One admission: its keys and `admit.lua`'s seven arguments for it.
pub(super) struct Job {
    /// The bucket key.
    pub bucket: String,
    /// The credits and token keys, when they are used (the script never
    /// touches an unused one: the bucket key stands in for it).
    pub credits: Option<String>,
    pub token: Option<String>,
    pub args: [i64; 7],
    /// The Cluster slot of the owner's hash tag.
    pub slot: u16,
}

/// A job waiting for its batch.
struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

thread_local! {
    /// This thread's queues, by [`Admissions::id`].
    static QUEUES: RefCell<Vec<(u64, mpsc::UnboundedSender<Queued>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Tells stores apart in [`QUEUES`] (tests run several in one thread).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The admission batchers of one store.
pub(super) struct Admissions {
    id: u64,
    link: Arc<Link>,
    settings: RedisSettings,
    sha: String,
    deadline: Duration,
}

impl Admissions {
    pub fn new(link: Arc<Link>, settings: &RedisSettings) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            link,
            settings: settings.clone(),
            sha: redis::Script::new(ADMIT_LUA).get_hash().to_string(),
            deadline: settings.timeout,
        }
    }

    /// Queues `job` on this thread's batcher (started on first use, in the
    /// current runtime) and waits for its reply, at most the deadline.
    pub async fn admit(self: &Arc<Self>, job: Job) -> Result<Reply, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Queued { job, reply: tx });
        match tokio::time::timeout(self.deadline, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(StoreError::Unavailable("redis batcher stopped".into())),
            Err(_) => {
                metrics()
                    .redis_errors
                    .with_label_values(&["admit", "timeout"])
                    .inc();
                Err(StoreError::Unavailable("redis admit timed out".into()))
            }
        }
    }

    fn enqueue(self: &Arc<Self>, queued: Queued) {
        QUEUES.with(|queues| {
            let mut queues = queues.borrow_mut();
            let mut queued = queued;
            if let Some(i) = queues.iter().position(|(id, _)| *id == self.id) {
                match queues[i].1.send(queued) {
                    Ok(()) => return,
                    // Its runtime is gone (a test's): start another here.
                    Err(mpsc::error::SendError(back)) => {
                        queues.swap_remove(i);
                        queued = back;
                    }
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(self.clone().run(rx));
            // The receiver is alive: the task owns it.
            let _ = tx.send(queued);
            queues.push((self.id, tx));
        });
    }

    /// The batcher: takes whatever has queued up, sends it, answers it.
    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Queued>) {
        let own = Arc::new(OnceLock::new());
        tokio::spawn(connect_own(self.settings.clone(), own.clone()));
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let conn = own.get().cloned().map_or_else(|| self.link.conn(), Ok);
            self.flush(conn, &mut batch).await;
        }
    }

    /// Sends `batch` (one call, or one per slot on a Cluster, concurrently)
    /// and answers every caller; leaves `batch` empty.
    async fn flush(&self, conn: Result<Conn, StoreError>, batch: &mut Vec<Queued>) {
        // A caller that gave up (its deadline passed, its request ended) is
        // not charged: its admission is not sent.
        batch.retain(|q| !q.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        metrics().redis_admit_batch.observe(batch.len() as f64);
        let conn = match conn {
            Ok(c) => c,
            Err(e) => return answer(batch.drain(..), Err(e)),
        };
        if matches!(conn, Conn::Cluster(_)) {
            let mut by_slot: BTreeMap<u16, Vec<Queued>> = BTreeMap::new();
            for q in batch.drain(..) {
                by_slot.entry(q.job.slot).or_default().push(q);
            }
            let calls = by_slot.into_values().map(|group| {
                let conn = conn.clone();
                async move {
                    let replies = self.exchange(conn, None, &group).await;
                    answer(group, replies);
                }
            });
            futures_util::future::join_all(calls).await;
        } else {
            let replies = self.exchange(conn, None, batch).await;
            answer(batch.drain(..), replies);
        }
    }

    /// One script call for `batch`, on `now_us` (tests) or Redis `TIME`.
    async fn exchange(
        &self,
        conn: Conn,
        now_us: Option<i64>,
        batch: &[Queued],
    ) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let jobs = batch.iter().map(|q| &q.job);
        let (evalsha, eval) = (command(&self.sha, now_us, jobs.clone()), || {
            command_eval(now_us, jobs)
        });
        let value = self
            .link
            .call_on(conn, ("admit", self.deadline), |mut c| async move {
                run_script(&mut c, &evalsha, eval).await
            })
            .await?;
        parse(value, batch.len())
    }

    /// One script call for `jobs`, without queueing: the parity tests fix
    /// the clock at `now_us`.
    pub async fn admit_now(
        &self,
        now_us: Option<i64>,
        jobs: Vec<Job>,
    ) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let batch: Vec<Queued> = jobs
            .into_iter()
            .map(|job| Queued {
                job,
                reply: oneshot::channel().0,
            })
            .collect();
        self.exchange(self.link.conn()?, now_us, &batch).await
    }
}

/// Makes a batcher's own connection, in its runtime (so that the
/// connection's I/O runs on the batcher's thread), retrying until it is made
/// or the batcher is gone.
async fn connect_own(settings: RedisSettings, own: Arc<OnceLock<Conn>>) {
    let mut delay = Duration::from_millis(100);
    while Arc::strong_count(&own) > 1 {
        match Conn::connect(&settings).await {
            Ok(conn) => {
                let _ = own.set(conn);
                return;
            }
            Err(e) => log::debug!("admission connection to redis not made yet: {e}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Sends each reply to its caller (one that gave up is not waiting).
fn answer(
    batch: impl IntoIterator<Item = Queued>,
    replies: Result<Vec<Result<Reply, StoreError>>, StoreError>,
) {
    match replies {
        Ok(replies) => {
            for (q, reply) in batch.into_iter().zip(replies) {
                let _ = q.reply.send(reply);
            }
        }
        Err(e) => {
            for q in batch {
                let _ = q.reply.send(Err(e.clone()));
            }
        }
    }
}

/// `EVALSHA sha` (or `EVAL script`) with every job's keys and arguments.
fn script_call<'a>(
    verb: &str,
    script: &str,
    now_us: Option<i64>,
    jobs: impl ExactSizeIterator<Item = &'a Job> + Clone,
) -> Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(script).arg(jobs.len() * 3);
    for job in jobs.clone() {
        let bucket = job.bucket.as_str();
        cmd.arg(bucket)
            .arg(job.credits.as_deref().unwrap_or(bucket))
            .arg(job.token.as_deref().unwrap_or(bucket));
    }
    match now_us {
        Some(now) => cmd.arg(now),
        None => cmd.arg(""),
    };
    for job in jobs {
        for a in job.args {
            cmd.arg(a);
        }
    }
    cmd
}

fn command<'a>(
    sha: &str,
    now_us: Option<i64>,
    jobs: impl ExactSizeIterator<Item = &'a Job> + Clone,
) -> Cmd {
    script_call("EVALSHA", sha, now_us, jobs)
}

fn command_eval<'a>(
    now_us: Option<i64>,
    jobs: impl ExactSizeIterator<Item = &'a Job> + Clone,
) -> Cmd {
    script_call("EVAL", ADMIT_LUA, now_us, jobs)
}

/// Runs `evalsha`; when Redis does not have the script (a restart, a new
/// node), runs it by its text, which also loads it.
async fn run_script(c: &mut Conn, evalsha: &Cmd, eval: impl FnOnce() -> Cmd) -> RedisResult<Value> {
    match evalsha.query_async(c).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            eval().query_async(c).await
        }
        other => other,
    }
}

/// The replies of a batch of `n`, in order.
fn parse(value: Value, n: usize) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("admit.lua answered {what}"));
    let Value::Array(items) = value else {
        return Err(bad("something other than a list"));
    };
    if items.len() != n {
        return Err(bad("the wrong number of replies"));
    }
    Ok(items.into_iter().map(parse_one).collect())
}

fn parse_one(item: Value) -> Result<Reply, StoreError> {
    let Value::Array(fields) = item else {
        return Err(StoreError::Unavailable(
            "admit.lua answered a reply that is not a list".into(),
        ));
    };
    if let [Value::Int(-1), message] = fields.as_slice() {
        let message = match message {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        };
        return Err(StoreError::Unavailable(format!("admit: {message}")));
    }
    let mut reply = [0i64; 7];
    if fields.len() != reply.len() {
        return Err(StoreError::Unavailable(
            "admit.lua answered a reply of the wrong length".into(),
        ));
    }
    for (slot, field) in reply.iter_mut().zip(fields) {
        let Value::Int(v) = field else {
            return Err(StoreError::Unavailable(
                "admit.lua answered a field that is not an integer".into(),
            ));
        };
        *slot = v;
    }
    Ok(reply)
}

/// The Cluster slot of a key's hash tag (CRC16/XMODEM mod 16384), as Redis
/// Cluster computes it.
pub(super) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_cluster() {
        // Values from Redis's `CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn replies_are_read_in_order_and_one_error_stays_with_its_admission() {
        let ok = Value::Array((1..=7).map(Value::Int).collect());
        let err = Value::Array(vec![
            Value::Int(-1),
            Value::BulkString(b"WRONGTYPE".to_vec()),
        ]);
        let replies = parse(Value::Array(vec![ok, err]), 2).expect("two replies");
        assert_eq!(replies[0].as_ref().expect("first"), &[1, 2, 3, 4, 5, 6, 7]);
        assert!(matches!(&replies[1], Err(StoreError::Unavailable(m)) if m == "admit: WRONGTYPE"));
        assert!(parse(Value::Array(vec![]), 1).is_err());
        assert!(parse(Value::Int(1), 1).is_err());
    }
}
