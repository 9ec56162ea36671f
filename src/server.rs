//! The HTTPS webhook server and the plain-HTTP admin port.
//!
//! Every connection gets TCP_NODELAY (responses otherwise wait on delayed ACKs), a bounded TLS
//! handshake and header read, and a span; open connections are capped, and each is watched:
//! closed when idle, cut when its responses are not read. Request bodies are read under a size
//! limit, a global budget of buffered bytes and the API server's `?timeout=`, before an
//! in-flight slot is taken; the request is then judged off the reactor (see [`judging`])
//! and answered 504 if its deadline passes first.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::core::deadline::Deadline;
use crate::core::lookup::{Lookup, NamespaceLookup};
use crate::core::policy::Policy;
use crate::core::snapshot::Snapshot;
use crate::handler::Webhook;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::sources::SharedSnapshot;

mod judging;

use judging::{Held, Input, Judged, Lanes};

/// Bounds on what one client may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (istiod uses 6 MiB: an UPDATE carries object and oldObject).
    pub body_limit: usize,
    /// TLS handshake must complete within this (neither hyper nor rustls bounds it), and the
    /// first request must begin within this after it.
    pub handshake_timeout: Duration,
    /// Request headers must arrive within this.
    pub header_timeout: Duration,
    /// Bound on reading and answering a request when the API server sends no `?timeout=` (its
    /// default is 10 s); a `?timeout=` is honoured up to [`MAX_API_TIMEOUT`].
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// After SIGTERM, keep serving this long with `/readyz` false, so endpoints drop us first.
    pub shutdown_delay: Duration,
    /// Admission requests judged at once; more get 503 rather than queueing without end. A
    /// slot is taken only once the whole body has arrived.
    pub max_in_flight: usize,
    /// A connection with no request in progress for this long is closed. Longer than the API
    /// server client's `IdleConnTimeout` (90 s), so it, not we, closes a pooled connection and
    /// never sends a request on one we are closing.
    pub idle_timeout: Duration,
    /// Open connections (TLS handshakes included); new ones beyond it are closed at once.
    pub max_connections: usize,
    /// Request body bytes buffered across all connections; a request that would go beyond
    /// it gets 503 at once.
    pub max_buffered_bytes: usize,
    /// HTTP/2 streams at once on one connection.
    pub max_streams_per_connection: u32,
    /// A response not written out within this (a client that does not read) cuts its
    /// connection.
    pub send_timeout: Duration,
    /// Response bytes one connection may leave unread; beyond, the connection is cut.
    pub max_unsent_bytes_per_connection: usize,
    /// Threads judging bodies up to 64 KiB (the usual review), beside the tokio workers.
    pub judge_threads: usize,
    /// Threads judging larger bodies: these wait only on each other.
    pub large_judge_threads: usize,
    /// Bodies up to this size are judged inline on the reactor, where the hand-off to a
    /// judging thread would cost more than the judging (0: none; default [`INLINE_BODY`]).
    pub inline_body_limit: usize,
}

/// The API server's largest `timeoutSeconds` for a webhook.
pub const MAX_API_TIMEOUT: Duration = Duration::from_secs(30);

/// Early answers (415, 413, 503) first read and discard a body up to this size, so HTTP/2
/// clients see the answer instead of a reset stream (curl prints `000` for those). Reading
/// to discard costs time, not memory; larger bodies are answered at once.
pub const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: 6 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(25),
            shutdown_delay: Duration::ZERO,
            max_in_flight: 1024,
            idle_timeout: Duration::from_secs(120),
            max_connections: 8192,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_streams_per_connection: 100,
            send_timeout: Duration::from_secs(10),
            max_unsent_bytes_per_connection: 4 * 1024 * 1024,
            judge_threads: cores(),
            large_judge_threads: (cores() / 2).max(1),
            inline_body_limit: INLINE_BODY,
        }
    }
}

/// Bodies up to this size are judged inline by default. The hand-off to a judging thread and
/// back cost 21-95 µs for a lone request and 0.4-3.4 µs per request with 64 in flight on this
/// project's 2-core VM (criterion, `cargo bench --bench inject -- judging`), more than judging
/// the usual review of a few KiB takes; every path is linear in the body, so judging 8 KiB
/// inline holds a worker for well under a millisecond even for a hostile body.
pub const INLINE_BODY: usize = 8 * 1024;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Everything a request needs.
#[derive(Debug)]
pub struct App {
    pub snapshot: Arc<SharedSnapshot>,
    pub policy: Policy,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub limits: Limits,
    /// Cluster mode: where to ask for a namespace the snapshot does not know yet.
    pub namespace_lookup: Option<Arc<dyn NamespaceLookup>>,
    judging: Arc<Judging>,
    /// Response bytes not yet written out, over all connections.
    unsent: Arc<AtomicUsize>,
}

/// What a request being judged holds on to, wherever it runs: the policy, the metrics it
/// records, readiness, and the counters and threads it is judged under.
#[derive(Debug)]
struct Judging {
    policy: Policy,
    metrics: Metrics,
    health: Arc<Health>,
    in_flight: Arc<InFlight>,
    budget: Arc<Budget>,
    lanes: Lanes,
}

