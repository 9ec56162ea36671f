//! Webhook configurations: what makes the API server fail to call a webhook (an empty or
//! wrong caBundle, a Service, port or path that does not exist, a Service without ready
//! endpoints), and the leftovers of revisions that are no longer installed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ServiceReference, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource as _;

use super::certs::{self, Mismatch};
use super::installed::{ready_endpoints, revision_in_webhook_name};
use super::{finding, Cluster, ClusterObjects, Finding, Severity};
use crate::core::labels;
use crate::core::webhooks::Hooks as _;

/// revhook's serving certificate (the shipped manifests and the cert-manager overlay).
const REVHOOK_TLS_SECRET: &str = "revhook-tls";
/// Where istiod publishes the mesh's root certificate.
const ISTIO_ROOT_CONFIGMAP: &str = "istio-ca-root-cert";
const ISTIO_ROOT_KEY: &str = "root-cert.pem";
/// The port the API server calls when a webhook's service names none.
const DEFAULT_WEBHOOK_PORT: i32 = 443;

pub(super) fn findings(cluster: &Cluster<'_>) -> Vec<Finding> {
    let objects = cluster.objects;
    let services = known_services(objects);
    let half_removed: BTreeSet<&str> = cluster
        .inventory
        .half_removed()
        .map(|p| p.revision.as_str())
        .collect();
    let configs = objects
        .mutating
        .iter()
        .map(|m| (MutatingWebhookConfiguration::KIND, &m.metadata, m.hooks()))
        .chain(
            objects
                .validating
                .iter()
                .map(|v| (ValidatingWebhookConfiguration::KIND, &v.metadata, v.hooks())),
        );
    let mut out = Vec::new();
    for (kind, meta, hooks) in configs {
        let config = Config::new(kind, meta);
        // One finding per problem and configuration, naming its webhooks (revhook's four
        // webhooks share one caBundle and one Service).
        let mut problems: BTreeMap<Problem, Vec<&str>> = BTreeMap::new();
        for (hook, client) in hooks {
            let ctx = Hook {
                name: hook,
                client,
                services: services.as_ref(),
                objects,
                istio_namespaces: &cluster.inventory.istio_namespaces,
                now: cluster.opts.now,
            };
            for p in ctx.problems() {
                problems.entry(p).or_default().push(hook);
            }
        }
        out.extend(
            problems
                .into_iter()
                .map(|(p, hooks)| p.finding(&config, &hooks)),
        );
        out.extend(leftover(&config, cluster, &half_removed));
    }
    out
}

/// The Services in the input by `(namespace, name)`; `None` when it had none at all.
fn known_services(objects: &ClusterObjects) -> Option<BTreeMap<(String, String), &Service>> {
    objects.services.as_ref().map(|s| {
        s.iter()
            .map(|svc| {
                (
                    (
                        svc.metadata.namespace.clone().unwrap_or_default(),
                        svc.metadata.name.clone().unwrap_or_default(),
                    ),
                    svc,
                )
            })
            .collect()
    })
}

/// One webhook configuration being judged.
struct Config<'m> {
    kind: &'static str,
    name: &'m str,
    meta: &'m ObjectMeta,
}

impl<'m> Config<'m> {
    fn new(kind: &'static str, meta: &'m ObjectMeta) -> Self {
        Config {
            kind,
            name: meta.name.as_deref().unwrap_or_default(),
            meta,
        }
    }

