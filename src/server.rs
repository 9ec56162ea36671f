//! The HTTPS webhook server and the plain-HTTP admin port.
//!
//! Every connection gets TCP_NODELAY (responses otherwise wait on delayed ACKs), a bounded TLS
//! handshake and header read, and a span. Request bodies are read under a size limit and the
//! API server's `?timeout=`; the handler itself is pure and runs inline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Collected, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::handler::{self, Webhook};
use crate::inject::decide::Policy;
use crate::metrics::Metrics;
use crate::state::cluster::NamespaceLookup;
use crate::state::SharedSnapshot;

/// Bounds on what one client may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (istiod uses 6 MiB: an UPDATE carries object and oldObject).
    pub body_limit: usize,
    /// TLS handshake must complete within this (neither hyper nor rustls bounds it).
    pub handshake_timeout: Duration,
    /// Request headers must arrive within this.
    pub header_timeout: Duration,
    /// Upper bound on reading and answering a request when the API server sends no `?timeout=`.
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// After SIGTERM, keep serving this long with `/readyz` false, so endpoints drop us first.
    pub shutdown_delay: Duration,
    /// Admission requests handled at once; more get 503 rather than queueing without end.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: 6 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(25),
            shutdown_delay: Duration::ZERO,
            max_in_flight: 1024,
        }
    }
}

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    certs_loaded: AtomicBool,
    synced: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_certs_loaded(&self) {
        self.certs_loaded.store(true, Ordering::Release);
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// `Ok` when ready, else why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Acquire) {
            Err("shutting down")
        } else if !self.certs_loaded.load(Ordering::Acquire) {
            Err("serving certificate not loaded")
        } else if !self.synced.load(Ordering::Acquire) {
            Err("revisions not known yet")
        } else {
            Ok(())
        }
    }
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
    in_flight: InFlight,
}

/// Counts admission requests being handled. Requests over the limit are refused, never
/// queued, so a counter is all it takes (an async semaphore would lock on every release).
#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    limit: usize,
}

