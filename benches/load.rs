//! Load benchmark: the real revhook server over TLS against the transport floor (a minimal
//! hyper + rustls server that answers a fixed "allowed" AdmissionReview without parsing), in
//! the same process and run, with N concurrent connections over HTTP/1.1 keep-alive and HTTP/2.
//! A second floor answers revhook's own response bytes (still without parsing), which splits
//! revhook's cost into the size of its answers and its own work; a third also scans each request
//! with serde_json (into `IgnoredAny`) first, the least a serde_json-based handler can do with a
//! review. Floors and revhook alternate over `--rounds`. Memory is measured first: idle, after
//! a warm-up, after `--rss-requests` more, and with 10,000 namespaces loaded.
//!
//!   cargo bench --bench load -- [--connections N] [--seconds S | --requests N]
//!                               [--rss-requests N] [--only inject|skip|deny|validate]
//!                               [--proto h1|h2] [--rounds N]
//!
//! Client and servers share the machine's cores: the numbers are a ratio, not a capacity.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use revhook::handler::handle;
use revhook::run::{self, ServeOptions};
use revhook::sources::Source;
use revhook::tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// How long one throughput run lasts.
#[derive(Clone, Copy, Debug)]
enum Length {
    Seconds(f64),
    Requests(usize),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    H1,
    H2,
}

