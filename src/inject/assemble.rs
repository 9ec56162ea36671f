//! The patch for one injection: the previous injection removed, probes rewritten, the init
//! containers and the proxy placed, volumes and metadata added, in one pass into one buffer.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::core::json::push_json_str;
use crate::core::labels;
use crate::core::pod::{self, PodIn};
use crate::core::sidecar::{self, InterceptionMode, PodParts, RenderedSidecar, PROXY_NAME};

use super::custom::merge_custom;
use super::metadata::{add_metadata, pod_ports_json, prometheus_annotations};
use super::overrides;
use super::patch::PatchWriter;
use super::probes;
use super::workload::Workload;
use super::InjectError;

/// Builds the RFC 6902 patch that injects `sidecar` into `pod`. `raw` is the pod's JSON, read
/// only for custom injection; `previous` names the revision a re-injected pod had.
pub fn build_patch(
    pod: &PodIn<'_>,
    raw: &str,
    sidecar: &RenderedSidecar,
    previous: Option<&str>,
    workload: &Workload,
) -> Result<String, InjectError> {
    if pod.spec.containers.is_none() {
        return Err(InjectError::NoContainers);
    }
    let ov = overrides::parse(pod.meta(), &sidecar.revision)?;
    let mut w = PatchWriter::with_capacity(8192);
    let removed = remove_previous_injection(pod, previous, &mut w);
    // App containers with their positions once a re-injection's removals are done.
    let app: Vec<(usize, &pod::ContainerIn<'_>)> = pod
        .containers()
        .iter()
        .enumerate()
        .filter(|(i, c)| c.name != PROXY_NAME && !is_removed(&removed.containers, i))
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
        .filter(|i| !is_removed(&removed.containers, i));
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

/// An index in the original array, once the removed indices before it are gone (`removed`
/// is sorted: a binary search, not a count per index).
fn shifted(index: usize, removed: &[usize]) -> usize {
    index - removed.partition_point(|r| *r < index)
}

/// Whether a re-injection removed `index` (`removed` is sorted).
fn is_removed(removed: &[usize], index: &usize) -> bool {
    removed.binary_search(index).is_ok()
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
    if ov.interception() == InterceptionMode::Tproxy {
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
) -> Result<Option<InitContainer<'s>>, InjectError> {
    if ov.interception() == InterceptionMode::None {
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
        .filter(|i| !is_removed(&removed.init_containers, i));
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

/// Indices (in the original arrays, ascending) removed by a re-injection.
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
    // A set of the names, not a search per entry: a hostile status annotation may list
    // tens of thousands (the indices come out sorted, which `Removed` relies on).
    let indices = |names: &Option<Vec<String>>, have: Vec<&str>| -> Vec<usize> {
        let names: HashSet<&str> = names.iter().flatten().map(String::as_str).collect();
        have.iter()
            .enumerate()
            .filter(|(_, n)| names.contains(*n))
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
        .filter(|(i, _)| !is_removed(&removed.volumes, i))
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