    fn object(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn delete_command(&self) -> String {
        format!(
            "kubectl delete {} {}",
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

/// Whose server a webhook calls: that decides which paths exist and where its CA is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Revhook,
    Istio,
    Other,
}

fn server_of(hook: &str) -> Server {
    if hook.ends_with(".revhook.dev") {
        Server::Revhook
    } else if hook.ends_with(".istio.io") {
        Server::Istio
    } else {
        Server::Other
    }
}

/// A problem of one webhook, without the webhook's name (so equal ones group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    EmptyCaBundle,
    MissingService(String),
    MissingPort { service: String, port: i32 },
    UnknownPath { path: String },
    NoEndpoints(String),
    RevhookCa { secret: String, why: String },
    IstioCa { configmap: String },
}

/// One webhook being judged.
struct Hook<'h> {
    name: &'h str,
    client: &'h WebhookClientConfig,
    services: Option<&'h BTreeMap<(String, String), &'h Service>>,
    objects: &'h ClusterObjects,
    /// Where the mesh root is read (the live listing reads ConfigMaps only there).
    istio_namespaces: &'h [String],
    now: i64,
}

impl Hook<'_> {
    /// Only webhooks called through a Service are judged (a `url:` one is someone else's setup).
    fn problems(&self) -> Vec<Problem> {
        let Some(svc) = self.client.service.as_ref() else {
            return Vec::new();
        };
        let bundle = self
            .client
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let mut out = Vec::new();
        let server = server_of(self.name);
        if bundle.is_empty() {
            out.push(Problem::EmptyCaBundle);
        } else {
            out.extend(self.ca_mismatch(server, svc, bundle));
        }
        if let Some(p) = unknown_path(server, svc) {
            out.push(p);
        }
        let key = (svc.namespace.clone(), svc.name.clone());
        let Some(services) = self.services else {
            return out;
        };
        let shown = format!("{}/{}", svc.namespace, svc.name);
        let Some(service) = services.get(&key) else {
            out.push(Problem::MissingService(shown));
            return out;
        };
        let port = svc.port.unwrap_or(DEFAULT_WEBHOOK_PORT);
        let ports: Vec<i32> = service
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| p.port)
            .collect();
        // A Service read without its ports (a hand-written dump) is not judged.
        if !ports.is_empty() && !ports.contains(&port) {
            out.push(Problem::MissingPort {
                service: shown.clone(),
                port,
            });
        }
        if ready_endpoints(self.objects, &svc.namespace, &svc.name) == Some(0) {
            out.push(Problem::NoEndpoints(shown));
        }
        out
    }

    /// revhook's caBundle against its TLS Secret; Istio's against the mesh root istiod
    /// publishes. Not judged where neither is readable.
    fn ca_mismatch(
        &self,
        server: Server,
        svc: &ServiceReference,
        bundle: &[u8],
    ) -> Option<Problem> {
        match server {
            Server::Revhook => {
                let secret = self.objects.secrets.iter().find(|s| {
                    s.metadata.namespace.as_deref() == Some(svc.namespace.as_str())
                        && s.metadata.name.as_deref() == Some(REVHOOK_TLS_SECRET)
                })?;
                let chain = secret.data.as_ref()?.get("tls.crt")?;
                let host = format!("{}.{}.svc", svc.name, svc.namespace);
                let why = certs::verify_serving(bundle, &chain.0, &host, self.now).err()?;
                Some(Problem::RevhookCa {
                    secret: format!("{}/{REVHOOK_TLS_SECRET}", svc.namespace),
                    why: why.describe(),
                })
            }
            Server::Istio => {
                if !self.istio_namespaces.contains(&svc.namespace) {
                    return None;
                }
                let root = self.objects.configmaps.iter().find(|c| {
                    c.metadata.namespace.as_deref() == Some(svc.namespace.as_str())
                        && c.metadata.name.as_deref() == Some(ISTIO_ROOT_CONFIGMAP)
                })?;
                let pem = root.data.as_ref()?.get(ISTIO_ROOT_KEY)?;
                match certs::contains_root(bundle, pem.as_bytes()) {
                    Ok(true) | Err(Mismatch::UnreadableCertificate) => None,
                    Ok(false) | Err(_) => Some(Problem::IstioCa {
                        configmap: format!("{}/{ISTIO_ROOT_CONFIGMAP}", svc.namespace),
                    }),
                }
            }
            Server::Other => None,
        }
    }
}

/// The paths revhook and istiod serve webhooks on; any other path answers 404.
fn unknown_path(server: Server, svc: &ServiceReference) -> Option<Problem> {
    if server == Server::Other {
        return None;
    }
    let path = svc.path.as_deref().unwrap_or("/");
    let served = path == "/inject" || path == "/validate" || path.starts_with("/inject/");
    (!served).then(|| Problem::UnknownPath {
        path: path.to_owned(),
    })
}

