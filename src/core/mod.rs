//! The pure core: the snapshot every request is judged against, revisions and tags, the
//! policy knobs, the typed verdict, the messages people read, and Istio's names.
//!
//! Nothing here does I/O or knows the server, the admission wire format, the sources, kube,
//! tokio, hyper or clap; `tests/architecture.rs` fails the build's tests if a file here
//! imports one of them.

pub mod deadline;
pub mod images;
pub mod injector;
pub mod json;
pub mod labels;
pub mod lookup;
pub mod mapping;
pub mod mesh;
pub mod messages;
pub mod namespaces;
pub mod pod;
pub mod policy;
pub mod request;
pub mod revisions;
pub mod selector;
pub mod snapshot;
pub mod verdict;
pub mod webhooks;
pub mod yaml;
