//! Stopping cleanly on SIGTERM and SIGINT (what Kubernetes, systemd and a terminal send).
//!
//! The first signal asks the run to stop: it reads no more rows, sends no new batch, gives the
//! batches already sent [`DRAIN`] to finish, records the run as interrupted and prints what it did.
//! A second signal exits at once with the same code; the lease it leaves behind is free at once
//! for the next run on this host (its process is gone) and after its expiry elsewhere.
//!
//! Every command listens from the process's start (`commands::run`). A phase that holds something
//! (a lock, writes in flight) marks itself with [`Stop::hold`] and ends itself on a stop; any other
//! phase (connecting, reading, comparing) holds nothing and is cut at once ([`Stop::cut`]), so that
//! every command ends on a signal with exit 5 and its message, never killed by it.
//!
//! Once the run's outcome is decided (a sync delivering its metrics, [`Stop::delivering`]), a
//! signal no longer changes it: the first cuts the delivery short, a second exits at once, both
//! with the run's exit code.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::exit::Exit;

/// How long batches already sent may take to finish after a stop was asked for; well inside
/// Kubernetes' default 30 s grace period.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The latest a command's work ends after the first signal: [`DRAIN`] for the batches in flight,
/// then time to record the run and release the lock. `main` then waits for the source's cancel
/// requests, each bounded by the connect timeout (`source.connect_timeout_secs`, 10 s by default),
/// so the process is gone within this plus the connect timeout: what a scheduler's grace period
/// (Kubernetes' `terminationGracePeriodSeconds`, systemd's `TimeoutStopSec`) must allow; the
/// files in `deploy/` allow 60 s, and a test holds them to this.
pub const STOPPED_WITHIN: Duration = Duration::from_secs(DRAIN.as_secs() + 10);

/// With `--log-format json`, the second signal's message is a log event, as every line on stderr.
static LOG_JSON: AtomicBool = AtomicBool::new(false);

/// Says the second signal's message as a log event (`--log-format json`) instead of a line of text.
pub fn log_as_json(json: bool) {
    LOG_JSON.store(json, Ordering::Relaxed);
}

/// With `--json`, a process that a signal ends at once (a second signal, or one at a question)
/// still prints its one error document on stdout, as every failing command does.
static JSON_OUT: AtomicBool = AtomicBool::new(false);

/// Whether an exit at once prints the `--json` error document.
pub fn json_out(json: bool) {
    JSON_OUT.store(json, Ordering::Relaxed);
}

/// Ends the process at once on a signal, with `message` on stderr (and the `--json` error
/// document on stdout when no result was printed: `undecided`).
fn exit_now(message: &str, code: i32, undecided: bool) -> ! {
    if JSON_OUT.load(Ordering::Relaxed) && undecided {
        println!("{}", crate::printer::error_document(message, Exit::Interrupted));
    }
    if LOG_JSON.load(Ordering::Relaxed) {
        tracing::error!(exit_code = code, "{message}");
    } else {
        eprintln!("{message}");
    }
    std::process::exit(code)
}

/// Whether a stop was asked for, and when; the signals seen; how many phases hold something.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<Option<(&'static str, Instant)>>, Signals);

/// A phase that holds something and ends itself on a stop, from [`Stop::hold`] until dropped.
#[derive(Debug)]
pub struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A question is waiting for an answer on the terminal: the thread that reads it cannot see a stop,
/// so the first signal ends the process at once (nothing has been changed before a question).
static ASKING: AtomicBool = AtomicBool::new(false);

/// Runs `read` (a blocking read of an answer) as the question of [`ASKING`].
pub fn asking<T>(read: impl FnOnce() -> T) -> T {
    ASKING.store(true, Ordering::SeqCst);
    let answer = read();
    ASKING.store(false, Ordering::SeqCst);
    answer
}

/// A command stopped by a signal in a phase that held nothing: nothing it did is half done.
#[derive(Debug, thiserror::Error)]
#[error("{command}: interrupted by {signal} before it finished; it held no lock and wrote no item, so running it again completes it")]
pub struct Cut {
    pub command: &'static str,
    pub signal: &'static str,
}