/// Counts admission requests being handled. Requests over the limit are refused, never
/// queued, so a counter is all it takes (an async semaphore would lock on every release).
#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    limit: usize,
}

/// One admission request's place under the limit, given back on drop.
struct Slot(Arc<InFlight>);

impl InFlight {
    fn new(limit: usize) -> Self {
        // Zero would refuse everything.
        InFlight {
            count: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    fn try_enter(self: &Arc<Self>) -> Option<Slot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Request body bytes buffered across all connections, under a limit.
///
/// Large bodies may fill only part of it: the rest is kept for small ones, so clients
/// holding bodies near the size limit cannot starve the usual review of a few KiB.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

/// Bodies up to this size may use the whole budget; larger ones only [`LARGE_SHARE`] of it.
const SMALL_BODY: usize = 64 * 1024;
/// The share of the budget (in quarters) that bodies over [`SMALL_BODY`] may fill.
const LARGE_SHARE: usize = 3;

/// Bytes of one request body counted in the budget, given back on drop.
struct Reservation {
    budget: Arc<Budget>,
    held: usize,
}

impl Budget {
    fn new(limit: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// How far the budget may be filled by a body that will be `size` bytes long.
    fn ceiling(&self, size: usize) -> usize {
        if size <= SMALL_BODY {
            self.limit
        } else {
            self.limit / 4 * LARGE_SHARE
        }
    }

    /// Could a body of `size` bytes be buffered now?
    fn fits(&self, size: usize) -> bool {
        self.used.load(Ordering::Acquire).saturating_add(size) <= self.ceiling(size)
    }

    fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }
}

impl Reservation {
    /// Counts `n` more bytes; false (and nothing counted) if that would pass the limit.
    fn grow(&mut self, n: usize) -> bool {
        let budget = &self.budget;
        let ceiling = budget.ceiling(self.held + n);
        let ok = budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= ceiling)
            })
            .is_ok();
        if ok {
            self.held += n;
        }
        ok
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

impl App {
    /// Request body bytes buffered right now (metrics, tests).
    pub fn buffered_body_bytes(&self) -> usize {
        self.judging.budget.used.load(Ordering::Acquire)
    }

    /// Admission requests holding an in-flight slot: being judged, or queued to be (tests).
    pub fn requests_in_flight(&self) -> usize {
        self.judging.in_flight.count.load(Ordering::Acquire)
    }

    /// Response bytes handed to connections and not yet written out (metrics, tests).
    pub fn unsent_response_bytes(&self) -> usize {
        self.unsent.load(Ordering::Acquire)
    }

    pub fn new(
        snapshot: Arc<SharedSnapshot>,
        policy: Policy,
        metrics: Metrics,
        health: Arc<Health>,
        limits: Limits,
    ) -> Self {
        let judging = Arc::new(Judging {
            policy,
            metrics: metrics.clone(),
            health: health.clone(),
            in_flight: Arc::new(InFlight::new(limits.max_in_flight)),
            budget: Arc::new(Budget::new(limits.max_buffered_bytes)),
            lanes: Lanes::new(limits.judge_threads, limits.large_judge_threads),
        });
        App {
            snapshot,
            policy,
            metrics,
            health,
            limits,
            namespace_lookup: None,
            judging,
            unsent: Arc::default(),
        }
    }
}

type Reply = Response<Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body: String = body.into();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// 503 with a Kubernetes `Status` body: the API server's client reads its message into the
/// error it reports (`failed calling webhook ...: <message>`), where a plain-text body would
/// become "the server is currently unable to handle the request".
fn unavailable(message: String) -> Reply {
    status_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    )
}

/// 504 with a Kubernetes `Status` body (reason `Timeout`): the API server counts it as the
/// webhook failing and applies the failurePolicy, with this message in its error.
fn timed_out(timeout: Duration) -> Reply {
    status_reply(
        StatusCode::GATEWAY_TIMEOUT,
        "Timeout",
        format!("revhook could not judge the request within its timeout ({timeout:?}); no verdict"),
    )
}

fn status_reply(code: StatusCode, reason: &str, message: String) -> Reply {
    let status = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "code": code.as_u16(),
        "message": message,
    });
    let mut resp = Response::new(Full::new(Bytes::from(status.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `/readyz`'s body when ready: and each revision that cannot inject, with why (the server
/// still serves the others; their pods are refused with the same reason), each revision
/// removed in part, and the sources' notes (an Istio namespace skipped).
fn ready_text(snapshot: &Snapshot, notes: &[String]) -> String {
    let mut out = String::from("ready");
    for rev in snapshot.table.revisions() {
        if let Err(problem) = &rev.injector {
            out.push_str(&format!("\nrevision {} cannot inject: {problem}", rev.name));
        }
    }
    for half in snapshot.table.half_removed() {
        out.push_str(&format!(
            "\nrevision {} is half-removed, not installed: {}",
            half.revision,
            half.what_is_left()
        ));
    }
    for note in notes {
        out.push('\n');
        out.push_str(note);
    }
    out
}

/// Which endpoint a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Webhook(Webhook),
    Healthz,
    Readyz,
    Metrics,
    Unknown,
}

fn endpoint(path: &str, admin: bool) -> Endpoint {
    match path {
        "/healthz" => Endpoint::Healthz,
        "/readyz" => Endpoint::Readyz,
        "/metrics" => Endpoint::Metrics,
        _ if admin => Endpoint::Unknown,
        "/inject" => Endpoint::Webhook(Webhook::Inject),
        p if p.starts_with("/inject/") => Endpoint::Webhook(Webhook::Inject),
        "/validate" => Endpoint::Webhook(Webhook::Validate),
        _ => Endpoint::Unknown,
    }
}

/// Routes one request. Generic over the body so tests drive it in-process without TLS
/// (`tests/router.rs`).
pub async fn route<B>(app: &App, req: Request<B>, admin: bool) -> Reply
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let endpoint = endpoint(req.uri().path(), admin);
    let (label, reply) = match endpoint {
        Endpoint::Webhook(webhook) => (
            webhook.as_str(),
            admission(app, webhook, req, started).await,
        ),
        Endpoint::Healthz => (
            "healthz",
            get_only(&req).unwrap_or_else(|| text(StatusCode::OK, "ok")),
        ),
        Endpoint::Readyz => (
            "readyz",
            get_only(&req).unwrap_or_else(|| match app.health.ready() {
                Ok(()) => text(
                    StatusCode::OK,
                    ready_text(&app.snapshot.load(), &app.health.notes()),
                ),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
            }),
        ),
        Endpoint::Metrics => (
            "metrics",
            get_only(&req).unwrap_or_else(|| metrics_reply(app)),
        ),
        Endpoint::Unknown => (
            "unknown",
            text(StatusCode::NOT_FOUND, "not found: use /inject or /validate"),
        ),
    };
    if !matches!(endpoint, Endpoint::Webhook(_)) {
        let outcome = if reply.status().is_success() {
            "ok"
        } else {
            "error"
        };
        app.metrics.request(label, outcome, started.elapsed());
    }
    reply
}

fn get_only<B>(req: &Request<B>) -> Option<Reply> {
    (req.method() != Method::GET && req.method() != Method::HEAD).then(|| method_not_allowed("GET"))
}

fn metrics_reply(app: &App) -> Reply {
    app.metrics.observe_snapshot(&app.snapshot.load());
    let mut resp = Response::new(Full::new(Bytes::from(app.metrics.render())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

/// `POST /inject` and `POST /validate`.
async fn admission<B>(app: &App, webhook: Webhook, req: Request<B>, started: Instant) -> Reply
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = webhook.as_str();
    let fail = |reply: Reply| {
        app.metrics.request(path, "error", started.elapsed());
        tracing::warn!(
            webhook = path,
            status = reply.status().as_u16(),
            "request rejected"
        );
        reply
    };
    // `/inject/cluster/<id>/net/<network>`: the proxy's cluster and network, as istiod reads them.
    let proxy_envs = crate::inject::inject_path_envs(req.uri().path());
    let timeout = request_timeout(
        req.uri().query(),
        app.limits.request_timeout,
        MAX_API_TIMEOUT,
    );
    let (parts, body) = req.into_parts();
    let body = std::pin::pin!(body);
    let (body, reservation) = match read_admission_body(app, &parts, body, started + timeout).await
    {
        Ok(read) => read,
        Err(reply) => return fail(reply),
    };
    // Only now, with the whole request here, does it take a place among those being judged:
    // a client trickling its body holds nothing but its own connection.
    let Some(slot) = app.judging.in_flight.try_enter() else {
        return fail(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many admission requests in flight; retry",
        ));
    };
    let deadline = Deadline::at(answer_by(started, timeout));
    let mut input = Input {
        webhook,
        body,
        snapshot: app.snapshot.load(),
        namespace: None,
        proxy_envs,
        can_look_up: app.namespace_lookup.is_some(),
        started,
        deadline,
    };
    let mut held = Held {
        _slot: slot,
        _reservation: reservation,
    };
    loop {
        match judge(app, input, held).await {
            Judged::Verdict(reply) => return reply,
            Judged::Refused(reply) => return fail(reply),
            Judged::Expired => {
                app.metrics.judging_timeout();
                return fail(timed_out(timeout));
            }
            Judged::NeedsNamespace {
                namespace,
                input: mut waiting,
                held: still,
            } => match look_up(app, &namespace, deadline).await {
                Ok(labels) => {
                    waiting.namespace = Some(labels);
                    (input, held) = (waiting, still);
                }
                Err(reply) => return fail(reply),
            },
        }
    }
}

/// When a request's answer must be on its way: a twentieth of its timeout before the API
/// server gives up, so that an answer that no verdict was reached arrives while it still
/// listens (and its log says why, not just "context deadline exceeded").
fn answer_by(started: Instant, timeout: Duration) -> Instant {
    started + timeout - timeout / 20
}

/// Judges `input` inline or on a judging thread, waiting for the verdict until its deadline.
async fn judge(app: &App, input: Input, held: Held) -> Judged {
    let len = input.body.len();
    if len <= app.limits.inline_body_limit {
        return judging::run(&app.judging, input, held);
    }
    let Some(deadline) = input.deadline.instant() else {
        return judging::run(&app.judging, input, held);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let judging = app.judging.clone();
    let span = tracing::Span::current();
    app.judging.lanes.for_body(len).submit(Box::new(move || {
        let _entered = span.enter();
        let _ = tx.send(judging::run(&judging, input, held));
    }));
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(judged)) => judged,
        // The job was dropped without an answer: it panicked.
        Ok(Err(_)) => Judged::Refused(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "judging the request failed",
        )),
        Err(_) => Judged::Expired,
    }
}

