//! Running a revision's templates over a pod, as istiod's `RunTemplate` does: the template
//! data (`SidecarTemplateData`) is built from the pod (its earlier injection stripped) and
//! the revision's values and mesh config; each selected template renders a partial pod as
//! YAML, which is merged over the pod with Kubernetes strategic-merge semantics.

use std::sync::{Arc, LazyLock};

use gotmpl::{Field, GoStruct, Limits, Schema};
use serde_json::Value;

use crate::core::injector::Injector;
use crate::core::yaml;

use super::pod::{self, PROXY_NAME};
use super::strategic::merge_pod;

/// Which of istiod's two paths a pod takes: they differ in small ways istiod has always had
/// (kube-inject runs only the `sidecar` template and applies the proxy config annotation to
/// the mesh config too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Webhook,
    KubeInject,
}

/// Who the pod is, beyond its own JSON.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    pub path: Path,
    pub revision: &'a str,
    /// `types.NamespacedName` of the workload (`DeploymentMeta`).
    pub deploy_name: &'a str,
    pub deploy_namespace: &'a str,
    /// The workload's `TypeMeta`.
    pub kind: &'a str,
    pub api_version: &'a str,
    /// `ISTIO_META_CLUSTER_ID` / `ISTIO_META_NETWORK` from the webhook path, sorted by name.
    pub proxy_envs: &'a [(String, String)],
    pub proxy_uid: i64,
    pub proxy_gid: i64,
}

/// A template that could not be run for this pod.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("requested template {name:?} not found; have {have}")]
    NoSuchTemplate { name: String, have: String },
    #[error("template {name:?}: {error}")]
    Exec {
        name: String,
        error: Box<gotmpl::ExecError>,
    },
    #[error("template {name:?} did not give YAML: {error}")]
    NotYaml { name: String, error: String },
    #[error("template {name:?}: merging its output: {error}")]
    Merge { name: String, error: String },
    #[error("proxy.istio.io/config: {0}")]
    ProxyConfig(String),
}

