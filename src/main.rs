//! The `ddbsync` binary: parse arguments, set up logging, run, map the outcome to an exit code.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

// Building items allocates many small strings and maps; mimalloc does that several times faster
// than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ddbsync::cli::Cli::parse();
    let default_level = match cli.verbose {
        // The credential chain's warning about a provider that failed (with the SDK's debug dump
        // of its answer) comes just before the error that says the same: no credentials, where the
        // chain looked and how to give some. Likewise the region chain's about an instance
        // metadata service that is not there: the error that follows names every place looked in.
        0 => "warn,aws_config::meta::credentials::chain=off,aws_config::imds::region=off",
        1 => "ddbsync=info",
        _ => "ddbsync=debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .with_ansi(colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ddbsync::exit::Exit::Error.into();
        }
    };
    let outcome = runtime.block_on(async {
        let outcome = ddbsync::run(cli).await;
        // Cancel requests for queries the run gave up on are sent before the process ends.
        ddbsync::source::settle().await;
        outcome
    });
    match outcome {
        Ok(code) => code.into(),
        // A reader that stopped reading (`ddbsync history | head`) is not an error, as with any
        // Unix filter.
        Err(error) if ddbsync::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ddbsync::exit_for(&error).into()
        }
    }
}

/// Whether log lines carry ANSI colours: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (no-color.org). A log file or a scheduler's capture gets plain text.
fn colours(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::colours;
    use std::ffi::OsStr;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset, as no-color.org says");
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(!colours(false, None), "a file or a pipe");
        assert!(!colours(false, Some(OsStr::new("1"))));
    }
}
