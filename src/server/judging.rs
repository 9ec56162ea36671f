//! Judging off the reactor.
//!
//! Decoding and judging a review is CPU work: microseconds for the usual pod, more once its
//! revision's templates are rendered, and far more for a hostile body of several MiB. On a
//! tokio worker it would hold up every TLS handshake, health check and request queued on
//! that worker. So reviews are judged on threads of their own, in two lanes by body size:
//! bodies over [`SMALL_BODY`] go to the large lane, where hostile large bodies wait only on
//! each other, never in front of the usual review. The kernel shares the cores between these
//! threads and the reactor, which wakes rarely and briefly and so stays responsive. Bodies up
//! to `Limits::inline_body_limit` (8 KiB) are judged inline: for them the hand-off costs more
//! than the judging, and their cost is bounded by their size.
//!
//! A request waits for its verdict until its deadline (shortly before the API server's
//! `?timeout=`), then is answered 504. The job holds the request's in-flight slot and its
//! body's bytes in the budget, so they count until the work has really stopped: a job still
//! queued at its deadline is dropped unrun when a thread reaches it, and a running one stops
//! at the pipeline's next deadline check.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::{text, unavailable, Judging, Reply, Reservation, Slot, SMALL_BODY};
use crate::core::deadline::{Deadline, Expired};
use crate::core::labels::NamespaceLabels;
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Allow, Decision};
use crate::handler::{self, Webhook};
use crate::metrics::{DenyReason, InjectOutcome};

/// A complete request, ready to be judged.
pub(super) struct Input {
    pub webhook: Webhook,
    pub body: Bytes,
    pub snapshot: Arc<Snapshot>,
    /// The labels of the request's namespace, looked up outside the snapshot.
    pub namespace: Option<NamespaceLabels>,
    /// The cluster and network of an `/inject/cluster/<id>/net/<network>` path.
    pub proxy_envs: Vec<(String, String)>,
    /// Whether a namespace the snapshot lacks may be looked up (cluster mode).
    pub can_look_up: bool,
    pub started: Instant,
    /// When the answer must be on its way.
    pub deadline: Deadline,
}

/// What a request holds while it is being judged: its place among those in flight and its
/// body's bytes in the budget.
pub(super) struct Held {
    pub _slot: Slot,
    pub _reservation: Reservation,
}

/// What judging came to.
pub(super) enum Judged {
    /// A verdict: counted in the metrics and logged.
    Verdict(Reply),
    /// No verdict; the caller counts and logs it as an error.
    Refused(Reply),
    /// The request's namespace must be looked up first; judging resumes with its labels.
    NeedsNamespace {
        namespace: String,
        input: Input,
        held: Held,
    },
    /// Its deadline passed first.
    Expired,
}

