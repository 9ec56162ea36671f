use super::*;
use crate::admission::decode;
use crate::core::verdict::Decision;
use crate::sources::config;
use serde_json::{json, Value};

fn snapshot() -> Snapshot {
    config::parse(
        "revisions:\n  - {name: asm-1-22, image: a}\n  - {name: asm-1-23, image: b}\n\
         tags: {default: asm-1-22, prod-stable: asm-1-22, prod-canary: asm-1-23}\n\
         namespaces:\n  shop: {istio.io/rev: prod-stable}\n  legacy: {istio-injection: enabled}\n",
        "test",
    )
    .expect("config")
}

fn run(group: &str, kind: &str, operation: &str, object: Value, old: Value) -> Verdict {
    run_with(group, kind, operation, object, old, &snapshot())
}

fn run_with(
    group: &str,
    kind: &str,
    operation: &str,
    object: Value,
    old: Value,
    snap: &Snapshot,
) -> Verdict {
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind}, "operation": operation,
        "object": object, "oldObject": old}})
    .to_string();
    let req = decode(body.as_bytes()).expect("review");
    review(&req, snap, &Policy::default())
}

fn ns(labels: Value) -> Value {
    json!({"metadata": {"name": "shop", "labels": labels}})
}

fn message(v: &Verdict) -> String {
    v.status
        .as_ref()
        .map(|s| s.message.clone())
        .unwrap_or_default()
}

#[test]
fn namespace_with_both_labels_is_denied() {
    let v = run(
        "",
        "Namespace",
        "CREATE",
        ns(json!({"istio-injection": "enabled", "istio.io/rev": "asm-1-23"})),
        Value::Null,
    );
    assert!(!v.allowed);
    assert_eq!(v.status.as_ref().map(|s| s.code), Some(403));
    assert!(
        message(&v).contains("kubectl label namespace shop istio-injection-"),
        "{}",
        message(&v)
    );
}

#[test]
fn namespace_with_stale_rev_is_denied_listing_what_is_installed() {
    let v = run(
        "",
        "Namespace",
        "UPDATE",
        ns(json!({"istio.io/rev": "asm-1-20"})),
        ns(json!({"istio.io/rev": "prod-stable"})),
    );
    assert!(!v.allowed);
    let m = message(&v);
    assert!(
        m.contains("\"asm-1-20\", which is not installed; installed: asm-1-22, asm-1-23"),
        "{m}"
    );
    assert!(
        m.contains("kubectl label namespace shop istio.io/rev=asm-1-22 --overwrite"),
        "{m}"
    );
}

#[test]
fn namespace_with_bad_injection_value_is_invalid() {
    let v = run(
        "",
        "Namespace",
        "CREATE",
        ns(json!({"istio-injection": "yes"})),
        Value::Null,
    );
    assert!(!v.allowed);
    assert_eq!(v.status.as_ref().map(|s| s.code), Some(422));
}

#[test]
fn namespace_rev_change_warns_about_restarts() {
    let v = run(
        "",
        "Namespace",
        "UPDATE",
        ns(json!({"istio.io/rev": "prod-canary"})),
        ns(json!({"istio.io/rev": "prod-stable"})),
    );
    assert!(v.allowed);
    let w = v.warnings.join(" ");
    assert!(
        w.contains("kubectl rollout restart deployment -n shop"),
        "{w}"
    );
    assert!(v.warnings.iter().all(|w| w.chars().count() <= 120));
}

#[test]
fn unrelated_update_of_a_broken_namespace_is_allowed_with_a_warning() {
    let broken = json!({"istio.io/rev": "asm-1-20", "team": "a"});
    let v = run(
        "",
        "Namespace",
        "UPDATE",
        ns(json!({"istio.io/rev": "asm-1-20", "team": "b"})),
        ns(broken),
    );
    assert!(v.allowed);
    assert!(
        v.warnings.join(" ").contains("still broken"),
        "{:?}",
        v.warnings
    );
}

