//! Builders shared by the rules' unit tests (small k8s-openapi objects and a snapshot, no
//! files), and the tests of `run` itself: what the rules share and the order of the report.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, ServiceReference, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus as AppsDeploymentStatus, ReplicaSet,
    ReplicaSetCondition, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Event, Namespace, ObjectReference, Pod, PodSpec, PodStatus,
    PodTemplateSpec, Secret, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::ByteString;

use super::*;
use crate::core::labels::PROXY_NAME;
use crate::core::labels::{self, NamespaceLabels};
use crate::core::revisions::{Revision, RevisionTable};

pub(super) fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..ObjectMeta::default()
    }
}

/// A snapshot with these revisions `(name, proxy image)`, tags `(tag, revision)` and
/// namespaces `(name, labels)`.
pub(super) fn snapshot(
    revisions: &[(&str, &str)],
    tags: &[(&str, &str)],
    namespaces: &[(&str, &[(&str, &str)])],
) -> Snapshot {
    let mesh = MeshSettings::default();
    let table = RevisionTable::new(
        revisions.iter().map(|(n, i)| Revision::new(n, i, &mesh)),
        tags.iter().map(|(t, r)| ((*t).to_owned(), (*r).to_owned())),
    )
    .expect("a valid table");
    let namespaces: HashMap<String, NamespaceLabels> = namespaces
        .iter()
        .map(|(n, l)| {
            (
                (*n).to_owned(),
                NamespaceLabels::from_pairs(l.iter().copied()),
            )
        })
        .collect();
    Snapshot::new(table, mesh, namespaces, "test")
}

/// A running pod with one application container and nothing of Istio's.
pub(super) fn pod(namespace: &str, name: &str) -> Pod {
    Pod {
        metadata: meta(Some(namespace), name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("shop/web:1".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Changes to a test pod, chained after [`pod`].
pub(super) trait PodBuilder: Sized {
    fn label(self, key: &str, value: &str) -> Self;
    fn annotation(self, key: &str, value: &str) -> Self;
    /// An `istio-proxy` container with this image.
    fn proxy(self, image: &str) -> Self;
    /// An `istio-proxy` init container (a native sidecar) with this image.
    fn native_proxy(self, image: &str) -> Self;
    /// A sidecar injected for `revision`: the proxy and Istio's status annotation.
    fn injected(self, revision: &str, image: &str) -> Self;
    /// Created by the ReplicaSet of Deployment `deployment`.
    fn of_deployment(self, deployment: &str, hash: &str) -> Self;
    fn phase(self, phase: &str) -> Self;
}

impl PodBuilder for Pod {
    fn label(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    fn proxy(mut self, image: &str) -> Self {
        if let Some(spec) = self.spec.as_mut() {
            spec.containers.push(proxy_container(image));
        }
        self
    }

    fn native_proxy(mut self, image: &str) -> Self {
        if let Some(spec) = self.spec.as_mut() {
            spec.init_containers = Some(vec![proxy_container(image)]);
        }
        self
    }

    fn injected(self, revision: &str, image: &str) -> Self {
        let status = serde_json::json!({"revision": revision, "containers": [PROXY_NAME]});
        self.proxy(image)
            .annotation(labels::SIDECAR_STATUS, &status.to_string())
    }

    fn of_deployment(mut self, deployment: &str, hash: &str) -> Self {
        self.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("{deployment}-{hash}"),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        self.label("pod-template-hash", hash)
    }

    fn phase(mut self, phase: &str) -> Self {
        self.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..PodStatus::default()
        });
        self
    }
}

fn proxy_container(image: &str) -> Container {
    Container {
        name: PROXY_NAME.into(),
        image: Some(image.into()),
        ..Container::default()
    }
}

/// A webhook client config calling `/inject` on `service` (namespace, name), with this CA
/// bundle.
pub(super) fn client(service: (&str, &str), ca_bundle: &[u8]) -> WebhookClientConfig {
    WebhookClientConfig {
        service: Some(ServiceReference {
            namespace: service.0.into(),
            name: service.1.into(),
            path: Some("/inject".into()),
            ..ServiceReference::default()
        }),
        ca_bundle: Some(ByteString(ca_bundle.to_vec())),
        ..WebhookClientConfig::default()
    }
}

/// A MutatingWebhookConfiguration with these labels and one webhook `(name, client)` each.
pub(super) fn mutating(
    name: &str,
    labels: &[(&str, &str)],
    hooks: Vec<(&str, WebhookClientConfig)>,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            labels: map(labels),
            ..meta(None, name)
        },
        webhooks: Some(
            hooks
                .into_iter()
                .map(|(n, client_config)| MutatingWebhook {
                    name: n.into(),
                    client_config,
                    admission_review_versions: vec!["v1".into()],
                    side_effects: "None".into(),
                    ..MutatingWebhook::default()
                })
                .collect(),
        ),
    }
}

/// A ValidatingWebhookConfiguration, the same shape as [`mutating`].
pub(super) fn validating(
    name: &str,
    labels: &[(&str, &str)],
    hooks: Vec<(&str, WebhookClientConfig)>,
) -> ValidatingWebhookConfiguration {
    let m = mutating(name, labels, hooks);
    ValidatingWebhookConfiguration {
        metadata: m.metadata,
        webhooks: m.webhooks.map(|hooks| {
            hooks
                .into_iter()
                .map(|h| ValidatingWebhook {
                    name: h.name,
                    client_config: h.client_config,
                    admission_review_versions: h.admission_review_versions,
                    side_effects: h.side_effects,
                    ..ValidatingWebhook::default()
                })
                .collect()
        }),
    }
}

pub(super) fn service(namespace: &str, name: &str) -> Service {
    Service {
        metadata: meta(Some(namespace), name),
        ..Service::default()
    }
}

pub(super) fn service_with_ports(namespace: &str, name: &str, ports: &[i32]) -> Service {
    Service {
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        port: *p,
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..service(namespace, name)
    }
}

/// A Deployment with one container, `replicas` wanted and `ready` ready.
pub(super) fn deployment(namespace: &str, name: &str, replicas: i32, ready: i32) -> Deployment {
    Deployment {
        metadata: meta(Some(namespace), name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta::default()),
                spec: pod(namespace, name).spec,
            },
            ..DeploymentSpec::default()
        }),
        status: Some(AppsDeploymentStatus {
            ready_replicas: Some(ready),
            ..AppsDeploymentStatus::default()
        }),
    }
}

