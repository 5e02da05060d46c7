//! The run lock: one lease item per DynamoDB table in the metadata table, so that two runs that
//! write the same table never write at the same time, whichever environment file named it.
//!
//! A run takes the lease of every table it touches with a conditional write (the item is absent,
//! or is exactly the expired lease it read), in name order so that two runs cannot each hold half.
//! It renews them every third of the lease while it makes progress, and deletes them at the end.
//! A lease left by a killed run is free once it expires, or at once when the holder ran on this
//! host and its process is gone. `--force-unlock` takes the lease whatever holds it.
//!
//! Fencing: a run stops writing before its lease can expire in anyone else's eyes. The [`Fence`]
//! moves forward only when a renewal is confirmed, to the moment the renewal was sent plus the
//! lease less a quarter (for clock skew between hosts). A process paused past that point (SIGSTOP,
//! a suspended VM) or a DynamoDB that stops answering the renewals therefore finds its fence
//! closed before any other run can have taken over, and writes nothing more.
//!
//! Shards (`sync --shard K/N`): the shards of one run hold the table together. The table's lease
//! item becomes the run's *marker* (its run id `shards:N:<run id>`, with `shards` = N), which every
//! shard of that run joins and renews, and each shard holds its own lease item beside it
//! (`TABLE#<table>#SHARD#K/N`). Any other run finds the marker held (an older ddbsync reads it as an
//! ordinary live lease), so an unsharded run, a shard of another split or of another run is
//! refused; two processes of the same shard meet on its own item. The marker is free once none of
//! its shards' items is live: it is then taken over, and the taker looks at the shards' items once
//! more after its write, while a shard confirms the marker after writing its own item, so that of
//! two racing runs at least one sees the other. The last shard to release deletes the marker only
//! if no shard has rewritten it since it looked (its `marker_token`).
//!
//! Progress: the lease is renewed only while the run shows progress (rows read, pages scanned,
//! batches written, tables becoming ready: [`beat`]); a run stuck longer than its stall limit lets the lease go
//! and stops, so a hung run cannot hold the tables for ever.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::engine::progress;
use crate::profile::Profile;
use crate::pure::bucket::Shard;
use crate::pure::item::{AttributeValue, Item};
use crate::pure::status;
use crate::target::{Condition, TableSchema, Target, TABLE_WAIT};

/// Who holds a table's lock, as stored in its lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Unique per run: conditions compare it.
    pub run_id: String,
    /// The environment whose run holds it (another profile may name the same table).
    pub env: String,
    pub host: String,
    /// Which kernel and process namespace `pid` belongs to (boot id and pid namespace): two
    /// containers or machines may share a host name, never this.
    pub host_id: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The holder's lease length: how long after its last renewal it may still write.
    pub lease_secs: Option<u64>,
    /// For a sharded run's leases: which run, and which shard (none on the run's marker).
    pub sharding: Option<LeaseShard>,
}

/// The sharded run a lease belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseShard {
    /// The run id the shards share (`--run-id`).
    pub run: String,
    /// N, the shards of the run.
    pub count: u32,
    /// `K/N` on a shard's own lease; `None` on the run's marker.
    pub shard: Option<String>,
}

impl LeaseShard {
    /// `shard 1/4 of run nightly-7`, or `a run in 4 shards (nightly-7)` for the marker.
    fn describe(&self) -> String {
        match &self.shard {
            Some(shard) => format!("shard {shard} of run {}", self.run),
            None => format!("a run in {} shards ({})", self.count, self.run),
        }
    }
}