impl Problem {
    fn finding(self, config: &Config<'_>, hooks: &[&str]) -> Finding {
        let who = if hooks.len() == 1 {
            format!("webhook {}", hooks[0])
        } else {
            format!("webhooks {}", hooks.join(", "))
        };
        let object = config.object();
        match self {
            Problem::EmptyCaBundle => finding(
                Severity::Error,
                "REVHOOK-CA-BUNDLE",
                Some("IST0139"),
                object,
                format!("{who}: empty caBundle: the API server cannot call it"),
                Some("run revhook with --manage-ca-bundle, or re-inject the CA (cert-manager's inject-ca-from)".into()),
            ),
            Problem::MissingService(service) => finding(
                Severity::Error,
                "REVHOOK-WEBHOOK-SERVICE",
                Some("IST0139"),
                object,
                format!("{who}: points at service {service}, which does not exist"),
                Some(format!(
                    "{}  # if it belongs to a removed control plane",
                    config.delete_command()
                )),
            ),
            Problem::MissingPort { service, port } => finding(
                Severity::Error,
                "REVHOOK-WEBHOOK-PORT",
                Some("IST0139"),
                object,
                format!("{who}: calls port {port} of service {service}, which has no such port"),
                Some(format!("set clientConfig.service.port to one of the Service's ports, or add port {port} to it")),
            ),
            Problem::UnknownPath { path } => finding(
                Severity::Error,
                "REVHOOK-WEBHOOK-PATH",
                None,
                object,
                format!("{who}: calls path {path}, which the server does not serve (/inject, /inject/..., /validate): every call answers 404"),
                Some("set clientConfig.service.path to /inject (mutating) or /validate (validating)".into()),
            ),
            Problem::NoEndpoints(service) => finding(
                Severity::Error,
                "REVHOOK-NO-ENDPOINTS",
                None,
                object,
                format!("{who}: service {service} has no ready endpoints: every call fails with \"no endpoints available for service\""),
                Some(format!("make the pods behind {service} ready (kubectl get pods,endpointslices -n {})", service.split('/').next().unwrap_or_default())),
            ),
            Problem::RevhookCa { secret, why } => finding(
                Severity::Error,
                "REVHOOK-CA-MISMATCH",
                None,
                object,
                format!("{who}: the caBundle does not verify revhook's serving certificate (Secret {secret}): {why}"),
                Some("re-inject the CA that signed the Secret's certificate (revhook --manage-ca-bundle, or cert-manager's inject-ca-from)".into()),
            ),
            Problem::IstioCa { configmap } => finding(
                Severity::Warning,
                "REVHOOK-CA-MISMATCH",
                None,
                object,
                format!("{who}: the caBundle does not contain the mesh root certificate istiod publishes ({configmap}), which signs istiod's serving certificate: calls fail with \"x509: certificate signed by unknown authority\""),
                Some("restart the revision's istiod so it patches its webhooks' caBundle (or re-run its install)".into()),
            ),
        }
    }
}

