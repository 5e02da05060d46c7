//! The run lock: a lease item in the environment's metadata table, so that two syncs of one
//! environment never write at the same time.
//!
//! A run takes the lease with a conditional write (the item is absent, or is exactly the expired
//! lease it read), renews it every third of the lease while it lives, and deletes it at the end. A
//! lease left by a killed run is free once it expires, or at once when the holder ran on this host
//! and its process is gone. `--force-unlock` takes the lease whatever holds it. Losing the lease
//! (another run forced it) stops the run. Expiry compares wall clocks across hosts, so the lease
//! is long (60 s by default) against ordinary clock skew.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::dynamo::{Condition, Dynamo};
use crate::item::{AttributeValue, Item};

/// Who holds the lock, as stored in the lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Unique per run: conditions compare it.
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Another run holds the lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "another sync of {env} is running: {} (pid {}) took the lock at {} and holds it until {} unless renewed; \
     wait for it to finish, or if it is gone run again with --force-unlock",
    holder.host, holder.pid, holder.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    holder.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
)]
pub struct Locked {
    pub env: String,
    pub holder: Lease,
}

/// What to do about the lease found in the table. Pure.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease: take it.
    Free,
    /// A lease nobody holds any more (why, for the log): take it over.
    Stale(String),
    /// A live lease: refuse.
    Held,
}