/// Every signal received (the latest's name and how many so far), the run's exit code once its
/// outcome is decided ([`UNDECIDED`] before), and how many phases hold something ([`Stop::hold`]).
#[derive(Clone, Debug)]
struct Signals {
    seen: watch::Receiver<(&'static str, u32)>,
    decided: Arc<AtomicI32>,
    holding: Arc<AtomicUsize>,
}

const UNDECIDED: i32 = -1;

impl Signals {
    fn never() -> Signals {
        let (tx, seen) = watch::channel(("", 0));
        std::mem::forget(tx);
        Signals { seen, decided: Arc::new(AtomicI32::new(UNDECIDED)), holding: Arc::default() }
    }
}

/// A signal ended a phase that had written nothing, such as a wait for the lock; the context says
/// what was not done.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {0}")]
pub struct Signalled(pub &'static str);

/// The run stopped on a signal before it finished; what it wrote is kept.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted by {0}: stopped before the run finished; what was written is kept, and the next run completes the work"
)]
pub struct Interrupted(pub &'static str);

impl Stop {
    /// A stop that is never asked for (tests, and commands that are safe to kill).
    pub fn never() -> Stop {
        let (tx, rx) = watch::channel(None);
        // Kept alive for ever, so that `wait` pends instead of failing.
        std::mem::forget(tx);
        Stop(rx, Signals::never())
    }

    /// Listens for SIGTERM and SIGINT: the first asks for a stop, the second exits at once
    /// (unless the outcome is decided, [`Stop::delivering`]).
    pub fn on_signals() -> Stop {
        let (tx, rx) = watch::channel(None);
        let (seen_tx, seen) = watch::channel(("", 0));
        let decided = Arc::new(AtomicI32::new(UNDECIDED));
        let outcome = decided.clone();
        // In the run's span, so that its message carries the run id.
        let listening = async move {
            let (mut count, mut since_decided) = (0, 0);
            loop {
                let name = next_signal().await;
                count += 1;
                let _ = seen_tx.send((name, count));
                let code = outcome.load(Ordering::SeqCst);
                if code != UNDECIDED {
                    // The first cuts the delivery short (the delivery listens); a second exits.
                    since_decided += 1;
                    if since_decided > 1 {
                        exit_at_once(name, code, false);
                    }
                } else if count == 1 && ASKING.load(Ordering::SeqCst) {
                    eprintln!();
                    exit_now(&format!("{name} at the question: nothing was changed"), Exit::Interrupted as i32, true);
                } else if count == 1 {
                    let _ = tx.send(Some((name, Instant::now())));
                } else {
                    exit_at_once(name, Exit::Interrupted as i32, true);
                }
            }
        };
        tokio::spawn(listening.instrument(tracing::Span::current()));
        Stop(rx, Signals { seen, decided, holding: Arc::default() })
    }

    /// Marks a phase that holds something until the guard is dropped: a stop then leaves the
    /// phase [`STOPPED_WITHIN`] to end itself before [`Stop::cut`] cuts it.
    pub fn hold(&self) -> Held {
        self.1.holding.fetch_add(1, Ordering::SeqCst);
        Held(self.1.holding.clone())
    }

    /// Resolves when a stopped command is to be cut: at once when no phase holds anything, else
    /// when the holding phases ended or [`STOPPED_WITHIN`] after the signal, whichever comes first.
    /// The error says which: [`Cut`] for a command that held nothing, [`Interrupted`] for one cut
    /// while it still held something (what it wrote is kept).
    pub async fn cut(&self, command: &'static str) -> anyhow::Error {
        let signal = self.wait().await;
        let at = self.0.borrow().map_or_else(Instant::now, |(_, at)| at);
        let holding = &self.1.holding;
        while holding.load(Ordering::SeqCst) > 0 && at.elapsed() < STOPPED_WITHIN {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if holding.load(Ordering::SeqCst) > 0 {
            Interrupted(signal).into()
        } else {
            Cut { command, signal }.into()
        }
    }

    /// Runs `work`, the delivery of an outcome already decided (exit code `code`), until it ends or
    /// a signal comes, whichever is first: `Err` with the signal's name when one cut it short.
    /// From here on a signal no longer changes the exit code: a second one exits at once with `code`.
    pub async fn delivering<F: Future>(&self, code: u8, work: F) -> Result<F::Output, &'static str> {
        let mut seen = self.1.seen.clone();
        seen.borrow_and_update();
        self.1.decided.store(i32::from(code), Ordering::SeqCst);
        let signalled = async {
            match seen.changed().await {
                Ok(()) => seen.borrow().0,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            done = work => Ok(done),
            name = signalled => Err(name),
        }
    }

    /// A stop whose signals the test sends itself, by name.
    #[cfg(test)]
    pub fn for_test() -> (Stop, impl Fn(&'static str) + Send + 'static) {
        let (tx, rx) = watch::channel(None);
        let (seen_tx, seen) = watch::channel(("", 0));
        let signals = Signals { seen, decided: Arc::new(AtomicI32::new(UNDECIDED)), holding: Arc::default() };
        let send = move |name| {
            let _ = tx.send(Some((name, Instant::now())));
            seen_tx.send_modify(|(last, count)| {
                *last = name;
                *count += 1;
            });
        };
        (Stop(rx, signals), send)
    }

    /// The signal that asked for a stop, if one did.
    pub fn requested(&self) -> Option<&'static str> {
        self.0.borrow().map(|(name, _)| name)
    }

    /// Resolves when a stop is asked for, with the signal's name.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.0.clone();
        if rx.wait_for(Option::is_some).await.is_err() {
            return std::future::pending().await;
        }
        self.requested().unwrap_or("a signal")
    }

    /// Resolves `extra` after a stop was asked for: the bound on whatever is still running then.
    pub async fn expired(&self, extra: Duration) -> &'static str {
        let name = self.wait().await;
        let at = self.0.borrow().map_or_else(Instant::now, |(_, at)| at);
        tokio::time::sleep_until((at + extra).into()).await;
        name
    }
}

