//! `revhook tags`: revision tags live where Istio keeps them, in MutatingWebhookConfigurations
//! labelled `istio.io/tag=<tag>` and `istio.io/rev=<revision>` (what `istioctl tag set`
//! writes), so revhook and istioctl read and move the same tags.
//!
//! How a tag is written depends on who injects:
//! - `guard` mode (a vendor's istiod injects: AKS add-on, managed Cloud Service Mesh): revhook
//!   writes what `istioctl tag set` writes, so Istio's injector keeps being called for every
//!   namespace on the tag: the tag's webhooks copied from the target revision's own injector
//!   MutatingWebhookConfiguration (its caBundle, service or URL, path, reinvocation policy,
//!   labels), with the selectors of Istio's chart, and the `istiod-revision-tag-<tag>`
//!   Service. What it cannot write that way, it refuses, naming the istioctl command to run.
//! - `inject` mode (revhook is the injector): the tags it writes carry `webhooks: []`, so
//!   nothing but revhook acts on them.
//!
//! The planning is pure; the cluster calls at the end of the file are thin.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV, ISTIO_TAG, SIDECAR_INJECT};
use crate::core::messages::restart_command;
use crate::core::revisions::{check_label_value, DEFAULT_TAG};
use crate::core::snapshot::Snapshot;

pub const TAG_WEBHOOK_PREFIX: &str = "istio-revision-tag-";
pub const TAG_SERVICE_PREFIX: &str = "istiod-revision-tag-";
/// The label on revhook's own webhook configurations that says which mode it runs in (the
/// shipped manifests set it; `tags set` reads it when `--mode` is not given).
pub const MODE_LABEL: &str = "revhook.dev/mode";
/// Istio's injector webhooks are named `<prefix>sidecar-injector.istio.io`.
const INJECTOR_WEBHOOK_SUFFIX: &str = "sidecar-injector.istio.io";
/// Labels whose key contains this are the operator's; `istioctl tag set` drops them (the tag
/// is user-managed).
const OPERATOR_LABEL_PART: &str = "operator.istio.io";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("revision {revision:?} is not installed (installed: {installed}); tag {tag:?} was not changed")]
    UnknownRevision {
        tag: String,
        revision: String,
        installed: String,
    },
    #[error("{0:?} is the name of a revision; a tag may not shadow a revision")]
    NamedLikeRevision(String),
    #[error("tag {tag:?} already points at {current:?}; pass --overwrite to move it")]
    Exists { tag: String, current: String },
    #[error("tag {0:?} does not exist")]
    NotFound(String),
    #[error("invalid tag name {0:?}: it must be a label value")]
    InvalidName(String),
    #[error("{reason}; revhook does not write this tag in guard mode, run: {command}")]
    NeedsIstioctl { reason: String, command: String },
    #[error("{0}")]
    Kube(String),
}

/// The webhook configuration that represents `tag` → `revision`.
pub fn tag_webhook(tag: &str, revision: &str) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(format!("{TAG_WEBHOOK_PREFIX}{tag}")),
            labels: Some(BTreeMap::from([
                (ISTIO_TAG.to_owned(), tag.to_owned()),
                (ISTIO_REV.to_owned(), revision.to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "revhook".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        webhooks: Some(Vec::new()),
    }
}

/// Checks `tags set` against what is installed and returns the object to write.
pub fn plan_set(
    snapshot: &Snapshot,
    tag: &str,
    revision: &str,
    overwrite: bool,
) -> Result<MutatingWebhookConfiguration, TagError> {
    check_label_value(tag).map_err(|_| TagError::InvalidName(tag.to_owned()))?;
    if snapshot.table.revision(tag).is_some() {
        return Err(TagError::NamedLikeRevision(tag.to_owned()));
    }
    if snapshot.table.revision(revision).is_none() {
        let installed: Vec<&str> = snapshot
            .table
            .revisions()
            .map(|r| r.name.as_str())
            .collect();
        return Err(TagError::UnknownRevision {
            tag: tag.to_owned(),
            revision: revision.to_owned(),
            installed: if installed.is_empty() {
                "none".into()
            } else {
                installed.join(", ")
            },
        });
    }
    if let Some(current) = snapshot.table.tag_target(tag) {
        if !overwrite && current != revision {
            return Err(TagError::Exists {
                tag: tag.to_owned(),
                current: current.to_owned(),
            });
        }
    }
    Ok(tag_webhook(tag, revision))
}

// === Which mode writes the tag ===

/// Who injects, and so how a tag is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMode {
    /// A vendor's istiod injects: write Istio's own tag objects.
    Guard,
    /// revhook injects: a tag webhook configuration with no webhooks.
    Inject,
}

impl TagMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TagMode::Guard => "guard",
            TagMode::Inject => "inject",
        }
    }
}