/// The labels of a namespace the snapshot does not know, or the answer to give instead:
/// without its labels a pod would be judged as if its namespace selected nothing, and let
/// through without a sidecar, so no verdict (the failurePolicy decides).
async fn look_up(
    app: &App,
    namespace: &str,
    deadline: Deadline,
) -> Result<crate::core::labels::NamespaceLabels, Reply> {
    let Some(lookup) = &app.namespace_lookup else {
        return Err(unavailable(format!(
            "namespace {namespace:?} is not known yet; no verdict without its labels"
        )));
    };
    let asked = lookup.lookup(namespace.to_owned());
    // Bounded by what is left of the request's time: a slow GET must not make the API
    // server give up on us.
    let found = match deadline.instant() {
        Some(at) => tokio::time::timeout_at(at.into(), asked)
            .await
            .unwrap_or(Lookup::Failed),
        None => asked.await,
    };
    app.metrics.namespace_lookup(found.as_str());
    let why = match found {
        Lookup::Found(labels) => return Ok(labels),
        Lookup::Absent => "does not exist",
        Lookup::Failed => "is not known yet and looking it up failed",
        Lookup::Limited => "is not known yet and namespace lookups are over their rate",
        Lookup::Invalid => "is not a namespace name",
    };
    tracing::warn!(
        namespace,
        lookup = found.as_str(),
        "no verdict: namespace {why}"
    );
    Err(unavailable(format!(
        "namespace {namespace:?} {why}; no verdict without its labels"
    )))
}

