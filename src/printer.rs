//! The one place that decides what is printed: the report on stdout (a table, or JSON with
//! `--json`), progress bars and notes on stderr. Progress bars appear only on a terminal and never
//! with `--quiet`, `--json` or `--log-format json`; notes go through the bars so that the two never
//! interleave. With `--log-format json`, notes and warnings are log events (`info`, `warn`), so
//! that every line on stderr is a JSON object.
//!
//! With `--json`, stdout holds exactly one JSON document whatever happens: the command's result,
//! or, when the command fails before it has one, `{"schema_version", "error"}` ([`error_document`]).
//! Every document carries [`SCHEMA_VERSION`]; `schema/ddbsync-output.schema.json` describes them.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::exit::Exit;

/// The version of the `--json` contract, in every document's `schema_version`. It goes up when a
/// field is removed or renamed, or its meaning or type changes; a field added leaves it as it is, so
/// a reader should ignore fields it does not know.
pub const SCHEMA_VERSION: u32 = 1;

/// A document as `--json` prints it: the version first, then the result's own fields.
#[derive(Serialize)]
struct Versioned<'a, T> {
    schema_version: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// The error of a failed command as `--json` prints it on stdout (the same text goes to stderr).
#[derive(Serialize)]
struct ErrorDocument<'a> {
    schema_version: u32,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    /// The whole message, causes included, as stderr shows it after `error: `.
    message: &'a str,
    /// The process's exit code.
    exit_code: u8,
    /// The exit code's name: `error`, `usage`, `locked`, `interrupted`, …
    kind: &'static str,
}

/// The JSON document (one line) that stands for a failed command on stdout with `--json`.
pub fn error_document(message: &str, exit: Exit) -> String {
    let body = ErrorBody { message, exit_code: exit as u8, kind: exit.name() };
    serde_json::to_string(&ErrorDocument { schema_version: SCHEMA_VERSION, error: body })
        .unwrap_or_else(|_| format!("{{\"schema_version\":{SCHEMA_VERSION},\"error\":{{}}}}"))
}

/// Whether `--json` is on a command line (before a `--`), for errors found before the command line
/// is parsed: clap's own refusals. `--json=true` (clap refuses a value for the flag) asks for JSON
/// too; `--json=false` does not.
pub fn json_asked<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> bool {
    args.into_iter().skip(1).take_while(|a| a != "--").any(|a| {
        let Some(a) = a.to_str() else { return false };
        match a.strip_prefix("--json") {
            Some("") => true,
            Some(value) => {
                matches!(value.to_ascii_lowercase().as_str(), "=true" | "=1" | "=yes" | "=on")
            }
            None => false,
        }
    })
}

/// The message of a command line clap refuses, for the JSON error document: clap's whole text
/// (its tips and the arguments it names included) without the `error: ` prefix and the usage and
/// `--help` lines, which stderr still shows.
pub fn clap_message(rendered: &str) -> String {
    let kept: Vec<&str> = rendered
        .trim()
        .trim_start_matches("error: ")
        .split("\n\n")
        .filter(|p| !p.starts_with("Usage:") && !p.starts_with("For more information"))
        .collect();
    kept.join("\n\n")
}

/// Items per second, whole: indicatif's own `{per_sec}` prints three decimals.
fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0}/s", state.per_sec());
}

