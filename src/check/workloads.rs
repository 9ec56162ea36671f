//! Workload templates: an `image: auto` gateway or workload that no injector will match
//! (istioctl's IST0146): typically a revisioned gateway left behind when its revision was
//! removed. Its next pods cannot start.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::facts::{fresh_template, Fresh};
use super::pods::AUTO_IMAGE;
use super::{finding, Cluster, Finding, Severity};
use crate::core::messages::stale_message;

pub(super) fn findings(cluster: &Cluster<'_>) -> Vec<Finding> {
    let objects = cluster.objects;
    let deployments = objects
        .deployments
        .iter()
        .filter_map(|d| Some(("Deployment", &d.metadata, &d.spec.as_ref()?.template)));
    let statefulsets = objects
        .statefulsets
        .iter()
        .filter_map(|s| Some(("StatefulSet", &s.metadata, &s.spec.as_ref()?.template)));
    let mut out: Vec<Finding> = deployments
        .chain(statefulsets)
        .filter_map(|(kind, meta, template)| {
            let ns = meta.namespace.as_deref().unwrap_or("default");
            let name = meta.name.as_deref().unwrap_or_default();
            auto_without_injector(cluster, kind, ns, name, template)
        })
        .collect();
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

fn auto_without_injector(
    cluster: &Cluster<'_>,
    kind: &str,
    namespace: &str,
    name: &str,
    template: &PodTemplateSpec,
) -> Option<Finding> {
    let spec = template.spec.as_ref()?;
    if !spec
        .containers
        .iter()
        .any(|c| c.image.as_deref() == Some(AUTO_IMAGE))
    {
        return None;
    }
    let meta = template.metadata.clone().unwrap_or_default();
    let snapshot = &cluster.snapshot;
    let fresh = fresh_template(&meta, Some(spec), namespace, snapshot, &snapshot.table);
    let (why, fix) = match fresh {
        Fresh::Inject { .. } => return None,
        Fresh::Stale { stale, selector } => (
            stale_message(&stale, &selector),
            stale.fix_target().map(|t| {
                format!("set istio.io/rev={t} on the pod template of {kind}/{namespace}/{name} (or on namespace {namespace})")
            }),
        ),
        Fresh::NotInjected => (
            "no injector selects its pods (namespace and pod labels select no revision, or they opt out)".to_owned(),
            Some(format!(
                "label namespace {namespace} or the pod template istio.io/rev=<revision>"
            )),
        ),
    };
    Some(finding(
        Severity::Warning,
        "REVHOOK-IMAGE-AUTO",
        Some("IST0146"),
        format!("{kind}/{namespace}/{name}"),
        format!("its pod template has a container with image: auto, which only an injector replaces, and {why}: its next pods cannot start"),
        fix,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{codes, deployment, judge_objects, snapshot};
    use crate::check::ClusterObjects;
    use crate::core::labels::{ISTIO_REV, SIDECAR_INJECT};
    use crate::core::snapshot::Snapshot;
    use k8s_openapi::api::apps::v1::Deployment;

    fn cluster() -> Snapshot {
        snapshot(
            &[("asm-1-23", "img:1.23.1")],
            &[("default", "asm-1-23")],
            &[("gw", &[]), ("shop", &[(ISTIO_REV, "asm-1-23")])],
        )
    }

    /// A gateway Deployment with `image: auto` and these template labels.
    fn gateway(namespace: &str, labels: &[(&str, &str)]) -> Deployment {
        let mut d = deployment(namespace, "ingress", 1, 1);
        if let Some(spec) = d.spec.as_mut() {
            let meta = spec.template.metadata.get_or_insert_with(Default::default);
            meta.labels = crate::check::tests::map(labels);
            if let Some(pod) = spec.template.spec.as_mut() {
                pod.containers[0].image = Some(AUTO_IMAGE.into());
            }
        }
        d
    }

    fn judge(deployments: Vec<Deployment>) -> Vec<Finding> {
        judge_objects(
            cluster(),
            ClusterObjects {
                deployments,
                ..ClusterObjects::default()
            },
            findings,
        )
    }

    #[test]
    fn a_gateway_left_on_a_removed_revision_cannot_start() {
        let found = judge(vec![gateway(
            "gw",
            &[(ISTIO_REV, "asm-1-22"), (SIDECAR_INJECT, "true")],
        )]);
        assert_eq!(codes(&found), ["REVHOOK-IMAGE-AUTO"]);
        assert_eq!(found[0].istio_code, Some("IST0146"));
        assert_eq!(found[0].object, "Deployment/gw/ingress");
        assert!(
            found[0]
                .message
                .contains("selects revision \"asm-1-22\", which is not installed"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("set istio.io/rev=asm-1-23 on the pod template of Deployment/gw/ingress (or on namespace gw)")
        );
    }

    #[test]
    fn a_gateway_nothing_selects_cannot_start_either() {
        let found = judge(vec![gateway("gw", &[])]);
        assert_eq!(codes(&found), ["REVHOOK-IMAGE-AUTO"]);
        assert!(
            found[0].message.contains("no injector selects its pods"),
            "{}",
            found[0].message
        );
        let opted_out = judge(vec![gateway("shop", &[(SIDECAR_INJECT, "false")])]);
        assert_eq!(codes(&opted_out), ["REVHOOK-IMAGE-AUTO"]);
    }

    #[test]
    fn an_injected_gateway_or_a_template_without_auto_is_fine() {
        assert!(judge(vec![gateway("gw", &[(ISTIO_REV, "asm-1-23")])]).is_empty());
        assert!(judge(vec![gateway("shop", &[])]).is_empty());
        assert!(judge(vec![deployment("gw", "plain", 1, 1)]).is_empty());
    }
}