/// Checks method, type and size, then reads the body under the limits. An early answer
/// first reads and discards what the client is still sending (see [`DRAIN_LIMIT`]).
async fn read_admission_body<B>(
    app: &App,
    parts: &hyper::http::request::Parts,
    mut body: std::pin::Pin<&mut B>,
    deadline: Instant,
) -> Result<(Bytes, Reservation), Reply>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limit = app.limits.body_limit;
    let declared = declared_length(&parts.headers);
    if let Some(reply) = refusal(app, parts, declared) {
        if declared.is_none_or(|len| len <= DRAIN_LIMIT as u64) {
            drain(body.as_mut(), DRAIN_LIMIT, deadline).await;
        }
        return Err(reply);
    }
    let mut reservation = app.judging.budget.reservation();
    match read_body(body.as_mut(), limit, declared, &mut reservation, deadline).await {
        Ok(bytes) => Ok((bytes, reservation)),
        Err(e) => {
            drop(reservation);
            let reply = body_error_reply(&e, limit);
            if let BodyError::TooLarge(read) | BodyError::OverBudget(read) = e {
                drain(body, DRAIN_LIMIT.saturating_sub(read), deadline).await;
            }
            Err(reply)
        }
    }
}

/// The answer to a request refused on its head alone, if it is.
fn refusal(app: &App, parts: &hyper::http::request::Parts, declared: Option<u64>) -> Option<Reply> {
    if parts.method != Method::POST {
        Some(method_not_allowed("POST"))
    } else if !is_json(&parts.headers) {
        Some(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ))
    } else if declared.is_some_and(|len| len > app.limits.body_limit as u64) {
        Some(too_large(app.limits.body_limit))
    } else if declared.is_some_and(|len| !app.judging.budget.fits(len as usize)) {
        Some(over_budget())
    } else {
        None
    }
}

fn body_error_reply(e: &BodyError, limit: usize) -> Reply {
    match e {
        BodyError::Timeout => text(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received within the timeout",
        ),
        BodyError::Read(e) => text(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
        BodyError::TooLarge(_) => too_large(limit),
        BodyError::OverBudget(_) => over_budget(),
    }
}

#[derive(Debug)]
enum BodyError {
    Timeout,
    Read(BoxError),
    /// Bytes read before the limit was passed.
    TooLarge(usize),
    OverBudget(usize),
}

/// Reads a body of at most `limit` bytes by `deadline`, counting what it holds in
/// `reservation`. A body that has already arrived (the usual case: it comes with the headers)
/// is taken without arming a timer, and a body of one frame without copying.
async fn read_body<B>(
    mut body: std::pin::Pin<&mut B>,
    limit: usize,
    declared: Option<u64>,
    reservation: &mut Reservation,
    deadline: Instant,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let read = async {
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if total + data.len() > limit {
                return Err(BodyError::TooLarge(total + data.len()));
            }
            if !reservation.grow(data.len()) {
                return Err(BodyError::OverBudget(total + data.len()));
            }
            total += data.len();
            match (&mut first, &mut rest) {
                (None, None) => first = Some(data),
                (Some(head), None) => {
                    let capacity = declared.map_or(total, |d| d as usize).clamp(total, limit);
                    let mut buf = BytesMut::with_capacity(capacity);
                    buf.extend_from_slice(head);
                    buf.extend_from_slice(&data);
                    first = None;
                    rest = Some(buf);
                }
                (_, Some(buf)) => buf.extend_from_slice(&data),
            }
        }
        Ok(match (first, rest) {
            (_, Some(buf)) => buf.freeze(),
            (Some(one), None) => one,
            (None, None) => Bytes::new(),
        })
    };
    let mut read = std::pin::pin!(read);
    if let Poll::Ready(read) = futures::poll!(&mut read) {
        return read;
    }
    tokio::time::timeout_at(deadline.into(), read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// Reads and drops up to `limit` more body bytes by `deadline` (never past 2 s: an early
/// answer is not worth holding a stream for long).
async fn drain<B>(mut body: std::pin::Pin<&mut B>, limit: usize, deadline: Instant)
where
    B: Body<Data = Bytes>,
{
    let until = deadline.min(Instant::now() + Duration::from_secs(2));
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout_at(until.into(), discard).await;
}

fn over_budget() -> Reply {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many request bytes buffered; retry",
    )
}

fn too_large(limit: usize) -> Reply {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds {limit} bytes"),
    )
}