/// Decodes and judges `input`. Sync and CPU-bound: runs on a judging thread, or inline for
/// bodies too small to be worth the hand-off. `held` is released before this returns a
/// final outcome, so the next request finds the slot free by the time it is answered.
pub(super) fn run(ctx: &Judging, input: Input, held: Held) -> Judged {
    if input.deadline.expired() {
        // It waited in the queue until nobody was waiting for it any more.
        return Judged::Expired;
    }
    let webhook = input.webhook;
    let req = match handler::decode(webhook, &input.body) {
        Ok(req) => req,
        Err(e) => return Judged::Refused(text(StatusCode::BAD_REQUEST, e.to_string())),
    };
    if !ctx.health.synced() {
        // A verdict from a snapshot that knows nothing would be wrong either way; an error
        // makes the API server apply the webhook's failurePolicy instead.
        let summary = req.summary();
        tracing::warn!(
            webhook = webhook.as_str(),
            uid = %summary.uid,
            kind = %summary.kind,
            namespace = %summary.namespace,
            name = %summary.name,
            "no verdict: the installed revisions and tags are not synced yet"
        );
        if webhook == Webhook::Inject {
            ctx.metrics
                .injection(None, None, InjectOutcome::Denied(DenyReason::NotSynced));
        }
        return Judged::Refused(unavailable(
            "revhook has not synced the installed revisions and tags yet; no verdict before it has"
                .into(),
        ));
    }
    if input.namespace.is_none() && input.can_look_up {
        if let Some(ns) = handler::unknown_namespace(webhook, &req, &input.snapshot) {
            let namespace = ns.to_owned();
            drop(req);
            return Judged::NeedsNamespace {
                namespace,
                input,
                held,
            };
        }
    }
    let context = handler::Context {
        snapshot: &input.snapshot,
        policy: &ctx.policy,
        namespace: input.namespace.as_ref(),
        proxy_envs: &input.proxy_envs,
    };
    let judged = handler::judge_until(webhook, &req, &input.body, &context, input.deadline);
    drop(held);
    let handled = match judged {
        Ok(handled) => handled,
        Err(Expired) => return Judged::Expired,
    };
    let path = webhook.as_str();
    let elapsed = input.started.elapsed();
    ctx.metrics
        .request(path, handled.verdict.outcome(), elapsed);
    ctx.metrics.admission(
        webhook,
        &req,
        &handled.verdict,
        &input.snapshot,
        &ctx.policy,
        input.namespace.as_ref(),
    );
    let summary = req.summary();
    if handled.verdict.decision == Decision::Allow(Allow::UnknownKind) {
        ctx.metrics.unknown_kind(summary.kind);
    }
    tracing::info!(
        webhook = path,
        uid = %summary.uid,
        kind = %summary.kind,
        namespace = %summary.namespace,
        name = %summary.name,
        operation = %summary.operation,
        decision = %handled.verdict.decision,
        allowed = handled.verdict.allowed,
        latency_us = elapsed.as_micros() as u64,
        "admission"
    );
    let mut resp = Response::new(Full::new(Bytes::from(handled.body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Judged::Verdict(resp)
}

// === Lanes: the judging threads ===

type Job = Box<dyn FnOnce() + Send>;

/// The judging threads: one lane for the usual bodies, one for large ones.
#[derive(Debug)]
pub(super) struct Lanes {
    small: Lane,
    large: Lane,
}

impl Lanes {
    pub fn new(small_threads: usize, large_threads: usize) -> Self {
        Lanes {
            small: Lane::start("revhook-judge", small_threads),
            large: Lane::start("revhook-judge-large", large_threads),
        }
    }

    /// The lane for a body of `len` bytes.
    pub fn for_body(&self, len: usize) -> &Lane {
        if len > SMALL_BODY {
            &self.large
        } else {
            &self.small
        }
    }
}

/// A queue and the threads that take jobs from it in order.
#[derive(Debug)]
pub(super) struct Lane(Arc<Queue>);

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    threads: usize,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("jobs", &self.jobs.len())
            .field("closed", &self.closed)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Jobs run outside the lock, and pushing or popping cannot panic halfway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lane {
    fn start(name: &str, threads: usize) -> Self {
        let queue = Arc::new(Queue::default());
        let mut started = 0;
        for i in 0..threads.max(1) {
            let worker = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&worker));
            match spawned {
                Ok(_) => started += 1,
                Err(error) => {
                    tracing::error!(%error, lane = name, "cannot start a judging thread");
                }
            }
        }
        queue.lock().threads = started;
        Lane(queue)
    }

    /// Queues `job`. Without a thread (none could be started) it runs here and now: slower
    /// for everyone, but every request still gets its answer.
    pub fn submit(&self, job: Job) {
        let mut state = self.0.lock();
        if state.threads == 0 {
            drop(state);
            job();
            return;
        }
        state.jobs.push_back(job);
        drop(state);
        self.0.ready.notify_one();
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// A judging thread: runs jobs in order until its lane closes and is empty.
fn work(queue: &Queue) {
    loop {
        let job = {
            let mut state = queue.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.closed {
                    return;
                }
                state = queue.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        // A panic is its job's alone: the waiting request sees the job gone (an error
        // answer) and the thread goes on with the next.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("judging a request panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_run_on_the_lane_threads_in_order_and_a_panic_spares_the_thread() {
        let lanes = Lanes::new(1, 1);
        let (tx, rx) = mpsc::channel();
        lanes
            .for_body(10)
            .submit(Box::new(|| panic!("a job's own panic")));
        for i in 0..3 {
            let tx = tx.clone();
            lanes.for_body(10).submit(Box::new(move || {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((i, name));
            }));
        }
        let got: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("ran"))
            .collect();
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(got
            .iter()
            .all(|(_, name)| name.as_deref() == Some("revhook-judge-0")));
    }

    #[test]
    fn a_busy_large_lane_does_not_hold_up_the_small_one() {
        let lanes = Lanes::new(1, 1);
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let held = release.clone();
        lanes.for_body(SMALL_BODY + 1).submit(Box::new(move || {
            let (lock, cvar) = &*held;
            let mut go = lock.lock().expect("lock");
            while !*go {
                go = cvar.wait(go).expect("wait");
            }
        }));
        let (tx, rx) = mpsc::channel();
        lanes.for_body(SMALL_BODY).submit(Box::new(move || {
            let _ = tx.send(());
        }));
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the small lane ran while the large one was busy"
        );
        let (lock, cvar) = &*release;
        *lock.lock().expect("lock") = true;
        cvar.notify_all();
    }

    #[test]
    fn closing_a_lane_ends_its_threads_after_the_queued_jobs() {
        let ran = Arc::new(AtomicUsize::new(0));
        let lane = Lane::start("test-lane", 2);
        let queue = lane.0.clone();
        for _ in 0..10 {
            let ran = ran.clone();
            lane.submit(Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(lane);
        // The threads hold the queue until they end.
        for _ in 0..500 {
            if Arc::strong_count(&queue) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(Arc::strong_count(&queue), 1, "the threads ended");
        assert_eq!(ran.load(Ordering::SeqCst), 10);
    }
}
