//! Exit codes, the same for every command. Schedulers branch on them; the README lists them and
//! `ddbsync --help` ends with them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done, and nothing needs a look.
    Success = 0,
    /// The command failed: a server unreachable, an error from the source database or DynamoDB, a failed check.
    Error = 1,
    /// Bad usage or a bad profile: nothing was done.
    Usage = 2,
    /// The command finished and found something a person must look at: rows rejected or not written,
    /// deletes stopped by the mass-delete guard, or (verify) source and target differ. The output
    /// lists them.
    Differences = 3,
    /// Another run of the environment holds the run lock: nothing was done; try again later.
    Locked = 4,
    /// Stopped by SIGTERM or SIGINT before the run finished: what was written is kept and recorded,
    /// nothing was deleted after the stop, and the next run completes the work.
    Interrupted = 5,
    /// Only with `sync --dry-run --exit-code`: the dry run would create, update or delete items (or
    /// create or recreate a table); nothing else needs a look. Rows rejected outrank it (3), as any
    /// error does: the run it rehearses would exit 3, and the report still lists the changes.
    Pending = 6,
    /// `--max-cost`: the run's estimated cost exceeds the ceiling; nothing was written.
    OverBudget = 7,
}

impl Exit {
    /// Every code with its meaning, for `--help` and the README.
    pub const ALL: [(Exit, &'static str); 8] = [
        (Exit::Success, "success"),
        (Exit::Error, "error: a server, a query or a check failed"),
        (Exit::Usage, "bad usage or profile; nothing was done"),
        (Exit::Differences, "differences: rows rejected or not written, deletes refused, or verify found differences"),
        (Exit::Locked, "another run holds the lock of a table; nothing was done"),
        (Exit::Interrupted, "interrupted by SIGTERM or SIGINT; what was written is kept, the next run completes it"),
        (Exit::Pending, "changes pending: sync --dry-run --exit-code would write or delete something"),
        (Exit::OverBudget, "over budget: the estimated cost exceeds --max-cost; nothing was written"),
    ];

    /// The code's name, as `--json` errors give it (`error.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Error => "error",
            Exit::Usage => "usage",
            Exit::Differences => "differences",
            Exit::Locked => "locked",
            Exit::Interrupted => "interrupted",
            Exit::Pending => "pending",
            Exit::OverBudget => "over-budget",
        }
    }

    /// The worse of two outcomes, for commands that do several things.
    pub fn max(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Pending => 1,
            Exit::Differences => 2,
            Exit::OverBudget => 3,
            Exit::Locked => 4,
            Exit::Interrupted => 5,
            Exit::Error => 6,
            Exit::Usage => 7,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// `--max-cost`: the estimate exceeds the ceiling, so nothing was written: exits with
/// [`Exit::OverBudget`]. The message says the estimate, what it includes, and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverBudget(pub String);

impl OverBudget {
    /// The refusal of a run whose estimate (`estimate` USD, made of `parts`) exceeds `max` USD.
    pub fn of(what: &str, estimate: f64, parts: &str, max: f64) -> OverBudget {
        OverBudget(format!(
            "{what}: the estimated cost, USD {estimate:.6} ({parts}), exceeds --max-cost {max}: nothing was written; \
             raise --max-cost, or write less at once (--table, --param)"
        ))
    }
}

/// A command-line value that cannot be used (the message says which and why): exits with
/// [`Exit::Usage`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(Exit::Success.max(Exit::Differences), Exit::Differences);
        assert_eq!(Exit::Error.max(Exit::Differences), Exit::Error);
        assert_eq!(Exit::Error.max(Exit::Usage), Exit::Usage);
        assert_eq!(Exit::Usage.max(Exit::Error), Exit::Usage);
        assert_eq!(Exit::Success.max(Exit::Success), Exit::Success);
        assert_eq!(Exit::Pending.max(Exit::Differences), Exit::Differences, "rejected rows outrank pending changes");
        assert_eq!(Exit::Differences.max(Exit::Pending), Exit::Differences);
        assert_eq!(Exit::Success.max(Exit::Pending), Exit::Pending);
        assert_eq!(Exit::Pending.max(Exit::Error), Exit::Error);
        assert_eq!(Exit::OverBudget.max(Exit::Differences), Exit::OverBudget, "nothing written outranks findings");
        assert_eq!(Exit::OverBudget.max(Exit::Interrupted), Exit::Interrupted);
    }
}
