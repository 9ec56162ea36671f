//! `POST /inject`: decide, resolve the revision, and answer with a JSON Patch that adds the
//! revision's sidecar. Pure: a function of the request, the snapshot and the policy.

pub mod decide;
pub mod overrides;
pub mod patch;
pub mod probes;

use std::borrow::Cow;

use crate::core::labels::{self, NamespaceLabels};
use crate::core::request::{GroupVersionKind, PodRequestIn, RequestIn};
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Allow, Deny, Failure, Skip, Verdict};

use crate::core::json::push_json_str;
use crate::core::messages;
use crate::core::pod::{self, PodIn};
use crate::core::policy::{Mode, OnStale, Policy};
use crate::core::sidecar::{self, PodParts, RenderedSidecar, PROXY_NAME};
use decide::Decision;
use patch::PatchWriter;

/// Reviews a request sent to the mutating webhook.
pub fn review(req: &RequestIn<'_>, snapshot: &Snapshot, policy: &Policy) -> Verdict {
    review_with(req, snapshot, policy, None)
}

/// As [`review`], with the namespace's labels given when the snapshot does not have them.
pub fn review_with(
    req: &RequestIn<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
) -> Verdict {
    if let Some(skip) = skip_unless_pod_create(&req.kind, &req.operation) {
        return skip;
    }
    let Some(raw) = req.object() else {
        return missing_object();
    };
    let pod = match PodIn::parse(raw) {
        Ok(pod) => pod,
        Err(e) => {
            return Verdict::fail(
                Failure::BadPod,
                format!("request.object is not a valid Pod: {e}"),
            )
        }
    };
    let namespace = pod_namespace(req.namespace.as_deref(), &pod);
    review_pod_in(&pod, raw, namespace, ns_labels, None, snapshot, policy)
}

/// Reviews a request whose object was parsed as a Pod while decoding (the fast path).
/// `body` is the whole review: the pod's raw JSON is read from it again only for Istio's
/// custom injection (a pod that carries its own `istio-proxy` or `istio-init`), which is rare.
pub fn review_pod_request(
    req: &PodRequestIn<'_>,
    body: &[u8],
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
) -> Verdict {
    if let Some(skip) = skip_unless_pod_create(&req.kind, &req.operation) {
        return skip;
    }
    let Some(pod) = &req.object else {
        return missing_object();
    };
    let namespace = pod_namespace(req.namespace.as_deref(), pod);
    if !has_custom_containers(pod) {
        // The raw pod is read only by custom injection; without it, nothing reads it.
        return review_pod_in(pod, "", namespace, ns_labels, None, snapshot, policy);
    }
    match crate::admission::decode(body).map(|r| r.object().map(str::to_owned)) {
        Ok(Some(raw)) => review_pod_in(pod, &raw, namespace, ns_labels, None, snapshot, policy),
        _ => missing_object(),
    }
}

/// Injection happens only when a Pod is created; anything else passes.
fn skip_unless_pod_create(kind: &GroupVersionKind<'_>, operation: &str) -> Option<Verdict> {
    if kind.kind != "Pod" || !kind.group.is_empty() {
        return Some(Verdict::skip(Skip::NotAPod));
    }
    (operation != "CREATE").then(|| Verdict::skip(Skip::NotCreate))
}

/// The request's namespace, else the pod's own, else `default` (as the API server would).
fn pod_namespace<'r>(request_namespace: Option<&'r str>, pod: &'r PodIn<'_>) -> &'r str {
    request_namespace
        .or(pod.meta().namespace.as_deref())
        .unwrap_or("default")
}

fn missing_object() -> Verdict {
    Verdict::fail(Failure::NoObject, "request.object is missing".into())
}

/// Whether the pod carries Istio's custom injection containers (whose raw JSON is merged).
fn has_custom_containers(pod: &PodIn<'_>) -> bool {
    pod.container_index(PROXY_NAME).is_some()
        || pod
            .init_containers()
            .iter()
            .any(|c| c.name == sidecar::INIT_NAME || c.name == sidecar::VALIDATION_NAME)
}

