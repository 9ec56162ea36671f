//! Serving certificate: loading, checking, hot reload, and dev certificates via rcgen.
//!
//! The certificate lives behind an `ArcSwap` read by a rustls `ResolvesServerCert`, so a
//! rotation is one atomic store: handshakes after it see the new pair, open connections keep
//! theirs. A new pair is parsed and checked (key matches certificate) before it is swapped in;
//! a bad one keeps the old pair serving.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
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

/// TLS 1.2 and 1.3, ALPN h2 then http/1.1 (the API server speaks either).
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
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
}

impl Reloader {
    pub fn new(files: CertFiles, loaded: (Vec<u8>, Vec<u8>)) -> Self {
        Reloader {
            files,
            last: loaded,
        }
    }

    pub fn check(&mut self, store: &CertStore) -> Reload {
        let read = match read_pair(&self.files.cert, &self.files.key) {
            Ok(read) => read,
            Err(e) => return Reload::Rejected(e.to_string()),
        };
        if read == self.last {
            return Reload::Unchanged;
        }
        match load_pair(&read.0, &read.1, "reloaded") {
            Ok(pair) => {
                store.swap(pair);
                self.last = read;
                Reload::Swapped
            }
            Err(e) => {
                // Remember the bad contents so the error is logged once per change, not per poll.
                self.last = read;
                Reload::Rejected(e.to_string())
            }
        }
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

    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "revhook dev CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = expiry(now, ca_days)?;
    let ca_key = KeyPair::generate()?;
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
}
