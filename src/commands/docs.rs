//! `completions` and `man`: a shell's completion script (clap_complete) and the manual page
//! (clap_mangen), both made from the clap command of `cli.rs` when asked for, so that neither can
//! miss a command or a flag, or say something `--help` does not.
//!
//! The manual is one page, like ripgrep's: the global options, then a section per command with
//! its synopsis, its options under the same headings as `--help`, and its examples; then the exit
//! codes (`Exit::ALL`, as `--help` lists them).

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};

use crate::cli::Cli;
use crate::exit::Exit;

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ddbsync", &mut script);
    script
}

/// What the page says before the commands, under DESCRIPTION.
const DESCRIPTION: &str = "ddbsync keeps Amazon DynamoDB tables in sync with a PostgreSQL database or a SQLite file. \
Each run reads the source with the queries of a profile's mappings, builds the DynamoDB items, \
hashes their content, compares the hashes with those already stored in DynamoDB and writes only \
the items that are new or changed; every run ends with a cost report. An environment is a \
profile, <env>.toml, in the profiles directory (--envs-dir).";

/// The manual page, roff for `man -l` or `man/man1/ddbsync.1`.
pub fn man_page() -> String {
    let cli = Cli::command();
    let man = clap_mangen::Man::new(cli.clone());
    let mut description = Roff::new();
    description.control("SH", ["DESCRIPTION"]).text([roman(DESCRIPTION)]);
    let mut pieces = vec![
        rendered(|w| man.render_title(w)),
        rendered(|w| man.render_name_section(w)),
        rendered(|w| man.render_synopsis_section(w)),
        description.render(),
        Roff::new().control("SH", ["GLOBAL OPTIONS"]).render(),
        titled(&rendered(|w| man.render_options_section(w))),
        Roff::new().control("SH", ["COMMANDS"]).render(),
    ];
    pieces.extend(commands_of(&cli).iter().map(|(path, command)| command_section(path, command)));
    let mut tail = Roff::new();
    tail.control("SH", ["EXAMPLES"]);
    examples(&mut tail, crate::cli::EXAMPLES);
    tail.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in Exit::ALL {
        tail.control("TP", []).text([bold((code as u8).to_string())]).text([roman(meaning)]);
    }
    pieces.push(tail.render());
    pieces.push(rendered(|w| man.render_version_section(w)));
    // The page has roff's preamble once, at the top.
    let mut page = Roff::new().render();
    for piece in &pieces {
        page.push_str(&lines(piece));
    }
    ascii(&page)
}

/// Characters beyond ASCII (`…`, `→`) as roff's `\[uXXXX]` escapes: `man` reads a page in the
/// locale's encoding, which is not always UTF-8.
fn ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}

/// Rendered roff without the preamble every rendering starts with (it defines the apostrophe
/// its text lines use; the page has it once).
fn lines(rendered: &str) -> String {
    let preamble = Roff::new().render();
    rendered.strip_prefix(&preamble).unwrap_or(rendered).to_string()
}

/// What a clap_mangen renderer writes, as text.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = render(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Every command below the top, depth first, with the words that name it (`["tables", "create"]`).
fn commands_of(top: &clap::Command) -> Vec<(Vec<String>, &clap::Command)> {
    fn walk<'a>(cmd: &'a clap::Command, path: &[String], out: &mut Vec<(Vec<String>, &'a clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
            let mut longer = path.to_vec();
            longer.push(sub.get_name().to_string());
            out.push((longer.clone(), sub));
            walk(sub, &longer, out);
        }
    }
    let mut out = Vec::new();
    walk(top, &[], &mut out);
    out
}

/// One command's part of the page: what it does, its synopsis, its options under their headings,
/// its examples. clap_mangen renders a command's synopsis and options as whole sections; here they
/// sit inside the command's section, so their section headings become paragraph titles.
fn command_section(path: &[String], command: &clap::Command) -> String {
    let name = format!("ddbsync {}", path.join(" "));
    // The synopsis names the command as typed; the global options are in GLOBAL OPTIONS.
    let man = clap_mangen::Man::new(command.clone().bin_name(&name));
    let mut head = Roff::new();
    head.control("SS", [name.as_str()]);
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        head.text([roman(about.to_string())]);
    }
    let mut text = lines(&head.render());
    text.push_str(&titled(&rendered(|w| man.render_synopsis_section(w))));
    text.push_str(&titled(&rendered(|w| man.render_options_section(w))));
    if let Some(after) = command.get_after_help() {
        let mut tail = Roff::new();
        tail.control("PP", []).text([bold("Examples")]);
        examples(&mut tail, &after.to_string());
        text.push_str(&lines(&tail.render()));
    }
    text
}

