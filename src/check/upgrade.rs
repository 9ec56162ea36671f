//! The upgrade path: Istio supports canary upgrades one minor version at a time, and a proxy
//! older than every installed revision has no control plane left that serves it.

use std::collections::BTreeSet;

use super::facts::PodFacts;
use super::revisions::in_use;
use super::{finding, Finding, Severity};
use crate::core::messages::restart_command;
use crate::core::revisions::minor_version;
use crate::core::snapshot::Snapshot;

type Minor = (u64, u64);

pub(super) fn findings(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<Finding> {
    let mut out: Vec<Finding> = skipped_minor(snapshot, pods).into_iter().collect();
    out.extend(older_than_installed(snapshot, pods));
    out
}

/// A revision's version: from its proxy image, else from its name.
fn version(snapshot: &Snapshot, name: &str) -> Option<Minor> {
    snapshot
        .table
        .revision(name)
        .and_then(|r| minor_version(&r.proxy_image).or_else(|| minor_version(&r.name)))
}

fn skipped_minor(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Option<Finding> {
    let used: Vec<Minor> = in_use(snapshot, pods)
        .iter()
        .filter_map(|r| version(snapshot, r))
        .collect();
    let (min, max) = (used.iter().min()?, used.iter().max()?);
    (min.0 == max.0 && max.1 > min.1 + 1).then(|| {
        finding(
            Severity::Warning,
            "REVHOOK-UPGRADE-SKIP",
            None,
            "Revisions".into(),
            format!("revisions in use span {}.{} to {}.{}: Istio supports canary upgrades one minor version at a time", min.0, min.1, max.0, max.1),
            None,
        )
    })
}

/// One finding per proxy version older than the oldest installed revision (its first pod).
fn older_than_installed(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<Finding> {
    let Some(oldest) = snapshot
        .table
        .revisions()
        .filter_map(|r| version(snapshot, &r.name))
        .min()
    else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in pods {
        // Proxies of a named revision that is gone are REVHOOK-ORPHANED-PROXY's.
        if p.revision
            .as_deref()
            .is_some_and(|r| snapshot.table.revision(r).is_none())
        {
            continue;
        }
        let Some(v) = p.proxy_image.and_then(minor_version) else {
            continue;
        };
        if v < oldest && seen.insert(v) {
            out.push(finding(
                Severity::Warning,
                "REVHOOK-OLDER-THAN-INSTALLED",
                None,
                p.object(),
                format!("runs proxy {}.{}, older than the oldest installed revision ({}.{}): restart it onto an installed revision", v.0, v.1, oldest.0, oldest.1),
                Some(restart_command(p.pod)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::facts::pod_facts;
    use crate::check::tests::{codes, pod, snapshot, PodBuilder as _};
    use crate::core::labels::ISTIO_REV;
    use k8s_openapi::api::core::v1::Pod;

    fn judge(snap: &Snapshot, pods: &[Pod]) -> Vec<Finding> {
        let facts: Vec<PodFacts<'_>> = pods.iter().map(|p| pod_facts(p, snap)).collect();
        findings(snap, &facts)
    }

    /// Revisions `(name, image)`, each selected by a namespace of the same name.
    fn in_use_by_namespaces(revisions: &[(&str, &str)]) -> Snapshot {
        let labels: Vec<[(&str, &str); 1]> =
            revisions.iter().map(|(n, _)| [(ISTIO_REV, *n)]).collect();
        let namespaces: Vec<(&str, &[(&str, &str)])> = revisions
            .iter()
            .zip(&labels)
            .map(|((n, _), l)| (*n, &l[..]))
            .collect();
        snapshot(revisions, &[], &namespaces)
    }

    #[test]
    fn revisions_in_use_two_minors_apart_skip_one() {
        let snap = in_use_by_namespaces(&[
            ("asm-1-22", "img/proxyv2:1.22.3"),
            ("asm-1-24", "img/proxyv2:1.24.0"),
        ]);
        let found = judge(&snap, &[]);
        assert_eq!(codes(&found), ["REVHOOK-UPGRADE-SKIP"]);
        assert_eq!(found[0].object, "Revisions");
        assert!(
            found[0].message.contains("span 1.22 to 1.24"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn one_minor_apart_or_an_unused_far_revision_is_no_skip() {
        let adjacent =
            in_use_by_namespaces(&[("asm-1-22", "img:1.22.3"), ("asm-1-23", "img:1.23.0")]);
        assert!(judge(&adjacent, &[]).is_empty());
        let unused_far = snapshot(
            &[("asm-1-22", "img:1.22.3"), ("asm-1-24", "img:1.24.0")],
            &[],
            &[("shop", &[(ISTIO_REV, "asm-1-24")])],
        );
        assert!(judge(&unused_far, &[]).is_empty());
    }

    #[test]
    fn the_version_comes_from_the_name_when_the_image_has_none() {
        let snap = in_use_by_namespaces(&[("1-22-0", "img:latest"), ("1-24-1", "img:latest")]);
        assert_eq!(codes(&judge(&snap, &[])), ["REVHOOK-UPGRADE-SKIP"]);
    }

    #[test]
    fn a_proxy_older_than_every_installed_revision_is_reported_once_per_version() {
        let snap = in_use_by_namespaces(&[("asm-1-22", "img:1.22.3"), ("asm-1-23", "img:1.23.0")]);
        let pods = [
            pod("legacy", "a")
                .of_deployment("a", "1")
                .proxy("img:1.20.1"),
            pod("legacy", "b").proxy("img:1.20.4"),
            pod("legacy", "c").proxy("img:1.21.0"),
        ];
        let found = judge(&snap, &pods);
        assert_eq!(codes(&found), ["REVHOOK-OLDER-THAN-INSTALLED"; 2]);
        assert_eq!(found[0].object, "Pod/legacy/a");
        assert!(
            found[0]
                .message
                .contains("runs proxy 1.20, older than the oldest installed revision (1.22)"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl rollout restart deployment/a -n legacy")
        );
        assert_eq!(found[1].object, "Pod/legacy/c");
    }

    #[test]
    fn a_proxy_of_a_named_revision_that_is_gone_is_left_to_the_orphan_rule() {
        let snap = in_use_by_namespaces(&[("asm-1-22", "img:1.22.3")]);
        let pods = [pod("legacy", "a").injected("asm-1-20", "img:1.20.1")];
        assert!(judge(&snap, &pods).is_empty());
    }

    #[test]
    fn a_proxy_on_an_installed_version_or_without_one_is_not_older() {
        let snap = in_use_by_namespaces(&[("asm-1-22", "img:1.22.3")]);
        let pods = [
            pod("shop", "a").proxy("img:1.22.0"),
            pod("shop", "b").proxy("img:1.23.0"),
            pod("shop", "c").proxy("img:latest"),
            pod("shop", "d"),
        ];
        assert!(judge(&snap, &pods).is_empty());
        let nothing_installed = snapshot(&[], &[], &[]);
        assert!(judge(&nothing_installed, &[pod("shop", "a").proxy("img:1.1.0")]).is_empty());
    }
}