fn is_json(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The API server's `?timeout=10s` (Go duration) up to `cap`, else `default`.
fn request_timeout(query: Option<&str>, default: Duration, cap: Duration) -> Duration {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("timeout="))
        .and_then(parse_go_duration)
        .map_or(default, |d| d.min(cap))
}

/// Parses Go's `time.Duration` text for the units the API server uses (`10s`, `1m30s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * scale).ok()?;
    }
    Some(total)
}

/// Serves TLS on `listener` (and plain HTTP on `admin`) until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server = Listener {
        listener,
        builder: Arc::new(connection_builder(&app.limits, None)),
        acceptor: tokio_rustls::TlsAcceptor::from(tls),
        connections: Arc::new(Connections::new(app.limits.max_connections)),
        stop: stop_rx.clone(),
        app: app.clone(),
        refused: Refusals::default(),
    };
    let admin_task = admin.map(|l| tokio::spawn(serve_admin(l, app.clone(), stop_rx)));
    server.accept_until(shutdown).await;
    app.health.set_draining();
    tracing::info!(delay = ?app.limits.shutdown_delay, "shutdown: readiness false");
    // Keep accepting during the delay: endpoints still route to us until they see /readyz fail.
    server
        .accept_until(tokio::time::sleep(app.limits.shutdown_delay))
        .await;
    let connections = server.connections.clone();
    drop(server);
    tracing::info!("shutdown: stopped accepting; draining in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(app.limits.drain_timeout, connections.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?app.limits.drain_timeout, "drain deadline passed; closing remaining connections");
    }
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("shutdown complete");
}

/// The TLS listener's accept side: what every new connection needs.
struct Listener {
    listener: TcpListener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: tokio_rustls::TlsAcceptor,
    connections: Arc<Connections>,
    stop: watch::Receiver<bool>,
    app: Arc<App>,
    refused: Refusals,
}

impl Listener {
    /// Accepts connections until `until` resolves (the listener stays open).
    async fn accept_until(&mut self, until: impl Future<Output = ()>) {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => self.open(tcp, peer),
                    Err(error) => {
                        // Out of file descriptors and such: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut until => return,
            }
        }
    }

    fn open(&mut self, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let Some(guard) = self.connections.try_open() else {
            // Closed at once (a FIN, before any TLS): the client sees a refused connection
            // and can retry elsewhere, instead of one that hangs.
            drop(tcp);
            self.refused.note(self.app.limits.max_connections);
            return;
        };
        spawn_tls_connection(tcp, peer, self, guard);
    }
}
/// `header_read_timeout`: hyper's, for the admin port. The webhook port passes `None`:
/// hyper's header timer starts as soon as it waits for a request, so it would close an idle
/// keep-alive connection after `header_timeout`, well before the API server's pool (90 s)
/// lets go of it, and race a request sent on it. There the connection watchdog bounds headers
/// from their first byte instead.
fn connection_builder(
    limits: &Limits,
    header_read_timeout: Option<Duration>,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(limits.max_streams_per_connection);
    builder
}

// === Connections: the cap, and waiting for them to close ===

/// Open TLS connections, under `--max-connections`.
#[derive(Debug)]
struct Connections {
    open: AtomicUsize,
    limit: usize,
    closed: Notify,
}

/// One connection's place under the cap, given back on drop.
struct ConnectionGuard(Arc<Connections>);

impl Connections {
    fn new(limit: usize) -> Self {
        Connections {
            open: AtomicUsize::new(0),
            limit: limit.max(1),
            closed: Notify::new(),
        }
    }

    fn try_open(self: &Arc<Self>) -> Option<ConnectionGuard> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionGuard(self.clone()))
    }

    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_waiters();
    }
}

/// Connections refused at the cap, logged at most every 10 s so a flood cannot flood the log.
#[derive(Debug, Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, limit: usize) {
        self.since_log += 1;
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                refused = self.since_log,
                max_connections = limit,
                "connection limit reached; new connections closed"
            );
            self.since_log = 0;
            self.logged = Some(Instant::now());
        }
    }
}

// === One connection: its requests, its unsent responses, its watchdog ===