struct Args {
    connections: usize,
    seconds: f64,
    /// With a count, each run sends this many requests instead of running for `seconds`.
    requests: Option<usize>,
    rss_requests: usize,
    /// `all` (default), or one kind of request: `inject`, `skip`, `deny`, `validate`.
    only: Option<String>,
    /// `h1`, `h2`, or both (default).
    protos: Vec<Proto>,
    /// Floor and revhook runs alternate this many times, so both see the same machine.
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        connections: 16,
        seconds: 5.0,
        requests: None,
        rss_requests: 200_000,
        only: None,
        protos: vec![Proto::H1, Proto::H2],
        rounds: 3,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let next = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--connections" => a.connections = next.parse().unwrap_or(a.connections),
            "--seconds" => a.seconds = next.parse().unwrap_or(a.seconds),
            "--requests" => a.requests = next.parse().ok().filter(|n| *n > 0),
            "--rounds" => a.rounds = next.parse().unwrap_or(a.rounds).max(1),
            "--rss-requests" => a.rss_requests = next.parse().unwrap_or(a.rss_requests),
            "--only" => a.only = Some(next).filter(|m| m != "all"),
            "--proto" => {
                a.protos = match next.as_str() {
                    "h1" => vec![Proto::H1],
                    "h2" => vec![Proto::H2],
                    _ => vec![Proto::H1, Proto::H2],
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// The mix as the load client sends it: path and body.
fn mix(only: Option<&str>) -> Vec<(&'static str, Bytes)> {
    support::mix(only)
        .into_iter()
        .map(|r| (r.path, Bytes::from(r.body)))
        .collect()
}

/// revhook's answer to each fixture of the mix, by request length (the fixtures' lengths differ).
fn revhook_answers() -> HashMap<usize, Bytes> {
    let snapshot = support::fixture_snapshot();
    let policy = revhook::core::policy::Policy::default();
    let mut answers = HashMap::new();
    for r in support::mix(None) {
        let handled = handle(r.webhook, &r.body, &snapshot, &policy).expect("fixture handled");
        let previous = answers.insert(r.body.len(), Bytes::from(handled.body));
        assert!(previous.is_none(), "two fixtures of {} bytes", r.body.len());
    }
    answers
}

/// Requests before memory is first measured after start: buffers and caches settle.
const WARM_UP: usize = 100_000;

/// Sends `requests` of the mix over HTTP/2 on `connections` connections, as fast as they go;
/// returns how many failed.
async fn drive(addr: SocketAddr, ca: &str, connections: usize, requests: usize) -> usize {
    let config = client_config(ca, Proto::H2);
    let per_conn = requests / connections.max(1);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let mix = mix(None);
            let mut s = open(addr, config, Proto::H2).await;
            let mut failed = 0;
            for i in 0..per_conn {
                let (path, body) = &mix[(i + c) % mix.len()];
                if !send(&mut s, path, body.clone()).await {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.expect("task");
    }
    failed
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The floor: TLS, HTTP, and a fixed allowed response; no parsing. With `answers`, the reply
/// is instead picked by the request's length from canned ones (revhook's own answers to the
/// fixtures): the same bytes on the wire as revhook, still without parsing.
async fn start_floor(
    tls_config: Arc<rustls::ServerConfig>,
    answers: Arc<HashMap<usize, Bytes>>,
    scan: Scan,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    let reply = Bytes::from_static(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"floor","allowed":true}}"#,
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let (reply, answers) = (reply.clone(), answers.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (reply, answers) = (reply.clone(), answers.clone());
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if scan == Scan::Json {
                                std::hint::black_box(json_scan(&body));
                            }
                            let reply = answers.get(&body.len()).cloned().unwrap_or(reply);
                            Ok::<_, Infallible>(Response::new(Full::new(reply)))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Whether a floor reads the request's JSON before answering.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scan {
    No,
    /// Checks the body as UTF-8 and scans it with serde_json into `IgnoredAny`: the least a
    /// handler built on serde_json does with a review.
    Json,
}

fn json_scan(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
}

fn client_config(ca: &str, proto: Proto) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()).flatten() {
        let _ = roots.add(c);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if proto == Proto::H2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Arc::new(config)
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn open(addr: SocketAddr, config: Arc<rustls::ClientConfig>, proto: Proto) -> Sender {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("tls");
    let io = TokioIo::new(tls);
    match proto {
        Proto::H1 => {
            let (s, c) = hyper::client::conn::http1::handshake(io).await.expect("h1");
            tokio::spawn(c);
            Sender::H1(s)
        }
        Proto::H2 => {
            let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2");
            tokio::spawn(c);
            Sender::H2(s)
        }
    }
}

async fn send(sender: &mut Sender, path: &str, body: Bytes) -> bool {
    let req = Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request");
    let resp = match sender {
        Sender::H1(s) => match s.ready().await {
            Ok(()) => s.send_request(req).await,
            Err(e) => Err(e),
        },
        Sender::H2(s) => match s.ready().await {
            Ok(()) => s.send_request(req).await,
            Err(e) => Err(e),
        },
    };
    match resp {
        Ok(r) if r.status().is_success() => r.into_body().collect().await.is_ok(),
        _ => false,
    }
}

struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    /// Several runs as one: their requests over their summed time.
    fn merge(runs: Vec<Stats>) -> Stats {
        let mut all = Stats {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        for run in runs {
            all.requests += run.requests;
            all.errors += run.errors;
            all.elapsed += run.elapsed;
            all.latencies.extend(run.latencies);
        }
        all.latencies.sort_unstable();
        all
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// About the shortest sleep this VM gives: a request or two are due per tick at the rates
/// measured, without a wake-up per request on the two shared cores.
const PACER_TICK: Duration = Duration::from_micros(50);

/// Releases requests at `rate` per second until dropped, from a thread of its own that wakes
/// every [`PACER_TICK`] and releases those due. Tokio's timer ticks in whole milliseconds, so
/// pacing on it released each millisecond's requests at once, and the latency measured was
/// mostly that burst's queue.
struct Pacer {
    permits: Arc<tokio::sync::Semaphore>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Pacer {
    fn start(rate: f64) -> Self {
        let permits = Arc::new(tokio::sync::Semaphore::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (permits.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut released = 0;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(PACER_TICK);
                let due = (started.elapsed().as_secs_f64() * rate) as usize;
                if due > released {
                    p.add_permits(due - released);
                    released = due;
                }
            }
        });
        Pacer { permits, stop }
    }

    /// Waits for the next release; false once the pacer is stopped.
    async fn wait(&self) -> bool {
        match self.permits.acquire().await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.permits.close();
    }
}

/// `connections` clients for `length` (a duration or a request count shared by all), each
/// sending the mix in turn; with `rate`, paced (open loop, requests per second across all
/// connections, latency measured from the moment a request is sent).
async fn load(
    addr: SocketAddr,
    ca: &str,
    proto: Proto,
    connections: usize,
    length: Length,
    rate: Option<f64>,
    only: Option<&str>,
) -> Stats {
    let config = client_config(ca, proto);
    let mix = Arc::new(mix(only));
    // Connections open before the clock and the pacer start: handshakes are not the load, and
    // requests due while they ran would leave in one burst.
    let senders =
        futures::future::join_all((0..connections).map(|_| open(addr, config.clone(), proto)))
            .await;
    let started = Instant::now();
    let deadline = match length {
        Length::Seconds(s) => Some(started + Duration::from_secs_f64(s)),
        Length::Requests(_) => None,
    };
    let budget = match length {
        Length::Requests(n) => Some(Arc::new(AtomicUsize::new(n))),
        Length::Seconds(_) => None,
    };
    let pacer = rate.map(|r| Arc::new(Pacer::start(r)));
    let mut tasks = Vec::new();
    for (c, mut sender) in senders.into_iter().enumerate() {
        let (mix, budget, pacer) = (mix.clone(), budget.clone(), pacer.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = c;
            let more = || {
                deadline.is_none_or(|d| Instant::now() < d)
                    && budget.as_ref().is_none_or(|b| {
                        b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                            .is_ok()
                    })
            };
            while more() {
                if let Some(pacer) = &pacer {
                    if !pacer.wait().await {
                        break;
                    }
                }
                let (path, body) = &mix[i % mix.len()];
                i += 1;
                let t = Instant::now();
                if send(&mut sender, path, body.clone()).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("client");
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    Stats {
        requests: latencies.len(),
        errors,
        elapsed: started.elapsed(),
        latencies,
    }
}

fn row(name: &str, s: &Stats) -> String {
    let us = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6);
    format!(
        "| {name} | {:.0} | {} | {} | {} | {} | {} | {} |",
        s.rps(),
        us(s.pct(0.50)),
        us(s.pct(0.90)),
        us(s.pct(0.99)),
        us(s.pct(0.999)),
        us(s.pct(1.0)),
        s.errors
    )
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = tls::generate_dev(&[], &[], 1, 2).expect("certs");
        certs.write(dir.path()).expect("write");
        let rss_start = rss_kib();
        let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = run::start(
            ServeOptions {
                listen: "127.0.0.1:0".parse().expect("addr"),
                tls_cert: Some(dir.path().join("tls.crt")),
                tls_key: Some(dir.path().join("tls.key")),
                source: Source::File(Some(support::config_path())),
                ..ServeOptions::default()
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .expect("revhook starts");
        let (pem_cert, pem_key) = tls::read_pair(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).expect("pair");
        let store = tls::CertStore::new(tls::load_pair(&pem_cert, &pem_key, "floor").expect("pair"));
        let tls_config = Arc::new(tls::server_config(store).expect("tls"));
        let floor = start_floor(tls_config.clone(), Arc::default(), Scan::No).await;
        let answers = Arc::new(revhook_answers());
        let same_bytes = start_floor(tls_config.clone(), answers.clone(), Scan::No).await;
        let scanning = start_floor(tls_config, answers, Scan::Json).await;
        let ca = certs.ca_cert.clone();
        let only = a.only.as_deref();
        let length = a.requests.map_or(Length::Seconds(a.seconds), Length::Requests);
        let per_run = match length {
            Length::Seconds(s) => format!("{s}s"),
            Length::Requests(n) => format!("{n} requests"),
        };
        println!(
            "load: {} connections, {} alternating rounds of {per_run} per server, requests: {}, client and servers in one process on {} cores",
            a.connections,
            a.rounds,
            only.unwrap_or("mix of inject, skip, deny, validate"),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        // Memory first, so that the throughput runs' own bookkeeping (latencies of millions
        // of requests) does not count as the server's.
        let rss_idle = rss_kib();
        let mut failed = drive(running.addr, &ca, a.connections, WARM_UP).await;
        let rss_warm = rss_kib();
        failed += drive(running.addr, &ca, a.connections, a.rss_requests).await;
        let rss_after = rss_kib();
        let mut text = String::from("revisions:\n");
        for r in 0..25 {
            text.push_str(&format!("  - {{name: rev-{r}, image: docker.io/istio/proxyv2:1.{r}.0}}\n"));
        }
        text.push_str("tags:\n");
        for t in 0..25 {
            text.push_str(&format!("  tag-{t}: rev-{}\n", t % 25));
        }
        text.push_str("namespaces:\n");
        for n in 0..10_000 {
            text.push_str(&format!("  ns-{n}: {{istio.io/rev: tag-{}}}\n", n % 25));
        }
        let before_big = rss_kib();
        let big = revhook::sources::config::parse(&text, "load").expect("big snapshot");
        running.app.snapshot.store(big);
        let rss_big = rss_kib();
        running.app.snapshot.store(support::fixture_snapshot());
        println!("\n| memory (whole process: servers and client) | RSS |");
        println!("|---|---|");
        println!("| at start, before the server | {} MiB |", rss_start / 1024);
        println!("| idle, servers started | {} MiB |", rss_idle / 1024);
        println!("| after {WARM_UP} requests | {} MiB |", rss_warm / 1024);
        println!("| after {} more requests ({failed} failed) | {} MiB |", a.rss_requests, rss_after / 1024);
        println!(
            "| with 10,000 namespaces and 25 revisions + 25 tags loaded | {} MiB (snapshot: +{} MiB) |",
            rss_big / 1024,
            rss_big.saturating_sub(before_big) / 1024
        );

        println!("\n| run | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors |");
        println!("|---|---|---|---|---|---|---|---|");
        // Each protocol is paced at half its own floor's peak: HTTP/2's floor is slower here,
        // and pacing it at HTTP/1.1's would measure a saturated server instead.
        let mut half_peaks = Vec::new();
        for &proto in &a.protos {
            let (mut floors, mut sames, mut scans, mut revhooks) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..a.rounds {
                floors.push(load(floor, &ca, proto, a.connections, length, None, only).await);
                sames.push(load(same_bytes, &ca, proto, a.connections, length, None, only).await);
                scans.push(load(scanning, &ca, proto, a.connections, length, None, only).await);
                revhooks.push(load(running.addr, &ca, proto, a.connections, length, None, only).await);
            }
            let (f, s, j, r) = (
                Stats::merge(floors),
                Stats::merge(sames),
                Stats::merge(scans),
                Stats::merge(revhooks),
            );
            half_peaks.push((proto, f.rps() / 2.0));
            println!("{}", row(&format!("floor {proto:?}"), &f));
            println!("{}", row(&format!("floor answering revhook's bytes {proto:?}"), &s));
            println!("{}", row(&format!("floor scanning the JSON, answering revhook's bytes {proto:?}"), &j));
            println!("{}", row(&format!("revhook {proto:?}"), &r));
            println!("| revhook / floor {proto:?} | {:.2} | | | | | | |", r.rps() / f.rps());
            println!("| revhook / floor answering revhook's bytes {proto:?} | {:.2} | | | | | | |", r.rps() / s.rps());
            println!("| floor scanning the JSON / floor {proto:?} | {:.2} | | | | | | |", j.rps() / f.rps());
        }
        for (proto, half) in half_peaks {
            let r = load(running.addr, &ca, proto, a.connections, length, Some(half), only).await;
            println!("{}", row(&format!("revhook {proto:?} at {half:.0} req/s (half the {proto:?} floor's peak)"), &r));
        }
    });
}