/// An EndpointSlice of `service` with one endpoint per entry (ready or not).
pub(super) fn endpoint_slice(namespace: &str, service: &str, ready: &[bool]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            labels: map(&[("kubernetes.io/service-name", service)]),
            ..meta(Some(namespace), &format!("{service}-abcde"))
        },
        address_type: "IPv4".into(),
        endpoints: ready
            .iter()
            .enumerate()
            .map(|(i, r)| Endpoint {
                addresses: vec![format!("10.0.0.{i}")],
                conditions: Some(EndpointConditions {
                    ready: Some(*r),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    }
}

/// A label selector: `match_labels` and `(key, operator, values)` expressions.
pub(super) fn selector(
    labels: &[(&str, &str)],
    expressions: &[(&str, &str, &[&str])],
) -> LabelSelector {
    LabelSelector {
        match_labels: if labels.is_empty() { None } else { map(labels) },
        match_expressions: Some(
            expressions
                .iter()
                .map(|(key, operator, values)| LabelSelectorRequirement {
                    key: (*key).into(),
                    operator: (*operator).into(),
                    values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
                })
                .collect(),
        ),
    }
}

/// A mutating webhook calling `path` on `service`, with these selectors.
pub(super) fn injector_hook(
    name: &str,
    service: (&str, &str),
    path: &str,
    namespace_selector: LabelSelector,
    object_selector: Option<LabelSelector>,
) -> MutatingWebhook {
    let mut client_config = client(service, b"PEM");
    if let Some(s) = client_config.service.as_mut() {
        s.path = Some(path.into());
    }
    MutatingWebhook {
        name: name.into(),
        client_config,
        namespace_selector: Some(namespace_selector),
        object_selector,
        admission_review_versions: vec!["v1".into()],
        side_effects: "None".into(),
        ..MutatingWebhook::default()
    }
}

pub(super) fn mutating_hooks(
    name: &str,
    hooks: Vec<MutatingWebhook>,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: meta(None, name),
        webhooks: Some(hooks),
    }
}

/// A TLS Secret holding only this certificate chain.
pub(super) fn tls_secret(namespace: &str, name: &str, chain_pem: &str) -> Secret {
    Secret {
        metadata: meta(Some(namespace), name),
        data: Some(BTreeMap::from([(
            "tls.crt".to_owned(),
            ByteString(chain_pem.as_bytes().to_vec()),
        )])),
        type_: Some("kubernetes.io/tls".into()),
        ..Secret::default()
    }
}

/// A ReplicaSet wanting one pod, with a `ReplicaFailure` condition carrying `message`.
pub(super) fn replicaset_failing(namespace: &str, name: &str, message: Option<&str>) -> ReplicaSet {
    ReplicaSet {
        metadata: meta(Some(namespace), name),
        status: Some(ReplicaSetStatus {
            replicas: 0,
            conditions: message.map(|m| {
                vec![ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some(m.into()),
                    ..ReplicaSetCondition::default()
                }]
            }),
            ..ReplicaSetStatus::default()
        }),
        ..ReplicaSet::default()
    }
}

