//! Serving certificate: loading, checking, hot reload, and dev certificates via rcgen.
//!
//! The certificate lives behind an `ArcSwap` read by a rustls `ResolvesServerCert`, so a
//! rotation is one atomic store: handshakes after it see the new pair, open connections keep
//! theirs. A new pair is parsed and checked before it is swapped in (key matches certificate,
//! valid now, still covers every name the served one covers); a bad one keeps the old pair
//! serving.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: no PEM {expected} found")]
    NoPem {
        what: String,
        expected: &'static str,
    },
    #[error("{what}: invalid PEM: {detail}")]
    BadPem { what: String, detail: String },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(rustls::Error),
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("a validity of {0} days runs past the year 9999")]
    Validity(u32),
    #[error("{what}: cannot parse the leaf certificate: {detail}")]
    Parse { what: String, detail: String },
    #[error("{what}: not a usable CA for client certificates: {detail}")]
    ClientCa { what: String, detail: String },
}

/// Why a new pair may not replace the served one, though it parses and its key matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("not valid before {0} (Unix time); the clock says it is earlier")]
    NotYetValid(i64),
    #[error("expired at {0} (Unix time)")]
    Expired(i64),
    #[error("does not cover {0:?}, which the served certificate covers")]
    LostNames(Vec<String>),
}

/// What a leaf certificate is good for: its validity and the names clients check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names (lower case) and IP addresses of the subjectAltName extension: Go and
    /// rustls clients ignore the subject's CN.
    pub names: Vec<String>,
}

impl LeafFacts {
    /// Reads the first certificate of a chain.
    pub fn of_leaf(der: &[u8], what: &str) -> Result<LeafFacts, TlsError> {
        let parse_error = |detail: String| TlsError::Parse {
            what: what.to_owned(),
            detail,
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| parse_error(e.to_string()))?;
        let validity = cert.validity();
        let mut names = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| parse_error(e.to_string()))?;
        for name in san.iter().flat_map(|ext| &ext.value.general_names) {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    names.push(dns.to_ascii_lowercase())
                }
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    if let Some(ip) = ip_from_bytes(ip) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(LeafFacts {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            names,
        })
    }

    /// May `self` (a new certificate) replace `served` at Unix time `now`?
    pub fn may_replace(&self, served: &LeafFacts, now: i64) -> Result<(), Unfit> {
        if now < self.not_before {
            return Err(Unfit::NotYetValid(self.not_before));
        }
        if now > self.not_after {
            return Err(Unfit::Expired(self.not_after));
        }
        let lost: Vec<String> = served
            .names
            .iter()
            .filter(|name| !self.names.iter().any(|ours| name_covers(ours, name)))
            .cloned()
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Unfit::LostNames(lost))
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Does certificate name `ours` cover `name`? Equal, or a wildcard `*.b.c` over `a.b.c` (one
/// label, as RFC 6125 §6.4.3 and every client here match it). A served wildcard is covered
/// only by the same wildcard.
fn name_covers(ours: &str, name: &str) -> bool {
    if ours == name {
        return true;
    }
    match (ours.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((label, rest))) => label != "*" && rest == suffix,
        _ => false,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The crypto provider revhook uses everywhere (ring: builds with only a C compiler).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain (leaf first) and key, and checks that they belong together.
pub fn load_pair(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            what: format!("{what} certificate"),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoPem {
            what: format!("{what} certificate"),
            expected: "CERTIFICATE",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what: format!("{what} key"),
            expected: "PRIVATE KEY",
        },
        other => TlsError::BadPem {
            what: format!("{what} key"),
            detail: other.to_string(),
        },
    })?;
    let pair = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Pair)?;
    Ok(pair)
}

/// Reads a cert/key pair from files.
pub fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    Ok((read(cert)?, read(key)?))
}

/// The serving certificate, swappable at run time.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    pub fn new(pair: CertifiedKey) -> Arc<Self> {
        Arc::new(CertStore {
            current: ArcSwap::from_pointee(pair),
        })
    }

    pub fn swap(&self, pair: CertifiedKey) {
        self.current.store(Arc::new(pair));
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// TLS 1.2 and 1.3, ALPN h2 then http/1.1 (the API server speaks either), any client.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, TlsError> {
    server_config_for(store, None)
}