/// Reviews one parsed pod (shared by the webhook and offline `revhook inject`).
pub fn review_pod(
    pod: &PodIn<'_>,
    raw: &str,
    namespace: &str,
    snapshot: &Snapshot,
    policy: &Policy,
) -> Verdict {
    review_pod_in(pod, raw, namespace, None, None, snapshot, policy)
}

/// Reviews a workload's pod template (offline injection, golden tests): the workload's own
/// name and kind stand in for the owner references a real pod would carry.
pub fn review_template(
    pod: &PodIn<'_>,
    raw: &str,
    namespace: &str,
    ns_labels: Option<&NamespaceLabels>,
    workload: &Workload,
    snapshot: &Snapshot,
    policy: &Policy,
) -> Verdict {
    review_pod_in(
        pod,
        raw,
        namespace,
        ns_labels,
        Some(workload),
        snapshot,
        policy,
    )
}

fn review_pod_in(
    pod: &PodIn<'_>,
    raw: &str,
    namespace: &str,
    ns_labels: Option<&NamespaceLabels>,
    workload: Option<&Workload>,
    snapshot: &Snapshot,
    policy: &Policy,
) -> Verdict {
    let no_labels = NamespaceLabels::default();
    let ns_labels = ns_labels
        .or_else(|| snapshot.namespace(namespace))
        .unwrap_or(&no_labels);
    let decided = decide::decide(pod, namespace, ns_labels, &snapshot.table, policy);
    let verdict = match decided.decision {
        Decision::Skip(skip) => Verdict::skip(skip),
        Decision::AlreadyInjected => Verdict::skip(Skip::AlreadyInjected),
        Decision::Conflict { namespace } => {
            Verdict::deny(Deny::Conflict, messages::conflict_message(&namespace))
        }
        Decision::Stale { stale, selector } => {
            let message = messages::stale_message(&stale, &selector);
            match policy.on_stale {
                OnStale::Deny => Verdict::deny(Deny::Stale, message),
                OnStale::AllowUninjected => Verdict::allow(Allow::StaleUninjected)
                    .with_warnings(vec![format!("pod will start WITHOUT a sidecar: {message}")]),
            }
        }
        Decision::Inject { resolved, .. } if policy.mode == Mode::Guard => {
            Verdict::guard(&resolved.revision.name)
        }
        Decision::Inject {
            resolved, previous, ..
        } => match snapshot.sidecar(&resolved.revision.name) {
            Some(sidecar) => match workload.map_or_else(
                || build_patch(pod, raw, namespace, sidecar, previous.as_deref()),
                |w| build_patch_for(pod, raw, sidecar, previous.as_deref(), w),
            ) {
                Ok(patch) => Verdict::inject(&resolved.revision.name, patch),
                Err(e) => Verdict::fail(Failure::Patch, e.to_string()),
            },
            None => Verdict::fail(
                Failure::NoSidecar,
                format!(
                    "revision {:?} has no rendered sidecar",
                    resolved.revision.name
                ),
            ),
        },
    };
    verdict.with_warnings(decided.warnings)
}

/// The workload a pod belongs to, as Istio derives it from owner references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    /// `kubernetes://apis/<apiVersion>/namespaces/<ns>/<kind>s/<name>`.
    pub owner: String,
}