/// The mode of the revhook installed in the cluster, from the [`MODE_LABEL`] of its webhook
/// configurations: `None` when none carries it; guard when they disagree or name something
/// else (the choice that cannot take injection away from Istio).
pub fn installed_mode(webhooks: &[MutatingWebhookConfiguration]) -> Option<TagMode> {
    let modes: BTreeSet<&str> = webhooks
        .iter()
        .filter_map(|w| w.metadata.labels.as_ref()?.get(MODE_LABEL))
        .map(String::as_str)
        .collect();
    match modes.into_iter().collect::<Vec<_>>().as_slice() {
        [] => None,
        ["inject"] => Some(TagMode::Inject),
        _ => Some(TagMode::Guard),
    }
}

/// `--mode` when given, else the installed revhook's, else guard.
pub fn choose_mode(flag: Option<TagMode>, installed: Option<TagMode>) -> TagMode {
    flag.or(installed).unwrap_or(TagMode::Guard)
}

// === Guard mode: what `istioctl tag set` writes ===

/// The objects `istioctl tag set <tag> --revision <revision>` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioTag {
    pub webhook: MutatingWebhookConfiguration,
    pub service: Service,
    /// The revision's injector configuration the webhooks were copied from.
    pub copied_from: String,
}

/// Plans `tags set` in guard mode. `revision_webhooks` are the MutatingWebhookConfigurations
/// labelled `istio.io/rev=<revision>` (the revision's own injector is the one without an
/// `istio.io/tag` label); `istio_namespace` is used when that injector is called by URL.
pub fn plan_guard_set(
    snapshot: &Snapshot,
    tag: &str,
    revision: &str,
    overwrite: bool,
    revision_webhooks: &[MutatingWebhookConfiguration],
    istio_namespace: &str,
) -> Result<IstioTag, TagError> {
    plan_set(snapshot, tag, revision, overwrite)?;
    let refuse = |reason: String, namespace: &str| TagError::NeedsIstioctl {
        reason,
        command: istioctl_command(tag, revision, overwrite, namespace),
    };
    if tag == DEFAULT_TAG {
        return Err(refuse(
            "the default tag also moves Istio's validating webhook and turns off the default revision's own injector".into(),
            istio_namespace,
        ));
    }
    let canonical: Vec<&MutatingWebhookConfiguration> = revision_webhooks
        .iter()
        .filter(|w| {
            let labels = w.metadata.labels.as_ref();
            labels.and_then(|l| l.get(ISTIO_REV)).map(String::as_str) == Some(revision)
                && labels.is_none_or(|l| !l.contains_key(ISTIO_TAG))
        })
        .collect();
    let canonical = match canonical.as_slice() {
        [one] => *one,
        [] => {
            return Err(refuse(
                format!("revision {revision:?} has no injector MutatingWebhookConfiguration (labelled istio.io/rev={revision}, without istio.io/tag) to copy Istio's webhooks from"),
                istio_namespace,
            ))
        }
        many => {
            let names: Vec<&str> = many
                .iter()
                .filter_map(|w| w.metadata.name.as_deref())
                .collect();
            return Err(refuse(
                format!("revision {revision:?} has {} injector MutatingWebhookConfigurations ({})", many.len(), names.join(", ")),
                istio_namespace,
            ));
        }
    };
    let name = canonical.metadata.name.clone().unwrap_or_default();
    let Some(injector) = canonical
        .webhooks
        .iter()
        .flatten()
        .find(|w| w.name.ends_with(INJECTOR_WEBHOOK_SUFFIX))
    else {
        return Err(refuse(
            format!("{name} has no webhook named *{INJECTOR_WEBHOOK_SUFFIX}"),
            istio_namespace,
        ));
    };
    // The chart puts the tag's objects in the namespace it is rendered for, which istioctl
    // is told with -i: the namespace of the revision's injector Service.
    let namespace = injector
        .client_config
        .service
        .as_ref()
        .map_or(istio_namespace, |s| s.namespace.as_str());
    Ok(IstioTag {
        webhook: istio_tag_webhook(tag, revision, canonical, injector, namespace),
        service: istio_tag_service(tag, revision, canonical, namespace),
        copied_from: name,
    })
}

fn istioctl_command(tag: &str, revision: &str, overwrite: bool, namespace: &str) -> String {
    let overwrite = if overwrite { " --overwrite" } else { "" };
    format!("istioctl tag set {tag} --revision {revision}{overwrite} -i {namespace}")
}

/// The name Istio's chart gives a tag's webhook configuration.
pub fn istio_tag_webhook_name(tag: &str, namespace: &str) -> String {
    if namespace == "istio-system" {
        format!("{TAG_WEBHOOK_PREFIX}{tag}")
    } else {
        format!("{TAG_WEBHOOK_PREFIX}{tag}-{namespace}")
    }
}