/// What one connection is doing, for its watchdog. Times are milliseconds since `born` (the
/// end of the TLS handshake).
#[derive(Debug)]
struct ConnState {
    born: Instant,
    /// Requests begun on this connection.
    begun: AtomicU64,
    /// Requests being handled now.
    active: AtomicUsize,
    /// Last time a request began or ended.
    last_activity: AtomicU64,
    /// Response bytes handed to hyper and not yet written out: each response's buffer is
    /// counted until hyper (or h2, waiting on the client's flow-control window) drops it.
    unsent: AtomicUsize,
    /// Responses those bytes belong to.
    unsent_responses: AtomicUsize,
    /// HTTP/1: when bytes of a next request first arrived with no request in progress
    /// ([`NO_HEAD`] if none have): its headers must be complete within the header timeout.
    /// Not for HTTP/2, whose idle connections carry PINGs.
    head_since: AtomicU64,
    http1: bool,
    /// When the unsent bytes last went from none to some, or a response went out.
    unsent_since: AtomicU64,
    /// `Limits::max_unsent_bytes_per_connection`.
    max_unsent: usize,
    /// The server-wide sum of `unsent`.
    all_unsent: Arc<AtomicUsize>,
    /// Wakes the watchdog when a response starts waiting (it may be sleeping on an idle
    /// deadline far away).
    wake: Notify,
}

/// What the watchdog does about a connection now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Fine; look again at this time (ms since born).
    Keep(u64),
    /// Close it politely: no request in progress for the idle timeout.
    Idle,
    /// Close it at once, for this reason.
    Cut(&'static str),
}

