//! Exit codes, the same for every command. Schedulers branch on them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// The run failed (a server unreachable, an error from PostgreSQL or DynamoDB).
    Error = 1,
    /// Bad usage or a bad profile: nothing was done.
    Usage = 2,
    /// The run finished but something was left undone: rows rejected or not written, or deletes
    /// stopped by the mass-delete guard; the report lists them.
    Incomplete = 3,
    /// Another sync of the environment holds the run lock: nothing was done; try again later.
    Locked = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