impl Lease {
    /// The holder as a log line names it: `environment prod, host web-1, pid 4242, since …`.
    pub fn describe(&self) -> String {
        format!(
            "environment {}, host {}, pid {}, took it at {}, held until {}",
            self.env,
            self.host,
            self.pid,
            self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// Another run holds the lock of a table.
#[derive(Debug, thiserror::Error)]
#[error("{}; {}", self.held(), Locked::fix(self.waited))]
pub struct Locked {
    pub table: String,
    pub holder: Lease,
    /// How long this run waited for it (`--lock-timeout`), when it did.
    pub waited: Option<Duration>,
}

impl Locked {
    /// Who holds the lock, and until when: what a run that waits for it says, without the advice
    /// to wait that it is already following.
    pub fn held(&self) -> String {
        let holder = &self.holder;
        let sharded = holder.sharding.as_ref().map_or(String::new(), |s| format!(", {}", s.describe()));
        format!(
            "table {} is locked by another run (environment {}{sharded}): {} (pid {}) took the lock at {} and holds it \
             until {} unless renewed",
            self.table,
            holder.env,
            holder.host,
            holder.pid,
            holder.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            holder.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    /// What to do: wait (longer), or take a lock whose holder is known to be gone.
    fn fix(waited: Option<Duration>) -> String {
        match waited {
            Some(waited) => format!(
                "waited {} for it (--lock-timeout): run again with a longer --lock-timeout, or if that run is gone \
                 with --force-unlock",
                humantime::format_duration(waited)
            ),
            None => "wait for it to finish (--lock-timeout 10m waits up to ten minutes), or if it is gone run again \
                     with --force-unlock"
                .into(),
        }
    }
}

/// A signal came while the run waited for the lock (`--lock-timeout`): it took no lease and did
/// nothing; the error's cause is the [`crate::engine::stop::Interrupted`] (exit 5).
#[derive(Debug, thiserror::Error)]
#[error("stopped while waiting for the run lock of {0}; no lock was taken and nothing was done")]
pub struct StoppedWaiting(pub String);

/// The run stopped because it could no longer be sure it held the lock; nothing was written after.
/// It holds the cause alone ([`Fence::lost`] gives the same): a command that only reads (backup)
/// says what follows for it.
#[derive(Debug, thiserror::Error)]
#[error("stopped: {0}; nothing more was written. Run again: the next run completes the work")]
pub struct LeaseLost(pub String);

/// What to do about the lease found in the table. Pure.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease: take it.
    Free,
    /// This run's own lease: an earlier attempt was applied though its answer was lost.
    Ours,
    /// A lease nobody holds any more (why, for the log): take it over.
    Stale(String),
    /// A live lease: refuse.
    Held,
}

/// `host` is this process's [`host_id`]: a lease whose process is gone is free at once only when
/// it was taken in the same kernel and process namespace, where its pid means the same process.
pub fn decide(
    found: Option<&Lease>,
    me: &str,
    now: DateTime<Utc>,
    host: &str,
    alive: impl Fn(u32) -> bool,
) -> Decision {
    match found {
        None => Decision::Free,
        Some(lease) if lease.run_id == me => Decision::Ours,
        Some(lease) if lease.expires_at <= now => Decision::Stale(format!("the lease expired at {}", lease.expires_at)),
        Some(lease) if !host.is_empty() && lease.host_id == host && !alive(lease.pid) => {
            Decision::Stale(format!("process {} on this host has ended", lease.pid))
        }
        Some(_) => Decision::Held,
    }
}

/// This kernel's boot id and this process's pid namespace (Linux), or empty where unknown (then a
/// lease left by a gone process is free only once it expires).
pub fn host_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|b| b.trim().to_string());
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string());
    match (boot, pid_ns) {
        (Ok(boot), Ok(ns)) if !boot.is_empty() => format!("{boot}/{ns}"),
        _ => String::new(),
    }
}

/// Whether a process of this host is running (Linux: /proc; elsewhere assumed alive, so the
/// lease must expire).
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The lease item's key: one per table, whatever profile names it.
pub fn lock_key(table: &str) -> Item {
    [
        ("pk".to_string(), AttributeValue::S("LOCK".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{table}"))),
    ]
    .into()
}

/// A shard's own lease item, beside the table's (which holds its run's marker). Table names
/// cannot hold `#`, so no table's key is another's shard key.
pub fn shard_key(table: &str, shard: Shard) -> Item {
    [
        ("pk".to_string(), AttributeValue::S("LOCK".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{table}#SHARD#{shard}"))),
    ]
    .into()
}

/// The marker's id: the run's id and its shard count, so that another split of the same run id
/// is another run.
fn group_id(shard: Shard, run: &str) -> String {
    format!("shards:{}:{run}", shard.count())
}

fn to_item(table: &str, lease: &Lease) -> Item {
    to_item_at(lock_key(table), lease)
}

fn to_item_at(key: Item, lease: &Lease) -> Item {
    let mut item = key;
    let s = |v: String| AttributeValue::S(v);
    item.insert("run_id".into(), s(lease.run_id.clone()));
    item.insert("environment".into(), s(lease.env.clone()));
    item.insert("host".into(), s(lease.host.clone()));
    item.insert("host_id".into(), s(lease.host_id.clone()));
    item.insert("pid".into(), AttributeValue::N(lease.pid.to_string()));
    item.insert("started_at".into(), s(lease.started_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    item.insert("expires_at".into(), s(lease.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    if let Some(secs) = lease.lease_secs {
        item.insert("lease_secs".into(), AttributeValue::N(secs.to_string()));
    }
    // What the run has done so far (`ddbsync status`), on the items of the process doing it (a
    // marker stands for the run's shards, each of which carries its own).
    item.insert(status::COMMAND.into(), s(progress::command().to_string()));
    let marker = lease.sharding.as_ref().is_some_and(|s| s.shard.is_none());
    let table = item.get("sk").and_then(|v| v.as_s().ok()).and_then(|sk| sk.strip_prefix("TABLE#"));
    let table = table.map(|t| t.split("#SHARD#").next().unwrap_or(t).to_string());
    if let Some(done) = table.filter(|_| !marker).and_then(|t| progress::snapshot(&t)) {
        item.insert(status::PROGRESS.into(), done.attribute());
    }
    if let Some(sharding) = &lease.sharding {
        item.insert("shard_run".into(), s(sharding.run.clone()));
        item.insert("shards".into(), AttributeValue::N(sharding.count.to_string()));
        match &sharding.shard {
            Some(shard) => _ = item.insert("shard".into(), s(shard.clone())),
            // Every write of the marker is told apart, so that a release deletes only the one it read.
            None => {
                let token = format!("{}@{}", crate::engine::run_id::current(), Utc::now().timestamp_micros());
                item.insert("marker_token".into(), s(token));
            }
        }
    }
    item
}

/// Reads a lease item back (`None` for one that is not a lease).
pub fn from_item(item: &Item) -> Option<Lease> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let time = |k: &str| s(k).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
    Some(Lease {
        run_id: s("run_id")?,
        env: s("environment").unwrap_or_else(|| "unknown".into()),
        host: s("host")?,
        host_id: s("host_id").unwrap_or_default(),
        pid: item.get("pid").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())?,
        started_at: time("started_at")?,
        expires_at: time("expires_at")?,
        lease_secs: item.get("lease_secs").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()),
        sharding: match (s("shard_run"), item.get("shards").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())) {
            (Some(run), Some(count)) => Some(LeaseShard { run, count, shard: s("shard") }),
            _ => None,
        },
    })
}

/// How long a lease is good for, once written, as `chrono` counts it (saturating: a profile's
/// lease is validated, but arithmetic on times must never panic).
fn expiry(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The part of the lease kept back for clock skew between hosts: the fence closes this long before
/// the lease expires.
fn skew_margin(lease_for: Duration) -> Duration {
    lease_for / 4
}

/// The process's clock for [`beat`]: progress is process-wide, as the lock is.
fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds after [`origin`] of the last progress.
static LAST_BEAT: AtomicU64 = AtomicU64::new(0);

/// Records progress (a source row, a Scan page, a written batch, a table that became ready): the
/// lease is renewed only while there is some. Lock renewals themselves are not progress.
pub fn beat() {
    let now = Instant::now().saturating_duration_since(origin()).as_millis() as u64;
    LAST_BEAT.fetch_max(now, Ordering::Relaxed);
}

/// How long since the last progress.
fn idle() -> Duration {
    let now = Instant::now().saturating_duration_since(origin()).as_millis() as u64;
    Duration::from_millis(now.saturating_sub(LAST_BEAT.load(Ordering::Relaxed)))
}

/// Whether this run may still write: its lease is recent enough and was not lost. Cheap to clone;
/// shared by the writers.
#[derive(Clone, Debug)]
pub struct Fence {
    state: Arc<FenceState>,
    /// Set (with the reason) by the renewal when the lease is lost.
    lost: watch::Receiver<Option<String>>,
}

#[derive(Debug)]
struct FenceState {
    origin: Instant,
    /// Milliseconds after `origin` until which writes are safe; `u64::MAX` when unfenced.
    open_until: AtomicU64,
    /// When the lease was last confirmed, for messages (milliseconds after `origin`).
    renewed: AtomicU64,
}

impl Fence {
    /// A fence that never closes: dry runs and commands that hold no lock.
    pub fn open() -> Fence {
        Fence::closing_at(Instant::now(), None)
    }

    fn closing_at(origin: Instant, until: Option<Instant>) -> Fence {
        let (tx, lost) = watch::channel(None);
        // An open fence is never lost; a held lock's renewal replaces this sender with its own.
        std::mem::forget(tx);
        let state = Arc::new(FenceState { origin, open_until: AtomicU64::new(u64::MAX), renewed: AtomicU64::new(0) });
        let fence = Fence { state, lost };
        if let Some(until) = until {
            fence.state.open_until.store(fence.millis(until), Ordering::SeqCst);
        }
        fence
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.state.origin).as_millis().min(u64::MAX as u128 - 1) as u64
    }

    /// Resolves only if the lease is lost, with the reason.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        if lost.wait_for(Option::is_some).await.is_err() {
            return std::future::pending().await;
        }
        let reason = lost.borrow().clone();
        reason.unwrap_or_default()
    }

    /// A renewal sent at `sent` was confirmed.
    fn extend(&self, sent: Instant, lease_for: Duration) {
        let until = sent + lease_for.saturating_sub(skew_margin(lease_for));
        self.state.open_until.fetch_max(self.millis(until), Ordering::SeqCst);
        self.state.renewed.fetch_max(self.millis(sent), Ordering::SeqCst);
    }

    /// Time left before the fence closes; `None` when it is already closed.
    pub fn remaining(&self) -> Option<Duration> {
        let until = self.state.open_until.load(Ordering::SeqCst);
        if until == u64::MAX {
            return Some(Duration::MAX);
        }
        until.checked_sub(self.millis(Instant::now())).filter(|&ms| ms > 0).map(Duration::from_millis)
    }

    /// An error when the run may no longer write: its lease was lost, or last confirmed too long ago.
    pub fn check(&self) -> Result<(), LeaseLost> {
        if let Some(reason) = self.lost.borrow().clone() {
            return Err(LeaseLost(reason));
        }
        match self.remaining() {
            Some(_) => Ok(()),
            None => Err(LeaseLost(self.closed_reason())),
        }
    }

    fn closed_reason(&self) -> String {
        let since = self.millis(Instant::now()).saturating_sub(self.state.renewed.load(Ordering::SeqCst)) / 1000;
        format!(
            "the run lock was last confirmed {since} s ago, too long for its lease to be trusted (the process was \
             paused or stalled, or DynamoDB did not answer the renewals), so another run may have taken over"
        )
    }
}

/// Held locks; renewed in the background until [`Held::release`].
pub struct Held {
    dynamo: Arc<dyn Target>,
    metadata_table: String,
    tables: Vec<String>,
    run_id: String,
    lease: Duration,
    fence: Fence,
    renewal: tokio::task::JoinHandle<()>,
    /// A shard's: its shard and run id (its own items, and its run's markers).
    sharding: Option<(Shard, String)>,
}

/// What the lock needs to know about the run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: String,
    /// The metadata table, which holds the lease items (it must exist).
    pub metadata_table: String,
    pub lease: Duration,
    /// Longest time without progress before the run lets its lease go and stops.
    pub stall_limit: Duration,
    /// `--force-unlock`: take the leases whatever holds them.
    pub force: bool,
    /// For a shard of a sharded run: the shard and the run id the shards share.
    pub sharding: Option<(Shard, String)>,
}

impl Settings {
    pub fn of(profile: &Profile, force: bool) -> Settings {
        Settings {
            env: profile.env.clone(),
            metadata_table: profile.metadata_table.clone(),
            lease: profile.sync.lock_lease,
            stall_limit: profile.sync.stall_limit,
            force,
            sharding: None,
        }
    }
}

/// Creates the metadata table (run records and the run lock) if it does not exist, and waits until
/// it is ACTIVE (another run, or another shard of this one, may have just created it).
pub async fn ensure_metadata_table(dynamo: &dyn Target, profile: &Profile) -> Result<()> {
    let table = &profile.metadata_table;
    let info = dynamo.describe(table).await;
    let location = profile.location();
    match info.with_context(|| format!("reading DynamoDB table {table} in {location}"))? {
        Some(info) if info.status == crate::target::ACTIVE => {}
        Some(_) => dynamo.wait(table, false, TABLE_WAIT).await?,
        None => {
            let schema =
                TableSchema { keys: vec![("pk".into(), "S".into()), ("sk".into(), "S".into())], indexes: vec![] };
            match dynamo.create_table(table, &schema).await {
                Ok(()) => {}
                // Another run created it meanwhile (the shards of a run start at once).
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("creating metadata table {table}")),
            }
            dynamo.wait(table, false, TABLE_WAIT).await?;
        }
    }
    Ok(())
}

/// Whether DynamoDB refused to create a table because it exists or is being created: its
/// `ResourceInUseException`, whose message varies by server (empty from some).
pub fn already_exists(e: &crate::target::TargetError) -> bool {
    let text = e.to_string();
    text.contains("in use") || text.contains("exists") || text.contains("ResourceInUse")
}

/// Runs `work` while holding the lock of `tables`: creates the metadata table if needed, takes the
/// leases (waiting up to `wait`, `--lock-timeout`, for a lock another run holds; `on_wait` hears of
/// the first refusal), stops `work` (with [`LeaseLost`]) if they are lost, and releases them at the
/// end. A signal before the leases are taken ends it at once ([`StoppedWaiting`]).
pub async fn with_lock<T, F, Fut>(
    dynamo: &Arc<dyn Target>,
    profile: &Profile,
    tables: &[String],
    (force, wait): (bool, Option<Duration>),
    on_wait: impl Fn(&anyhow::Error),
    stop: &crate::engine::stop::Stop,
    work: F,
) -> Result<T>
where
    F: FnOnce(Fence) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    with_lock_sharded(dynamo, profile, tables, (force, wait, None), on_wait, stop, work).await
}

