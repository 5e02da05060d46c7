//! The one place that decides what is printed: the report on stdout (a table, or JSON with
//! `--json`), progress bars and notes on stderr. Progress bars appear only on a terminal and never
//! with `--quiet` or `--json`; notes go through the bars so that the two never interleave.

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Items per second, whole: indicatif's own `{per_sec}` prints three decimals.
fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0}/s", state.per_sec());
}

pub struct Printer {
    json: bool,
    quiet: bool,
    bars: MultiProgress,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Printer {
        let draw = if quiet || json || !io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Printer { json, quiet, bars: MultiProgress::with_draw_target(draw) }
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
        if self.bars.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            let _ = self.bars.println(text.as_ref());
        }
    }

    /// Something a person must read whatever the verbosity (stderr, so JSON on stdout stays whole).
    pub fn warn(&self, text: impl AsRef<str>) {
        if self.bars.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            let _ = self.bars.println(text.as_ref());
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

    /// A command's result on stdout: JSON with `--json`, else the text `human` makes of it.
    pub fn show<T: serde::Serialize + ?Sized>(&self, value: &T, human: impl FnOnce(&T) -> String) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)
        } else {
            write!(out, "{}", human(value))
        }
    }

    /// Text that is already in its final format (CSV, a policy document) on stdout.
    pub fn raw(&self, text: &str) -> io::Result<()> {
        io::stdout().lock().write_all(text.as_bytes())
    }

    /// Asks on the terminal; true only when the answer is exactly `expected`.
    pub fn confirm(&self, question: &str, expected: &str) -> io::Result<bool> {
        eprint!("{question} Type \"{expected}\" to continue: ");
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        Ok(answer.trim() == expected)
    }
}
