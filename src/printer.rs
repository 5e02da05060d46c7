//! The one place that decides what is printed: the report on stdout (a table, or JSON with
//! `--json`), progress bars and notes on stderr. Progress bars appear only on a terminal and never
//! with `--quiet` or `--json`; notes go through the bars so that the two never interleave.

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::units;

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

    /// A note for a person (stderr); silent with `--quiet` or `--json`.
    /// `--wait-lock`: the lock another run holds is waited for, up to `wait`.
    pub fn waiting_for_lock(&self, wait: Option<std::time::Duration>, refused: &anyhow::Error) {
        let limit = humantime::format_duration(wait.unwrap_or_default());
        self.note(format!("waiting up to {limit} for the run lock: {refused:#}"));
    }

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

    /// What a backup wrote.
    pub fn backup(&self, path: &std::path::Path, manifest: &crate::backup::Manifest) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            let value = serde_json::json!({ "file": path.display().to_string(), "manifest": manifest });
            serde_json::to_writer_pretty(&mut out, &value)?;
            return writeln!(out);
        }
        writeln!(out, "{}", path.display())?;
        for t in &manifest.tables {
            writeln!(out, "  {:<24} {:>10} items  {:>12} bytes  md5 {}", t.table, t.items, t.bytes, t.md5)?;
        }
        Ok(())
    }

    /// What a restore did: every table of the archive with its state, then how it ended.
    pub fn restored(&self, report: &crate::backup::RestoreReport) -> io::Result<()> {
        self.show(report, |report| {
            let mut out = String::new();
            for t in &report.tables {
                let name = t.table.as_deref().unwrap_or(&t.name);
                let line = match t.state {
                    "restored" => {
                        format!("{name:<24} {:>10} items restored, {} write units", t.written, units(t.write_units))
                    }
                    "partly written" => format!(
                        "{name:<24} {:>10} of {} items written (partly written), {} write units",
                        t.written,
                        t.items,
                        units(t.write_units)
                    ),
                    "left out" => format!("{name:<24} left out (not named with --table)"),
                    state => format!("{name:<24} {state}"),
                };
                out.push_str(&line);
                out.push('\n');
                for f in &t.failed {
                    // An item whose outcome is unknown says so in its reason; it is not called unwritten.
                    let label = if f.reason.starts_with(crate::writer::OUTCOME_UNKNOWN) { "" } else { "not written: " };
                    out.push_str(&format!("  {label}{}: {}\n", f.key, f.reason));
                }
            }
            let o = &report.outcome;
            if o.status != "completed" || o.exit_code != 0 {
                out.push_str(&format!("Restore {} (exit {})\n", o.status, o.exit_code));
            }
            out
        })
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