impl ConnState {
    fn new(max_unsent: usize, all_unsent: Arc<AtomicUsize>, http1: bool) -> Arc<Self> {
        Arc::new(ConnState {
            born: Instant::now(),
            head_since: AtomicU64::new(NO_HEAD),
            http1,
            max_unsent,
            all_unsent,
            begun: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            unsent: AtomicUsize::new(0),
            unsent_responses: AtomicUsize::new(0),
            unsent_since: AtomicU64::new(0),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    /// A request begins; it ends when the returned guard drops.
    fn begin(self: &Arc<Self>) -> Active {
        self.head_since.store(NO_HEAD, Ordering::Release);
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.active.fetch_add(1, Ordering::AcqRel);
        self.last_activity.store(self.now(), Ordering::Release);
        Active(self.clone())
    }

    /// Bytes arrived from the client.
    fn bytes_in(&self) {
        if self.http1
            && self.active.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == NO_HEAD
        {
            self.head_since.store(self.now(), Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Counts `bytes` as unsent until every handle to them is dropped.
    fn track(self: &Arc<Self>, bytes: Bytes) -> Bytes {
        if bytes.is_empty() {
            return bytes;
        }
        let len = bytes.len();
        self.unsent_responses.fetch_add(1, Ordering::AcqRel);
        self.all_unsent.fetch_add(len, Ordering::AcqRel);
        let before = self.unsent.fetch_add(len, Ordering::AcqRel);
        if before == 0 {
            self.unsent_since.store(self.now(), Ordering::Release);
        }
        // The watchdog sleeps on deadlines: wake it when a send deadline starts to run, and
        // when the backlog passes the limit.
        if before == 0 || (before <= self.max_unsent && before + len > self.max_unsent) {
            self.wake.notify_one();
        }
        Bytes::from_owner(Unsent {
            bytes,
            conn: self.clone(),
        })
    }

    fn verdict(&self, limits: &Limits, now: u64) -> Verdict {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let unsent = self.unsent.load(Ordering::Acquire);
        // One response, however large (a 6 MiB review can make a larger patch), is bounded by
        // the send timeout alone; a backlog of them by size too.
        if unsent > self.max_unsent && self.unsent_responses.load(Ordering::Acquire) > 1 {
            return Verdict::Cut("unread responses over the per-connection limit");
        }
        let mut next = now.saturating_add(ms(limits.idle_timeout));
        if unsent > 0 {
            let due = self
                .unsent_since
                .load(Ordering::Acquire)
                .saturating_add(ms(limits.send_timeout));
            if now >= due {
                return Verdict::Cut("responses not read within the send timeout");
            }
            next = next.min(due);
        } else if self.active.load(Ordering::Acquire) == 0 {
            let head = self.head_since.load(Ordering::Acquire);
            if head != NO_HEAD {
                let due = head.saturating_add(ms(limits.header_timeout));
                if now >= due {
                    return Verdict::Cut("request headers not complete within the header timeout");
                }
                next = next.min(due);
            }
            let first = self.begun.load(Ordering::Acquire) == 0;
            let wait = if first {
                limits.handshake_timeout
            } else {
                limits.idle_timeout
            };
            let due = self
                .last_activity
                .load(Ordering::Acquire)
                .saturating_add(ms(wait));
            if now >= due {
                // A connection that never sent a request is not in anyone's pool.
                return if first {
                    Verdict::Cut("no request after the handshake")
                } else {
                    Verdict::Idle
                };
            }
            next = next.min(due);
        }
        Verdict::Keep(next)
    }
}

/// `ConnState::head_since` when no request bytes are waiting.
const NO_HEAD: u64 = u64::MAX;

/// A stream that tells its connection's state when bytes arrive.
struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_in();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One request in progress on a connection.
struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.last_activity.store(self.0.now(), Ordering::Release);
    }
}

/// A response's bytes, counted as unsent while alive.
struct Unsent {
    bytes: Bytes,
    conn: Arc<ConnState>,
}

impl AsRef<[u8]> for Unsent {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.unsent.fetch_sub(self.bytes.len(), Ordering::AcqRel);
        conn.unsent_responses.fetch_sub(1, Ordering::AcqRel);
        conn.all_unsent
            .fetch_sub(self.bytes.len(), Ordering::AcqRel);
        conn.unsent_since.store(conn.now(), Ordering::Release);
    }
}

/// How long a politely closed connection may take to finish before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

fn spawn_tls_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    guard: ConnectionGuard,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = listener.acceptor.clone();
    let builder = listener.builder.clone();
    let stop = listener.stop.clone();
    let app = listener.app.clone();
    let span = tracing::debug_span!("conn", %peer);
    tokio::spawn(
        async move {
            let _guard = guard;
            let handshake =
                tokio::time::timeout(app.limits.handshake_timeout, acceptor.accept(tcp)).await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let http1 = stream.get_ref().1.alpn_protocol() != Some(b"h2");
            let state = ConnState::new(
                app.limits.max_unsent_bytes_per_connection,
                app.unsent.clone(),
                http1,
            );
            let service = {
                let (app, state) = (app.clone(), state.clone());
                hyper::service::service_fn(move |req| {
                    let (app, state) = (app.clone(), state.clone());
                    async move {
                        let _active = state.begin();
                        let http1 = req.version() < hyper::Version::HTTP_2;
                        let mut reply = route(&app, req, false).await;
                        if http1 && app.health.draining() {
                            retire_after(&mut reply);
                        }
                        Ok::<_, Infallible>(tracked(reply, &state).await)
                    }
                })
            };
            let conn = builder
                .serve_connection(
                    TokioIo::new(Watched {
                        inner: stream,
                        state: state.clone(),
                    }),
                    service,
                )
                .into_owned();
            watch_connection(conn, &state, &app.limits, stop).await;
        }
        .instrument(span),
    );
}

/// Once shutdown has begun, each HTTP/1.1 answer carries `Connection: close`: the client
/// (the API server's Go transport) then never sends another request on that connection and
/// dials anew, through the Endpoints this replica has left. Closing a kept-alive connection
/// from our side instead races the client: a request it writes in the instant before it sees
/// the close fails, and a POST is not retried (tests/kube_rolling.rs measures both). HTTP/2
/// needs nothing of the kind: its GOAWAY at the drain tells the client which streams were
/// taken.
fn retire_after(reply: &mut Reply) {
    reply
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
}

/// The reply, its body counted in the connection's unsent bytes.
async fn tracked(reply: Reply, state: &Arc<ConnState>) -> Reply {
    let (parts, body) = reply.into_parts();
    // A `Full` body is one frame, already in memory: collecting it copies nothing.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Response::from_parts(parts, Full::new(state.track(bytes)))
}

/// Drives one connection until it ends: closes it politely when idle or when the server
/// stops, and drops it (a reset, freeing what it holds) when it breaks a bound.
async fn watch_connection<C>(
    conn: C,
    state: &ConnState,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing: Option<Instant> = None;
    loop {
        let verdict = state.verdict(limits, state.now());
        if let Verdict::Cut(why) = verdict {
            tracing::debug!(why, "connection cut");
            return;
        }
        if let Some(at) = closing {
            if at.elapsed() >= CLOSE_GRACE {
                tracing::debug!("connection did not close in time; dropped");
                return;
            }
        }
        let mut wake = match verdict {
            Verdict::Keep(at) => state.at(at),
            _ => Instant::now() + CLOSE_GRACE,
        };
        if verdict == Verdict::Idle && closing.is_none() {
            tracing::debug!("idle connection closed");
            conn.as_mut().graceful_shutdown();
            closing = Some(Instant::now());
        }
        if let Some(at) = closing {
            wake = wake.min(at + CLOSE_GRACE);
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake.into()) => {}
            () = state.wake.notified() => {}
            _ = stop.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + limits.drain_timeout);
            }
        }
    }
}