/// [`with_lock`] for a shard of a sharded run (`sharding`: the shard and the run id the shards
/// share; `None` is the whole run).
pub async fn with_lock_sharded<T, F, Fut>(
    dynamo: &Arc<dyn Target>,
    profile: &Profile,
    tables: &[String],
    (force, wait, sharding): (bool, Option<Duration>, Option<(Shard, String)>),
    on_wait: impl Fn(&anyhow::Error),
    stop: &crate::engine::stop::Stop,
    work: F,
) -> Result<T>
where
    F: FnOnce(Fence) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let settings = Settings { sharding, ..Settings::of(profile, force) };
    // A signal while the lock is being taken (or waited for) ends the run at once: leases already
    // written expire, or are free at once for the next run on this host, whose process is then gone.
    let held = tokio::select! {
        held = take_with(dynamo, profile, tables, settings, wait, on_wait) => held?,
        signal = stop.wait() => {
            let interrupted = anyhow::Error::new(crate::engine::stop::Signalled(signal));
            return Err(interrupted.context(StoppedWaiting(tables.join(", "))));
        }
    };
    let work = work(held.fence());
    tokio::pin!(work);
    let outcome = tokio::select! {
        outcome = &mut work => outcome,
        reason = held.lost() => {
            // The work sees the loss through its fence, sends nothing more and winds up its report;
            // it gets a bounded moment for that.
            match tokio::time::timeout(crate::engine::stop::DRAIN, &mut work).await {
                Ok(Err(e)) => Err(e),
                _ => Err(LeaseLost(reason).into()),
            }
        }
    };
    let released = held.release().await;
    match outcome {
        // The work's error matters more than a failure to release, which expiry repairs.
        Err(e) => Err(e),
        Ok(value) => released.context("releasing the run lock").map(|()| value),
    }
}