impl Workload {
    pub fn of_pod(pod: &PodIn<'_>, namespace: &str) -> Self {
        let meta = pod.meta();
        let pod_name = meta.name.as_deref().map(Cow::Borrowed).unwrap_or_else(|| {
            Cow::Owned(
                meta.generate_name
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('-')
                    .to_owned(),
            )
        });
        let controller = meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|o| o.controller == Some(true));
        let Some(owner) = controller else {
            return Workload::new("v1", "Pod", &pod_name, namespace);
        };
        let (api_version, kind, name) = match owner.kind.as_ref() {
            "ReplicaSet" => match meta.label("pod-template-hash") {
                Some(hash) if owner.name.ends_with(&format!("-{hash}")) => (
                    "apps/v1",
                    "Deployment",
                    &owner.name[..owner.name.len() - hash.len() - 1],
                ),
                _ => (
                    owner.api_version.as_ref(),
                    "ReplicaSet",
                    owner.name.as_ref(),
                ),
            },
            "Job" => match cronjob_of(&owner.name) {
                Some(cron) => ("batch/v1", "CronJob", cron),
                None => (owner.api_version.as_ref(), "Job", owner.name.as_ref()),
            },
            kind => (owner.api_version.as_ref(), kind, owner.name.as_ref()),
        };
        Workload::new(api_version, kind, name, namespace)
    }

    pub fn new(api_version: &str, kind: &str, name: &str, namespace: &str) -> Self {
        let plural = kind.to_ascii_lowercase();
        Workload {
            name: name.to_owned(),
            owner: format!(
                "kubernetes://apis/{api_version}/namespaces/{namespace}/{plural}s/{name}"
            ),
        }
    }
}

/// A CronJob's Jobs are named `<cronjob>-<scheduled minute>`.
fn cronjob_of(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// Builds the RFC 6902 patch that injects `sidecar` into `pod`.
pub fn build_patch(
    pod: &PodIn<'_>,
    raw: &str,
    namespace: &str,
    sidecar: &RenderedSidecar,
    previous: Option<&str>,
) -> Result<String, String> {
    let workload = Workload::of_pod(pod, namespace);
    build_patch_for(pod, raw, sidecar, previous, &workload)
}

/// As [`build_patch`], with the workload given (offline injection knows it from the manifest).
pub fn build_patch_for(
    pod: &PodIn<'_>,
    raw: &str,
    sidecar: &RenderedSidecar,
    previous: Option<&str>,
    workload: &Workload,
) -> Result<String, String> {
    if pod.spec.containers.is_none() {
        return Err("pod has no spec.containers".into());
    }
    let ov = overrides::parse(pod.meta(), &sidecar.revision).map_err(|e| e.to_string())?;
    let mut w = PatchWriter::with_capacity(8192);
    let removed = remove_previous_injection(pod, previous, &mut w);
    // App containers with their positions once a re-injection's removals are done.
    let app: Vec<(usize, &pod::ContainerIn<'_>)> = pod
        .containers()
        .iter()
        .enumerate()
        .filter(|(i, c)| c.name != PROXY_NAME && !removed.containers.contains(i))
        .map(|(i, c)| (shifted(i, &removed.containers), c))
        .collect();
    let probes = rewrite_probes(&app, &ov, &mut w);
    let app_refs: Vec<&pod::ContainerIn<'_>> = app.iter().map(|(_, c)| *c).collect();
    let pod_ports = pod_ports_json(&app_refs);
    let app_names = app_refs
        .iter()
        .map(|c| c.name.as_ref())
        .collect::<Vec<_>>()
        .join(",");
    let prometheus = prometheus_annotations(pod);
    let mut extra_env: Vec<String> = Vec::new();
    if let Some(pc) = &ov.proxy_config {
        for (k, v) in &pc.metadata {
            extra_env.push(env_entry(k, v));
        }
    }
    if let Some(probers) = &probes {
        extra_env.push(env_entry("ISTIO_KUBE_APP_PROBERS", probers));
    }
    let proxy_config_env = ov.proxy_config.as_ref().map(|pc| format!("{}\n", pc.json));
    let parts = PodParts {
        pod_ports: &pod_ports,
        app_containers: &app_names,
        workload_name: &workload.name,
        owner: &workload.owner,
        prometheus_annotations: prometheus.original.as_deref(),
        proxy_config: proxy_config_env.as_deref(),
        interception_mode: ov.interception(),
        extra_env: &extra_env,
    };
    let proxy_overrides = proxy_field_overrides(&ov, sidecar);
    let custom = pod
        .container_index(PROXY_NAME)
        .filter(|i| !removed.containers.contains(i));
    let native = sidecar.revision.native_sidecar;
    // Merged with a custom container, or placed among the init containers (native sidecar),
    // the proxy is needed as a value of its own; otherwise it is written straight into the
    // patch below.
    let proxy = match custom {
        Some(index) => Some(merge_custom(
            &sidecar.render_proxy(&parts, &proxy_overrides),
            raw,
            "containers",
            index,
        )?),
        None if native => Some(sidecar.render_proxy(&parts, &proxy_overrides)),
        None => None,
    };
    let init = init_container_json(&ov, sidecar, raw, pod, &removed)?;
    add_init_containers(pod, sidecar, &init, proxy.as_deref(), &mut w);
    let hold = ov
        .proxy_config
        .as_ref()
        .is_some_and(|pc| pc.hold_application);
    let custom_now = custom.map(|i| shifted(i, &removed.containers));
    match (custom_now, &proxy) {
        (Some(index), Some(_)) if native => w.remove(&format!("/spec/containers/{index}")),
        (Some(index), Some(merged)) => w.replace_raw(&format!("/spec/containers/{index}"), merged),
        // A native sidecar without a custom container: the proxy went into initContainers.
        (_, Some(_)) => {}
        // Holding the application until the proxy is ready needs the proxy to start first.
        (_, None) => w.add_with(
            if hold {
                "/spec/containers/0"
            } else {
                "/spec/containers/-"
            },
            |buf| sidecar.write_proxy(buf, &parts, &proxy_overrides),
        ),
    }
    let user_volumes: Vec<String> = ov
        .user_volumes
        .iter()
        .map(|(name, v)| {
            let mut v = v.clone();
            v["name"] = serde_json::json!(name);
            v.to_string()
        })
        .collect();
    add_volumes(pod, sidecar, &user_volumes, &removed, &mut w);
    let status = if init.is_none() || !ov.user_volumes.is_empty() {
        let extra: Vec<&str> = ov.user_volumes.iter().map(|(n, _)| n.as_str()).collect();
        let init_name = init.as_ref().map(|_| sidecar.init_name);
        Some(
            serde_json::Value::String(sidecar::status_json(&sidecar.revision, init_name, &extra))
                .to_string(),
        )
    } else {
        None
    };
    let status = status.as_deref().unwrap_or(&sidecar.status_json);
    add_metadata(
        pod,
        sidecar,
        status,
        workload,
        &app_refs,
        &prometheus,
        &mut w,
    );
    Ok(w.finish())
}

/// `{"name":..,"value":..}` as JSON.
fn env_entry(name: &str, value: &str) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 24);
    out.push_str("{\"name\":");
    push_json_str(&mut out, name);
    out.push_str(",\"value\":");
    push_json_str(&mut out, value);
    out.push('}');
    out
}

