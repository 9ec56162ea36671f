//! One AdmissionReview in, one out: the pure function the server, `replay` and the
//! benchmarks share.

use crate::admission::{self, ReviewError};
use crate::core::deadline::{Deadline, Expired};
use crate::core::labels::NamespaceLabels;
use crate::core::policy::Policy;
use crate::core::request::{PodRequestIn, Request, RequestIn};
use crate::core::snapshot::Snapshot;
use crate::core::verdict::Verdict;

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

/// What was decided for one review: the encoded response and the verdict it carries.
#[derive(Debug)]
pub struct Handled {
    pub body: Vec<u8>,
    pub verdict: Verdict,
}

/// What the log line names about a request, borrowed from the decoded review (the hot path
/// copies none of it).
#[derive(Debug, Clone, Copy)]
pub struct Summary<'r> {
    pub uid: &'r str,
    pub kind: &'r str,
    pub namespace: &'r str,
    pub name: &'r str,
    pub operation: &'r str,
}

/// A decoded request, on the fastest path its webhook allows.
// One lives on the stack per request; boxing the larger variant would add an allocation to
// the hot path for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded<'a> {
    /// `/inject` with a Pod-shaped object, parsed in the same pass as the review.
    Pod(PodRequestIn<'a>),
    Any(RequestIn<'a>),
}

impl Decoded<'_> {
    pub fn namespace(&self) -> &str {
        match self {
            Decoded::Pod(r) => r.namespace(),
            Decoded::Any(r) => r.namespace(),
        }
    }

    pub fn summary(&self) -> Summary<'_> {
        match self {
            Decoded::Pod(r) => summary(r),
            Decoded::Any(r) => summary(r),
        }
    }
}

fn summary<'r, O>(req: &'r Request<'_, O>) -> Summary<'r> {
    Summary {
        uid: &req.uid,
        kind: &req.kind.kind,
        namespace: req.namespace(),
        name: req.name.as_deref().unwrap_or_default(),
        operation: &req.operation,
    }
}

/// Decodes a review for `webhook`. A malformed body gets the generic decoder's error.
pub fn decode(webhook: Webhook, body: &[u8]) -> Result<Decoded<'_>, ReviewError> {
    if webhook == Webhook::Inject {
        if let Ok(req) = admission::decode_pod(body) {
            return Ok(Decoded::Pod(req));
        }
    }
    admission::decode(body).map(Decoded::Any)
}

/// Decodes `body`, judges it, and encodes the response.
pub fn handle(
    webhook: Webhook,
    body: &[u8],
    snapshot: &Snapshot,
    policy: &Policy,
) -> Result<Handled, ReviewError> {
    let req = decode(webhook, body)?;
    Ok(judge(webhook, &req, body, &Context::new(snapshot, policy)))
}

/// Whether judging `req` needs the labels of a namespace the snapshot does not know.
pub fn unknown_namespace<'r>(
    webhook: Webhook,
    req: &'r Decoded<'_>,
    snapshot: &Snapshot,
) -> Option<&'r str> {
    let ns = req.namespace();
    (webhook == Webhook::Inject && !ns.is_empty() && snapshot.namespace(ns).is_none()).then_some(ns)
}

/// What a request is judged against, besides its own review.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The installed revisions and tags and the namespaces' labels.
    pub snapshot: &'a Snapshot,
    pub policy: &'a Policy,
    /// The labels of the request's namespace, when they were looked up outside the snapshot.
    pub namespace: Option<&'a NamespaceLabels>,
    /// The cluster and network of an `/inject/cluster/<id>/net/<network>` path.
    pub proxy_envs: &'a [(String, String)],
}

impl<'a> Context<'a> {
    /// The context of a request to plain `/inject` or `/validate` whose namespace the
    /// snapshot knows.
    pub fn new(snapshot: &'a Snapshot, policy: &'a Policy) -> Self {
        Context {
            snapshot,
            policy,
            namespace: None,
            proxy_envs: &[],
        }
    }
}

/// Judges a decoded request and encodes the response.
pub fn judge(webhook: Webhook, req: &Decoded<'_>, body: &[u8], ctx: &Context<'_>) -> Handled {
    match req {
        Decoded::Pod(r) => handled(
            r,
            crate::inject::review_pod_request(
                r,
                || raw_object(body),
                ctx.snapshot,
                ctx.policy,
                ctx.namespace,
                ctx.proxy_envs,
            ),
        ),
        Decoded::Any(r) => {
            let verdict = match webhook {
                Webhook::Inject => crate::inject::review(
                    r,
                    ctx.snapshot,
                    ctx.policy,
                    ctx.namespace,
                    ctx.proxy_envs,
                ),
                Webhook::Validate => crate::validate::review(r, ctx.snapshot, ctx.policy),
            };
            handled(r, verdict)
        }
    }
}

/// [`judge`], unless `deadline` has passed first. The server checks it between decoding and
/// judging; the pipeline polls it between its own stages once it takes it (template
/// rendering is the stage that can run long).
pub fn judge_until(
    webhook: Webhook,
    req: &Decoded<'_>,
    body: &[u8],
    ctx: &Context<'_>,
    deadline: Deadline,
) -> Result<Handled, Expired> {
    deadline.check()?;
    Ok(judge(webhook, req, body, ctx))
}

/// The review's object as raw JSON, read again from the body: the fast path parsed it as a
/// Pod, and only custom injection needs its raw form.
fn raw_object(body: &[u8]) -> Option<String> {
    admission::decode(body)
        .ok()
        .and_then(|r| r.object().map(str::to_owned))
}

/// Encodes the response to `req`.
fn handled<O>(req: &Request<'_, O>, verdict: Verdict) -> Handled {
    Handled {
        body: admission::encode(&req.uid, &verdict),
        verdict,
    }
}