/// How often a waiting command tries the lock again.
const LOCK_POLL: Duration = Duration::from_secs(2);

/// Takes the lock of `tables`, creating the metadata table if needed; with `wait`, a lock another
/// run holds is tried again for that long (`on_wait` hears of the first refusal).
pub async fn take(
    dynamo: &Arc<dyn Target>,
    profile: &Profile,
    tables: &[String],
    force: bool,
    wait: Option<Duration>,
    on_wait: impl Fn(&anyhow::Error),
) -> Result<Held> {
    take_with(dynamo, profile, tables, Settings::of(profile, force), wait, on_wait).await
}

async fn take_with(
    dynamo: &Arc<dyn Target>,
    profile: &Profile,
    tables: &[String],
    settings: Settings,
    wait: Option<Duration>,
    on_wait: impl Fn(&anyhow::Error),
) -> Result<Held> {
    ensure_metadata_table(&**dynamo, profile).await?;
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    let started = tokio::time::Instant::now();
    let mut waiting = false;
    loop {
        let taken = acquire(dynamo.clone(), &settings, tables).await;
        let now = tokio::time::Instant::now();
        match taken {
            Err(e) if e.chain().any(|c| c.is::<Locked>()) && now < deadline => {
                if !waiting {
                    // Who holds it, not the advice to wait (this run is waiting).
                    let held = e.chain().find_map(|c| c.downcast_ref::<Locked>()).map(Locked::held);
                    on_wait(&held.map_or(e, anyhow::Error::msg));
                    waiting = true;
                }
                tokio::time::sleep(LOCK_POLL.min(deadline - now)).await;
            }
            // The refusal after a wait says how long it waited, so that the fix is a longer one.
            Err(e) if waiting => {
                return Err(match e.downcast::<Locked>() {
                    Ok(locked) => Locked { waited: Some(whole_seconds(now - started)), ..locked }.into(),
                    Err(e) => e,
                })
            }
            taken => return taken,
        }
    }
}

/// A wait as a message shows it: whole seconds (`2s`, not `2s 3ms 91us`), milliseconds under one.
fn whole_seconds(wait: Duration) -> Duration {
    if wait < Duration::from_secs(1) {
        Duration::from_millis(wait.as_millis() as u64)
    } else {
        Duration::from_secs(wait.as_secs())
    }
}

/// Takes the lock of every table in `tables` (in name order), or none of them.
pub async fn acquire(dynamo: Arc<dyn Target>, settings: &Settings, tables: &[String]) -> Result<Held> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let now = Utc::now();
    let origin = Instant::now();
    let me = Lease {
        // The run's own id (its log events carry it too).
        run_id: crate::engine::run_id::current(),
        env: settings.env.clone(),
        host: host.clone(),
        host_id: host_id(),
        pid: std::process::id(),
        started_at: now,
        expires_at: expiry(now, settings.lease),
        lease_secs: Some(settings.lease.as_secs()),
        sharding: settings.sharding.as_ref().map(|(shard, run)| LeaseShard {
            run: run.clone(),
            count: shard.count(),
            shard: Some(shard.to_string()),
        }),
    };
    let mut tables = tables.to_vec();
    tables.sort();
    tables.dedup();
    let (tx, lost) = watch::channel(None);
    let mut fence =
        Fence::closing_at(origin, Some(origin + settings.lease.saturating_sub(skew_margin(settings.lease))));
    fence.lost = lost;
    let mut held = Held {
        dynamo: dynamo.clone(),
        metadata_table: settings.metadata_table.clone(),
        tables: Vec::new(),
        run_id: me.run_id.clone(),
        lease: settings.lease,
        fence,
        renewal: tokio::spawn(async {}),
        sharding: settings.sharding.clone(),
    };
    let mut forced_until = None;
    for table in &tables {
        // Pushed before the attempt: if its answer is lost, release still removes what was written.
        held.tables.push(table.clone());
        let taken = match &settings.sharding {
            Some((shard, _)) => take_shard(&*dynamo, settings, table, &me, *shard).await,
            None => take_one(&*dynamo, settings, table, &me).await,
        };
        match taken {
            Ok(until) => forced_until = forced_until.max(until),
            Err(e) => {
                let _ = held.release().await;
                return Err(e);
            }
        }
    }
    held.renewal = tokio::spawn(tracing::Instrument::instrument(
        renew(dynamo, settings.clone(), held.tables.clone(), me, held.fence.clone(), tx),
        tracing::Span::current(),
    ));
    // A live holder whose lease was forced away learns it only at its next renewal, and may write
    // until its own fence closes: this run writes nothing before that.
    if let Some(wait) = forced_until.and_then(|until| (until - Utc::now()).to_std().ok()) {
        tracing::warn!(
            "--force-unlock: waiting {} s for the previous holder's lease to run out, so that it can write nothing \
             after this run starts",
            wait.as_secs()
        );
        beat();
        tokio::time::sleep(wait).await;
        beat();
    }
    Ok(held)
}

