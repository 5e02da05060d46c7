//! The version `--version` prints: the package's version and, when built from a git checkout of
//! this repository, the commit it was built from and that commit's date, marked `dirty` when the
//! sources built (`src/`, `build.rs`, `Cargo.toml`, `Cargo.lock`) differ from the commit.
//!
//! `build.rs` compiles this file too and runs it at build time, so the binary carries the answer
//! (in `DDBSYNC_VERSION`) and never needs git at run time. A build that is not from a checkout of
//! this repository (`cargo install` from a tarball, a copy inside another repository, no git
//! installed) gets the package version alone: a commit is never guessed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit a build came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// `git rev-parse --short=12 HEAD`.
    pub hash: String,
    /// The commit's date (the committer's), YYYY-MM-DD.
    pub date: String,
    /// The sources built differ from the commit (tracked files modified, staged or deleted).
    pub dirty: bool,
}

/// What the binary's version says: `0.1.0`, `0.1.0 (0123456789ab 2026-11-27)`, or
/// `0.1.0 (0123456789ab-dirty 2026-11-27)` (the `-dirty` suffix as `git describe --dirty` spells it).
pub fn describe(version: &str, commit: Option<&Commit>) -> String {
    match commit {
        None => version.to_string(),
        Some(c) => format!("{version} ({}{} {})", c.hash, if c.dirty { "-dirty" } else { "" }, c.date),
    }
}

/// The paths whose content decides whether the binary differs from its commit.
const BUILT: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

/// The commit of the checkout whose top is `dir`, or `None` when `dir` is not the top of a git
/// work tree (the package unpacked from a tarball, or copied below another repository, whose
/// commit says nothing about these sources) or git cannot be run.
pub fn from_git(dir: &Path) -> Option<Commit> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let date = git(dir, &["show", "-s", "--date=short", "--format=%cd", "HEAD"])?;
    // `diff --quiet` exits 1 when the work tree differs from HEAD in the built paths; any other
    // failure leaves the tree's state unknown, and the commit is then not claimed.
    let mut diff = Command::new("git");
    diff.current_dir(dir).args(["--no-optional-locks", "diff", "--quiet", "HEAD", "--"]).args(BUILT);
    let dirty = match diff.output().ok()?.status.code() {
        Some(0) => false,
        Some(1) => true,
        _ => return None,
    };
    Some(Commit { hash, date, dirty })
}

/// The files a build script watches (`cargo:rerun-if-changed`) so that the version it computed
/// stays true: git's HEAD, the branch it points to (loose or packed), and every built source.
/// Only existing files are named: Cargo would rerun the script on every build for a missing one.
pub fn watched(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut git_files = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        git_files.push(branch);
    }
    for name in git_files {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            paths.push(dir.join(path));
        }
    }
    for built in BUILT {
        sources(&dir.join(built), &mut paths);
    }
    paths.retain(|p| p.exists());
    paths
}

/// `path` if it is a file, else every `.rs` file below it (not a directory as a whole: a test's
/// leftover snapshot file must not make the next build recompile).
fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(path) else {
        out.push(path.to_path_buf());
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A git command's trimmed output, or `None` when git is missing, fails or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").current_dir(dir).args(["--no-optional-locks"]).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(dirty: bool) -> Commit {
        Commit { hash: "0123456789ab".into(), date: "2026-11-27".into(), dirty }
    }

    #[test]
    fn the_version_alone_without_a_commit() {
        assert_eq!(describe("0.1.0", None), "0.1.0");
    }

    #[test]
    fn the_commit_and_its_date_after_the_version() {
        assert_eq!(describe("0.1.0", Some(&commit(false))), "0.1.0 (0123456789ab 2026-11-27)");
        assert_eq!(describe("0.1.0", Some(&commit(true))), "0.1.0 (0123456789ab-dirty 2026-11-27)");
    }

    /// Runs git in `dir` with a fixed identity and dates, failing the test when git fails.
    fn run(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", "2001-02-03T04:05:06Z")
            .env("GIT_COMMITTER_DATE", "2001-02-03T04:05:06Z")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A repository at `dir` holding a package's built files, committed once.
    fn package_repo(dir: &Path) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(dir.join("README.md"), "a\n").unwrap();
        run(dir, &["init", "-q"]);
        run(dir, &["add", "."]);
        run(dir, &["commit", "-q", "-m", "first"]);
    }

    #[test]
    fn a_checkout_gives_its_commit_and_dirty_only_when_a_built_file_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        package_repo(dir);
        let full = run(dir, &["log", "-1", "--format=%H"]);
        let found = from_git(dir).expect("a checkout has a commit");
        assert_eq!(found.hash.len(), 12, "{found:?}");
        assert!(full.starts_with(&found.hash), "{full} {found:?}");
        assert_eq!(found.date, "2001-02-03");
        assert!(!found.dirty);

        // Not a built file: the binary is still the commit's.
        std::fs::write(dir.join("README.md"), "b\n").unwrap();
        assert!(!from_git(dir).unwrap().dirty);
        std::fs::write(dir.join("src/main.rs"), "fn main() { }\n").unwrap();
        assert!(from_git(dir).unwrap().dirty);
        // Staged is still not committed.
        run(dir, &["add", "src/main.rs"]);
        assert!(from_git(dir).unwrap().dirty);
        run(dir, &["commit", "-q", "-m", "second"]);
        let second = from_git(dir).unwrap();
        assert!(!second.dirty);
        assert_ne!(second.hash, found.hash);
        std::fs::remove_file(dir.join("Cargo.toml")).unwrap();
        assert!(from_git(dir).unwrap().dirty, "a deleted built file");
    }

    #[test]
    fn no_commit_outside_a_checkout_or_below_another_repository() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(from_git(tmp.path()), None, "a tarball's sources");

        let outer = tempfile::tempdir().unwrap();
        package_repo(outer.path());
        let inner = outer.path().join("vendor/ddbsync");
        std::fs::create_dir_all(inner.join("src")).unwrap();
        std::fs::write(inner.join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(from_git(&inner), None, "the enclosing repository's commit is not this package's");
    }

    #[test]
    fn the_build_watches_head_the_branch_and_the_sources() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        package_repo(dir);
        let watched = watched(dir);
        let names: Vec<String> =
            watched.iter().map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()).collect();
        let branch = run(dir, &["symbolic-ref", "HEAD"]);
        for expected in [".git/HEAD".to_string(), format!(".git/{branch}"), "Cargo.toml".into(), "src/main.rs".into()] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("README")), "{names:?}");
        assert!(watched.iter().all(|p| p.exists()), "{watched:?}");
    }
}
