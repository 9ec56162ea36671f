//! `revhook tags`: revision tags live where Istio keeps them, in MutatingWebhookConfigurations
//! labelled `istio.io/tag=<tag>` and `istio.io/rev=<revision>` (what `istioctl tag set`
//! writes), so revhook and istioctl read and move the same tags.
//!
//! In `inject` mode revhook is the injector, so the tags it writes carry `webhooks: []`:
//! nothing but revhook acts on them. The planning is pure; the cluster calls are thin.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::core::labels::{ISTIO_REV, ISTIO_TAG};
use crate::core::messages::restart_command;
use crate::core::revisions::check_label_value;
use crate::core::snapshot::Snapshot;

pub const TAG_WEBHOOK_PREFIX: &str = "istio-revision-tag-";

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

/// Writes a tag: creates its webhook configuration, or replaces it (`--overwrite` was checked
/// by [`plan_set`]).
pub async fn write(
    client: &kube::Client,
    mwc: MutatingWebhookConfiguration,
) -> Result<(), TagError> {
    use kube::api::{Api, PostParams};
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = mwc.metadata.name.clone().unwrap_or_default();
    let kube_err = |e: kube::Error| TagError::Kube(e.to_string());
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
    Ok(())
}

/// Deletes a tag's webhook configuration (only one labelled as that tag).
pub async fn remove(client: &kube::Client, tag: &str) -> Result<(), TagError> {
    use kube::api::{Api, DeleteParams};
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = format!("{TAG_WEBHOOK_PREFIX}{tag}");
    let kube_err = |e: kube::Error| TagError::Kube(e.to_string());
    let existing = api.get_opt(&name).await.map_err(kube_err)?;
    let is_tag = existing
        .as_ref()
        .and_then(|m| m.metadata.labels.as_ref())
        .and_then(|l| l.get(ISTIO_TAG))
        .is_some_and(|t| t == tag);
    if !is_tag {
        return Err(TagError::NotFound(tag.to_owned()));
    }
    api.delete(&name, &DeleteParams::default())
        .await
        .map_err(kube_err)?;
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
