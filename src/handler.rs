//! One AdmissionReview in, one out: the pure function the server, `replay` and the
//! benchmarks share.

use crate::admission::{self, RequestIn, ReviewError, Verdict};
use crate::inject::decide::Policy;
use crate::labels::NamespaceLabels;
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
    Ok(judge(webhook, &req, snapshot, policy, None))
}

/// Whether judging `req` needs the labels of a namespace the snapshot does not know.
pub fn unknown_namespace<'r>(
    webhook: Webhook,
    req: &'r RequestIn<'_>,
    snapshot: &Snapshot,
) -> Option<&'r str> {
    let ns = req.namespace();
    (webhook == Webhook::Inject && !ns.is_empty() && snapshot.namespace(ns).is_none()).then_some(ns)
}

/// Judges a decoded request and encodes the response. `namespace` supplies the labels of the
/// request's namespace when they were looked up outside the snapshot.
pub fn judge(
    webhook: Webhook,
    req: &RequestIn<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    namespace: Option<&NamespaceLabels>,
) -> Handled {
    let verdict = match webhook {
        Webhook::Inject => crate::inject::review_with(req, snapshot, policy, namespace),
        Webhook::Validate => crate::validate::review(req, snapshot, policy),
    };
    let body = admission::encode(&req.uid, &verdict);
    Handled {
        body,
        verdict,
        uid: req.uid.clone().into_owned(),
        kind: req.kind.kind.clone().into_owned(),
        namespace: req.namespace().to_owned(),
        name: req.name.as_deref().unwrap_or_default().to_owned(),
        operation: req.operation.clone().into_owned(),
    }
}
