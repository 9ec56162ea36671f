//! Migration progress: per namespace and target revision (the one a restart would give the
//! pods), how many running pods are on it and how many are left, with the restarts that move
//! them grouped by workload. The JSON fields are stable so a script can wait for `left: 0`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::facts::{workload_of, PodFacts};
use crate::core::messages::restart_command;

/// One workload's pods still to move, and the command that moves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    /// `Kind/namespace/name` of the workload.
    pub workload: String,
    pub command: String,
    pub pods: usize,
}

/// Progress of one namespace towards one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceProgress {
    pub namespace: String,
    /// The revision a restart gives these pods.
    pub revision: String,
    /// Running pods that should run `revision`.
    pub pods: usize,
    /// Of those, how many do.
    pub on_target: usize,
    /// Of those, how many do not (another revision's proxy, or no sidecar).
    pub left: usize,
    /// What moves the ones left, one command per workload.
    pub restarts: Vec<Restart>,
}

/// Progress over the running pods whose target passes `keep`, sorted by namespace, then
/// revision; restarts by workload.
pub(super) fn per_namespace(
    pods: &[PodFacts<'_>],
    keep: impl Fn(&PodFacts<'_>) -> bool,
) -> Vec<NamespaceProgress> {
    type Key = (String, String);
    let mut by_ns: BTreeMap<Key, (NamespaceProgress, BTreeMap<String, Restart>)> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.is_judged() && keep(p)) {
        let Some(target) = p.fresh.target() else {
            continue;
        };
        let (entry, restarts) = by_ns
            .entry((p.namespace.to_owned(), target.to_owned()))
            .or_insert_with(|| {
                (
                    NamespaceProgress {
                        namespace: p.namespace.to_owned(),
                        revision: target.to_owned(),
                        pods: 0,
                        on_target: 0,
                        left: 0,
                        restarts: Vec::new(),
                    },
                    BTreeMap::new(),
                )
            });
        entry.pods += 1;
        if p.on_target() {
            entry.on_target += 1;
            continue;
        }
        entry.left += 1;
        let workload = workload_of(p.pod);
        restarts
            .entry(workload.clone())
            .or_insert_with(|| Restart {
                workload,
                command: restart_command(p.pod),
                pods: 0,
            })
            .pods += 1;
    }
    by_ns
        .into_values()
        .map(|(mut progress, restarts)| {
            progress.restarts = restarts.into_values().collect();
            progress
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::facts::pod_facts;
    use crate::check::tests::{pod, snapshot, PodBuilder as _};
    use crate::core::labels::ISTIO_REV;

    #[test]
    fn each_namespace_counts_pods_on_its_target_and_the_restarts_left() {
        let snap = snapshot(
            &[("asm-1-22", "img:1.22"), ("asm-1-23", "img:1.23")],
            &[("prod", "asm-1-23")],
            &[("shop", &[(ISTIO_REV, "prod")]), ("plain", &[])],
        );
        let pods = [
            pod("shop", "web-1-a")
                .of_deployment("web", "1")
                .injected("asm-1-22", "img:1.22"),
            pod("shop", "web-1-b")
                .of_deployment("web", "1")
                .injected("asm-1-22", "img:1.22"),
            pod("shop", "web-2-c")
                .of_deployment("web", "2")
                .injected("asm-1-23", "img:1.23"),
            pod("shop", "bare"),
            pod("shop", "done")
                .injected("asm-1-22", "img:1.22")
                .phase("Succeeded"),
            pod("plain", "outside").injected("asm-1-22", "img:1.22"),
            pod("plain", "own")
                .label(ISTIO_REV, "asm-1-22")
                .injected("asm-1-22", "img:1.22"),
        ];
        let facts: Vec<PodFacts<'_>> = pods.iter().map(|p| pod_facts(p, &snap)).collect();
        let progress = per_namespace(&facts, |_| true);
        assert_eq!(
            progress,
            [
                NamespaceProgress {
                    namespace: "plain".into(),
                    revision: "asm-1-22".into(),
                    pods: 1,
                    on_target: 1,
                    left: 0,
                    restarts: vec![],
                },
                NamespaceProgress {
                    namespace: "shop".into(),
                    revision: "asm-1-23".into(),
                    pods: 4,
                    on_target: 1,
                    left: 3,
                    restarts: vec![
                        Restart {
                            workload: "Deployment/shop/web".into(),
                            command: "kubectl rollout restart deployment/web -n shop".into(),
                            pods: 2,
                        },
                        Restart {
                            workload: "Pod/shop/bare".into(),
                            command: "kubectl delete pod bare -n shop".into(),
                            pods: 1,
                        },
                    ],
                },
            ]
        );
        let only_plain = per_namespace(&facts, |p| p.namespace == "plain");
        assert_eq!(only_plain.len(), 1);
    }
}
