//! ddbsync keeps DynamoDB tables in sync with a source database (PostgreSQL or SQLite), writing
//! only the items whose content changed. See ARCHITECTURE.md for the data flow and the invariants.
//!
//! The folders are the architecture: [`pure`] is the core with no I/O (items, hashes, the diff,
//! costs, reports); [`source`] and [`target`] are the seams to the source database and to
//! DynamoDB; [`engine`] runs syncs, verifies, repairs, backups and restores over those seams;
//! `commands` is one function per command; [`profile`] loads and validates the configuration;
//! `cli`, `exit` and `printer` are the shell's arguments, exit codes and output; `export` delivers a
//! sync's metrics (a file, a Pushgateway, CloudWatch EMF lines).

pub mod cli;
mod commands;
pub mod engine;
pub mod exit;
pub mod export;
pub mod printer;
pub mod profile;
pub mod pure;
pub mod source;
pub mod target;
// Compiled into build.rs, which runs it; here only for its tests.
#[cfg(test)]
mod version;

use engine::{lock, preflight, stop, sync};
use exit::Exit;
use profile::ProfileError;

pub use commands::run;

/// The exit code for an error: profile and usage errors are distinguished from failed runs.
pub fn exit_for(error: &anyhow::Error) -> Exit {
    let misconfigured = |e: &(dyn std::error::Error + 'static)| {
        e.is::<ProfileError>()
            || e.is::<exit::UsageError>()
            || matches!(
                e.downcast_ref(),
                Some(
                    source::SourceError::MissingPassword { .. }
                        | source::SourceError::Url { .. }
                        | source::SourceError::Service(..)
                        | source::SourceError::Setting { .. }
                        | source::SourceError::Open { .. }
                        | source::SourceError::Tls { .. }
                        | source::SourceError::Environment { .. }
                )
            )
    };
    if let Some(several) = error.downcast_ref::<preflight::PlanErrors>() {
        several.exit()
    } else if error.chain().any(|e| e.is::<stop::Interrupted>() || e.is::<stop::Cut>() || e.is::<stop::Signalled>()) {
        Exit::Interrupted
    } else if error.chain().any(|e| e.is::<lock::Locked>()) {
        Exit::Locked
    } else if error.chain().any(|e| e.is::<exit::OverBudget>()) {
        Exit::OverBudget
    } else if error.chain().any(|e| e.is::<sync::RejectedBeforeWrite>()) {
        Exit::Differences
    } else if error.chain().any(misconfigured) {
        Exit::Usage
    } else {
        Exit::Error
    }
}

/// Whether an error is stdout closed by its reader.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