/// Plain HTTP for kubelet probes and scrapers: health and metrics only.
async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(
        &app.limits,
        Some(app.limits.header_timeout),
    ));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let app = app.clone();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(route(&app, req, true).await) }
                    });
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
            _ = stop.changed() => break,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_refuses_over_the_limit_and_frees_on_drop() {
        let limit = Arc::new(InFlight::new(2));
        let first = limit.try_enter();
        let second = limit.try_enter();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_enter().is_none());
        drop(first);
        assert!(limit.try_enter().is_some());
        assert!(
            Arc::new(InFlight::new(0)).try_enter().is_some(),
            "zero means one, not none"
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn request_timeout_is_capped() {
        let (default, cap) = (Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(
            request_timeout(Some("timeout=5s"), default, cap),
            Duration::from_secs(5)
        );
        assert_eq!(request_timeout(Some("a=b&timeout=5m"), default, cap), cap);
        assert_eq!(request_timeout(None, default, cap), default);
        assert_eq!(
            request_timeout(Some("timeout=bogus"), default, cap),
            default
        );
    }

    #[test]
    fn budget_refuses_past_its_limit_and_frees_on_drop() {
        let budget = Arc::new(Budget::new(100));
        let mut a = budget.reservation();
        assert!(a.grow(60));
        let mut b = budget.reservation();
        assert!(!b.grow(41), "over the limit");
        assert!(b.grow(40));
        assert!(!budget.fits(1));
        drop(a);
        assert!(budget.fits(60) && !budget.fits(61));
        drop(b);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn large_bodies_leave_a_quarter_of_the_budget_to_small_ones() {
        let budget = Arc::new(Budget::new(4 * 1024 * 1024));
        let mut large = Vec::new();
        loop {
            let mut r = budget.reservation();
            if !r.grow(1024 * 1024) {
                break;
            }
            large.push(r);
        }
        assert_eq!(large.len(), 3, "large bodies stop at three quarters");
        assert!(!budget.fits(SMALL_BODY + 1));
        assert!(budget.fits(SMALL_BODY));
        let mut small = budget.reservation();
        assert!(small.grow(SMALL_BODY), "a small body still fits");
        assert!(!small.grow(1), "and stops being small past SMALL_BODY");
    }

    fn watchdog_limits() -> Limits {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            send_timeout: Duration::from_secs(10),
            ..Limits::default()
        }
    }

    #[test]
    fn watchdog_cuts_a_connection_that_sends_no_request() {
        let limits = watchdog_limits();
        let conn = ConnState::new(1000, Arc::default(), true);
        assert_eq!(conn.verdict(&limits, 9_999), Verdict::Keep(10_000));
        assert!(matches!(conn.verdict(&limits, 10_000), Verdict::Cut(_)));
    }

    #[test]
    fn watchdog_closes_idle_connections_only_after_the_idle_timeout() {
        let limits = watchdog_limits();
        let conn = ConnState::new(1000, Arc::default(), false);
        drop(conn.begin());
        let ended = conn.last_activity.load(Ordering::Acquire);
        let active = conn.begin();
        assert!(
            matches!(conn.verdict(&limits, ended + 500_000), Verdict::Keep(_)),
            "a request in progress is not idle"
        );
        drop(active);
        let ended = conn.last_activity.load(Ordering::Acquire);
        assert_eq!(
            conn.verdict(&limits, ended + 119_999),
            Verdict::Keep(ended + 120_000)
        );
        assert_eq!(conn.verdict(&limits, ended + 120_000), Verdict::Idle);
    }

    #[test]
    fn watchdog_bounds_http1_headers_from_their_first_byte_but_not_http2_pings() {
        let limits = watchdog_limits();
        for (http1, cut) in [(true, true), (false, false)] {
            let conn = ConnState::new(1000, Arc::default(), http1);
            drop(conn.begin());
            conn.bytes_in();
            let at = 10_000 + conn.now();
            let verdict = conn.verdict(&limits, at + 5);
            assert_eq!(
                matches!(verdict, Verdict::Cut(_)),
                cut,
                "http1 {http1}: {verdict:?}"
            );
            // A request that begins clears it.
            drop(conn.begin());
            assert!(matches!(conn.verdict(&limits, at + 5), Verdict::Keep(_)));
        }
    }

    #[test]
    fn watchdog_cuts_unread_responses_by_time_and_by_backlog() {
        let limits = watchdog_limits();
        let all = Arc::new(AtomicUsize::new(0));
        let conn = ConnState::new(1000, all.clone(), false);
        drop(conn.begin());
        let one = conn.track(Bytes::from(vec![0u8; 800]));
        let since = conn.unsent_since.load(Ordering::Acquire);
        assert_eq!(all.load(Ordering::Acquire), 800);
        assert_eq!(
            conn.verdict(&limits, since + 9_999),
            Verdict::Keep(since + 10_000)
        );
        assert!(matches!(
            conn.verdict(&limits, since + 10_000),
            Verdict::Cut(_)
        ));
        // One response over the byte limit is bounded by time alone; two are cut at once.
        let big = conn.track(Bytes::from(vec![0u8; 1500]));
        drop(one);
        let now = conn.now();
        assert!(matches!(conn.verdict(&limits, now), Verdict::Keep(_)));
        let more = conn.track(Bytes::from(vec![0u8; 10]));
        assert!(matches!(conn.verdict(&limits, now), Verdict::Cut(_)));
        drop((big, more));
        assert_eq!(all.load(Ordering::Acquire), 0, "freed bytes are uncounted");
    }

    #[test]
    fn idle_timeout_outlasts_the_api_servers_pool() {
        assert!(Limits::default().idle_timeout > Duration::from_secs(90));
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("/inject", false),
            Endpoint::Webhook(Webhook::Inject)
        );
        assert_eq!(
            endpoint("/inject/cluster/c1/net/n1", false),
            Endpoint::Webhook(Webhook::Inject)
        );
        assert_eq!(endpoint("/injectx", false), Endpoint::Unknown);
        assert_eq!(
            endpoint("/validate", false),
            Endpoint::Webhook(Webhook::Validate)
        );
        assert_eq!(endpoint("/inject", true), Endpoint::Unknown);
        assert_eq!(endpoint("/metrics", true), Endpoint::Metrics);
    }
}