/// The labels Istio's chart puts on a tag's objects (the operator's left out, as istioctl
/// does for a user-managed tag).
fn chart_labels(tag: &str, revision: &str, app: &str) -> BTreeMap<String, String> {
    [
        (ISTIO_TAG, tag),
        (ISTIO_REV, revision),
        ("app", app),
        ("release", "istiod"),
        ("app.kubernetes.io/name", "istiod"),
        ("app.kubernetes.io/managed-by", "Helm"),
        ("app.kubernetes.io/instance", "istiod"),
        ("app.kubernetes.io/part-of", "istio"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn selector(requirements: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_expressions: Some(requirements),
        match_labels: None,
    })
}

/// The two webhooks of a tag: namespaces labelled `istio.io/rev=<tag>`, and pods labelled
/// so in namespaces without injection labels; each calls the revision's injector.
fn istio_tag_webhook(
    tag: &str,
    revision: &str,
    canonical: &MutatingWebhookConfiguration,
    injector: &MutatingWebhook,
    namespace: &str,
) -> MutatingWebhookConfiguration {
    let client_config = match (&injector.client_config.url, &injector.client_config.service) {
        (Some(url), _) => WebhookClientConfig {
            url: Some(url.clone()),
            ca_bundle: injector.client_config.ca_bundle.clone(),
            service: None,
        },
        (None, service) => WebhookClientConfig {
            url: None,
            ca_bundle: injector.client_config.ca_bundle.clone(),
            service: Some(ServiceReference {
                name: service
                    .as_ref()
                    .map_or_else(|| format!("istiod-{revision}"), |s| s.name.clone()),
                namespace: namespace.to_owned(),
                path: service.as_ref().and_then(|s| s.path.clone()),
                port: Some(443),
            }),
        },
    };
    let not_disabled = requirement(SIDECAR_INJECT, "NotIn", &["false"]);
    let hook = |prefix: &str, namespaces, objects| MutatingWebhook {
        name: format!("{prefix}{INJECTOR_WEBHOOK_SUFFIX}"),
        client_config: client_config.clone(),
        side_effects: "None".into(),
        rules: Some(vec![RuleWithOperations {
            operations: Some(vec!["CREATE".into()]),
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            resources: Some(vec!["pods".into()]),
            scope: None,
        }]),
        failure_policy: Some("Fail".into()),
        reinvocation_policy: Some(
            injector
                .reinvocation_policy
                .clone()
                .unwrap_or_else(|| "Never".into()),
        ),
        admission_review_versions: vec!["v1".into()],
        namespace_selector: selector(namespaces),
        object_selector: selector(objects),
        ..MutatingWebhook::default()
    };
    let webhooks = vec![
        hook(
            "rev.namespace.",
            vec![
                requirement(ISTIO_REV, "In", &[tag]),
                requirement(ISTIO_INJECTION, "DoesNotExist", &[]),
            ],
            vec![not_disabled.clone()],
        ),
        hook(
            "rev.object.",
            vec![
                requirement(ISTIO_REV, "DoesNotExist", &[]),
                requirement(ISTIO_INJECTION, "DoesNotExist", &[]),
            ],
            vec![not_disabled, requirement(ISTIO_REV, "In", &[tag])],
        ),
    ];
    // istioctl merges the revision's webhook labels over the chart's (all but `app`, which
    // names what the object does) and keeps its annotations.
    let mut labels = chart_labels(tag, revision, "sidecar-injector");
    for (k, v) in canonical.metadata.labels.iter().flatten() {
        if k != "app" {
            labels.insert(k.clone(), v.clone());
        }
    }
    labels.retain(|k, _| !k.contains(OPERATOR_LABEL_PART));
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(istio_tag_webhook_name(tag, namespace)),
            labels: Some(labels),
            annotations: canonical.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        webhooks: Some(webhooks),
    }
}