/// The pod with the templates merged in, and the templates' own partial pod (what istiod
/// calls the template pod: which containers, volumes and pull secrets were injected).
#[derive(Debug)]
pub struct Rendered {
    pub merged: Value,
    pub template_pod: Value,
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(gotmpl::istio::sidecar_template_data);

/// istiod's `RunTemplate` over `stripped` (the pod with an earlier injection removed),
/// merging into `pod` (the pod as admitted).
pub fn run_templates(
    inj: &Injector,
    pod: &Value,
    stripped: &Value,
    ctx: &PodContext<'_>,
    limits: Limits,
) -> Result<Rendered, RenderError> {
    let data = template_data(inj, stripped, ctx)?;
    let annotations = &stripped["metadata"]["annotations"];
    let requested = annotations["inject.istio.io/templates"].as_str();
    let names = match ctx.path {
        Path::Webhook => inj.config.templates_for(requested),
        Path::KubeInject => match requested {
            Some(list) => list.split(',').map(|n| n.trim().to_owned()).collect(),
            None => vec![crate::core::injector::SIDECAR_TEMPLATE.to_owned()],
        },
    };
    let native_default = inj.native_sidecars;
    let mut merged = pod.clone();
    let mut template_pod = Value::Object(Default::default());
    for name in names {
        let Some(template) = inj.template(&name) else {
            return Err(RenderError::NoSuchTemplate {
                have: inj.template_names().join(", "),
                name,
            });
        };
        let text = template
            .render_with(&data, limits)
            .map_err(|error| RenderError::Exec {
                name: name.clone(),
                error: Box::new(error),
            })?;
        let partial = parse_partial(&name, &text)?;
        merge_pod(&mut template_pod, partial.clone()).map_err(|e| RenderError::Merge {
            name: name.clone(),
            error: e.to_string(),
        })?;
        if wants_native_move(&merged, &template_pod, native_default) {
            pod::move_container(&mut merged, "containers", "initContainers", PROXY_NAME);
        }
        merge_pod(&mut merged, partial).map_err(|e| RenderError::Merge {
            name,
            error: e.to_string(),
        })?;
    }
    Ok(Rendered {
        merged,
        template_pod,
    })
}

/// The template's output as a partial pod (an empty output merges nothing).
fn parse_partial(name: &str, text: &str) -> Result<Value, RenderError> {
    match yaml::parse(text) {
        Ok(Value::Null) => Ok(Value::Object(Default::default())),
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(RenderError::NotYaml {
            name: name.to_owned(),
            error: format!("expected a mapping, found {other}"),
        }),
        Err(e) => Err(RenderError::NotYaml {
            name: name.to_owned(),
            error: e.to_string(),
        }),
    }
}

/// With native sidecars the templates put `istio-proxy` in the init containers; a pod's own
/// `istio-proxy` (custom injection) is in its containers and moves there too, as istiod does.
/// `sidecar.istio.io/nativeSidecar` on the pod wins over the revision's default.
fn wants_native_move(merged: &Value, template_pod: &Value, native_default: bool) -> bool {
    let native = match merged["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"].as_str()
    {
        Some("true") => true,
        Some("false") => false,
        _ => native_default,
    };
    native
        && pod::find_container(&template_pod["spec"]["initContainers"], PROXY_NAME).is_some()
        && pod::find_container(&merged["spec"]["containers"], PROXY_NAME).is_some()
}

/// `SidecarTemplateData` for the pod: its own parts are converted per pod; the revision's
/// values and mesh config (and its proxy config, unless the pod annotates its own) are shared.
fn template_data(
    inj: &Injector,
    stripped: &Value,
    ctx: &PodContext<'_>,
) -> Result<gotmpl::Value, RenderError> {
    let annotations = &stripped["metadata"]["annotations"];
    let annotated = annotations["proxy.istio.io/config"].as_str();
    let proxy_config = match annotated {
        Some(text) => Arc::new(
            inj.proxy_config_with(text)
                .map_err(|e| RenderError::ProxyConfig(e.to_string()))?,
        ),
        None => Arc::clone(&inj.proxy_config_tmpl),
    };
    let mesh = match (ctx.path, annotated) {
        // kube-inject applies the annotation to the mesh config it renders with.
        (Path::KubeInject, Some(text)) => {
            let mut mesh = inj.mesh.clone();
            mesh["defaultConfig"] =
                crate::core::mesh::merge_proxy_config(text, &inj.mesh["defaultConfig"])
                    .map_err(|e| RenderError::ProxyConfig(e.to_string()))?;
            Arc::new(gotmpl::from_json(&mesh, &gotmpl::istio::mesh_config()))
        }
        _ => Arc::clone(&inj.mesh_tmpl),
    };
    let image_type_annotation = annotations["sidecar.istio.io/proxyImageType"].as_str();
    let proxy_image = crate::core::images::proxy_image(
        &inj.values,
        &inj.mesh["defaultConfig"]["image"],
        image_type_annotation,
    );
    let proxy_init_image =
        crate::core::images::proxy_init_image(&inj.values, image_type_annotation);
    let Schema::Struct(schema) = &*SCHEMA else {
        unreachable!("SidecarTemplateData is a struct")
    };
    let fields = schema
        .fields
        .iter()
        .map(|(key, field_schema)| {
            let own = |v: gotmpl::Value| Field::new(key, v, true);
            match key.as_str() {
                "typeMeta" => own(gotmpl::from_json(
                    &serde_json::json!({"kind": ctx.kind, "apiVersion": ctx.api_version}),
                    field_schema,
                )),
                "deploymentMeta" => own(gotmpl::from_json(
                    &serde_json::json!({"name": ctx.deploy_name, "namespace": ctx.deploy_namespace}),
                    field_schema,
                )),
                "objectMeta" => own(gotmpl::from_json(&stripped["metadata"], field_schema)),
                "spec" => own(gotmpl::from_json(&stripped["spec"], field_schema)),
                "proxyConfig" => Field::shared(key, Arc::clone(&proxy_config), true),
                "meshConfig" => Field::shared(key, Arc::clone(&mesh), true),
                "values" => Field::shared(key, Arc::clone(&inj.values_tmpl), true),
                "revision" => own(gotmpl::Value::str(ctx.revision)),
                "nativeSidecars" => own(gotmpl::Value::Bool(inj.native_sidecars)),
                "proxyImage" => own(gotmpl::Value::str(proxy_image.clone())),
                "proxyInitImage" => own(gotmpl::Value::str(proxy_init_image.clone())),
                "proxyUID" => own(gotmpl::Value::Int(ctx.proxy_uid)),
                "proxyGID" => own(gotmpl::Value::Int(ctx.proxy_gid)),
                "inboundTrafficPolicyMode" => own(gotmpl::Value::str(
                    crate::core::mesh::inbound_traffic_policy_mode(&inj.mesh),
                )),
                "compliancePolicy" => own(gotmpl::Value::str(inj.compliance_policy())),
                _ => Field::new(key, field_schema.zero(), false),
            }
        })
        .collect();
    Ok(gotmpl::Value::Struct(GoStruct {
        type_name: schema.name.clone(),
        fields,
        strict: schema.strict,
    }))
}
