//! Integration tests: the ddbsync binary against a real PostgreSQL and a real DynamoDB-compatible
//! server (dynoxide or dynalite, by `DDBSYNC_TEST_SERVER`), on the PNI sample and on Chinook, and the
//! SQLite source against a SQLite file the tests create.

mod amplify_data;
mod backup;
mod chinook;
mod chinook_data;
mod cli;
mod contract;
mod deploy;
mod ecosystem;
mod errors;
mod faults;
mod fidelity;
mod figures;
mod harness;
mod index;
mod lock_wait;
mod metrics;
mod modelling;
mod ops;
mod pgproxy;
mod plan;
mod promote;
mod promote_ops;
mod proxy;
mod readme;
mod safety;
mod secure;
mod shards;
mod source;
mod sqlite;
mod status;
mod sync;
mod unattended;
mod verify;
mod writer;