/// Leftovers of revisions that are gone break later installs ("the object has been modified").
/// Tag webhooks are judged as tags, `default` is every revision's fallback name, and those of
/// a half-removed revision are listed with it.
fn leftover(
    config: &Config<'_>,
    cluster: &Cluster<'_>,
    half_removed: &BTreeSet<&str>,
) -> Option<Finding> {
    let labels_ = config.meta.labels.as_ref();
    if labels_.is_some_and(|l| l.contains_key(labels::ISTIO_TAG)) {
        return None;
    }
    let rev = labels_
        .and_then(|l| l.get(labels::ISTIO_REV))
        .cloned()
        .or_else(|| revision_in_webhook_name(config.name))
        .filter(|r| r != "default" && cluster.snapshot.table.revision(r).is_none())
        .filter(|r| !half_removed.contains(r.as_str()))?;
    Some(finding(
        Severity::Warning,
        "REVHOOK-LEFTOVER-WEBHOOK",
        None,
        config.object(),
        format!("belongs to revision {rev:?}, which is no longer installed; it breaks later installs and upgrades"),
        Some(config.delete_command()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::certs::tests::pki;
    use crate::check::tests::{
        client, codes, configmap, endpoint_slice, judge_objects, mutating, service,
        service_with_ports, snapshot, tls_secret, validating,
    };
    use crate::core::labels::{ISTIO_REV, ISTIO_TAG};
    use crate::core::snapshot::Snapshot;

    const ISTIOD: (&str, &str) = ("istio-system", "istiod-asm-1-23");
    const NOW: i64 = 1_800_000_000;

    fn installed() -> Snapshot {
        snapshot(&[("asm-1-23", "img:1.23")], &[], &[])
    }

    fn judge(objects: ClusterObjects) -> Vec<Finding> {
        judge_objects(installed(), objects, findings)
    }

    fn with_istiod(objects: ClusterObjects) -> ClusterObjects {
        ClusterObjects {
            services: Some(vec![service(ISTIOD.0, ISTIOD.1)]),
            ..objects
        }
    }

    #[test]
    fn an_empty_or_missing_ca_bundle_is_one_error_naming_the_webhooks() {
        let mut no_bundle = client(ISTIOD, b"");
        no_bundle.ca_bundle = None;
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[(ISTIO_REV, "asm-1-23")],
                vec![
                    ("empty.sidecar-injector.istio.io", client(ISTIOD, b"")),
                    ("none.sidecar-injector.istio.io", no_bundle),
                ],
            )],
            ..ClusterObjects::default()
        });
        assert_eq!(codes(&found), ["REVHOOK-CA-BUNDLE"]);
        assert_eq!(
            found[0].object,
            "MutatingWebhookConfiguration/istio-sidecar-injector-asm-1-23"
        );
        assert_eq!(found[0].istio_code, Some("IST0139"));
        assert!(
            found[0].message.starts_with(
                "webhooks empty.sidecar-injector.istio.io, none.sidecar-injector.istio.io: empty caBundle"
            ),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_ca_bundle_or_a_url_webhook_is_no_ca_finding() {
        let mut by_url = client(ISTIOD, b"");
        by_url.service = None;
        by_url.url = Some("https://127.0.0.1:15017/inject".into());
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![
                    ("a.istio.io", client(ISTIOD, b"PEM")),
                    ("b.istio.io", by_url),
                ],
            )],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_webhook_calling_a_missing_service_is_an_error() {
        let gone = ("istio-system", "istiod-asm-1-21");
        let found = judge(with_istiod(ClusterObjects {
            validating: vec![validating(
                "istio-validator-asm-1-23-istio-system",
                &[],
                vec![("rev.validation.istio.io", client(gone, b"PEM"))],
            )],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-WEBHOOK-SERVICE"]);
        assert_eq!(
            found[0].object,
            "ValidatingWebhookConfiguration/istio-validator-asm-1-23-istio-system"
        );
        assert!(
            found[0]
                .message
                .contains("points at service istio-system/istiod-asm-1-21"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete validatingwebhookconfiguration istio-validator-asm-1-23-istio-system  # if it belongs to a removed control plane")
        );
    }

    #[test]
    fn services_are_not_judged_when_the_input_has_none() {
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![("a.istio.io", client(("istio-system", "gone"), b"PEM"))],
            )],
            services: None,
            ..ClusterObjects::default()
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_port_the_service_lacks_or_a_path_the_server_does_not_serve_is_an_error() {
        let mut wrong_port = client(ISTIOD, b"PEM");
        if let Some(s) = wrong_port.service.as_mut() {
            s.port = Some(15017);
        }
        let mut no_path = client(ISTIOD, b"PEM");
        if let Some(s) = no_path.service.as_mut() {
            s.path = None;
        }
        let found = judge(ClusterObjects {
            services: Some(vec![service_with_ports(ISTIOD.0, ISTIOD.1, &[443, 15012])]),
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![
                    ("port.sidecar-injector.istio.io", wrong_port),
                    ("path.sidecar-injector.istio.io", no_path),
                    ("fine.sidecar-injector.istio.io", client(ISTIOD, b"PEM")),
                ],
            )],
            ..ClusterObjects::default()
        });
        assert_eq!(
            codes(&found),
            ["REVHOOK-WEBHOOK-PORT", "REVHOOK-WEBHOOK-PATH"]
        );
        assert!(
            found[0].message.starts_with("webhook port.sidecar-injector.istio.io: calls port 15017 of service istio-system/istiod-asm-1-23"),
            "{}",
            found[0].message
        );
        assert!(
            found[1].message.contains("calls path /,"),
            "{}",
            found[1].message
        );
        let foreign = judge(ClusterObjects {
            mutating: vec![mutating(
                "cert-manager",
                &[],
                vec![("webhook.cert-manager.io", {
                    let mut c = client(("cert-manager", "webhook"), b"PEM");
                    if let Some(s) = c.service.as_mut() {
                        s.path = Some("/mutate".into());
                    }
                    c
                })],
            )],
            ..ClusterObjects::default()
        });
        assert!(foreign.is_empty(), "others' paths are theirs: {foreign:?}");
    }

    #[test]
    fn a_service_without_ready_endpoints_fails_every_call() {
        let hooks = || {
            vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![("a.sidecar-injector.istio.io", client(ISTIOD, b"PEM"))],
            )]
        };
        let not_ready = judge(with_istiod(ClusterObjects {
            mutating: hooks(),
            endpoint_slices: Some(vec![endpoint_slice(ISTIOD.0, ISTIOD.1, &[false])]),
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&not_ready), ["REVHOOK-NO-ENDPOINTS"]);
        assert!(not_ready[0]
            .message
            .contains("no endpoints available for service"));
        let ready = judge(with_istiod(ClusterObjects {
            mutating: hooks(),
            endpoint_slices: Some(vec![endpoint_slice(ISTIOD.0, ISTIOD.1, &[false, true])]),
            ..ClusterObjects::default()
        }));
        assert!(ready.is_empty(), "{ready:?}");
        let unknown = judge(with_istiod(ClusterObjects {
            mutating: hooks(),
            ..ClusterObjects::default()
        }));
        assert!(unknown.is_empty(), "no endpoint data, nothing judged");
    }

    fn revhook_hooks(ca: &str) -> Vec<MutatingWebhookConfiguration> {
        let svc = ("revhook-system", "revhook");
        vec![mutating(
            "revhook",
            &[],
            vec![
                ("namespace.inject.revhook.dev", client(svc, ca.as_bytes())),
                (
                    "rev.namespace.inject.revhook.dev",
                    client(svc, ca.as_bytes()),
                ),
            ],
        )]
    }

    #[test]
    fn revhooks_ca_bundle_must_verify_its_tls_secret() {
        let host = ["revhook.revhook-system.svc"];
        let (ours, theirs) = (
            pki(&host, NOW - 100, NOW + 100),
            pki(&host, NOW - 100, NOW + 100),
        );
        let with = |ca: &str, serving: &str| {
            judge(ClusterObjects {
                mutating: revhook_hooks(ca),
                secrets: vec![tls_secret("revhook-system", "revhook-tls", serving)],
                ..ClusterObjects::default()
            })
        };
        assert!(with(&ours.ca, &ours.serving).is_empty());
        let found = with(&theirs.ca, &ours.serving);
        assert_eq!(codes(&found), ["REVHOOK-CA-MISMATCH"]);
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.starts_with("webhooks namespace.inject.revhook.dev, rev.namespace.inject.revhook.dev: the caBundle does not verify revhook's serving certificate (Secret revhook-system/revhook-tls): the serving certificate is not signed by a CA in the caBundle"),
            "{}",
            found[0].message
        );
        let wrong_name = pki(&["other.svc"], NOW - 100, NOW + 100);
        let found = with(&wrong_name.ca, &wrong_name.serving);
        assert!(
            found[0]
                .message
                .contains("not valid for revhook.revhook-system.svc"),
            "{}",
            found[0].message
        );
        // Without the Secret nothing can be judged.
        let unknown = judge(ClusterObjects {
            mutating: revhook_hooks(&theirs.ca),
            ..ClusterObjects::default()
        });
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn istios_ca_bundle_must_hold_the_mesh_root() {
        let (mesh, other) = (
            pki(&["x"], NOW - 100, NOW + 100),
            pki(&["x"], NOW - 100, NOW + 100),
        );
        let with = |bundle: &str| {
            judge(ClusterObjects {
                validating: vec![validating(
                    "istio-validator-asm-1-23-istio-system",
                    &[],
                    vec![("rev.validation.istio.io", {
                        let mut c = client(ISTIOD, bundle.as_bytes());
                        if let Some(s) = c.service.as_mut() {
                            s.path = Some("/validate".into());
                        }
                        c
                    })],
                )],
                configmaps: vec![configmap(
                    "istio-system",
                    "istio-ca-root-cert",
                    &[("root-cert.pem", &mesh.ca)],
                )],
                ..ClusterObjects::default()
            })
        };
        assert!(with(&mesh.ca).is_empty());
        let found = with(&other.ca);
        assert_eq!(codes(&found), ["REVHOOK-CA-MISMATCH"]);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(
            found[0].message.contains("istio-system/istio-ca-root-cert"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_webhook_of_a_revision_no_longer_installed_is_a_leftover() {
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![
                mutating("istio-sidecar-injector-asm-1-21", &[], vec![]),
                mutating("revhook-old", &[(ISTIO_REV, "asm-1-20")], vec![]),
            ],
            validating: vec![validating(
                "istio-validator-asm-1-21-istio-system",
                &[],
                vec![],
            )],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-LEFTOVER-WEBHOOK"; 3]);
        assert!(
            found[0].message.contains("\"asm-1-21\""),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-21")
        );
        assert!(
            found[1].message.contains("\"asm-1-20\""),
            "{}",
            found[1].message
        );
        assert_eq!(
            found[2].object,
            "ValidatingWebhookConfiguration/istio-validator-asm-1-21-istio-system"
        );
    }

    #[test]
    fn a_half_removed_revisions_webhooks_are_listed_with_it_not_as_leftovers() {
        let found = judge(ClusterObjects {
            configmaps: vec![crate::check::tests::injector(
                "istio-system",
                "asm-1-21",
                "1.21.0",
            )],
            services: Some(vec![service(ISTIOD.0, ISTIOD.1)]),
            mutating: vec![mutating("istio-sidecar-injector-asm-1-21", &[], vec![])],
            ..ClusterObjects::default()
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn installed_default_tag_and_foreign_webhooks_are_not_leftovers() {
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![
                mutating("istio-sidecar-injector-asm-1-23", &[], vec![]),
                mutating("istio-sidecar-injector", &[(ISTIO_REV, "default")], vec![]),
                mutating(
                    "istio-revision-tag-prod",
                    &[(ISTIO_TAG, "prod"), (ISTIO_REV, "asm-1-21")],
                    vec![],
                ),
                mutating("cert-manager-webhook", &[], vec![]),
            ],
            validating: vec![validating("istio-validator-asm-1-21-other-ns", &[], vec![])],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn an_aks_validator_is_read_for_its_revision_not_the_namespace_suffix() {
        let found = judge(ClusterObjects {
            validating: vec![
                validating("istio-validator-asm-1-23-aks-istio-system", &[], vec![]),
                validating("istio-validator-asm-1-19-aks-istio-system", &[], vec![]),
            ],
            ..ClusterObjects::default()
        });
        assert_eq!(codes(&found), ["REVHOOK-LEFTOVER-WEBHOOK"]);
        assert!(
            found[0].message.contains("revision \"asm-1-19\","),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn the_rev_label_names_the_revision_before_the_webhook_name() {
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-21",
                &[(ISTIO_REV, "asm-1-23")],
                vec![],
            )],
            ..ClusterObjects::default()
        });
        assert!(found.is_empty(), "{found:?}");
    }
}
