//! One AdmissionReview in, one out: the pure function the server, `replay` and the
//! benchmarks share.

use crate::admission::{self, ReviewError, Verdict};
use crate::inject::decide::Policy;
use crate::state::Snapshot;

/// Which webhook a request was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Inject,
    Validate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Inject => "inject",
            Webhook::Validate => "validate",
        }
    }
}

/// What was decided for one review, for the response and the log line.
#[derive(Debug)]
pub struct Handled {
    pub body: Vec<u8>,
    pub verdict: Verdict,
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
}

/// Decodes `body`, judges it, and encodes the response.
pub fn handle(
    webhook: Webhook,
    body: &[u8],
    snapshot: &Snapshot,
    policy: &Policy,
) -> Result<Handled, ReviewError> {
    let req = admission::decode(body)?;
    let verdict = match webhook {
        Webhook::Inject => crate::inject::review(&req, snapshot, policy),
        Webhook::Validate => crate::validate::review(&req, snapshot, policy),
    };
    let body = admission::encode(&req.uid, &verdict);
    Ok(Handled {
        body,
        verdict,
        uid: req.uid.into_owned(),
        kind: req.kind.kind.into_owned(),
        namespace: req.namespace.map(|n| n.into_owned()).unwrap_or_default(),
        name: req.name.map(|n| n.into_owned()).unwrap_or_default(),
        operation: req.operation.into_owned(),
    })
}
