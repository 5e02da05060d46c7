//! Sets `DDBSYNC_VERSION`, the version `--version` prints: the package version, with the commit
//! and its date when built from a git checkout (`src/version.rs` says how, and is compiled here).

#[path = "src/version.rs"]
mod version;

fn main() {
    // A build script runs in the package's directory; Cargo also names it.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| ".".into(), std::path::PathBuf::from);
    for path in version::watched(&dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let commit = version::from_git(&dir);
    println!("cargo:rustc-env=DDBSYNC_VERSION={}", version::describe(env!("CARGO_PKG_VERSION"), commit.as_ref()));
}