/// An index in the original array, once the removed indices before it are gone.
fn shifted(index: usize, removed: &[usize]) -> usize {
    index - removed.iter().filter(|r| **r < index).count()
}

/// Rewrites app probes onto the agent; returns `ISTIO_KUBE_APP_PROBERS` when any was.
fn rewrite_probes(
    app: &[(usize, &pod::ContainerIn<'_>)],
    ov: &overrides::Overrides,
    w: &mut PatchWriter,
) -> Option<String> {
    if !ov.rewrite_probes || ov.status_port == 0 || !app.iter().any(|(_, c)| c.has_probes()) {
        return None;
    }
    probes::rewrite(app, ov.status_port, w)
}

/// Proxy container fields a pod's annotations replace.
fn proxy_field_overrides(
    ov: &overrides::Overrides,
    sidecar: &RenderedSidecar,
) -> Vec<(&'static str, String)> {
    let rev = &sidecar.revision;
    let mut fields = Vec::new();
    if let Some(image) = &ov.image {
        fields.push(("image", serde_json::json!(image).to_string()));
    }
    let concurrency = ov.proxy_config.as_ref().and_then(|pc| pc.concurrency);
    if ov.log_level.is_some()
        || ov.component_log_level.is_some()
        || ov.agent_log_level.is_some()
        || concurrency.is_some()
    {
        let args = sidecar::proxy_args(
            ov.log_level.as_deref().unwrap_or(&rev.proxy.log_level),
            ov.component_log_level
                .as_deref()
                .unwrap_or(&rev.proxy.component_log_level),
            ov.agent_log_level
                .as_deref()
                .unwrap_or(sidecar::DEFAULT_AGENT_LOG_LEVEL),
            concurrency.or(rev.proxy.concurrency),
        );
        fields.push(("args", args.to_string()));
    }
    if let Some(resources) = overrides::resources(ov, rev) {
        fields.push(("resources", resources.to_string()));
    }
    if ov.status_port == 0 {
        // Status port 0 turns the agent's health endpoint off: no probes can use it.
        fields.push(("readinessProbe", String::new()));
        fields.push(("startupProbe", String::new()));
    } else if ov.readiness_initial_delay.is_some()
        || ov.readiness_period.is_some()
        || ov.readiness_failure_threshold.is_some()
    {
        let probe = sidecar::ready_probe(
            ov.readiness_period.unwrap_or(15),
            ov.readiness_failure_threshold.unwrap_or(4),
            ov.readiness_initial_delay,
        );
        fields.push(("readinessProbe", probe.to_string()));
    }
    if !ov.user_mounts.is_empty() {
        fields.push((
            "volumeMounts",
            sidecar::volume_mounts(&ov.user_mounts).to_string(),
        ));
    }
    if ov.interception() == "TPROXY" {
        fields.push((
            "securityContext",
            sidecar::proxy_security_context(true).to_string(),
        ));
    }
    if ov
        .proxy_config
        .as_ref()
        .is_some_and(|pc| pc.hold_application)
    {
        fields.push((
            "lifecycle",
            r#"{"postStart":{"exec":{"command":["pilot-agent","wait"]}}}"#.to_owned(),
        ));
    }
    fields
}

/// The init container for this pod: `None` with interception `NONE`; re-rendered when the
/// pod changes traffic settings or the image; a user's own `istio-init` overrides fields.
fn init_container_json<'s>(
    ov: &overrides::Overrides,
    sidecar: &'s RenderedSidecar,
    raw: &str,
    pod: &PodIn<'_>,
    removed: &Removed,
) -> Result<Option<InitContainer<'s>>, String> {
    if ov.interception() == "NONE" {
        return Ok(None);
    }
    let mut json = if ov.changes_traffic() || ov.image.is_some() {
        let traffic = sidecar::Interception {
            mode: ov.interception(),
            include_outbound_ip_ranges: ov.include_outbound_ip_ranges.as_deref().unwrap_or("*"),
            exclude_outbound_ip_ranges: ov.exclude_outbound_ip_ranges.as_deref().unwrap_or(""),
            include_inbound_ports: ov.include_inbound_ports.as_deref().unwrap_or("*"),
            exclude_inbound_ports: ov.exclude_inbound_ports.as_deref().unwrap_or(""),
            exclude_outbound_ports: ov.exclude_outbound_ports.as_deref().unwrap_or(""),
            kubevirt_interfaces: ov.kubevirt_interfaces.as_deref().unwrap_or(""),
            status_port: ov.status_port,
        };
        let image = ov.image.as_deref().unwrap_or(&sidecar.revision.proxy_image);
        Cow::Owned(sidecar.render_init(&traffic, image))
    } else {
        Cow::Borrowed(sidecar.init_container.as_str())
    };
    let custom = pod
        .init_containers()
        .iter()
        .position(|c| c.name == sidecar.init_name)
        .filter(|i| !removed.init_containers.contains(i));
    if let Some(index) = custom {
        json = Cow::Owned(merge_custom(&json, raw, "initContainers", index)?);
    }
    Ok(Some(InitContainer {
        json,
        replaces: custom.map(|i| shifted(i, &removed.init_containers)),
    }))
}