#[test]
fn valid_namespaces_pass_quietly() {
    let v = run(
        "",
        "Namespace",
        "CREATE",
        ns(json!({"istio.io/rev": "prod-canary"})),
        Value::Null,
    );
    assert!(v.allowed && v.warnings.is_empty());
}

#[test]
fn pod_with_unknown_rev_label_is_denied() {
    let pod = json!({"metadata": {"name": "p", "labels": {"istio.io/rev": "canary-old"}}});
    let v = run("", "Pod", "CREATE", pod, Value::Null);
    assert!(!v.allowed);
    assert!(
        message(&v).starts_with("pod: pod label istio.io/rev selects revision \"canary-old\""),
        "{}",
        message(&v)
    );
}

#[test]
fn pod_with_deprecated_annotation_gets_a_warning() {
    let pod =
        json!({"metadata": {"name": "p", "annotations": {"sidecar.istio.io/inject": "true"}}});
    let v = run("", "Pod", "CREATE", pod, Value::Null);
    assert!(v.allowed);
    assert!(
        v.warnings
            .join(" ")
            .contains("use the label sidecar.istio.io/inject"),
        "{:?}",
        v.warnings
    );
}

#[test]
fn workload_template_breaking_a_pod_rule_is_denied_naming_the_workload() {
    let deploy = json!({"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": {"istio.io/rev": "asm-1-20"}}}}});
    let v = run("apps", "Deployment", "CREATE", deploy, Value::Null);
    assert!(!v.allowed);
    assert!(
        message(&v).starts_with("Deployment \"web\" pod template:"),
        "{}",
        message(&v)
    );
    let cron = json!({"metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"istio.io/rev": "gone"}}}}}}});
    let v = run("batch", "CronJob", "CREATE", cron, Value::Null);
    assert!(!v.allowed);
    assert!(
        message(&v).starts_with("CronJob \"nightly\" pod template:"),
        "{}",
        message(&v)
    );
}

#[test]
fn workload_update_that_does_not_touch_the_label_is_not_blocked() {
    let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "template": {"metadata": {"labels": {"istio.io/rev": "asm-1-20"}}}}});
    let new = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"metadata": {"labels": {"istio.io/rev": "asm-1-20"}}}}});
    let v = run("apps", "Deployment", "UPDATE", new, old);
    assert!(v.allowed);
    assert!(v.warnings.join(" ").contains("still broken"));
}

fn tag_webhook(tag: &str, rev: Option<&str>) -> Value {
    let mut labels = json!({"istio.io/tag": tag});
    if let Some(r) = rev {
        labels["istio.io/rev"] = json!(r);
    }
    json!({"metadata": {"name": format!("istio-revision-tag-{tag}"), "labels": labels}, "webhooks": []})
}

#[test]
fn tag_to_missing_revision_or_named_like_a_revision_is_denied() {
    const G: &str = "admissionregistration.k8s.io";
    const K: &str = "MutatingWebhookConfiguration";
    let v = run(
        G,
        K,
        "UPDATE",
        tag_webhook("prod-stable", Some("asm-1-20")),
        tag_webhook("prod-stable", Some("asm-1-22")),
    );
    assert!(!v.allowed);
    assert!(
        message(&v).contains("\"asm-1-20\", which is not installed"),
        "{}",
        message(&v)
    );
    let v = run(
        G,
        K,
        "CREATE",
        tag_webhook("asm-1-23", Some("asm-1-23")),
        Value::Null,
    );
    assert!(!v.allowed);
    assert!(message(&v).contains("may not shadow a revision"));
    let v = run(G, K, "CREATE", tag_webhook("prod-x", None), Value::Null);
    assert!(!v.allowed);
    let v = run(
        G,
        K,
        "CREATE",
        tag_webhook("prod-x", Some("asm-1-23")),
        Value::Null,
    );
    assert!(v.allowed);
}