pub fn decide(found: Option<&Lease>, now: DateTime<Utc>, host: &str, alive: impl Fn(u32) -> bool) -> Decision {
    match found {
        None => Decision::Free,
        Some(lease) if lease.expires_at <= now => Decision::Stale(format!("the lease expired at {}", lease.expires_at)),
        Some(lease) if lease.host == host && !alive(lease.pid) => {
            Decision::Stale(format!("process {} on this host has ended", lease.pid))
        }
        Some(_) => Decision::Held,
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

fn lock_key(env: &str) -> Item {
    [("pk".to_string(), AttributeValue::S("LOCK".into())), ("sk".to_string(), AttributeValue::S(env.into()))].into()
}

fn to_item(env: &str, lease: &Lease) -> Item {
    let mut item = lock_key(env);
    let s = |v: String| AttributeValue::S(v);
    item.insert("run_id".into(), s(lease.run_id.clone()));
    item.insert("host".into(), s(lease.host.clone()));
    item.insert("pid".into(), AttributeValue::N(lease.pid.to_string()));
    item.insert("started_at".into(), s(lease.started_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    item.insert("expires_at".into(), s(lease.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    item
}

fn from_item(item: &Item) -> Option<Lease> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let time = |k: &str| s(k).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
    Some(Lease {
        run_id: s("run_id")?,
        host: s("host")?,
        pid: item.get("pid").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())?,
        started_at: time("started_at")?,
        expires_at: time("expires_at")?,
    })
}

/// A held lock; renewed in the background until [`Held::release`].
pub struct Held {
    dynamo: Arc<Dynamo>,
    table: String,
    env: String,
    run_id: String,
    renewal: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<Option<String>>,
}

/// `now + lease_for`, saturating: the profile bounds the lease, but a lease past chrono's range
/// must not panic.
fn expiry(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Takes the lock of `env` in `table` (the metadata table, which must exist).
pub async fn acquire(dynamo: Arc<Dynamo>, table: &str, env: &str, lease_for: Duration, force: bool) -> Result<Held> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let now = Utc::now();
    let me = Lease {
        run_id: format!("{host}:{}:{}", std::process::id(), now.timestamp_micros()),
        host: host.clone(),
        pid: std::process::id(),
        started_at: now,
        expires_at: expiry(now, lease_for),
    };
    let found = dynamo.get_item(table, lock_key(env)).await?;
    let lease = found.as_ref().and_then(from_item);
    if found.is_some() && lease.is_none() {
        tracing::warn!(table, env, "unreadable lock item; taking it over");
    }
    match decide(lease.as_ref(), now, &host, process_alive) {
        Decision::Held if !force => {
            return Err(Locked { env: env.into(), holder: lease.expect("a held lease") }.into());
        }
        Decision::Held => tracing::warn!(env, holder = ?lease, "--force-unlock: taking the lock from a live lease"),
        Decision::Stale(why) => tracing::info!(env, "taking over a stale lock: {why}"),
        Decision::Free => {}
    }
    // Take exactly what was read: if another run changed the lease meanwhile, the condition fails.
    let condition = match found.as_ref().and_then(|i| i.get("run_id")) {
        Some(run_id) => Condition { expression: "run_id = :seen", values: vec![(":seen", run_id.clone())] },
        None if found.is_some() => Condition { expression: "attribute_not_exists(run_id)", values: vec![] },
        None => Condition { expression: "attribute_not_exists(pk)", values: vec![] },
    };
    if !dynamo.put_if(table, to_item(env, &me), condition).await? {
        let holder = dynamo.get_item(table, lock_key(env)).await?.as_ref().and_then(from_item);
        return match holder {
            Some(holder) => Err(Locked { env: env.into(), holder }.into()),
            None => Err(anyhow::anyhow!("the lock of {env} changed while it was being taken; run again")),
        };
    }
    let (tx, lost) = watch::channel(None);
    let renewal = tokio::spawn(renew(dynamo.clone(), table.to_string(), env.to_string(), me.clone(), lease_for, tx));
    Ok(Held { dynamo, table: table.into(), env: env.into(), run_id: me.run_id, renewal, lost })
}

/// Renews the lease every third of its length; reports on `lost` when it cannot.
async fn renew(
    dynamo: Arc<Dynamo>,
    table: String,
    env: String,
    mut lease: Lease,
    lease_for: Duration,
    lost: watch::Sender<Option<String>>,
) {
    loop {
        tokio::time::sleep(lease_for / 3).await;
        let now = Utc::now();
        let mut next = lease.clone();
        next.expires_at = expiry(now, lease_for);
        let condition =
            Condition { expression: "run_id = :me", values: vec![(":me", AttributeValue::S(lease.run_id.clone()))] };
        match dynamo.put_if(&table, to_item(&env, &next), condition).await {
            Ok(true) => lease = next,
            Ok(false) => {
                let _ = lost.send(Some("another run took the lock (--force-unlock)".into()));
                return;
            }
            // A failed renewal is tried again next time, while the lease still runs.
            Err(e) if Utc::now() < lease.expires_at => tracing::warn!("renewing the run lock: {e}"),
            Err(e) => {
                let _ = lost.send(Some(format!("the lock could not be renewed before it expired: {e}")));
                return;
            }
        }
    }
}

impl Held {
    /// Resolves only if the lease is lost, with the reason.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        let reason = match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => return std::future::pending().await,
        };
        reason
    }

    /// Stops renewing and deletes the lease (if it is still this run's).
    pub async fn release(self) -> Result<()> {
        self.renewal.abort();
        let condition = Condition { expression: "run_id = :me", values: vec![(":me", AttributeValue::S(self.run_id))] };
        self.dynamo.delete_if(&self.table, lock_key(&self.env), condition).await?;
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
            host: host.into(),
            pid,
            started_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in_secs),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_huge_lease_saturates_instead_of_panicking() {
        assert_eq!(expiry(at(0), Duration::from_secs(60)), at(60));
        assert_eq!(expiry(at(0), Duration::from_secs(u64::MAX)), DateTime::<Utc>::MAX_UTC);
        assert_eq!(expiry(at(0), Duration::from_secs(i64::MAX as u64)), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_live_lease_of_another_host_is_held_until_it_expires() {
        let other = lease("ci-2", 42, 60);
        assert_eq!(decide(Some(&other), at(59), "ci-1", |_| false), Decision::Held);
        assert!(matches!(decide(Some(&other), at(60), "ci-1", |_| true), Decision::Stale(_)));
        assert_eq!(decide(None, at(0), "ci-1", |_| true), Decision::Free);
    }

    #[test]
    fn a_lease_of_a_dead_process_on_this_host_is_stale_at_once() {
        let mine = lease("ci-1", 42, 60);
        assert_eq!(decide(Some(&mine), at(1), "ci-1", |_| true), Decision::Held, "still running");
        assert_eq!(
            decide(Some(&mine), at(1), "ci-1", |pid| pid != 42),
            Decision::Stale("process 42 on this host has ended".into())
        );
    }

    #[test]
    fn the_lease_item_round_trips() {
        let l = lease("ci-1", 7, 60);
        assert_eq!(from_item(&to_item("prod", &l)), Some(l));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
    }
}
