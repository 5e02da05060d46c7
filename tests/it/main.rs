//! Integration tests: the ddbsync binary against a real PostgreSQL and a real DynamoDB-compatible
//! server (dynoxide or dynalite, by `DDBSYNC_TEST_SERVER`), on the PNI sample and on Chinook.

mod backup;
mod chinook;
mod errors;
mod faults;
mod harness;
mod modelling;
mod ops;
mod proxy;
mod safety;
mod secure;
mod sync;
