//! The `ddbsync` binary: parse arguments, set up logging, run, map the outcome to an exit code.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

// Building items allocates many small strings and maps; mimalloc does that several times faster
// than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's C API, linked through libmimalloc-sys (whose bindings do not name every option).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (mimalloc 3, as libmimalloc-sys 0.1
/// builds it; a test holds it to the option's default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Memory freed goes back to the system at once, not a second later (mimalloc 3's default): large
/// items (a 300 KB one, and its JSON in a call) are allocated and freed faster than that, and the
/// delay held about 50 MB of freed memory in a full load of them (BENCHMARKS.md).
fn return_freed_memory_at_once() {
    // SAFETY: sets one of mimalloc's options, an integer, by its number; any value is valid.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}
use ddbsync::cli::LogFormat;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let cli = match ddbsync::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(refused) => {
            // A command line clap refuses (exit 2) is a usage error like any other: with `--json`
            // on it, stdout gets its JSON document too. `--help` and `--version` are not errors.
            if refused.use_stderr() && ddbsync::printer::json_asked(std::env::args_os()) {
                let text = refused.render().to_string();
                let message = match refused.kind() {
                    // clap shows the command's help instead of a message.
                    clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        "a subcommand or argument is missing; --help lists them"
                    }
                    _ => &ddbsync::printer::clap_message(&text),
                };
                println!("{}", ddbsync::printer::error_document(message, ddbsync::exit::Exit::Usage));
            }
            refused.exit()
        }
    };
    let log_json = cli.log_format == LogFormat::Json;
    let default_level = match (cli.verbose, log_json) {
        // The credential chain's warning about a provider that failed (with the SDK's debug dump
        // of its answer) comes just before the error that says the same: no credentials, where the
        // chain looked and how to give some. Likewise the region chain's about an instance
        // metadata service that is not there: the error that follows names every place looked in.
        (0, false) => "warn,aws_config::meta::credentials::chain=off,aws_config::imds::region=off",
        // The notes a person sees without -v are log events in JSON: kept at the same verbosity.
        (0, true) => "warn,aws_config::meta::credentials::chain=off,aws_config::imds::region=off,ddbsync::note=info",
        (1, _) => "ddbsync=info",
        _ => "ddbsync=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if log_json {
        // One object a line, with the `run` span's fields (the run id) on every event; JSON never
        // holds ANSI escapes.
        logs.json().with_ansi(false).with_current_span(true).with_span_list(true).init();
    } else {
        logs.with_ansi(colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref())).init();
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            // Before any run: no log event could carry a run id.
            let message = format!("cannot start the async runtime: {e}");
            if cli.json {
                println!("{}", ddbsync::printer::error_document(&message, ddbsync::exit::Exit::Error));
            }
            eprintln!("error: {message}");
            return ddbsync::exit::Exit::Error.into();
        }
    };
    // One id per run, on every log event of the run (its final error included) and on its leases.
    let run_id = ddbsync::engine::run_id::make();
    // At the error level, so that no filter that lets an event through drops the span: every
    // event, warnings and the final error included, carries the run id.
    let span = tracing::error_span!("run", run_id = %run_id);
    ddbsync::engine::stop::log_as_json(log_json);
    ddbsync::engine::stop::json_out(cli.json);
    let outcome = runtime.block_on(
        async {
            let outcome = ddbsync::run(cli, run_id).await;
            // Cancel requests for queries the run gave up on are sent before the process ends.
            ddbsync::source::settle().await;
            outcome
        }
        .instrument(span.clone()),
    );
    let _in_run = span.enter();
    match outcome {
        Ok(code) => code.into(),
        // A reader that stopped reading (`ddbsync history | head`) is not an error, as with any
        // Unix filter.
        Err(error) if ddbsync::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let code = ddbsync::exit_for(&error);
            if log_json {
                tracing::error!(exit_code = code as u8, "{error:#}");
            } else {
                eprintln!("error: {error:#}");
            }
            code.into()
        }
    }
}

/// Most worker threads the async runtime starts. A run is bounded by DynamoDB and the source, not
/// by cores: each worker costs memory (its allocator heap and buffers, 1.4 to 2.4 MB of peak RSS
/// in a full load, BENCHMARKS.md), and a runtime sized to a large machine's cores held more for
/// nothing.
const MAX_WORKERS: usize = 4;

/// The async runtime: one worker per core, at most [`MAX_WORKERS`].
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    tokio::runtime::Builder::new_multi_thread().worker_threads(cores.min(MAX_WORKERS)).enable_all().build()
}

/// Whether log lines carry ANSI colours: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (no-color.org). A log file or a scheduler's capture gets plain text.
fn colours(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::colours;

    extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    #[test]
    fn the_purge_delay_is_the_option_it_is_numbered() {
        // mimalloc 3's defaults: arena_eager_commit 2, purge_delay 1000 (ms), max_errors 32.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            let get = |option| unsafe { mi_option_get(option) };
            assert_eq!(get(super::MI_OPTION_PURGE_DELAY - 11), 2, "arena_eager_commit");
            assert_eq!(get(super::MI_OPTION_PURGE_DELAY), 1000, "purge_delay");
            assert_eq!(get(super::MI_OPTION_PURGE_DELAY + 4), 32, "max_errors");
        }
    }
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