/// Takes one table's lease; for a live lease taken with `--force-unlock`, returns until when its
/// holder may still write (its lease, at most one lease length from now).
async fn take_one(dynamo: &dyn Target, settings: &Settings, table: &str, me: &Lease) -> Result<Option<DateTime<Utc>>> {
    take_at(dynamo, settings, table, lock_key(table), me).await
}

/// Takes the lease item `key` of `table` (the table's own, or a shard's) as [`take_one`] does.
async fn take_at(
    dynamo: &dyn Target,
    settings: &Settings,
    table: &str,
    key: Item,
    me: &Lease,
) -> Result<Option<DateTime<Utc>>> {
    let meta = &settings.metadata_table;
    let found = dynamo.get_item(meta, key.clone()).await?;
    let mut lease = found.as_ref().and_then(from_item);
    if found.is_some() && lease.is_none() {
        tracing::warn!(meta, table, "unreadable lock item; taking it over");
    }
    let mut holder_until = None;
    let mut decision = decide(lease.as_ref(), &me.run_id, Utc::now(), &me.host_id, process_alive);
    // Another sharded run's marker is held while any of its shards holds its own lease.
    let other_marker = lease.as_ref().filter(|l| l.run_id != me.run_id).and_then(|l| l.sharding.clone());
    // A marker that expired was renewed by none of its shards for a whole lease: they have stopped.
    let expired = lease.as_ref().is_some_and(|l| l.expires_at <= Utc::now());
    if let Some(marker) = other_marker.as_ref().filter(|m| m.shard.is_none()) {
        if !expired {
            decision = match live_shard(dynamo, meta, table, marker).await? {
                Some(shard) => {
                    lease = Some(shard);
                    Decision::Held
                }
                None => Decision::Stale(format!("no shard of run {} holds the table any more", marker.run)),
            };
        }
    }
    match decision {
        Decision::Ours => return Ok(None),
        Decision::Held if !settings.force => {
            return Err(Locked { table: table.into(), holder: lease.expect("a held lease"), waited: None }.into());
        }
        Decision::Held => {
            tracing::warn!(table, holder = %lease.as_ref().map_or_else(String::new, Lease::describe), "--force-unlock: taking the lock from a live lease");
            let holder = lease.as_ref().expect("a held lease");
            // Its fence closes within its lease of its last renewal, which `expires_at` marks.
            let its_lease = holder.lease_secs.map_or(settings.lease, Duration::from_secs);
            holder_until = Some(holder.expires_at.min(expiry(Utc::now(), its_lease)));
        }
        Decision::Stale(why) => {
            tracing::warn!(table, holder = %lease.as_ref().map_or_else(String::new, Lease::describe), "taking over a stale lock: {why}")
        }
        Decision::Free => {}
    }
    // Take exactly what was read: if another run changed the lease meanwhile, the condition fails.
    let condition = match found.as_ref().and_then(|i| i.get("run_id")) {
        Some(run_id) => Condition { expression: "run_id = :seen", values: vec![(":seen", run_id.clone())] },
        None if found.is_some() => Condition { expression: "attribute_not_exists(run_id)", values: vec![] },
        None => Condition { expression: "attribute_not_exists(pk)", values: vec![] },
    };
    if dynamo.put_if(meta, to_item_at(key.clone(), me), condition).await? {
        // A marker taken over: a shard that joined it just before must have written its own lease
        // by now (it writes that before it confirms the marker), and is seen here.
        if let Some(marker) = other_marker.filter(|m| m.shard.is_none() && !settings.force) {
            if let Some(shard) = live_shard(dynamo, meta, table, &marker).await? {
                let mine = Condition {
                    expression: "run_id = :me",
                    values: vec![(":me", AttributeValue::S(me.run_id.clone()))],
                };
                dynamo.delete_if(meta, key, mine).await?;
                return Err(Locked { table: table.into(), holder: shard, waited: None }.into());
            }
            // The gone run's shards left their leases (killed): none can be live now, so they go.
            forget_shards(dynamo, meta, table, &marker).await?;
        }
        return Ok(holder_until);
    }
    // The condition failed. If the holder now is this run, an earlier attempt of the same write was
    // applied and only its answer was lost (the SDK retried it): the lock is ours.
    let holder = dynamo.get_item(meta, key).await?.as_ref().and_then(from_item);
    match holder {
        Some(holder) if holder.run_id == me.run_id => Ok(holder_until),
        Some(holder) => Err(Locked { table: table.into(), holder, waited: None }.into()),
        None => Err(anyhow::anyhow!("the lock of table {table} changed while it was being taken; run again")),
    }
}

/// The live lease of one of a sharded run's shards on `table`, if one is left (a lease whose
/// process ended on this host, or that expired, is not).
async fn live_shard(dynamo: &dyn Target, meta: &str, table: &str, marker: &LeaseShard) -> Result<Option<Lease>> {
    let now = Utc::now();
    let host = host_id();
    for k in 0..marker.count {
        let Ok(shard) = Shard::new(k, marker.count) else { break };
        let found = dynamo.get_item(meta, shard_key(table, shard)).await?;
        if let Some(lease) = found.as_ref().and_then(from_item) {
            if decide(Some(&lease), "", now, &host, process_alive) == Decision::Held {
                return Ok(Some(lease));
            }
        }
    }
    Ok(None)
}

/// Deletes the leases a sharded run's shards left on `table`, each only if it is still the one read.
async fn forget_shards(dynamo: &dyn Target, meta: &str, table: &str, marker: &LeaseShard) -> Result<()> {
    for k in 0..marker.count {
        let Ok(shard) = Shard::new(k, marker.count) else { break };
        let found = dynamo.get_item(meta, shard_key(table, shard)).await?;
        if let Some(run_id) = found.as_ref().and_then(|i| i.get("run_id")) {
            let same = Condition { expression: "run_id = :seen", values: vec![(":seen", run_id.clone())] };
            dynamo.delete_if(meta, shard_key(table, shard), same).await?;
        }
    }
    Ok(())
}

/// The marker of a shard's run: the shard's lease with the run's id.
fn marker_of(me: &Lease, shard: Shard) -> Lease {
    let run = me.sharding.as_ref().map_or_else(String::new, |s| s.run.clone());
    Lease {
        run_id: group_id(shard, &run),
        sharding: Some(LeaseShard { run, count: shard.count(), shard: None }),
        ..me.clone()
    }
}