/// The tag's istiod Service (Istio 1.28+ charts): the revision's istiod under the tag's name.
fn istio_tag_service(
    tag: &str,
    revision: &str,
    canonical: &MutatingWebhookConfiguration,
    namespace: &str,
) -> Service {
    let mut labels = chart_labels(tag, revision, "istiod");
    labels.insert("istio".into(), "pilot".into());
    // istioctl labels it with its own version; the revision's is the closest revhook knows.
    for key in ["app.kubernetes.io/version", "helm.sh/chart"] {
        if let Some(v) = canonical.metadata.labels.as_ref().and_then(|l| l.get(key)) {
            labels.insert(key.to_owned(), v.clone());
        }
    }
    let port = |port: i32, name: &str, target: Option<i32>| ServicePort {
        port,
        name: Some(name.to_owned()),
        protocol: Some("TCP".into()),
        target_port: target.map(IntOrString::Int),
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(format!("{TAG_SERVICE_PREFIX}{tag}")),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![
                port(15010, "grpc-xds", None),
                port(15012, "https-dns", None),
                port(443, "https-webhook", Some(15017)),
                port(15014, "http-monitoring", None),
            ]),
            selector: Some(BTreeMap::from([
                ("app".to_owned(), "istiod".to_owned()),
                (ISTIO_REV.to_owned(), revision.to_owned()),
            ])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

// === tags remove: what it breaks ===

/// What removing a tag takes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalImpact {
    pub tag: String,
    pub revision: Option<String>,
    /// Namespaces whose `istio.io/rev` label names the tag.
    pub namespaces: Vec<String>,
    /// Pods injected through the tag (in those namespaces, or labelled with it).
    pub pods: usize,
    /// `Kind namespace/name` of each object that will be deleted.
    pub objects: Vec<String>,
}

pub fn removal_impact(
    snapshot: &Snapshot,
    pods: &[Pod],
    tag: &str,
    objects: Vec<String>,
) -> RemovalImpact {
    let namespaces: Vec<String> = snapshot
        .namespaces_selecting(tag)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let selected: BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let pods = pods
        .iter()
        .filter(|p| {
            let in_namespace = p
                .metadata
                .namespace
                .as_deref()
                .is_some_and(|n| selected.contains(n));
            let labelled = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ISTIO_REV))
                .is_some_and(|v| v == tag);
            in_namespace || labelled
        })
        .count();
    RemovalImpact {
        tag: tag.to_owned(),
        revision: snapshot.table.tag_target(tag).map(str::to_owned),
        namespaces,
        pods,
        objects,
    }
}

pub fn render_removal(impact: &RemovalImpact) -> String {
    let mut out = format!(
        "tag {} -> {}\n",
        impact.tag,
        impact.revision.as_deref().unwrap_or("(no revision)")
    );
    out.push_str(&format!("will delete: {}\n", impact.objects.join(", ")));
    if impact.namespaces.is_empty() && impact.pods == 0 {
        out.push_str("no namespace selects the tag and no pod runs on it\n");
        return out;
    }
    out.push_str(&format!(
        "namespaces selecting the tag: {}\npods on it: {}\n",
        if impact.namespaces.is_empty() {
            "none".to_owned()
        } else {
            impact.namespaces.join(", ")
        },
        impact.pods
    ));
    out.push_str("new pods there will be refused, or start without a sidecar, until their namespaces are relabelled; running pods keep their proxy until restarted\n");
    out
}

/// Whether a typed answer to the confirmation prompt says yes.
pub fn confirmed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// One row of `tags list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRow {
    pub tag: String,
    pub revision: String,
    pub installed: bool,
    pub namespaces: Vec<String>,
}

