//! The pure core: no I/O, no clock. Source rows become items ([`plan`]) with their content hash
//! ([`hash`]); the diff ([`diff`], [`classify`]) judges them against what DynamoDB holds; [`cost`]
//! prices writes as DynamoDB bills them; [`report`] and [`runs`] are what a run says and what the
//! recorded runs add up to; [`metrics`] is a run's figures as Prometheus and CloudWatch read them.

pub mod bucket;
pub mod classify;
pub mod cost;
pub mod ddb_json;
pub mod diff;
pub mod hash;
pub mod iam;
pub mod item;
pub mod metrics;
pub mod number;
pub mod params;
pub mod plan;
pub mod planfile;
pub mod remap;
pub mod report;
pub mod runs;
pub mod status;
pub mod value;