/// One admission request's place under the limit, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl InFlight {
    fn new(limit: usize) -> Self {
        // Zero would refuse everything.
        InFlight {
            count: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    fn try_enter(&self) -> Option<Slot<'_>> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(&self.count))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl App {
    pub fn new(
        snapshot: Arc<SharedSnapshot>,
        policy: Policy,
        metrics: Metrics,
        health: Arc<Health>,
        limits: Limits,
    ) -> Self {
        let in_flight = InFlight::new(limits.max_in_flight);
        App {
            snapshot,
            policy,
            metrics,
            health,
            limits,
            namespace_lookup: None,
            in_flight,
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

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
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

/// Routes one request. Generic over the body so tests can drive it in-process without TLS.
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
                Ok(()) => text(StatusCode::OK, "ready"),
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
    if req.method() != Method::POST {
        return fail(method_not_allowed("POST"));
    }
    if !is_json(&req) {
        return fail(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    let limit = app.limits.body_limit;
    if declared_length(&req).is_some_and(|len| len > limit as u64) {
        return fail(too_large(limit));
    }
    let Some(_slot) = app.in_flight.try_enter() else {
        return fail(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many admission requests in flight; retry",
        ));
    };
    let deadline = request_timeout(req.uri().query(), app.limits.request_timeout);
    let body = match read_body(req.into_body(), limit, deadline).await {
        Err(_) => {
            return fail(text(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the timeout",
            ))
        }
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return fail(too_large(limit))
        }
        Ok(Err(e)) => {
            return fail(text(
                StatusCode::BAD_REQUEST,
                format!("cannot read body: {e}"),
            ))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let snapshot = app.snapshot.load();
    let req = match handler::decode(webhook, &body) {
        Ok(req) => req,
        Err(e) => return fail(text(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let looked_up = match (
        &app.namespace_lookup,
        handler::unknown_namespace(webhook, &req, &snapshot),
    ) {
        (Some(lookup), Some(ns)) => {
            // Bounded by what is left of the API server's timeout: a slow GET must not make
            // the API server give up on us.
            let left = deadline.saturating_sub(started.elapsed());
            tokio::time::timeout(left, lookup.labels(ns.to_owned()))
                .await
                .ok()
                .flatten()
        }
        _ => None,
    };
    let handled = handler::judge(
        webhook,
        &req,
        &body,
        &snapshot,
        &app.policy,
        looked_up.as_ref(),
    );
    let elapsed = started.elapsed();
    app.metrics
        .request(path, handled.verdict.outcome(), elapsed);
    app.metrics.admission(
        webhook,
        &req,
        &handled.verdict,
        &snapshot,
        &app.policy,
        looked_up.as_ref(),
    );
    let summary = req.summary();
    if handled.verdict.decision == "allow:unknown-kind" {
        app.metrics.unknown_kind(summary.kind);
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
    resp
}

/// Reads a body of at most `limit` bytes within `deadline`. A body that has already arrived
/// (the usual case: it comes with the headers) is taken without arming a timer.
async fn read_body<B>(
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Result<Collected<Bytes>, BoxError>, tokio::time::error::Elapsed>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let collect = Limited::new(body, limit).collect();
    tokio::pin!(collect);
    if let Poll::Ready(read) = futures::poll!(&mut collect) {
        return Ok(read);
    }
    tokio::time::timeout(deadline, collect).await
}

fn too_large(limit: usize) -> Reply {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds {limit} bytes"),
    )
}

fn is_json<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The API server's `?timeout=10s` (Go duration), capped by our own bound.
fn request_timeout(query: Option<&str>, cap: Duration) -> Duration {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("timeout="))
        .and_then(parse_go_duration)
        .map_or(cap, |d| d.min(cap))
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
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder(&app.limits));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|l| tokio::spawn(serve_admin(l, app.clone(), stop_rx.clone())));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(error) => {
                        // Out of file descriptors and such: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                spawn_tls_connection(tcp, peer, &acceptor, &builder, &graceful, &app);
            }
            () = &mut shutdown => break,
        }
    }
    app.health.set_draining();
    tracing::info!(delay = ?app.limits.shutdown_delay, "shutdown: readiness false");
    // Keep accepting during the delay: endpoints still route to us until they see /readyz fail.
    let delay = tokio::time::sleep(app.limits.shutdown_delay);
    tokio::pin!(delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((tcp, peer)) = accepted {
                    spawn_tls_connection(tcp, peer, &acceptor, &builder, &graceful, &app);
                }
            }
            () = &mut delay => break,
        }
    }
    drop(listener);
    tracing::info!("shutdown: stopped accepting; draining in-flight requests");
    if tokio::time::timeout(app.limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?app.limits.drain_timeout, "drain deadline passed; closing remaining connections");
    }
    let _ = stop_tx.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("shutdown complete");
}

fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(250);
    builder
}

fn spawn_tls_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: &tokio_rustls::TlsAcceptor,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
    app: &Arc<App>,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = acceptor.clone();
    let builder = builder.clone();
    let watcher = graceful.watcher();
    let app = app.clone();
    let span = tracing::debug_span!("conn", %peer);
    tokio::spawn(
        async move {
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
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(route(&app, req, false).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(conn).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        .instrument(span),
    );
}

/// Plain HTTP for kubelet probes and scrapers: health and metrics only.
async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&app.limits));
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
        let limit = InFlight::new(2);
        let first = limit.try_enter();
        let second = limit.try_enter();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_enter().is_none());
        drop(first);
        assert!(limit.try_enter().is_some());
        assert!(
            InFlight::new(0).try_enter().is_some(),
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
        let cap = Duration::from_secs(30);
        assert_eq!(
            request_timeout(Some("timeout=10s"), cap),
            Duration::from_secs(10)
        );
        assert_eq!(request_timeout(Some("a=b&timeout=5m"), cap), cap);
        assert_eq!(request_timeout(None, cap), cap);
        assert_eq!(request_timeout(Some("timeout=bogus"), cap), cap);
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