pub fn list(snapshot: &Snapshot) -> Vec<TagRow> {
    snapshot
        .table
        .tags()
        .map(|(tag, revision)| TagRow {
            tag: tag.to_owned(),
            revision: revision.to_owned(),
            installed: snapshot.table.revision(revision).is_some(),
            namespaces: snapshot
                .namespaces_selecting(tag)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

pub fn render_list(rows: &[TagRow]) -> String {
    let mut out = format!("{:<20} {:<20} {}\n", "TAG", "REVISION", "NAMESPACES");
    for row in rows {
        let revision = if row.installed {
            row.revision.clone()
        } else {
            format!("{} (NOT INSTALLED)", row.revision)
        };
        let namespaces = if row.namespaces.is_empty() {
            "-".to_owned()
        } else {
            row.namespaces.join(",")
        };
        out.push_str(&format!(
            "{:<20} {:<20} {}\n",
            row.tag, revision, namespaces
        ));
    }
    out
}

/// What moving a tag would change, for `tags plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagPlan {
    pub tag: String,
    pub from: Option<String>,
    pub to: String,
    pub image_before: Option<String>,
    pub image_after: String,
    pub namespaces: Vec<String>,
    /// `kubectl rollout restart` commands, one per workload with pods on the old proxy.
    pub restarts: Vec<String>,
    pub pods_to_restart: usize,
}

/// Plans `tag` → `revision` against the snapshot and the pods in the cluster.
pub fn plan_move(
    snapshot: &Snapshot,
    pods: &[Pod],
    tag: &str,
    revision: &str,
) -> Result<TagPlan, TagError> {
    plan_set(snapshot, tag, revision, true)?;
    let from = snapshot.table.tag_target(tag).map(str::to_owned);
    let image_before = from
        .as_deref()
        .and_then(|r| snapshot.table.revision(r))
        .map(|r| r.proxy_image.clone());
    let image_after = snapshot
        .table
        .revision(revision)
        .map(|r| r.proxy_image.clone())
        .unwrap_or_default();
    let namespaces: Vec<String> = snapshot
        .namespaces_selecting(tag)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut restarts = std::collections::BTreeSet::new();
    let mut pods_to_restart = 0;
    for pod in pods {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        if !namespaces.iter().any(|n| n == ns) {
            continue;
        }
        let image = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == crate::core::labels::PROXY_NAME)
            .and_then(|c| c.image.clone());
        if image.as_deref().is_some_and(|i| i != image_after) {
            pods_to_restart += 1;
            restarts.insert(restart_command(pod));
        }
    }
    Ok(TagPlan {
        tag: tag.to_owned(),
        from,
        to: revision.to_owned(),
        image_before,
        image_after,
        namespaces,
        restarts: restarts.into_iter().collect(),
        pods_to_restart,
    })
}

pub fn render_plan(plan: &TagPlan) -> String {
    let mut out = format!(
        "tag {}: {} -> {}\nimage: {} -> {}\n",
        plan.tag,
        plan.from.as_deref().unwrap_or("(new tag)"),
        plan.to,
        plan.image_before.as_deref().unwrap_or("-"),
        plan.image_after
    );
    out.push_str(&format!(
        "namespaces selecting the tag: {}\n",
        if plan.namespaces.is_empty() {
            "none".to_owned()
        } else {
            plan.namespaces.join(", ")
        }
    ));
    out.push_str(&format!(
        "pods on another proxy image afterwards: {}\n",
        plan.pods_to_restart
    ));
    for r in &plan.restarts {
        out.push_str(&format!("  {r}\n"));
    }
    out.push_str("nothing was changed\n");
    out
}

// === The cluster calls ===

fn kube_err(e: kube::Error) -> TagError {
    TagError::Kube(e.to_string())
}

/// The mode of the revhook installed in the cluster ([`installed_mode`]).
pub async fn read_installed_mode(client: &kube::Client) -> Result<Option<TagMode>, TagError> {
    use kube::api::{Api, ListParams};
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let ours = api
        .list(&ListParams::default().labels(MODE_LABEL))
        .await
        .map_err(kube_err)?;
    Ok(installed_mode(&ours.items))
}

/// The webhook configurations labelled with `revision` (its injector among them).
pub async fn revision_webhooks(
    client: &kube::Client,
    revision: &str,
) -> Result<Vec<MutatingWebhookConfiguration>, TagError> {
    use kube::api::{Api, ListParams};
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let selector = format!("{ISTIO_REV}={revision},!{ISTIO_TAG}");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err)?
        .items)
}

/// Writes a tag's webhook configuration (creates it, or replaces it whole: `--overwrite` was
/// checked by [`plan_set`]), then deletes any other configuration labelled as the same tag (a
/// tag written under another name, in the other mode or by an older tool), which would
/// otherwise keep calling the old revision's injector. Returns the names deleted.
pub async fn write(
    client: &kube::Client,
    mwc: MutatingWebhookConfiguration,
) -> Result<Vec<String>, TagError> {
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = mwc.metadata.name.clone().unwrap_or_default();
    let tag = mwc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ISTIO_TAG))
        .cloned()
        .unwrap_or_default();
    match api.get_opt(&name).await.map_err(kube_err)? {
        Some(existing) => {
            let mut next = mwc;
            next.metadata.resource_version = existing.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(kube_err)?;
        }
        None => {
            api.create(&PostParams::default(), &mwc)
                .await
                .map_err(kube_err)?;
        }
    }
    let same_tag = api
        .list(&ListParams::default().labels(&format!("{ISTIO_TAG}={tag}")))
        .await
        .map_err(kube_err)?;
    let mut deleted = Vec::new();
    for other in same_tag.items {
        let other = other.metadata.name.unwrap_or_default();
        if other != name {
            api.delete(&other, &DeleteParams::default())
                .await
                .map_err(kube_err)?;
            deleted.push(other);
        }
    }
    Ok(deleted)
}

/// Writes what `istioctl tag set` writes: the Service first (so the webhook never names a
/// tag whose Service is missing), server-side applied so the API server keeps its own fields
/// (cluster IP), then the webhook configuration.
pub async fn write_istio_tag(
    client: &kube::Client,
    tag: &IstioTag,
) -> Result<Vec<String>, TagError> {
    use kube::api::{Api, Patch, PatchParams};
    let namespace = tag.service.metadata.namespace.clone().unwrap_or_default();
    let name = tag.service.metadata.name.clone().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let mut service = serde_json::to_value(&tag.service)
        .map_err(|e| TagError::Kube(format!("cannot encode Service {name}: {e}")))?;
    service["apiVersion"] = "v1".into();
    service["kind"] = "Service".into();
    services
        .patch(
            &name,
            &PatchParams::apply("revhook").force(),
            &Patch::Apply(&service),
        )
        .await
        .map_err(kube_err)?;
    write(client, tag.webhook.clone()).await
}

/// The objects that make a tag: its webhook configurations, and its istiod Services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagObjects {
    pub webhooks: Vec<String>,
    /// `(namespace, name)`.
    pub services: Vec<(String, String)>,
}

