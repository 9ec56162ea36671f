//! Does a webhook's `caBundle` verify what the webhook serves?
//!
//! The API server calls a `service:` webhook at `<service>.<namespace>.svc` and trusts only the
//! caBundle. For revhook's own webhooks the serving certificate is in its TLS Secret, so the
//! chain is verified as the API server would (issuer, signature, validity, name). For Istio's
//! webhooks istiod's serving certificate is not stored anywhere readable; it is issued by the
//! mesh CA whose root istiod publishes in the `istio-ca-root-cert` ConfigMap, and that root is
//! what istiod patches into its caBundles, so the bundle must contain it.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};

/// Why a caBundle does not verify a serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// The bundle holds no certificate that can be read.
    UnreadableBundle,
    /// The serving certificate cannot be read.
    UnreadableCertificate,
    /// Not issued by a CA in the bundle (the API server: `x509: certificate signed by unknown
    /// authority`).
    UnknownIssuer,
    Expired,
    NotYetValid,
    /// Not valid for the name the API server calls.
    WrongName(String),
    Other(String),
}

impl Mismatch {
    pub(super) fn describe(&self) -> String {
        match self {
            Mismatch::UnreadableBundle => "the caBundle holds no readable PEM certificate".into(),
            Mismatch::UnreadableCertificate => {
                "the serving certificate cannot be read as PEM".into()
            }
            Mismatch::UnknownIssuer => "the serving certificate is not signed by a CA in the caBundle (the API server reports \"x509: certificate signed by unknown authority\")".into(),
            Mismatch::Expired => "the serving certificate has expired".into(),
            Mismatch::NotYetValid => "the serving certificate is not valid yet".into(),
            Mismatch::WrongName(name) => format!("the serving certificate is not valid for {name}, the name the API server calls"),
            Mismatch::Other(e) => format!("the serving certificate does not verify: {e}"),
        }
    }
}

fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Verifies the serving chain `chain_pem` (leaf first) against `bundle_pem` for the DNS name
/// `host`, at `now` (Unix seconds), as the API server's TLS client would.
pub(super) fn verify_serving(
    bundle_pem: &[u8],
    chain_pem: &[u8],
    host: &str,
    now: i64,
) -> Result<(), Mismatch> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates(bundle_pem));
    if added == 0 {
        return Err(Mismatch::UnreadableBundle);
    }
    let chain = certificates(chain_pem);
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(Mismatch::UnreadableCertificate);
    };
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .build()
            .map_err(|e| Mismatch::Other(e.to_string()))?;
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| Mismatch::WrongName(host.to_owned()))?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    match verifier.verify_server_cert(leaf, intermediates, &name, &[], at) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(e)) => Err(match e {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Mismatch::UnknownIssuer
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Mismatch::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Mismatch::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Mismatch::WrongName(host.to_owned())
            }
            other => Mismatch::Other(format!("{other:?}")),
        }),
        Err(e) => Err(Mismatch::Other(e.to_string())),
    }
}

/// Whether the bundle contains the root certificate (byte for byte, as DER).
pub(super) fn contains_root(bundle_pem: &[u8], root_pem: &[u8]) -> Result<bool, Mismatch> {
    let bundle = certificates(bundle_pem);
    if bundle.is_empty() {
        return Err(Mismatch::UnreadableBundle);
    }
    let roots = certificates(root_pem);
    if roots.is_empty() {
        return Err(Mismatch::UnreadableCertificate);
    }
    Ok(roots.iter().any(|r| bundle.contains(r)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A CA and a serving certificate it signed, as PEM.
    pub(in crate::check) struct Pki {
        pub(in crate::check) ca: String,
        pub(in crate::check) serving: String,
    }

    /// A CA valid from `from` to `to` (Unix seconds) that signs a certificate for `names`.
    pub(in crate::check) fn pki(names: &[&str], from: i64, to: i64) -> Pki {
        let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).expect("time");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.not_before = at(from);
        ca_params.not_after = at(to);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("test CA {}", names.join(",")),
        );
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        params.not_before = at(from);
        params.not_after = at(to);
        let serving = params.signed_by(&key, &ca).expect("serving");
        Pki {
            ca: ca.pem(),
            serving: serving.pem(),
        }
    }

    const NOW: i64 = 1_800_000_000;
    const HOST: &str = "revhook.revhook-system.svc";

    fn current() -> Pki {
        pki(&[HOST], NOW - 1000, NOW + 1000)
    }

    #[test]
    fn a_chain_signed_by_the_bundle_for_the_called_name_verifies() {
        let p = current();
        assert_eq!(
            verify_serving(p.ca.as_bytes(), p.serving.as_bytes(), HOST, NOW),
            Ok(())
        );
        let both = format!("{}{}", current().ca, p.ca);
        assert_eq!(
            verify_serving(both.as_bytes(), p.serving.as_bytes(), HOST, NOW),
            Ok(()),
            "a bundle holding the old and the new CA (rotation) verifies"
        );
    }

    #[test]
    fn another_ca_is_an_unknown_issuer() {
        let (a, b) = (current(), current());
        assert_eq!(
            verify_serving(a.ca.as_bytes(), b.serving.as_bytes(), HOST, NOW),
            Err(Mismatch::UnknownIssuer)
        );
        assert!(Mismatch::UnknownIssuer
            .describe()
            .contains("x509: certificate signed by unknown authority"));
    }

    #[test]
    fn validity_and_name_are_judged_at_the_given_time() {
        let p = current();
        assert_eq!(
            verify_serving(p.ca.as_bytes(), p.serving.as_bytes(), HOST, NOW + 5000),
            Err(Mismatch::Expired)
        );
        assert_eq!(
            verify_serving(p.ca.as_bytes(), p.serving.as_bytes(), HOST, NOW - 5000),
            Err(Mismatch::NotYetValid)
        );
        assert_eq!(
            verify_serving(p.ca.as_bytes(), p.serving.as_bytes(), "other.ns.svc", NOW),
            Err(Mismatch::WrongName("other.ns.svc".into()))
        );
    }

    #[test]
    fn unreadable_input_is_said_not_panicked_on() {
        let p = current();
        assert_eq!(
            verify_serving(b"garbage", p.serving.as_bytes(), HOST, NOW),
            Err(Mismatch::UnreadableBundle)
        );
        assert_eq!(
            verify_serving(p.ca.as_bytes(), b"", HOST, NOW),
            Err(Mismatch::UnreadableCertificate)
        );
        assert_eq!(
            contains_root(b"", p.ca.as_bytes()),
            Err(Mismatch::UnreadableBundle)
        );
    }

    #[test]
    fn the_bundle_must_contain_the_mesh_root() {
        let (a, b) = (current(), current());
        assert_eq!(contains_root(a.ca.as_bytes(), a.ca.as_bytes()), Ok(true));
        assert_eq!(contains_root(a.ca.as_bytes(), b.ca.as_bytes()), Ok(false));
        let both = format!("{}{}", b.ca, a.ca);
        assert_eq!(contains_root(both.as_bytes(), a.ca.as_bytes()), Ok(true));
    }
}
