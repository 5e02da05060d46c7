//! The run id: one per run (dry runs included), made when the command starts. It names the run in
//! every log event (the `run` span's `run_id` field) and in the leases of the run lock, so that a
//! lease seen in the metadata table leads to the run's log lines.
//!
//! `main` makes it ([`make`]) and logs in its span; `commands::run` scopes the command in [`scope`];
//! the lock reads the id with [`current`]. Outside a scope (a unit test taking a lease) every call
//! makes a fresh id, as each lease then belongs to its own run.

use std::future::Future;

tokio::task_local! {
    static CURRENT: String;
}

/// A fresh run id: `host:pid:microseconds`, unique across the hosts and processes that may share
/// a metadata table.
pub fn make() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}:{}:{}", std::process::id(), chrono::Utc::now().timestamp_micros())
}

/// Runs `work` as the run `id`.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// The id of the run this task works for (a fresh one outside [`scope`]).
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| make())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_has_one_id_and_no_two_runs_share_one() {
        let (a, b) = scope("run-a".into(), async { (current(), current()) }).await;
        assert_eq!((a.as_str(), b.as_str()), ("run-a", "run-a"));
        std::thread::sleep(std::time::Duration::from_micros(2));
        assert_ne!(current(), current(), "outside a run, each call is its own");
    }
}