/// The second signal: ends the process now, with `code`.
fn exit_at_once(name: &str, code: i32, undecided: bool) -> ! {
    let message = format!("{name} again: exiting at once; the next run completes the work");
    exit_now(&message, code, undecided)
}

#[cfg(unix)]
async fn next_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without handlers the default actions stay: the process ends on the signal.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn next_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_never_asked_for_never_resolves() {
        let stop = Stop::never();
        assert_eq!(stop.requested(), None);
        let waited = tokio::time::timeout(Duration::from_millis(50), stop.wait()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn a_delivery_ends_with_its_work_or_at_the_next_signal_and_a_past_one_does_not_cut_it() {
        let (stop, signal) = Stop::for_test();
        assert_eq!(stop.1.decided.load(Ordering::SeqCst), UNDECIDED);
        signal("SIGTERM");
        let done = stop.delivering(3, tokio::time::sleep(Duration::from_millis(20))).await;
        assert_eq!(done, Ok(()), "the signal that came before the delivery does not cut it");
        assert_eq!(stop.1.decided.load(Ordering::SeqCst), 3, "a later signal exits with the run's code");
        let slow = stop.delivering(0, tokio::time::sleep(Duration::from_secs(30)));
        let started = Instant::now();
        let (cut, ()) = tokio::join!(slow, async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            signal("SIGINT");
        });
        assert_eq!(cut, Err("SIGINT"));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(stop.1.decided.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_stop_is_seen_by_every_clone_and_expires_after_its_bound() {
        let (tx, rx) = watch::channel(None);
        let stop = Stop(rx, Signals::never());
        let other = stop.clone();
        tx.send(Some(("SIGTERM", Instant::now()))).unwrap();
        assert_eq!(other.requested(), Some("SIGTERM"));
        assert_eq!(stop.wait().await, "SIGTERM");
        let started = Instant::now();
        assert_eq!(stop.expired(Duration::from_millis(100)).await, "SIGTERM");
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test]
    async fn a_stop_cuts_at_once_what_holds_nothing_and_waits_for_what_holds() {
        let (tx, rx) = watch::channel(None);
        let stop = Stop(rx, Signals::never());
        let held = stop.hold();
        tx.send(Some(("SIGTERM", Instant::now()))).unwrap();
        // Held: not cut before the holding phase ends.
        assert!(tokio::time::timeout(Duration::from_millis(300), stop.cut("sync")).await.is_err());
        drop(held);
        let cut = tokio::time::timeout(Duration::from_millis(100), stop.cut("check")).await;
        let cut = cut.expect("nothing held: cut at once");
        assert_eq!(cut.to_string(), Cut { command: "check", signal: "SIGTERM" }.to_string());
    }
}