/// The init container to add, or to put in place of the pod's own `istio-init`.
struct InitContainer<'s> {
    json: Cow<'s, str>,
    replaces: Option<usize>,
}

/// Native sidecars start `istio-init` and the proxy before any app init container; otherwise
/// Istio appends `istio-init` after the pod's own init containers.
fn add_init_containers(
    pod: &PodIn<'_>,
    sidecar: &RenderedSidecar,
    init: &Option<InitContainer<'_>>,
    native_proxy: Option<&str>,
    w: &mut PatchWriter,
) {
    let native = sidecar.revision.native_sidecar;
    let mut new: Vec<&str> = Vec::new();
    if let Some(init) = init {
        if let Some(index) = init.replaces {
            w.replace_raw(&format!("/spec/initContainers/{index}"), &init.json);
        } else {
            new.push(&init.json);
        }
    }
    if let Some(proxy) = native_proxy.filter(|_| native) {
        new.push(proxy);
    }
    if new.is_empty() {
        return;
    }
    if pod.spec.init_containers.is_none() {
        w.add_array("/spec/initContainers", new);
    } else if native {
        for (i, c) in new.iter().enumerate() {
            w.add_raw(&format!("/spec/initContainers/{i}"), c);
        }
    } else {
        for c in new {
            w.add_raw("/spec/initContainers/-", c);
        }
    }
}