impl TagObjects {
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.services.is_empty()
    }

    /// `Kind namespace/name` of each, for what `tags remove` says it deletes.
    pub fn describe(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .map(|w| format!("MutatingWebhookConfiguration {w}"))
            .chain(
                self.services
                    .iter()
                    .map(|(ns, n)| format!("Service {ns}/{n}")),
            )
            .collect()
    }
}

/// Finds a tag's objects by their `istio.io/tag` label (wherever istioctl, the chart or
/// revhook put them).
pub async fn find_tag_objects(client: &kube::Client, tag: &str) -> Result<TagObjects, TagError> {
    use kube::api::{Api, ListParams};
    let by_tag = ListParams::default().labels(&format!("{ISTIO_TAG}={tag}"));
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let services: Api<Service> = Api::all(client.clone());
    let service_name = format!("{TAG_SERVICE_PREFIX}{tag}");
    Ok(TagObjects {
        webhooks: webhooks
            .list(&by_tag)
            .await
            .map_err(kube_err)?
            .items
            .into_iter()
            .filter_map(|w| w.metadata.name)
            .collect(),
        services: services
            .list(&by_tag)
            .await
            .map_err(kube_err)?
            .items
            .into_iter()
            .filter(|s| s.metadata.name.as_deref() == Some(service_name.as_str()))
            .filter_map(|s| Some((s.metadata.namespace?, s.metadata.name?)))
            .collect(),
    })
}