/// A shard's lease of `table`: it joins (or takes) its run's marker, takes its own item, then
/// confirms the marker, so that a run that took the marker over meanwhile is seen (it is refused,
/// or this shard is, and gives its own item back).
async fn take_shard(
    dynamo: &dyn Target,
    settings: &Settings,
    table: &str,
    me: &Lease,
    shard: Shard,
) -> Result<Option<DateTime<Utc>>> {
    let meta = &settings.metadata_table;
    let marker = marker_of(me, shard);
    let forced = take_one(dynamo, settings, table, &marker).await?;
    let own = take_at(dynamo, settings, table, shard_key(table, shard), me).await?;
    if let Err(e) = confirm_marker(dynamo, meta, table, &marker).await {
        let mine =
            Condition { expression: "run_id = :me", values: vec![(":me", AttributeValue::S(me.run_id.clone()))] };
        let _ = dynamo.delete_if(meta, shard_key(table, shard), mine).await;
        return Err(e);
    }
    Ok(forced.max(own))
}

/// Rewrites the run's marker, on the condition that it is still the run's (or, if the last shard
/// deleted it meanwhile, that there is none); the holder otherwise.
async fn confirm_marker(dynamo: &dyn Target, meta: &str, table: &str, marker: &Lease) -> Result<()> {
    let ours =
        Condition { expression: "run_id = :run", values: vec![(":run", AttributeValue::S(marker.run_id.clone()))] };
    if dynamo.put_if(meta, to_item(table, marker), ours).await? {
        return Ok(());
    }
    let none = Condition { expression: "attribute_not_exists(pk)", values: vec![] };
    if dynamo.put_if(meta, to_item(table, marker), none).await? {
        return Ok(());
    }
    match dynamo.get_item(meta, lock_key(table)).await?.as_ref().and_then(from_item) {
        Some(holder) if holder.run_id != marker.run_id => {
            Err(Locked { table: table.into(), holder, waited: None }.into())
        }
        _ => Err(anyhow::anyhow!("the lock of table {table} changed while it was being taken; run again")),
    }
}

/// Renews the leases every third of their length while the run makes progress; reports on `lost`
/// when it cannot, and at the latest when the fence closes.
async fn renew(
    dynamo: Arc<dyn Target>,
    settings: Settings,
    tables: Vec<String>,
    mut lease: Lease,
    fence: Fence,
    lost: watch::Sender<Option<String>>,
) {
    let lease_for = settings.lease;
    let where_ = dynamo.endpoint();
    let mut last_error: Option<String> = None;
    beat();
    loop {
        let fence_closes = Instant::now() + fence.remaining().unwrap_or_default().min(lease_for);
        tokio::select! {
            _ = tokio::time::sleep(lease_for / 3) => {}
            _ = tokio::time::sleep_until(fence_closes.into()) => {}
        }
        if fence.remaining().is_none() {
            let reason = match &last_error {
                Some(e) => format!(
                    "DynamoDB ({where_}) did not confirm the run lock's renewal before its lease could expire ({e})"
                ),
                None => fence.closed_reason(),
            };
            let _ = lost.send(Some(reason));
            return;
        }
        let idle = idle();
        if idle > settings.stall_limit {
            let _ = lost.send(Some(format!(
                "no progress for {} s (no row from the source, no answer from DynamoDB), longer than the stall limit of \
                 {} s (check the source and DynamoDB), so the run let its lock go",
                idle.as_secs(),
                settings.stall_limit.as_secs()
            )));
            return;
        }
        let now = Utc::now();
        let sent = Instant::now();
        let mut next = lease.clone();
        next.expires_at = expiry(now, lease_for);
        let renewal = async {
            for table in &tables {
                let condition = Condition {
                    expression: "run_id = :me",
                    values: vec![(":me", AttributeValue::S(lease.run_id.clone()))],
                };
                let key = match &settings.sharding {
                    Some((shard, _)) => shard_key(table, *shard),
                    None => lock_key(table),
                };
                if !dynamo.put_if(&settings.metadata_table, to_item_at(key, &next), condition).await? {
                    return Ok(Some(table.clone()));
                }
                // The run's marker lives as long as one of its shards does.
                if let Some((shard, _)) = &settings.sharding {
                    let marker = marker_of(&next, *shard);
                    let ours = Condition {
                        expression: "run_id = :run",
                        values: vec![(":run", AttributeValue::S(marker.run_id.clone()))],
                    };
                    if !dynamo.put_if(&settings.metadata_table, to_item(table, &marker), ours).await? {
                        return Ok(Some(table.clone()));
                    }
                }
            }
            Ok::<_, crate::target::TargetError>(None)
        };
        let limit = fence.remaining().unwrap_or_default();
        match tokio::time::timeout(limit, renewal).await {
            Ok(Ok(None)) => {
                fence.extend(sent, lease_for);
                lease = next;
                last_error = None;
            }
            Ok(Ok(Some(table))) => {
                let _ = lost.send(Some(format!(
                    "another run took the lock of table {table} (with --force-unlock, or after this run's lease \
                     expired)"
                )));
                return;
            }
            // A failed renewal is tried again next time, while the fence is open.
            Ok(Err(e)) => {
                tracing::warn!("renewing the run lock: {e}");
                last_error = Some(e.to_string());
            }
            Err(_) => last_error = Some(format!("no answer in {} s", limit.as_secs())),
        }
    }
}

impl Held {
    /// The fence the writers check before every call.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves only if the lease is lost, with the reason.
    pub async fn lost(&self) -> String {
        self.fence.lost().await
    }

    /// Stops renewing and deletes the leases that are still this run's, within one lease: a
    /// DynamoDB that does not answer leaves them to expire.
    pub async fn release(self) -> Result<()> {
        self.renewal.abort();
        let deletes = async {
            for table in &self.tables {
                let me = AttributeValue::S(self.run_id.clone());
                let condition = Condition { expression: "run_id = :me", values: vec![(":me", me)] };
                match &self.sharding {
                    None => _ = self.dynamo.delete_if(&self.metadata_table, lock_key(table), condition).await?,
                    Some((shard, run)) => {
                        self.dynamo.delete_if(&self.metadata_table, shard_key(table, *shard), condition).await?;
                        self.release_marker(table, *shard, run).await?;
                    }
                }
            }
            Ok::<_, crate::target::TargetError>(())
        };
        match tokio::time::timeout(self.lease, deletes).await {
            Ok(done) => Ok(done?),
            Err(_) => Err(anyhow::anyhow!(
                "DynamoDB ({}) did not answer in {} s; the lease expires by itself",
                self.dynamo.endpoint(),
                self.lease.as_secs()
            )),
        }
    }
}