/// [`server_config`], and with `clients` only clients whose certificate it accepts (the
/// handshake fails for any other, before a byte of HTTP is read).
pub fn server_config_for(
    store: Arc<CertStore>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `--client-ca`: requires of every client a certificate signed by one of the CAs in
/// `ca_pem`. The API server presents one when its AdmissionConfiguration gives it a
/// kubeconfig with a client certificate for this webhook; nobody else reaching the port
/// gets past the handshake.
pub fn client_verifier(ca_pem: &[u8], what: &str) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsError::BadPem {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsError::ClientCa {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoPem {
            what: what.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa {
            what: what.to_owned(),
            detail: e.to_string(),
        })
}

/// Files to watch for rotation.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Outcome of one reload check, for logs and metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Swapped,
    Rejected(String),
}

/// Compares the files' contents with what was last loaded and swaps in a new valid pair.
///
/// Contents, not modification events: a Kubernetes Secret volume rotates by re-pointing a
/// `..data` symlink, which a watch on the file itself never sees.
#[derive(Debug)]
pub struct Reloader {
    files: CertFiles,
    last: (Vec<u8>, Vec<u8>),
    /// What the served leaf covers; `None` if it could not be read (then names are not compared).
    served: Option<LeafFacts>,
    /// A pair refused only because it is not valid yet: it is checked again on every poll (a
    /// clock a few seconds behind the issuer's must not lose a rotation), but reported once.
    early: Option<(Vec<u8>, Vec<u8>)>,
}

impl Reloader {
    pub fn new(files: CertFiles, loaded: (Vec<u8>, Vec<u8>)) -> Self {
        let served = leaf_der(&loaded.0).and_then(|der| LeafFacts::of_leaf(&der, "served").ok());
        Reloader {
            files,
            last: loaded,
            served,
            early: None,
        }
    }

    pub fn check(&mut self, store: &CertStore) -> Reload {
        self.check_at(store, unix_now())
    }

    /// [`Reloader::check`] with the clock given (tests).
    pub fn check_at(&mut self, store: &CertStore, now: i64) -> Reload {
        let read = match read_pair(&self.files.cert, &self.files.key) {
            Ok(read) => read,
            Err(e) => return Reload::Rejected(e.to_string()),
        };
        if read == self.last {
            return Reload::Unchanged;
        }
        let retry = self.early.as_ref() == Some(&read);
        match self.fit_pair(&read, now) {
            Ok((pair, facts)) => {
                store.swap(pair);
                self.last = read;
                self.served = Some(facts);
                self.early = None;
                Reload::Swapped
            }
            Err(PairError::Unfit(why @ Unfit::NotYetValid(_))) => {
                self.early = Some(read);
                if retry {
                    Reload::Unchanged
                } else {
                    Reload::Rejected(format!("new certificate {why}"))
                }
            }
            Err(e) => {
                // Remember the bad contents so the error is logged once per change, not per poll.
                self.last = read;
                self.early = None;
                Reload::Rejected(e.to_string())
            }
        }
    }

    fn fit_pair(
        &self,
        read: &(Vec<u8>, Vec<u8>),
        now: i64,
    ) -> Result<(CertifiedKey, LeafFacts), PairError> {
        let pair = load_pair(&read.0, &read.1, "reloaded")?;
        let leaf = pair.cert.first().map(|c| c.as_ref()).unwrap_or_default();
        let facts = LeafFacts::of_leaf(leaf, "reloaded")?;
        let empty = LeafFacts {
            not_before: i64::MIN,
            not_after: i64::MAX,
            names: Vec::new(),
        };
        facts.may_replace(self.served.as_ref().unwrap_or(&empty), now)?;
        Ok((pair, facts))
    }

    /// Polls every `interval` until the task is dropped.
    pub async fn run(
        mut self,
        store: Arc<CertStore>,
        interval: Duration,
        metrics: crate::metrics::Metrics,
    ) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.check(&store) {
                Reload::Unchanged => {}
                Reload::Swapped => {
                    tracing::info!(cert = %self.files.cert.display(), "serving certificate reloaded");
                    metrics.cert_reload("ok");
                    metrics.serving_cert(&store.current());
                }
                Reload::Rejected(error) => {
                    tracing::error!(%error, "new certificate rejected; still serving the previous one");
                    metrics.cert_reload("error");
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PairError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("new certificate {0}")]
    Unfit(#[from] Unfit),
}

/// The DER of the first certificate in a PEM chain.
fn leaf_der(chain_pem: &[u8]) -> Option<Vec<u8>> {
    CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .and_then(Result::ok)
        .map(|der| der.as_ref().to_vec())
}

/// A dev CA and a serving certificate signed by it, as PEM.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

impl DevCerts {
    /// The `caBundle` value for a webhook configuration.
    pub fn ca_bundle(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.ca_cert.as_bytes())
    }

    pub fn write(&self, dir: &Path) -> Result<(), TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        for (name, pem) in [
            ("ca.crt", &self.ca_cert),
            ("ca.key", &self.ca_key),
            ("tls.crt", &self.cert),
            ("tls.key", &self.key),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, pem).map_err(|source| TlsError::Write {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Generates a CA (valid `ca_days`) and a serving certificate (valid `days`) for the given
/// names, always including `localhost` and `127.0.0.1`. Validity is explicit: rcgen's default
/// runs to the year 4096.
pub fn generate_dev(
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
    ca_days: u32,
) -> Result<DevCerts, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    // Unique per CA: during a rotation the caBundle holds the old and the new CA, and a client
    // that picks an issuer by name alone (OpenSSL without key identifiers) must not take the
    // wrong one.
    let ca_name = format!(
        "revhook dev CA {}",
        hex(&ca_params.key_identifier(&ca_key)[..8])
    );
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // Subject Key Identifier (written for every CA) and Authority Key Identifier on both
    // certificates (RFC 5280 §4.2.1.1–2): clients match a leaf to its issuer by key.
    ca_params.use_authority_key_identifier_extension = true;
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = expiry(now, ca_days)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut names: Vec<SanType> = Vec::new();
    for name in std::iter::once("localhost".to_owned()).chain(dns.iter().cloned()) {
        let san = SanType::DnsName(name.try_into()?);
        if !names.contains(&san) {
            names.push(san);
        }
    }
    for ip in std::iter::once(IpAddr::from([127, 0, 0, 1])).chain(ips.iter().copied()) {
        let san = SanType::IpAddress(ip);
        if !names.contains(&san) {
            names.push(san);
        }
    }
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        dns.first().map_or("revhook", String::as_str),
    );
    params.subject_alt_names = names;
    // ExplicitNoCa writes basicConstraints CA:FALSE and, with it, the Subject Key Identifier.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = expiry(now, days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    Ok(DevCerts {
        ca_cert: ca.pem(),
        ca_key: ca_signing_key_pem(&ca),
        cert: format!("{}{}", cert.pem(), ca.pem()),
        key: key.serialize_pem(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `now` plus `days`, or an error for a validity beyond what a certificate can express.
fn expiry(now: time::OffsetDateTime, days: u32) -> Result<time::OffsetDateTime, TlsError> {
    now.checked_add(time::Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
        .ok_or(TlsError::Validity(days))
}

fn ca_signing_key_pem(ca: &rcgen::CertifiedIssuer<'_, rcgen::KeyPair>) -> String {
    ca.key().serialize_pem()
}

/// Default SANs for the in-cluster service name of a namespace.
pub fn service_names(namespace: &str) -> Vec<String> {
    vec![
        format!("revhook.{namespace}.svc"),
        format!("revhook.{namespace}.svc.cluster.local"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_ca_file_must_hold_a_usable_ca_certificate() {
        let dev = generate_dev(&["revhook.ns.svc".into()], &[], 30, 365).expect("generate");
        assert!(client_verifier(dev.ca_cert.as_bytes(), "client CA").is_ok());
        assert!(matches!(
            client_verifier(b"", "client CA"),
            Err(TlsError::NoPem { .. })
        ));
        assert!(matches!(
            client_verifier(dev.key.as_bytes(), "client CA"),
            Err(TlsError::NoPem { .. })
        ));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        assert!(client_verifier(garbage, "client CA").is_err());
    }

    #[test]
    fn generated_pair_loads_and_keys_match() {
        let dev = generate_dev(&["revhook.ns.svc".into()], &[], 30, 365).expect("generate");
        load_pair(dev.cert.as_bytes(), dev.key.as_bytes(), "dev").expect("loads");
        assert!(dev.ca_bundle().len() > 100);
    }

    #[test]
    fn absurd_validity_is_an_error_not_a_panic() {
        let err = generate_dev(&[], &[], u32::MAX, 365).expect_err("too long");
        assert!(matches!(err, TlsError::Validity(_)), "{err}");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let a = generate_dev(&[], &[], 30, 365).expect("a");
        let b = generate_dev(&[], &[], 30, 365).expect("b");
        let err = load_pair(a.cert.as_bytes(), b.key.as_bytes(), "mixed").expect_err("mismatch");
        assert!(matches!(err, TlsError::Pair(_)), "{err}");
    }

    #[test]
    fn garbage_is_rejected_with_a_clear_error() {
        let err = load_pair(b"nothing here", b"", "x").expect_err("no pem");
        assert_eq!(err.to_string(), "x certificate: no PEM CERTIFICATE found");
    }

    #[test]
    fn reloader_swaps_valid_and_keeps_old_on_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let first = generate_dev(&[], &[], 30, 365).expect("first");
        first.write(dir.path()).expect("write");
        let loaded = read_pair(&files.cert, &files.key).expect("read");
        let store = CertStore::new(load_pair(&loaded.0, &loaded.1, "t").expect("pair"));
        let mut reloader = Reloader::new(files.clone(), loaded);
        assert_eq!(reloader.check(&store), Reload::Unchanged);

        let before = store.current();
        std::fs::write(&files.key, "garbage").expect("write");
        assert!(matches!(reloader.check(&store), Reload::Rejected(_)));
        assert!(
            Arc::ptr_eq(&before, &store.current()),
            "old pair keeps serving"
        );
        assert_eq!(
            reloader.check(&store),
            Reload::Unchanged,
            "a bad file is reported once"
        );

        let second = generate_dev(&[], &[], 30, 365).expect("second");
        second.write(dir.path()).expect("write");
        assert_eq!(reloader.check(&store), Reload::Swapped);
        assert!(!Arc::ptr_eq(&before, &store.current()));
    }

    /// A self-signed pair for `names`, valid from `from` to `to` (Unix seconds).
    fn pair_with(names: &[&str], from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).expect("from");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(to).expect("to");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }

    fn reloader_serving(
        dir: &Path,
        pair: &(Vec<u8>, Vec<u8>),
    ) -> (Reloader, Arc<CertStore>, CertFiles) {
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&files.cert, &pair.0).expect("cert");
        std::fs::write(&files.key, &pair.1).expect("key");
        let store = CertStore::new(load_pair(&pair.0, &pair.1, "t").expect("pair"));
        (Reloader::new(files.clone(), pair.clone()), store, files)
    }

    fn install(files: &CertFiles, pair: &(Vec<u8>, Vec<u8>)) {
        std::fs::write(&files.cert, &pair.0).expect("cert");
        std::fs::write(&files.key, &pair.1).expect("key");
    }

    const DAY: i64 = 86_400;

    #[test]
    fn reloader_refuses_expired_and_not_yet_valid_pairs() {
        let now = unix_now();
        let dir = tempfile::tempdir().expect("tempdir");
        let names = ["revhook.ns.svc", "127.0.0.1"];
        let (mut reloader, store, files) =
            reloader_serving(dir.path(), &pair_with(&names, now - DAY, now + DAY));
        let served = store.current();

        install(&files, &pair_with(&names, now - 2 * DAY, now - DAY));
        let refused = reloader.check_at(&store, now);
        assert!(
            matches!(&refused, Reload::Rejected(why) if why.contains("expired")),
            "{refused:?}"
        );
        assert!(Arc::ptr_eq(&served, &store.current()), "old pair kept");
        assert_eq!(
            reloader.check_at(&store, now),
            Reload::Unchanged,
            "reported once"
        );

        // Issued by a clock a minute ahead of ours: refused now, taken once it is valid.
        install(&files, &pair_with(&names, now + 60, now + DAY));
        let early = reloader.check_at(&store, now);
        assert!(
            matches!(&early, Reload::Rejected(why) if why.contains("not valid before")),
            "{early:?}"
        );
        assert_eq!(reloader.check_at(&store, now + 30), Reload::Unchanged);
        assert!(Arc::ptr_eq(&served, &store.current()), "old pair kept");
        assert_eq!(reloader.check_at(&store, now + 61), Reload::Swapped);
        assert!(!Arc::ptr_eq(&served, &store.current()));
    }

    #[test]
    fn reloader_refuses_a_pair_that_drops_a_served_name() {
        let now = unix_now();
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut reloader, store, files) = reloader_serving(
            dir.path(),
            &pair_with(
                &["revhook.ns.svc", "revhook.ns.svc.cluster.local"],
                now - DAY,
                now + DAY,
            ),
        );
        let served = store.current();
        install(
            &files,
            &pair_with(&["revhook.ns.svc"], now - DAY, now + DAY),
        );
        let refused = reloader.check_at(&store, now);
        assert!(
            matches!(&refused, Reload::Rejected(why) if why.contains("revhook.ns.svc.cluster.local")),
            "{refused:?}"
        );
        assert!(Arc::ptr_eq(&served, &store.current()));

        // More names, or a wildcard over one, still cover what is served.
        install(
            &files,
            &pair_with(
                &["revhook.ns.svc", "*.ns.svc.cluster.local", "extra.example"],
                now - DAY,
                now + DAY,
            ),
        );
        assert_eq!(reloader.check_at(&store, now), Reload::Swapped);
        // Now the wildcard is served: only a wildcard covers it.
        install(
            &files,
            &pair_with(
                &["revhook.ns.svc", "revhook.ns.svc.cluster.local"],
                now - DAY,
                now + DAY,
            ),
        );
        assert!(
            matches!(reloader.check_at(&store, now), Reload::Rejected(why) if why.contains("*.ns.svc.cluster.local"))
        );
    }

    #[test]
    fn names_are_covered_exactly_or_by_a_one_label_wildcard() {
        assert!(name_covers("a.b", "a.b"));
        assert!(name_covers("*.b.c", "a.b.c"));
        assert!(!name_covers("*.b.c", "x.a.b.c"));
        assert!(!name_covers("*.b.c", "b.c"));
        assert!(!name_covers("a.b.c", "*.b.c"));
        assert!(name_covers("*.b.c", "*.b.c"));
    }

    #[test]
    fn generated_certificates_carry_key_identifiers_and_unique_ca_names() {
        use x509_parser::extensions::ParsedExtension;
        let a = generate_dev(&[], &[], 30, 365).expect("a");
        let b = generate_dev(&[], &[], 30, 365).expect("b");
        let der = |pem: &str| leaf_der(pem.as_bytes()).expect("pem");
        let ids = |der: &[u8]| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
            let mut ski = None;
            let mut aki = None;
            for ext in cert.extensions() {
                match ext.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                    ParsedExtension::AuthorityKeyIdentifier(id) => {
                        aki = id.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => {}
                }
            }
            (cert.subject().to_string(), ski, aki)
        };
        let (ca_name, ca_ski, ca_aki) = ids(&der(&a.ca_cert));
        let (_, leaf_ski, leaf_aki) = ids(&der(&a.cert));
        assert!(ca_ski.is_some() && leaf_ski.is_some(), "SKI on both");
        assert_ne!(ca_ski, leaf_ski);
        assert_eq!(leaf_aki, ca_ski, "the leaf's AKI names its CA's key");
        assert_eq!(ca_aki, ca_ski, "a self-signed CA names itself");
        let (other_name, _, _) = ids(&der(&b.ca_cert));
        assert_ne!(ca_name, other_name, "every CA has its own subject");
        assert!(ca_name.contains("revhook dev CA "), "{ca_name}");
    }
}