/// Indices (in the original arrays) removed by a re-injection.
#[derive(Debug, Default)]
struct Removed {
    containers: Vec<usize>,
    init_containers: Vec<usize>,
    volumes: Vec<usize>,
}

/// For a pod injected for another revision: removes what that injection added (as named in
/// its status annotation), highest index first so the remaining indices stay valid.
fn remove_previous_injection(
    pod: &PodIn<'_>,
    previous: Option<&str>,
    w: &mut PatchWriter,
) -> Removed {
    let mut removed = Removed::default();
    if previous.is_none() {
        return removed;
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Status {
        init_containers: Option<Vec<String>>,
        containers: Option<Vec<String>>,
        volumes: Option<Vec<String>>,
    }
    let status: Status = pod
        .meta()
        .annotation(labels::SIDECAR_STATUS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let indices = |names: &Option<Vec<String>>, have: Vec<&str>| -> Vec<usize> {
        let names = names.as_deref().unwrap_or_default();
        have.iter()
            .enumerate()
            .filter(|(_, n)| names.iter().any(|x| x == *n))
            .map(|(i, _)| i)
            .collect()
    };
    removed.containers = indices(
        &status.containers,
        pod.containers().iter().map(|c| c.name.as_ref()).collect(),
    );
    removed.init_containers = indices(
        &status.init_containers,
        pod.init_containers()
            .iter()
            .map(|c| c.name.as_ref())
            .collect(),
    );
    removed.volumes = indices(
        &status.volumes,
        pod.volumes().iter().map(|v| v.name.as_ref()).collect(),
    );
    for (array, list) in [
        ("containers", &removed.containers),
        ("initContainers", &removed.init_containers),
        ("volumes", &removed.volumes),
    ] {
        for i in list.iter().rev() {
            w.remove(&format!("/spec/{array}/{i}"));
        }
    }
    removed
}

/// Adds the sidecar volumes before the pod's own (Istio's order), then `userVolume`s. A pod
/// volume with a sidecar volume's name wins, as in Istio's merge: it is a deliberate override.
fn add_volumes(
    pod: &PodIn<'_>,
    sidecar: &RenderedSidecar,
    user: &[String],
    removed: &Removed,
    w: &mut PatchWriter,
) {
    if pod.spec.volumes.is_none() {
        let volumes = sidecar.volumes.iter().chain(user).map(String::as_str);
        w.add_array("/spec/volumes", volumes);
        return;
    }
    let remaining: Vec<&str> = pod
        .volumes()
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.volumes.contains(i))
        .map(|(_, v)| v.name.as_ref())
        .collect();
    let mut at = 0;
    for (name, json) in sidecar::VOLUME_NAMES.iter().zip(&sidecar.volumes) {
        if !remaining.contains(name) {
            w.add_raw(&format!("/spec/volumes/{at}"), json);
            at += 1;
        }
    }
    for v in user {
        w.add_raw("/spec/volumes/-", v);
    }
}

fn add_metadata(
    pod: &PodIn<'_>,
    sidecar: &RenderedSidecar,
    status_json: &str,
    workload: &Workload,
    app: &[&pod::ContainerIn<'_>],
    prometheus: &Prometheus,
    w: &mut PatchWriter,
) {
    let meta = pod.meta();
    if pod.metadata_in.is_none() {
        w.add_raw("/metadata", "{}");
    }
    // Label values are at most 63 characters; Istio truncates.
    let canonical_name = truncate_label(
        meta.label(labels::CANONICAL_NAME)
            .or_else(|| meta.label("app.kubernetes.io/name"))
            .or_else(|| meta.label("app"))
            .unwrap_or(&workload.name),
    );
    let canonical_rev = truncate_label(
        meta.label(labels::CANONICAL_REVISION)
            .or_else(|| meta.label("app.kubernetes.io/version"))
            .or_else(|| meta.label("version"))
            .unwrap_or("latest"),
    );
    let tls_mode = meta.label(labels::TLS_MODE).unwrap_or("istio");
    let new_labels = [
        (labels::TLS_MODE, Val::Str(tls_mode)),
        (labels::CANONICAL_NAME, Val::Str(canonical_name)),
        (labels::CANONICAL_REVISION, Val::Str(canonical_rev)),
    ];
    write_map(w, "/metadata/labels", meta.labels.is_some(), &new_labels);

    let first_app = app.first().map(|c| c.name.as_ref());
    // Room for every annotation below, so the list is allocated once.
    let mut annotations: Vec<(&str, Val<'_>)> = Vec::with_capacity(8);
    annotations.extend([
        (labels::ISTIO_REV, Val::Str(sidecar.revision.name.as_str())),
        (labels::SIDECAR_STATUS, Val::Json(status_json)),
    ]);
    if let Some(first) = first_app {
        for key in [labels::DEFAULT_CONTAINER, labels::DEFAULT_LOGS_CONTAINER] {
            if meta.annotation(key).is_none() {
                annotations.push((key, Val::Str(first)));
            }
        }
    }
    let networks = sidecar
        .revision
        .multus
        .then(|| append_multus_network(meta.annotation(MULTUS_NETWORKS)));
    if let Some(networks) = &networks {
        annotations.push((MULTUS_NETWORKS, Val::Str(networks)));
    }
    if prometheus.merge {
        annotations.extend([
            ("prometheus.io/path", Val::Str("/stats/prometheus")),
            ("prometheus.io/port", Val::Str("15020")),
            ("prometheus.io/scrape", Val::Str("true")),
        ]);
    }
    write_map(
        w,
        "/metadata/annotations",
        meta.annotations.is_some(),
        &annotations,
    );
}

const MULTUS_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const ISTIO_CNI_NETWORK: &str = "default/istio-cni";

/// Adds Istio's CNI network attachment to a pod's Multus networks, in the form the annotation
/// already uses (a comma-separated list, or a JSON array).
fn append_multus_network(existing: Option<&str>) -> String {
    let existing = existing.unwrap_or_default().trim();
    if existing.is_empty() {
        return ISTIO_CNI_NETWORK.to_owned();
    }
    if existing.contains(ISTIO_CNI_NETWORK) {
        return existing.to_owned();
    }
    match existing.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(inner) if inner.trim().is_empty() => {
            format!("[{{\"name\": \"{ISTIO_CNI_NETWORK}\"}}]")
        }
        Some(inner) => format!("[{inner}, {{\"name\": \"{ISTIO_CNI_NETWORK}\"}}]"),
        None => format!("{existing}, {ISTIO_CNI_NETWORK}"),
    }
}

/// A map value: a plain string, or one already serialized as a JSON string literal.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Json(&'a str),
}

/// Cuts a label value to 63 characters, ending on an alphanumeric as a label value must.
fn truncate_label(value: &str) -> &str {
    match value.char_indices().nth(63) {
        Some((i, _)) => value[..i].trim_end_matches(|c: char| !c.is_ascii_alphanumeric()),
        None => value,
    }
}

/// Adds `entries` under `path`: one op per key when the map exists, else the whole map.
fn write_map(w: &mut PatchWriter, path: &str, exists: bool, entries: &[(&str, Val<'_>)]) {
    if exists {
        for (k, v) in entries {
            match v {
                Val::Str(s) => w.add_key_str(path, k, s),
                Val::Json(j) => w.add_key_raw(path, k, j),
            }
        }
        return;
    }
    w.add_with(path, |obj| {
        obj.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                obj.push(',');
            }
            push_json_str(obj, k);
            obj.push(':');
            match v {
                Val::Str(s) => push_json_str(obj, s),
                Val::Json(j) => obj.push_str(j),
            }
        }
        obj.push('}');
    });
}

/// Istio's metrics merge: the agent serves merged metrics on 15020, and the app's own scrape
/// settings move into `ISTIO_PROMETHEUS_ANNOTATIONS` for the agent to follow.
struct Prometheus {
    merge: bool,
    original: Option<String>,
}

fn prometheus_annotations(pod: &PodIn<'_>) -> Prometheus {
    let meta = pod.meta();
    let opted_out = meta.annotation("prometheus.istio.io/merge-metrics") == Some("false")
        || meta.annotation("prometheus.io/scrape") == Some("false");
    if opted_out {
        return Prometheus {
            merge: false,
            original: None,
        };
    }
    let mut original = serde_json::Map::new();
    for key in ["scrape", "path", "port"] {
        if let Some(v) = meta.annotation(&format!("prometheus.io/{key}")) {
            original.insert(key.to_owned(), serde_json::Value::String(v.to_owned()));
        }
    }
    Prometheus {
        merge: true,
        original: (!original.is_empty()).then(|| serde_json::Value::Object(original).to_string()),
    }
}

fn pod_ports_json(app: &[&pod::ContainerIn<'_>]) -> String {
    let mut out = Vec::with_capacity(128);
    out.push(b'[');
    for (i, port) in app
        .iter()
        .flat_map(|c| c.ports.as_deref().unwrap_or_default())
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        // Serializing a borrowed struct into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, port);
    }
    out.push(b']');
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Istio's custom injection: a container named `istio-proxy` (or an init container named
/// `istio-init`) in the pod spec holds overrides for the generated one. Its fields win;
/// `image: auto` keeps the revision's image; `env` entries merge by name.
fn merge_custom(
    generated: &str,
    raw_pod: &str,
    array: &str,
    index: usize,
) -> Result<String, String> {
    use serde_json::Value;
    let mut base: Value =
        serde_json::from_str(generated).map_err(|e| format!("internal: sidecar template: {e}"))?;
    let user = pod::raw_container(raw_pod, array, index)
        .map_err(|e| format!("spec.{array}[{index}]: {e}"))?;
    let (Value::Object(base_map), Value::Object(user_map)) = (&mut base, user) else {
        return Err(format!("spec.{array}[{index}] is not an object"));
    };
    for (key, value) in user_map {
        match key.as_str() {
            "image" if value == "auto" => {}
            "env" => merge_env(base_map, value),
            _ => {
                base_map.insert(key, value);
            }
        }
    }
    Ok(base.to_string())
}

fn merge_env(base: &mut serde_json::Map<String, serde_json::Value>, user_env: serde_json::Value) {
    let serde_json::Value::Array(user_env) = user_env else {
        return;
    };
    let env = base
        .entry("env")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    let Some(list) = env.as_array_mut() else {
        return;
    };
    for entry in user_env {
        let name = entry.get("name").cloned();
        match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
            Some(existing) => *existing = entry,
            None => list.push(entry),
        }
    }
}

#[cfg(test)]
mod tests;