impl Held {
    /// The last shard out deletes its run's marker: only if no shard's lease is live, and only the
    /// marker it read (a shard that joined since has rewritten it, and keeps it).
    async fn release_marker(&self, table: &str, shard: Shard, run: &str) -> Result<(), crate::target::TargetError> {
        let meta = &self.metadata_table;
        let Some(found) = self.dynamo.get_item(meta, lock_key(table)).await? else { return Ok(()) };
        let group = group_id(shard, run);
        let token = found.get("marker_token").cloned();
        if found.get("run_id").and_then(|v| v.as_s().ok()) != Some(&group) {
            return Ok(());
        }
        let marker = LeaseShard { run: run.to_string(), count: shard.count(), shard: None };
        match live_shard(&*self.dynamo, meta, table, &marker).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            // Left to expire: the next run finds no live shard and takes it over.
            Err(e) => return Err(crate::target::TargetError::Transient(format!("{e:#}"))),
        }
        let condition = match token {
            Some(token) => Condition {
                expression: "run_id = :run AND marker_token = :token",
                values: vec![(":run", AttributeValue::S(group)), (":token", token)],
            },
            None => Condition { expression: "run_id = :run", values: vec![(":run", AttributeValue::S(group))] },
        };
        if self.dynamo.delete_if(meta, lock_key(table), condition).await? {
            // Leases of this run's shards that were killed: nobody holds them.
            if let Err(e) = forget_shards(&*self.dynamo, meta, table, &marker).await {
                return Err(crate::target::TargetError::Transient(format!("{e:#}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(host: &str, pid: u32, expires_in_secs: i64) -> Lease {
        let now = at(0);
        Lease {
            run_id: "r".into(),
            env: "prod".into(),
            host: "h".into(),
            host_id: host.into(),
            pid,
            started_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in_secs),
            lease_secs: Some(60),
            sharding: None,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_live_lease_of_another_host_is_held_until_it_expires() {
        let other = lease("ci-2", 42, 60);
        assert_eq!(decide(Some(&other), "me", at(59), "ci-1", |_| false), Decision::Held);
        assert!(matches!(decide(Some(&other), "me", at(60), "ci-1", |_| true), Decision::Stale(_)));
        assert_eq!(decide(None, "me", at(0), "ci-1", |_| true), Decision::Free);
    }

    #[test]
    fn a_lease_of_a_dead_process_on_this_host_is_stale_at_once() {
        let mine = lease("ci-1", 42, 60);
        assert_eq!(decide(Some(&mine), "me", at(1), "ci-1", |_| true), Decision::Held, "still running");
        assert_eq!(
            decide(Some(&mine), "me", at(1), "ci-1", |pid| pid != 42),
            Decision::Stale("process 42 on this host has ended".into())
        );
    }

    #[test]
    fn a_dead_pid_counts_only_in_the_same_kernel_and_pid_namespace() {
        // Same host name, another container or machine: its pid says nothing here.
        let elsewhere = lease("boot-b/pid:[1]", 42, 60);
        assert_eq!(decide(Some(&elsewhere), "me", at(1), "boot-a/pid:[1]", |_| false), Decision::Held);
        assert_eq!(decide(Some(&elsewhere), "me", at(1), "", |_| false), Decision::Held, "unknown identity");
        assert!(host_id().contains("/pid:["), "{}", host_id());
    }

    #[test]
    fn finding_its_own_lease_means_the_run_has_the_lock() {
        // An attempt whose answer was lost, then retried: the lease found is this run's.
        let mine = lease("ci-1", 42, 60);
        assert_eq!(decide(Some(&mine), "r", at(1), "ci-1", |_| true), Decision::Ours);
    }

    #[test]
    fn the_lease_item_round_trips_and_is_keyed_by_table() {
        let l = lease("ci-1", 7, 60);
        let item = to_item("prod-lessons", &l);
        assert_eq!(item["sk"], AttributeValue::S("TABLE#prod-lessons".into()));
        assert_eq!(from_item(&item), Some(l));
    }

    #[test]
    fn a_shards_lease_and_its_runs_marker_round_trip_and_sit_beside_the_tables_own() {
        let shard = Shard::new(1, 4).unwrap();
        let mut mine = lease("ci-1", 7, 60);
        mine.sharding = Some(LeaseShard { run: "nightly-7".into(), count: 4, shard: Some("1/4".into()) });
        let item = to_item_at(shard_key("prod-lessons", shard), &mine);
        assert_eq!(item["sk"], AttributeValue::S("TABLE#prod-lessons#SHARD#1/4".into()));
        assert_eq!(from_item(&item), Some(mine.clone()));
        let marker = marker_of(&mine, shard);
        assert_eq!(marker.run_id, "shards:4:nightly-7", "one marker per run and split");
        let item = to_item("prod-lessons", &marker);
        assert_eq!(item["sk"], lock_key("prod-lessons")["sk"], "where every run looks for the table's lease");
        assert!(item.contains_key("marker_token"));
        assert_eq!(from_item(&item), Some(marker.clone()));
        let refused = Locked { table: "prod-lessons".into(), holder: mine, waited: None }.to_string();
        assert!(refused.contains("(environment prod, shard 1/4 of run nightly-7)"), "{refused}");
        let refused = Locked { table: "prod-lessons".into(), holder: marker, waited: None }.to_string();
        assert!(refused.contains("(environment prod, a run in 4 shards (nightly-7))"), "{refused}");
    }

    #[test]
    fn a_lease_item_with_its_progress_stays_one_write_unit_whatever_the_table() {
        // The longest table name DynamoDB allows, a shard's lease, and counters at their largest:
        // the renewal that carries them is still billed one write unit (items up to 1 KB).
        let table = "t".repeat(255);
        let mut mine = lease("0b3c5e1a-6f4e-4c1b-9a57-2d7f8e9a0b1c/pid:[4026531836]", u32::MAX, 60);
        mine.run_id =
            "a-host-name-of-sixty-three-characters-which-is-the-longest-one:4294967295:1800000000000000".into();
        mine.env = "production-environment".into();
        mine.host = "h".repeat(63);
        mine.sharding = Some(LeaseShard { run: "r".repeat(64), count: 1024, shard: Some("1023/1024".into()) });
        let key = shard_key(&table, Shard::new(1023, 1024).unwrap());
        let without = crate::pure::item::item_size(&to_item_at(key.clone(), &mine));
        let counters = progress::start(&table);
        counters.read(u64::MAX / 2);
        counters.written(u64::MAX / 2, 1e12);
        counters.deleted(u64::MAX / 2, 0.0);
        counters.rejected(u64::MAX / 2);
        let item = to_item_at(key, &mine);
        assert!(item.contains_key(status::PROGRESS) && item.contains_key(status::COMMAND));
        let with = crate::pure::item::item_size(&item);
        assert!(with <= 1024, "{with} bytes: more than one write unit");
        assert!(with - without < 300, "the progress adds {} bytes", with - without);
        // An apply's lease carries its plan's figures too: still one write unit.
        let counters = progress::planned(&table, u64::MAX / 2);
        counters.written(u64::MAX / 2, 1e12);
        counters.deleted(u64::MAX / 2, 0.0);
        counters.already_applied(u64::MAX / 2);
        counters.drifted(u64::MAX / 2);
        let with = crate::pure::item::item_size(&to_item_at(shard_key(&table, Shard::new(1023, 1024).unwrap()), &mine));
        assert!(with <= 1024, "{with} bytes: more than one write unit");
        assert!(with - without < 400, "an apply's progress adds {} bytes", with - without);
        progress::forget(&table);
    }

    #[test]
    fn expiry_saturates_instead_of_panicking() {
        assert_eq!(expiry(at(0), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(expiry(at(0), Duration::from_secs(60)), at(60));
    }

    #[test]
    fn the_fence_closes_a_quarter_lease_before_expiry_and_moves_only_on_renewal() {
        let lease_for = Duration::from_millis(400);
        let origin = Instant::now();
        let fence = Fence::closing_at(origin, Some(origin + lease_for - skew_margin(lease_for)));
        assert!(fence.check().is_ok());
        let left = fence.remaining().unwrap();
        assert!(left <= Duration::from_millis(300) && left > Duration::from_millis(200), "{left:?}");
        std::thread::sleep(Duration::from_millis(320));
        let closed = fence.check().unwrap_err().to_string();
        assert!(closed.contains("nothing more was written"), "{closed}");
        // A renewal confirmed now opens it again; an old one that arrives late cannot move it back.
        fence.extend(Instant::now(), lease_for);
        assert!(fence.check().is_ok());
        fence.extend(origin, lease_for);
        assert!(fence.remaining().unwrap() > Duration::from_millis(200));
    }

    #[test]
    fn an_open_fence_never_closes() {
        assert_eq!(Fence::open().remaining(), Some(Duration::MAX));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
    }

    /// A lease of run `run_id` on another machine, valid for another minute.
    fn live(run_id: &str) -> Lease {
        let now = Utc::now();
        Lease {
            run_id: run_id.into(),
            env: "prod".into(),
            host: "elsewhere".into(),
            host_id: "another-machine".into(),
            pid: 1,
            started_at: now,
            expires_at: now + chrono::Duration::seconds(60),
            lease_secs: Some(60),
            sharding: None,
        }
    }

    fn settings() -> Settings {
        Settings {
            env: "prod".into(),
            metadata_table: "meta".into(),
            lease: Duration::from_secs(60),
            stall_limit: Duration::from_secs(300),
            force: false,
            sharding: None,
        }
    }

    #[tokio::test]
    async fn a_free_lock_is_taken_with_a_write_conditional_on_no_lease() {
        let target = crate::target::scripted::Scripted::default();
        let taken = take_one(&target, &settings(), "t", &live("me")).await.unwrap();
        assert_eq!(taken, None);
        assert_eq!(target.calls(), ["get_item meta", "put_if meta attribute_not_exists(pk)"]);
    }

    #[tokio::test]
    async fn a_live_lease_of_another_run_refuses_the_lock_without_writing() {
        let target = crate::target::scripted::Scripted::read_only();
        target.gets.lock().unwrap().push_back(Ok(Some(to_item("t", &live("other")))));
        let err = take_one(&target, &settings(), "t", &live("me")).await.unwrap_err();
        assert!(err.downcast_ref::<Locked>().is_some_and(|l| l.holder.run_id == "other"), "{err:#}");
        assert_eq!(target.calls(), ["get_item meta"]);
    }

    #[tokio::test]
    async fn a_failed_condition_is_the_lock_of_whoever_holds_it_now() {
        // Another run took the lease between the read and the write.
        let target = crate::target::scripted::Scripted::default();
        target.conditionals.lock().unwrap().push_back(Ok(false));
        target.gets.lock().unwrap().extend([Ok(None), Ok(Some(to_item("t", &live("other"))))]);
        let err = take_one(&target, &settings(), "t", &live("me")).await.unwrap_err();
        assert!(err.downcast_ref::<Locked>().is_some_and(|l| l.holder.run_id == "other"), "{err:#}");
        assert_eq!(target.calls(), ["get_item meta", "put_if meta attribute_not_exists(pk)", "get_item meta"]);

        // This run's own write was applied and only its answer lost (the SDK sent it again).
        let target = crate::target::scripted::Scripted::default();
        target.conditionals.lock().unwrap().push_back(Ok(false));
        target.gets.lock().unwrap().extend([Ok(None), Ok(Some(to_item("t", &live("me"))))]);
        assert_eq!(take_one(&target, &settings(), "t", &live("me")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_lease_taken_over_is_written_only_if_it_is_still_the_one_read() {
        // An expired lease: taken over on the condition that its run_id is still the one read.
        let mut stale = live("other");
        stale.expires_at = Utc::now() - chrono::Duration::seconds(5);
        let target = crate::target::scripted::Scripted::default();
        target.gets.lock().unwrap().push_back(Ok(Some(to_item("t", &stale))));
        assert_eq!(take_one(&target, &settings(), "t", &live("me")).await.unwrap(), None);
        assert_eq!(target.calls(), ["get_item meta", "put_if meta run_id = :seen"]);
    }
}
