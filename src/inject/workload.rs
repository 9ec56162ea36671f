//! The workload a pod belongs to, as istiod names it (`GetDeployMetaFromPod`): the template
//! data's `DeploymentMeta` and `TypeMeta`.

use crate::core::pod::PodIn;

/// A pod's workload: its name and namespace, and the kind and API version it is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub kind: String,
    pub api_version: String,
}

impl Workload {
    /// istiod's heuristics: a generated pod is named after its controller; a ReplicaSet with
    /// the pod's template hash is a Deployment's, a Job with a timestamp suffix a CronJob's,
    /// a ReplicationController with a `deploymentconfig` label an OpenShift DeploymentConfig's.
    pub fn of_pod(pod: &PodIn<'_>, namespace: &str) -> Self {
        let meta = pod.meta();
        let pod_name = meta.name.as_deref().unwrap_or_default();
        let mut w = Workload::new("v1", "Pod", pod_name, namespace);
        let generated = meta.generate_name.as_deref().is_some_and(|g| !g.is_empty());
        let controller = meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|o| o.controller == Some(true));
        if let (true, Some(owner)) = (generated, controller) {
            w.api_version = owner.api_version.to_string();
            w.kind = owner.kind.to_string();
            w.name = owner.name.to_string();
            let hash = meta.label("pod-template-hash").unwrap_or_default();
            match w.kind.as_str() {
                "ReplicaSet" if !hash.is_empty() && owner.name.ends_with(hash) => {
                    // istiod's TrimSuffix(name, "-"+hash): a no-op without the dash.
                    let suffix = format!("-{hash}");
                    w.name = owner
                        .name
                        .strip_suffix(&suffix)
                        .unwrap_or(&owner.name)
                        .to_owned();
                    w.kind = "Deployment".into();
                    w.api_version = "apps/v1".into();
                }
                "ReplicationController" => {
                    if let Some(dc) = meta.label("deploymentconfig").filter(|d| !d.is_empty()) {
                        w.name = dc.to_owned();
                        w.kind = "DeploymentConfig".into();
                        w.api_version = "v1".into();
                    }
                }
                "Job" => {
                    if let Some(cron) = cronjob_of(&owner.name) {
                        w.name = cron.to_owned();
                        w.kind = "CronJob".into();
                        w.api_version = "batch/v1".into();
                    }
                }
                _ => {}
            }
        }
        if w.name.is_empty() {
            w.name = pod_name.to_owned();
        }
        w
    }

    pub fn new(api_version: &str, kind: &str, name: &str, namespace: &str) -> Self {
        Workload {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
        }
    }
}

/// A CronJob's Jobs are named `<cronjob>-<8 to 11 digits>`.
fn cronjob_of(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    let digits = (8..=11).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_digit());
    (digits && !base.is_empty()).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(json: &str) -> Workload {
        Workload::of_pod(&PodIn::parse(json).expect("pod"), "shop")
    }

    #[test]
    fn generated_pods_are_named_after_their_controller() {
        let w = of(
            r#"{"metadata":{"generateName":"web-5d8f-","labels":{"pod-template-hash":"5d8f"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d8f","controller":true,"uid":"u"}]},"spec":{"containers":[]}}"#,
        );
        assert_eq!(w, Workload::new("apps/v1", "Deployment", "web", "shop"));
        let w = of(
            r#"{"metadata":{"generateName":"nightly-28999999-","ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"nightly-28999999","controller":true,"uid":"u"}]},"spec":{"containers":[]}}"#,
        );
        assert_eq!(w, Workload::new("batch/v1", "CronJob", "nightly", "shop"));
        let w = of(
            r#"{"metadata":{"generateName":"db-","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","controller":true,"uid":"u"}]},"spec":{"containers":[]}}"#,
        );
        assert_eq!(w, Workload::new("apps/v1", "StatefulSet", "db", "shop"));
    }

    #[test]
    fn named_pods_are_their_own_workload() {
        let w = of(
            r#"{"metadata":{"name":"db-0","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","controller":true,"uid":"u"}]},"spec":{"containers":[]}}"#,
        );
        assert_eq!(w, Workload::new("v1", "Pod", "db-0", "shop"));
        assert_eq!(
            of(r#"{"metadata":{"name":"p"},"spec":{"containers":[]}}"#).kind,
            "Pod"
        );
    }
}