#[test]
fn tag_deletion_warns_with_the_namespaces_that_use_it_and_is_never_denied() {
    const G: &str = "admissionregistration.k8s.io";
    const K: &str = "MutatingWebhookConfiguration";
    let v = run(
        G,
        K,
        "DELETE",
        Value::Null,
        tag_webhook("prod-stable", Some("asm-1-22")),
    );
    assert!(v.allowed);
    assert!(v.warnings.join(" ").contains("shop"), "{:?}", v.warnings);
    let v = run(
        G,
        K,
        "DELETE",
        Value::Null,
        tag_webhook("default", Some("asm-1-22")),
    );
    assert!(
        v.warnings.join(" ").contains("legacy"),
        "istio-injection=enabled uses default: {:?}",
        v.warnings
    );
    let v = run(
        G,
        K,
        "DELETE",
        Value::Null,
        tag_webhook("prod-canary", Some("asm-1-23")),
    );
    assert!(v.allowed && v.warnings.is_empty());
}

#[test]
fn tag_deletion_names_at_most_ten_namespaces() {
    let mut text = String::from("revisions:\n  - {name: r, image: i}\ntags: {t: r}\nnamespaces:\n");
    for i in 0..13 {
        text.push_str(&format!("  ns{i:02}: {{istio.io/rev: t}}\n"));
    }
    let snap = config::parse(&text, "t").expect("config");
    let v = run_with(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "DELETE",
        Value::Null,
        tag_webhook("t", Some("r")),
        &snap,
    );
    let w = v.warnings.join(" ");
    assert!(
        w.contains("ns09") && !w.contains("ns10") && w.contains("and 3 more"),
        "{w}"
    );
}

#[test]
fn deletes_are_never_denied_and_unknown_kinds_are_allowed_with_a_warning() {
    let v = run(
        "",
        "Namespace",
        "DELETE",
        Value::Null,
        ns(json!({"istio.io/rev": "asm-1-20"})),
    );
    assert!(v.allowed);
    let v = run(
        "",
        "ConfigMap",
        "CREATE",
        json!({"metadata": {"name": "x"}}),
        Value::Null,
    );
    assert!(v.allowed);
    assert_eq!(v.decision, Decision::Allow(Allow::UnknownKind));
    assert!(!v.warnings.is_empty());
}

#[test]
fn unreadable_objects_get_a_bad_request() {
    let v = run(
        "",
        "Namespace",
        "CREATE",
        json!({"metadata": {"labels": {"istio.io/rev": 5}}}),
        Value::Null,
    );
    assert!(!v.allowed);
    assert_eq!(v.status.as_ref().map(|s| s.code), Some(400));
}

#[test]
fn istio_injection_enabled_without_a_default_revision_is_refused_when_written() {
    let no_default = config::parse(
        "revisions:\n  - {name: asm-1-23, image: b}\ntags: {default: asm-1-22}\n",
        "test",
    )
    .expect("config");
    let v = run_with(
        "",
        "Namespace",
        "UPDATE",
        ns(json!({"istio-injection": "enabled"})),
        ns(json!({"istio.io/rev": "asm-1-23"})),
        &no_default,
    );
    assert_eq!(v.decision, Decision::Deny(Deny::Stale));
    assert_eq!(
        message(&v),
        "namespace \"shop\" has istio-injection=enabled, which selects tag \"default\", which points at \
         revision \"asm-1-22\" that is not installed; installed: asm-1-23; tags: default -> asm-1-22. \
         Point the default tag at a revision (istioctl tag set default --revision asm-1-23) or relabel \
         with: kubectl label namespace shop istio-injection- istio.io/rev=asm-1-23"
    );
    // With the default tag on an installed revision it is what it always was: allowed.
    let v = run(
        "",
        "Namespace",
        "UPDATE",
        ns(json!({"istio-injection": "enabled"})),
        ns(json!({})),
    );
    assert!(v.allowed, "{}", message(&v));
}
