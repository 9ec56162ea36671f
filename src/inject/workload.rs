//! The workload a pod belongs to, as Istio names it from owner references.

use std::borrow::Cow;

use crate::core::pod::PodIn;

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