/// Sections clap_mangen rendered, made part of the section around them: each `.SH` heading
/// (SYNOPSIS, OPTIONS, SELECTION…) becomes a paragraph title spelled as `--help` spells headings.
fn titled(sections: &str) -> String {
    let mut text = String::new();
    for line in lines(sections).lines() {
        match line.strip_prefix(".SH ") {
            Some(title) => {
                let title = title.trim_matches('"');
                let mut chars = title.chars();
                let spelled: String = chars.next().into_iter().chain(chars.flat_map(char::to_lowercase)).collect();
                text.push_str(&lines(&Roff::new().control("PP", []).text([bold(spelled)]).control("br", []).render()));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// The example lines of an `after_help` ("Examples:" then indented lines), kept as they are:
/// no filling, each on its own line, indented.
fn examples(roff: &mut Roff, after_help: &str) {
    roff.control("RS", []).control("nf", []);
    for line in after_help.lines().skip_while(|l| !l.starts_with("Examples:")).skip(1) {
        if line.trim().is_empty() {
            break;
        }
        roff.text([roman(line.trim())]);
    }
    roff.control("fi", []).control("RE", []);
}

#[cfg(test)]
mod tests {
    use std::process::Command as Process;

    use super::*;

    /// Every command (the top one as `[]`), built as the parser sees it (global flags included).
    fn all_commands() -> Vec<(Vec<String>, clap::Command)> {
        let mut top = Cli::command();
        top.build();
        let mut all = vec![(Vec::new(), top.clone())];
        all.extend(commands_of(&top).into_iter().map(|(path, c)| (path, c.clone())));
        all
    }

    fn longs(command: &clap::Command) -> Vec<String> {
        command.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect()
    }

    /// What bash's completion offers after `words` (the last one being completed), by running the
    /// script the way bash-completion does.
    fn bash_offers(script: &std::path::Path, words: &[&str]) -> Vec<String> {
        let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
        let program = format!(
            "source '{}'; COMP_WORDS=({line}); COMP_CWORD={}; _ddbsync ddbsync '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Process::new("bash").args(["--norc", "-c", &program]).output().expect("bash runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
    }

    /// The bash script parses, and bash itself, running it, offers every command and, for every
    /// command, every long flag the parser accepts.
    #[test]
    fn bash_completes_every_command_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ddbsync.bash");
        std::fs::write(&script, completions(Shell::Bash)).unwrap();
        let syntax = Process::new("bash").arg("-n").arg(&script).output().expect("bash runs");
        assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

        let top = bash_offers(&script, &["ddbsync", ""]);
        for (path, command) in all_commands() {
            if let Some(first) = path.first() {
                assert!(top.contains(first), "{first} not offered: {top:?}");
            }
            let mut words: Vec<&str> = vec!["ddbsync"];
            words.extend(path.iter().map(String::as_str));
            if command.has_subcommands() {
                let offered = bash_offers(&script, &[words.clone(), vec![""]].concat());
                for sub in command.get_subcommands() {
                    assert!(
                        offered.contains(&sub.get_name().to_string()),
                        "{words:?}: {} in {offered:?}",
                        sub.get_name()
                    );
                }
            }
            let offered = bash_offers(&script, &[words.clone(), vec!["--"]].concat());
            for flag in longs(&command) {
                assert!(offered.contains(&flag), "{words:?}: {flag} not offered: {offered:?}");
            }
        }
    }

    #[test]
    fn every_shell_script_names_every_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell, Shell::Elvish] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for (path, _) in all_commands().iter().skip(1) {
                let name = path.last().unwrap();
                assert!(script.contains(name.as_str()), "{shell}: {name}");
            }
        }
    }

    /// The page's part for one command: from its `.SS` line to the next `.SS` or `.SH`.
    fn section<'a>(page: &'a str, title: &str) -> &'a str {
        let start = page.find(title).unwrap_or_else(|| panic!("no {title}"));
        let rest = &page[start + title.len()..];
        let end = [rest.find("\n.SS "), rest.find("\n.SH ")].into_iter().flatten().min().unwrap_or(rest.len());
        &rest[..end]
    }

    /// Every command has its section, every flag it takes is in it (the global ones in GLOBAL
    /// OPTIONS), and every exit code is in EXIT STATUS.
    #[test]
    fn the_man_page_has_every_command_flag_and_exit_code() {
        let page = man_page();
        let roffed = |flag: &str| flag.replace('-', "\\-");
        let mut globals = Vec::new();
        for (path, command) in all_commands() {
            let (title, part) = if path.is_empty() {
                (".SH \"GLOBAL OPTIONS\"".to_string(), section(&page, ".SH \"GLOBAL OPTIONS\""))
            } else {
                let title = format!(".SS \"ddbsync {}\"", path.join(" "));
                let part = section(&page, &title);
                (title, part)
            };
            for arg in command.get_arguments().filter(|a| !a.is_positional()) {
                if arg.is_global_set() && !path.is_empty() {
                    continue;
                }
                if arg.is_global_set() {
                    globals.push(arg.get_id().to_string());
                }
                if let Some(long) = arg.get_long() {
                    assert!(part.contains(&format!("\\fB{}\\fR", roffed(&format!("--{long}")))), "{title}: --{long}");
                }
                if let Some(short) = arg.get_short() {
                    assert!(part.contains(&format!("\\fB\\-{short}\\fR")), "{title}: -{short}");
                }
            }
            if let Some(about) = command.get_about().filter(|_| !path.is_empty()) {
                assert!(part.contains(&roffed(&about.to_string()).replace('\'', "\\*(Aq")), "{title}: {about}");
            }
            if !path.is_empty() {
                assert!(part.contains("\\fBExamples\\fR"), "{title}");
            }
        }
        assert!(globals.len() >= 4, "{globals:?}");
        assert!(section(&page, ".SH NAME").contains("ddbsync \\- Keep DynamoDB tables in sync"));
        let exits = section(&page, ".SH \"EXIT STATUS\"");
        for (code, meaning) in Exit::ALL {
            assert!(exits.contains(&format!(".TP\n\\fB{}\\fR\n{}", code as u8, roffed(meaning))), "{code:?}");
        }
    }

    /// A check that needs no tool: only the requests the page means to use, no text line roff
    /// could read as one, and ASCII only (`man` reads a page in the locale's encoding).
    #[test]
    fn the_man_page_is_plain_man_roff() {
        let page = man_page();
        assert!(page.is_ascii());
        let known = ["TH", "SH", "SS", "PP", "TP", "IP", "RS", "RE", "br", "nf", "fi", "ie", "el"];
        for line in page.lines() {
            if let Some(request) = line.strip_prefix('.') {
                let name = request.split_whitespace().next().unwrap_or("");
                assert!(known.contains(&name), "unexpected request: {line}");
            }
            assert!(!line.starts_with('\''), "a text line read as a request: {line}");
        }
        assert!(page.lines().filter(|l| l.starts_with(".TH ")).count() == 1);
        assert_eq!(page.matches(".ds Aq").count(), 2, "the preamble once");
    }

    /// Where groff is installed (`man` uses it), it reads the page without a warning, and the
    /// text it lays out names every command and flag.
    #[test]
    fn groff_renders_the_man_page_where_installed() {
        let Ok(probe) = Process::new("groff").arg("--version").output() else {
            eprintln!("groff is not installed: the page is checked by the_man_page_is_plain_man_roff only");
            return;
        };
        assert!(probe.status.success());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ddbsync.1");
        std::fs::write(&file, man_page()).unwrap();
        let out = Process::new("groff").args(["-man", "-Tutf8", "-ww", "-P-cbou"]).arg(&file).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warned");
        let text = String::from_utf8(out.stdout).unwrap();
        for (path, command) in all_commands().iter().skip(1) {
            assert!(text.contains(&format!("ddbsync {}", path.join(" "))), "{path:?}");
            for long in command.get_arguments().filter_map(|a| a.get_long()) {
                assert!(text.contains(&format!("--{long}")), "{path:?}: --{long}");
            }
        }
        assert!(text.contains("EXIT STATUS"));
    }
}