pub struct Printer {
    json: bool,
    quiet: bool,
    /// `--log-format json`: notes and warnings go to the log as events.
    log_json: bool,
    bars: MultiProgress,
    /// A result went to stdout: an error after it is not a second JSON document.
    shown: AtomicBool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool, log_json: bool) -> Printer {
        let draw = if quiet || json || log_json || !io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Printer { json, quiet, log_json, bars: MultiProgress::with_draw_target(draw), shown: AtomicBool::new(false) }
    }

    /// `--lock-timeout`: the lock another run holds is waited for, up to `wait`.
    /// Said with `--json` too (on stderr, apart from the JSON): a scheduled run's log then shows
    /// why it is idle, and for whom; only `--quiet` silences it.
    pub fn waiting_for_lock(&self, wait: Option<std::time::Duration>, refused: &anyhow::Error) {
        if self.quiet {
            return;
        }
        let limit = humantime::format_duration(wait.unwrap_or_default());
        self.warn(format!("waiting up to {limit} for the run lock: {refused:#}"));
    }

    /// A note for a person (stderr); silent with `--quiet` or `--json`.
    pub fn note(&self, text: impl AsRef<str>) {
        if self.quiet || self.json {
            return;
        }
        if self.log_json {
            tracing::info!(target: "ddbsync::note", "{}", text.as_ref());
        } else if self.bars.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            let _ = self.bars.println(text.as_ref());
        }
    }

    /// Something a person must read whatever the verbosity (stderr, so JSON on stdout stays whole).
    pub fn warn(&self, text: impl AsRef<str>) {
        if self.log_json {
            tracing::warn!(target: "ddbsync::note", "{}", text.as_ref());
        } else if self.bars.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            let _ = self.bars.println(text.as_ref());
        }
    }

    /// A metrics line for a log agent (`--emf`): on stderr as it is, whatever the verbosity, so that
    /// stdout keeps only the report.
    pub fn metrics_line(&self, line: &str) {
        if self.bars.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.bars.println(line);
        }
    }

    /// A spinner counting items read so far.
    pub fn counter(&self, message: String) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {human_pos} items ({rate})")
                .expect("valid template")
                .with_key("rate", rate),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A bar of items written against items queued so far.
    pub fn writes(&self, message: String) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{msg}: [{bar:30}] {human_pos}/{human_len} written ({rate}, ETA {eta})")
                .expect("valid template")
                .with_key("rate", rate)
                .progress_chars("=> "),
        );
        bar.set_message(message);
        bar
    }

    /// A command's result on stdout: JSON with `--json` (a struct or a map, its fields after
    /// `schema_version`), else the text `human` makes of it. A command shows one result.
    /// A failure to write names stdout (its kind kept: a closed pipe is no error, see `is_broken_pipe`).
    pub fn show<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) -> io::Result<()> {
        self.shown.store(true, Ordering::Relaxed);
        let mut out = io::stdout().lock();
        let written = if self.json {
            serde_json::to_writer_pretty(&mut out, &Versioned { schema_version: SCHEMA_VERSION, body: value })
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            write!(out, "{}", human(value))
        }
        .and_then(|()| out.flush());
        written.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "writing the result to stdout failed: {e}; the command's work is done, only its report was lost"
                ),
            )
        })
    }

    /// One refresh of a watched result (`status --watch`): with `--json` one document a line (JSON
    /// Lines, each as [`Printer::show`] would print it); else `text`, after clearing the screen on a
    /// terminal, or after a blank line.
    pub fn update<T: Serialize>(&self, value: &T, text: &str) -> io::Result<()> {
        let first = !self.shown.swap(true, Ordering::Relaxed);
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut out, &Versioned { schema_version: SCHEMA_VERSION, body: value })
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))?;
        } else if io::stdout().is_terminal() {
            write!(out, "\x1b[2J\x1b[H{text}")?;
        } else {
            write!(out, "{}{text}", if first { "" } else { "\n" })?;
        }
        out.flush()
    }

    /// With `--json`, the error that ended a command, as the JSON document on stdout, unless the
    /// command already printed its result (a sync's or a restore's report says how it ended in its
    /// `outcome`). Best effort: stderr carries the same message.
    pub fn error(&self, error: &anyhow::Error, exit: Exit) {
        if self.json && !self.shown.swap(true, Ordering::Relaxed) {
            let _ = writeln!(io::stdout().lock(), "{}", error_document(&format!("{error:#}"), exit));
        }
    }

    /// Text that is already in its final format (CSV, a policy document) on stdout.
    pub fn raw(&self, text: &str) -> io::Result<()> {
        self.shown.store(true, Ordering::Relaxed);
        io::stdout().lock().write_all(text.as_bytes())
    }

    /// Asks on the terminal; true only when the answer is exactly `expected`.
    pub fn confirm(&self, question: &str, expected: &str) -> io::Result<bool> {
        eprint!("{question} Type \"{expected}\" to continue: ");
        io::stderr().flush()?;
        let mut answer = String::new();
        crate::engine::stop::asking(|| io::stdin().lock().read_line(&mut answer))?;
        Ok(answer.trim() == expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_document_carries_the_version_the_message_and_the_exit_code() {
        let doc: serde_json::Value =
            serde_json::from_str(&error_document("envs/x.toml: \"quoted\"", Exit::Usage)).unwrap();
        assert_eq!(doc["schema_version"], SCHEMA_VERSION);
        assert_eq!(doc["error"]["message"], "envs/x.toml: \"quoted\"");
        assert_eq!(doc["error"]["exit_code"], 2);
        assert_eq!(doc["error"]["kind"], "usage");
    }

    #[test]
    fn json_is_asked_only_before_a_double_dash() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(json_asked(args(&["ddbsync", "sync", "--json", "dev"])));
        assert!(json_asked(args(&["ddbsync", "--json", "bogus"])));
        assert!(!json_asked(args(&["ddbsync", "sync", "dev"])));
        assert!(!json_asked(args(&["ddbsync", "sync", "--", "--json"])));
        assert!(!json_asked(args(&["--json"])), "the program's own name is not an argument");
        assert!(!json_asked(args(&["ddbsync", "--jsonx"])));
        assert!(json_asked(args(&["ddbsync", "--json=true", "sync", "dev"])));
        assert!(json_asked(args(&["ddbsync", "sync", "--json=1", "dev"])));
        assert!(!json_asked(args(&["ddbsync", "--json=false", "sync", "dev"])), "asked not to");
    }

    #[test]
    fn a_clap_refusal_keeps_its_text_and_tips_without_the_usage_lines() {
        let text = "error: unexpected argument '--foo' found\n\n  tip: to pass '--foo' as a value, use '-- --foo'\n\n\
                    Usage: ddbsync sync <ENV>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_message(text),
            "unexpected argument '--foo' found\n\n  tip: to pass '--foo' as a value, use '-- --foo'"
        );
    }
}
