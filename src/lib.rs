//! ddbsync keeps DynamoDB tables in sync with PostgreSQL, writing only the items whose content
//! changed. See ARCHITECTURE.md for the data flow and the invariants.

pub mod backup;
pub mod build;
pub mod check;
pub mod classify;
pub mod cli;
mod commands;
pub mod cost;
pub mod ddb_json;
pub mod diff;
pub mod dryrun;
pub mod dynamo;
pub mod exit;
pub mod guard;
pub mod hash;
pub mod history;
pub mod iam;
pub mod item;
pub mod lock;
pub mod number;
pub mod pace;
pub mod params;
pub mod printer;
pub mod profile;
pub mod repair;
pub mod report;
pub mod retry;
pub mod scan;
pub mod source;
pub mod stop;
pub mod sync;
pub mod tables;
pub mod target;
pub mod value;
pub mod verify;
pub mod writer;

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
                        | source::SourceError::Open { .. }
                        | source::SourceError::Tls { .. }
                        | source::SourceError::Environment { .. }
                )
            )
    };
    if let Some(several) = error.downcast_ref::<sync::PlanErrors>() {
        several.exit()
    } else if error.chain().any(|e| e.is::<stop::Interrupted>()) {
        Exit::Interrupted
    } else if error.chain().any(|e| e.is::<lock::Locked>()) {
        Exit::Locked
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
