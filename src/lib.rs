//! revhook: Istio sidecar injection that is safe across control-plane revisions.
//!
//! The request path reads top to bottom: `server` → `handler` (decode once with `admission`,
//! dispatch) → `inject` | `validate` → `core`. The sources fill the core's snapshot from
//! beside; everything between decode and encode is pure.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cabundle;
pub mod check;
pub mod core;
pub mod handler;
pub mod health;
pub mod inject;
pub mod metrics;
pub mod offline;
pub mod run;
pub mod server;
pub mod sources;
pub mod tags;
pub mod tls;
pub mod validate;