/// A `FailedCreate` Event about `kind/name`, last seen at `at` (Unix seconds).
pub(super) fn failed_create_event(
    namespace: &str,
    kind: &str,
    name: &str,
    message: &str,
    at: i64,
) -> Event {
    Event {
        metadata: meta(Some(namespace), &format!("{name}.{at}")),
        involved_object: ObjectReference {
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectReference::default()
        },
        reason: Some("FailedCreate".into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        last_timestamp: Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(at).expect("a time"),
        )),
        ..Event::default()
    }
}

/// Runs `f` over the cluster `check` would see in these objects.
pub(super) fn with_cluster<T>(
    objects: &ClusterObjects,
    opts: &CheckOptions,
    f: impl FnOnce(&Cluster<'_>) -> T,
) -> T {
    let (cluster, _) = Cluster::new(objects, opts);
    f(&cluster)
}

/// A rule over the cluster these objects make (revisions from their ConfigMaps).
pub(super) fn judge_cluster(
    objects: ClusterObjects,
    opts: CheckOptions,
    rule: impl FnOnce(&Cluster<'_>) -> Vec<Finding>,
) -> Vec<Finding> {
    with_cluster(&objects, &opts, rule)
}

/// A rule over these objects judged against a hand-made snapshot.
pub(super) fn judge_objects(
    snapshot: Snapshot,
    objects: ClusterObjects,
    rule: impl FnOnce(&Cluster<'_>) -> Vec<Finding>,
) -> Vec<Finding> {
    let opts = CheckOptions {
        now: 1_800_000_000,
        ..CheckOptions::default()
    };
    judge_snapshot(snapshot, objects, opts, rule)
}

fn judge_snapshot(
    snapshot: Snapshot,
    objects: ClusterObjects,
    opts: CheckOptions,
    rule: impl FnOnce(&Cluster<'_>) -> Vec<Finding>,
) -> Vec<Finding> {
    let inventory = installed::Inventory::of(&objects, &opts.istio_namespaces);
    let pods = objects
        .pods
        .iter()
        .map(|p| facts::pod_facts(p, &snapshot))
        .collect();
    let cluster = Cluster {
        objects: &objects,
        opts: &opts,
        inventory,
        snapshot,
        pods,
    };
    rule(&cluster)
}

/// A pod rule over these pods against a hand-made snapshot.
pub(super) fn judge_pods(
    snapshot: Snapshot,
    pods: &[Pod],
    platform: Platform,
    rule: impl FnOnce(&Cluster<'_>) -> Vec<Finding>,
) -> Vec<Finding> {
    let objects = ClusterObjects {
        pods: pods.to_vec(),
        ..ClusterObjects::default()
    };
    let opts = CheckOptions {
        platform,
        ..CheckOptions::default()
    };
    judge_snapshot(snapshot, objects, opts, rule)
}

/// A ConfigMap named `name` in `namespace` with these data keys.
pub(super) fn configmap(namespace: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(Some(namespace), name),
        data: map(data),
        ..ConfigMap::default()
    }
}

/// The injector ConfigMap of `revision` with this proxy tag, as Istio's chart writes it.
pub(super) fn injector(namespace: &str, revision: &str, tag: &str) -> ConfigMap {
    let values =
        serde_json::json!({"global": {"hub": "docker.io/istio", "tag": tag}, "revision": revision});
    let (config, _) =
        crate::core::injector::configmap_parts(crate::core::injector::EMBEDDED_INJECTOR)
            .expect("embedded injector");
    configmap(
        namespace,
        &format!("istio-sidecar-injector-{revision}"),
        &[("values", &values.to_string()), ("config", &config)],
    )
}

pub(super) fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            labels: map(labels),
            ..meta(None, name)
        },
        ..Namespace::default()
    }
}

/// The codes of these findings, in order.
pub(super) fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

fn options() -> CheckOptions {
    CheckOptions::default()
}

#[test]
fn an_unreadable_injector_configmap_is_a_warning_and_the_rest_is_judged() {
    let objects = ClusterObjects {
        configmaps: vec![
            injector("istio-system", "asm-1-23", "1.23.0"),
            configmap("istio-system", "istio-sidecar-injector-broken", &[]),
        ],
        namespaces: vec![namespace("shop", &[(labels::ISTIO_REV, "asm-1-23")])],
        ..ClusterObjects::default()
    };
    let report = run(&objects, &options());
    assert_eq!(codes(&report.findings), ["REVHOOK-UNREADABLE"]);
    assert_eq!(report.findings[0].object, "cluster");
    assert!(
        report.findings[0]
            .message
            .contains("istio-sidecar-injector-broken"),
        "{:?}",
        report.findings
    );
    assert_eq!(report.revisions.len(), 1);
    assert_eq!(report.revisions[0].namespaces, ["shop"]);
}

#[test]
fn configmaps_outside_the_istio_namespaces_define_no_revision() {
    let objects = ClusterObjects {
        configmaps: vec![
            injector("istio-system", "asm-1-23", "1.23.0"),
            injector("elsewhere", "asm-1-24", "1.24.0"),
        ],
        namespaces: vec![namespace("shop", &[(labels::ISTIO_REV, "asm-1-24")])],
        ..ClusterObjects::default()
    };
    let report = run(&objects, &options());
    let revisions: Vec<&str> = report
        .revisions
        .iter()
        .map(|r| r.revision.as_str())
        .collect();
    assert_eq!(revisions, ["asm-1-23"]);
    assert!(
        codes(&report.findings).contains(&"REVHOOK-STALE-NAMESPACE"),
        "{:?}",
        report.findings
    );
}

#[test]
fn findings_come_most_severe_first_then_by_object() {
    let objects = ClusterObjects {
        configmaps: vec![injector("istio-system", "asm-1-23", "1.23.0")],
        namespaces: vec![
            namespace("b-shop", &[(labels::ISTIO_REV, "asm-1-23")]),
            namespace("a-gone", &[(labels::ISTIO_REV, "asm-1-21")]),
        ],
        pods: vec![pod("b-shop", "web")],
        ..ClusterObjects::default()
    };
    let report = run(&objects, &options());
    let order: Vec<(Severity, &str)> = report
        .findings
        .iter()
        .map(|f| (f.severity, f.object.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (Severity::Error, "Namespace/a-gone"),
            (Severity::Warning, "Pod/b-shop/web"),
        ]
    );
}

#[test]
fn the_exit_code_is_one_only_when_a_finding_reaches_fail_on() {
    let warning = finding(
        Severity::Warning,
        "REVHOOK-POD-NO-SIDECAR",
        None,
        "Pod/shop/web".into(),
        String::new(),
        None,
    );
    let report = CheckReport {
        findings: vec![warning],
        revisions: Vec::new(),
        progress: Vec::new(),
        gate: None,
    };
    assert_eq!(report.exit_code(Severity::Error), 0);
    assert_eq!(report.exit_code(Severity::Warning), 1);
    assert_eq!(report.exit_code(Severity::Info), 1);
}
