//! revhook: Istio sidecar injection that is safe across control-plane revisions.
//!
//! The request path is `server` → `admission::decode` → `inject::review` /
//! `validate::review` → `admission::encode`; everything between decode and encode is pure.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cabundle;
pub mod check;
pub mod handler;
pub mod inject;
pub mod labels;
pub mod metrics;
pub mod offline;
pub mod revisions;
pub mod run;
pub mod server;
pub mod state;
pub mod tags;
pub mod tls;
pub mod validate;