/// Deletes a tag's objects.
pub async fn remove(client: &kube::Client, objects: &TagObjects) -> Result<(), TagError> {
    use kube::api::{Api, DeleteParams};
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for name in &objects.webhooks {
        webhooks
            .delete(name, &DeleteParams::default())
            .await
            .map_err(kube_err)?;
    }
    for (namespace, name) in &objects.services {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        services
            .delete(name, &DeleteParams::default())
            .await
            .map_err(kube_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::config;

    fn snap() -> Snapshot {
        config::parse(
            "revisions:\n  - {name: asm-1-22, image: img:1.22}\n  - {name: asm-1-23, image: img:1.23}\n\
             tags: {prod-stable: asm-1-22}\nnamespaces:\n  shop: {istio.io/rev: prod-stable}\n  other: {istio.io/rev: asm-1-23}\n",
            "t",
        )
        .expect("config")
    }

    #[test]
    fn set_writes_a_tag_webhook_without_webhooks() {
        let mwc = plan_set(&snap(), "prod-canary", "asm-1-23", false).expect("valid");
        assert_eq!(
            mwc.metadata.name.as_deref(),
            Some("istio-revision-tag-prod-canary")
        );
        let labels = mwc.metadata.labels.expect("labels");
        assert_eq!(labels[ISTIO_TAG], "prod-canary");
        assert_eq!(labels[ISTIO_REV], "asm-1-23");
        assert_eq!(mwc.webhooks, Some(vec![]));
    }

    #[test]
    fn set_refuses_missing_revision_shadowing_and_silent_overwrite() {
        assert!(matches!(
            plan_set(&snap(), "prod-stable", "asm-1-20", true),
            Err(TagError::UnknownRevision { .. })
        ));
        assert_eq!(
            plan_set(&snap(), "asm-1-22", "asm-1-23", true),
            Err(TagError::NamedLikeRevision("asm-1-22".into()))
        );
        let err = plan_set(&snap(), "prod-stable", "asm-1-23", false).expect_err("exists");
        assert_eq!(
            err.to_string(),
            "tag \"prod-stable\" already points at \"asm-1-22\"; pass --overwrite to move it"
        );
        assert!(plan_set(&snap(), "prod-stable", "asm-1-23", true).is_ok());
        assert!(
            plan_set(&snap(), "prod-stable", "asm-1-22", false).is_ok(),
            "re-setting the same target is fine"
        );
        assert!(matches!(
            plan_set(&snap(), "-bad", "asm-1-22", false),
            Err(TagError::InvalidName(_))
        ));
    }

    /// asm-1-23's injector configuration as Istio's chart installs it in aks-istio-system.
    fn injector(name: &str, rev: &str, url: Option<&str>) -> MutatingWebhookConfiguration {
        let client_config = match url {
            Some(url) => serde_json::json!({"url": url, "caBundle": "Q0E="}),
            None => {
                serde_json::json!({"service": {"name": format!("istiod-{rev}"), "namespace": "aks-istio-system", "path": "/inject/cluster/c1/net/n1", "port": 443}, "caBundle": "Q0E="})
            }
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {
                "istio.io/rev": rev, "app": "sidecar-injector", "operator.istio.io/component": "Pilot",
                "app.kubernetes.io/version": "1.23.0", "helm.sh/chart": "istiod-1.23.0"},
                "annotations": {"note": "kept"}},
            "webhooks": [{
                "name": "rev.namespace.sidecar-injector.istio.io", "clientConfig": client_config,
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "reinvocationPolicy": "IfNeeded"
            }]
        }))
        .expect("mwc")
    }

    #[test]
    fn guard_set_copies_istios_injector_with_the_charts_selectors() {
        let canonical = injector(
            "istio-sidecar-injector-asm-1-23-aks-istio-system",
            "asm-1-23",
            None,
        );
        let planned = plan_guard_set(
            &snap(),
            "prod-stable",
            "asm-1-23",
            true,
            &[canonical],
            "istio-system",
        )
        .expect("planned");
        let wh = serde_json::to_value(&planned.webhook).expect("json");
        assert_eq!(
            wh["metadata"]["name"],
            "istio-revision-tag-prod-stable-aks-istio-system"
        );
        assert_eq!(wh["metadata"]["labels"]["istio.io/tag"], "prod-stable");
        assert_eq!(wh["metadata"]["labels"]["istio.io/rev"], "asm-1-23");
        assert_eq!(wh["metadata"]["labels"]["app"], "sidecar-injector");
        assert_eq!(
            wh["metadata"]["labels"]["app.kubernetes.io/version"],
            "1.23.0"
        );
        assert!(wh["metadata"]["labels"]
            .get("operator.istio.io/component")
            .is_none());
        assert_eq!(wh["metadata"]["annotations"]["note"], "kept");
        let hooks = wh["webhooks"].as_array().expect("webhooks");
        let names: Vec<&str> = hooks.iter().filter_map(|h| h["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "rev.namespace.sidecar-injector.istio.io",
                "rev.object.sidecar-injector.istio.io"
            ]
        );
        for hook in hooks {
            assert_eq!(
                hook["clientConfig"],
                serde_json::json!({"service": {"name": "istiod-asm-1-23", "namespace": "aks-istio-system", "path": "/inject/cluster/c1/net/n1", "port": 443}, "caBundle": "Q0E="})
            );
            assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
            assert_eq!(hook["failurePolicy"], "Fail");
        }
        assert_eq!(
            hooks[0]["namespaceSelector"]["matchExpressions"],
            serde_json::json!([{"key": "istio.io/rev", "operator": "In", "values": ["prod-stable"]}, {"key": "istio-injection", "operator": "DoesNotExist"}])
        );
        assert_eq!(
            hooks[1]["objectSelector"]["matchExpressions"],
            serde_json::json!([{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}, {"key": "istio.io/rev", "operator": "In", "values": ["prod-stable"]}])
        );
        let svc = serde_json::to_value(&planned.service).expect("json");
        assert_eq!(svc["metadata"]["name"], "istiod-revision-tag-prod-stable");
        assert_eq!(svc["metadata"]["namespace"], "aks-istio-system");
        assert_eq!(
            svc["spec"]["selector"],
            serde_json::json!({"app": "istiod", "istio.io/rev": "asm-1-23"})
        );
        assert_eq!(
            planned.copied_from,
            "istio-sidecar-injector-asm-1-23-aks-istio-system"
        );
    }

    #[test]
    fn guard_set_keeps_a_url_and_names_the_tag_after_istio_system() {
        let canonical = injector(
            "istio-sidecar-injector-asm-1-23",
            "asm-1-23",
            Some("https://istiod.example:15017/inject"),
        );
        let planned = plan_guard_set(
            &snap(),
            "prod-canary",
            "asm-1-23",
            false,
            &[canonical],
            "istio-system",
        )
        .expect("planned");
        let wh = serde_json::to_value(&planned.webhook).expect("json");
        assert_eq!(wh["metadata"]["name"], "istio-revision-tag-prod-canary");
        assert_eq!(
            wh["webhooks"][0]["clientConfig"],
            serde_json::json!({"url": "https://istiod.example:15017/inject", "caBundle": "Q0E="})
        );
        assert_eq!(
            planned.service.metadata.namespace.as_deref(),
            Some("istio-system")
        );
    }

    #[test]
    fn guard_set_refuses_with_the_istioctl_command_when_it_cannot_copy() {
        let ok = injector("istio-sidecar-injector-asm-1-23", "asm-1-23", None);
        let err = plan_guard_set(
            &snap(),
            "prod-canary",
            "asm-1-23",
            false,
            &[],
            "aks-istio-system",
        )
        .expect_err("no injector");
        assert!(
            err.to_string().ends_with(
                "run: istioctl tag set prod-canary --revision asm-1-23 -i aks-istio-system"
            ),
            "{err}"
        );
        let err = plan_guard_set(
            &snap(),
            "prod-canary",
            "asm-1-23",
            false,
            &[ok.clone(), ok.clone()],
            "istio-system",
        )
        .expect_err("two injectors");
        assert!(err.to_string().contains("has 2 injector"), "{err}");
        let err = plan_guard_set(
            &snap(),
            "default",
            "asm-1-23",
            true,
            std::slice::from_ref(&ok),
            "istio-system",
        )
        .expect_err("default");
        assert!(
            err.to_string().contains(
                "istioctl tag set default --revision asm-1-23 --overwrite -i istio-system"
            ),
            "{err}"
        );
        let mut tagged = ok.clone();
        tagged
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(ISTIO_TAG.into(), "x".into());
        assert!(
            matches!(
                plan_guard_set(
                    &snap(),
                    "prod-canary",
                    "asm-1-23",
                    false,
                    &[tagged],
                    "istio-system"
                ),
                Err(TagError::NeedsIstioctl { .. })
            ),
            "a tag's webhook is not the revision's injector"
        );
        let mut nameless = ok;
        nameless.webhooks.as_mut().expect("hooks")[0].name = "other.example.com".into();
        assert!(matches!(
            plan_guard_set(
                &snap(),
                "prod-canary",
                "asm-1-23",
                false,
                &[nameless],
                "istio-system"
            ),
            Err(TagError::NeedsIstioctl { .. })
        ));
        assert!(
            matches!(
                plan_guard_set(
                    &snap(),
                    "prod-canary",
                    "asm-1-20",
                    false,
                    &[],
                    "istio-system"
                ),
                Err(TagError::UnknownRevision { .. })
            ),
            "the installed-revision checks come first"
        );
    }

    #[test]
    fn mode_from_flag_then_installed_revhook_then_guard() {
        let ours = |mode: &str| -> MutatingWebhookConfiguration {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "revhook", "labels": {MODE_LABEL: mode}}}),
            )
            .expect("mwc")
        };
        assert_eq!(installed_mode(&[]), None);
        assert_eq!(installed_mode(&[ours("inject")]), Some(TagMode::Inject));
        assert_eq!(installed_mode(&[ours("guard")]), Some(TagMode::Guard));
        assert_eq!(
            installed_mode(&[ours("inject"), ours("guard")]),
            Some(TagMode::Guard)
        );
        assert_eq!(installed_mode(&[ours("something")]), Some(TagMode::Guard));
        assert_eq!(
            choose_mode(Some(TagMode::Inject), Some(TagMode::Guard)),
            TagMode::Inject
        );
        assert_eq!(choose_mode(None, Some(TagMode::Inject)), TagMode::Inject);
        assert_eq!(choose_mode(None, None), TagMode::Guard);
    }

    #[test]
    fn removal_says_what_breaks() {
        let pod = |ns: &str, rev: Option<&str>| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": ns,
                "labels": rev.map(|r| serde_json::json!({"istio.io/rev": r})).unwrap_or(serde_json::json!({}))}}))
            .expect("pod")
        };
        let pods = [
            pod("shop", None),
            pod("shop", None),
            pod("plain", Some("prod-stable")),
            pod("other", None),
        ];
        let impact = removal_impact(
            &snap(),
            &pods,
            "prod-stable",
            vec!["MutatingWebhookConfiguration istio-revision-tag-prod-stable".into()],
        );
        assert_eq!(impact.namespaces, ["shop"]);
        assert_eq!(impact.pods, 3);
        assert_eq!(impact.revision.as_deref(), Some("asm-1-22"));
        let text = render_removal(&impact);
        assert!(
            text.contains("namespaces selecting the tag: shop\npods on it: 3\n"),
            "{text}"
        );
        let unused = removal_impact(&snap(), &[], "prod-canary", vec![]);
        assert!(
            render_removal(&unused).contains("no namespace selects the tag and no pod runs on it")
        );
    }

    #[test]
    fn only_yes_confirms() {
        for yes in ["y", "Y\n", " yes \n", "YES"] {
            assert!(confirmed(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "ok"] {
            assert!(!confirmed(no), "{no:?}");
        }
    }

    #[test]
    fn list_shows_namespaces_per_tag() {
        let rows = list(&snap());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].namespaces, vec!["shop"]);
        assert!(render_list(&rows).contains("prod-stable          asm-1-22             shop"));
    }

    #[test]
    fn plan_lists_pods_and_restarts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-5d9f7-abc", "namespace": "shop", "labels": {"pod-template-hash": "5d9f7"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9f7", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "web"}, {"name": "istio-proxy", "image": "img:1.22"}]}
        }))
        .expect("pod");
        let plan =
            plan_move(&snap(), &[pod.clone(), pod], "prod-stable", "asm-1-23").expect("plan");
        assert_eq!(plan.from.as_deref(), Some("asm-1-22"));
        assert_eq!(plan.image_after, "img:1.23");
        assert_eq!(plan.pods_to_restart, 2);
        assert_eq!(
            plan.restarts,
            vec!["kubectl rollout restart deployment/web -n shop"]
        );
    }
}
