//! The rejects file: the rows a run did not write, one JSON object per line (table, kind, key,
//! reason), created 0600 as it holds data.

use std::path::Path;

use anyhow::{Context, Result};

use crate::pure::plan::Reject;

/// Writes the rows that were not written, one JSON object per line: table, kind, key, reason.
pub(super) fn write_rejects<'a>(
    path: &Path,
    lists: impl IntoIterator<Item = (&'a str, &'a str, &'a [Reject])>,
) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = create_private(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (table, kind, list) in lists {
        for r in list {
            let line = serde_json::json!({ "table": table, "kind": kind, "key": r.key, "reason": r.reason });
            writeln!(out, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// Creates (or truncates) a file that only its owner may read and write (0600): a rejects file
/// holds the keys of source rows. A file that already exists keeps its mode.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
