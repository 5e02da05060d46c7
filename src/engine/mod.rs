//! The runs: a sync ([`sync`]) and what shares its parts — verify and its repair, backup and
//! restore — over the source and target seams: the writer with its pace and retries, the diff's
//! Scan, the run lock and its fence, the run's id, and the signals that stop a run.

pub mod apply;
pub mod backup;
pub mod diff_index;
pub mod guard;
pub mod lock;
pub mod pace;
pub mod planning;
pub mod preflight;
pub mod progress;
pub mod promotion;
pub mod references;
pub mod repair;
pub mod run_id;
pub mod scan;
pub mod stop;
pub mod sync;
pub mod verify;
pub mod writer;
