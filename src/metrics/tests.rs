use super::*;
use rustls::pki_types::pem::PemObject as _;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn counts_and_histograms_render() {
    let m = Metrics::new();
    m.request("inject", "patched", Duration::from_micros(30));
    m.request("inject", "patched", Duration::from_micros(30));
    m.unknown_kind("ConfigMap");
    let text = m.render();
    assert!(
        text.contains(r#"revhook_requests_total{path="inject",outcome="patched"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"revhook_request_duration_seconds_count{path="inject"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"revhook_validate_unknown_kind_total{kind="ConfigMap"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"revhook_requests_total{path="validate",outcome="denied"} 0"#),
        "webhook series exist before their first request: {text}"
    );
    m.request("healthz", "ok", Duration::from_micros(3));
    let text = m.render();
    assert!(
        text.contains(r#"revhook_requests_total{path="healthz",outcome="ok"} 1"#),
        "{text}"
    );
}

#[test]
fn counters_are_named_with_total_in_help_and_type() {
    let text = Metrics::new().render();
    assert!(text.contains("# HELP revhook_requests_total "), "{text}");
    assert!(
        text.contains("# TYPE revhook_requests_total counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE sidecar_injection_requests_total counter"));
    assert!(text.contains("# TYPE sidecar_injection_time_seconds histogram"));
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn istio_counters_follow_istiod() {
    let m = Metrics::new();
    m.request("inject", "patched", Duration::from_micros(40));
    m.injection(None, None, InjectOutcome::Injected);
    m.request("inject", "allowed", Duration::from_micros(40));
    m.injection(None, None, InjectOutcome::Skipped(SkipReason::PodOptOut));
    m.request("inject", "error", Duration::from_micros(40));
    m.request("inject", "denied", Duration::from_micros(40));
    m.injection(None, None, InjectOutcome::Denied(DenyReason::TemplateError));
    m.request("inject", "denied", Duration::from_micros(40));
    m.injection(None, None, InjectOutcome::Denied(DenyReason::Stale));
    m.request("validate", "error", Duration::from_micros(40));
    let text = m.render();
    assert_eq!(sample(&text, "sidecar_injection_requests_total"), Some(5.0));
    assert_eq!(sample(&text, "sidecar_injection_success_total"), Some(4.0));
    // The HTTP error and the template error; a stale denial is policy, not a failure.
    assert_eq!(sample(&text, "sidecar_injection_failure_total"), Some(2.0));
    assert_eq!(sample(&text, "sidecar_injection_skip_total"), Some(1.0));
    assert_eq!(
        sample(&text, "sidecar_injection_time_seconds_count"),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sidecar_injection_time_seconds_bucket{le="0.00005"}"#
        ),
        Some(5.0),
        "{text}"
    );
}

#[test]
fn revision_labels_come_only_from_installed_names() {
    let m = Metrics::new();
    m.installed(["asm-1-22", "asm-1-23"], [("prod-canary", "asm-1-23")]);
    let text = m.render();
    for series in [
        r#"revhook_injections_total{revision="asm-1-22",tag=""}"#,
        r#"revhook_injections_total{revision="asm-1-23",tag="prod-canary"}"#,
        r#"revhook_injection_denials_total{reason="stale",revision="unknown",tag=""}"#,
        r#"revhook_injection_denials_total{reason="template-error",revision="asm-1-23",tag=""}"#,
        r#"revhook_injection_skips_total{reason="host-network",revision="",tag=""}"#,
        r#"revhook_validation_denials_total{reason="stale",revision="unknown"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} at zero: {text}");
    }
    m.injection(
        Some("asm-1-23"),
        Some("prod-canary"),
        InjectOutcome::Injected,
    );
    m.injection(Some("made-up"), Some("nope"), InjectOutcome::Injected);
    m.injection(
        Some("asm-1-9"),
        None,
        InjectOutcome::Denied(DenyReason::Stale),
    );
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"revhook_injections_total{revision="asm-1-23",tag="prod-canary"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"revhook_injections_total{revision="unknown",tag="unknown"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"revhook_injection_denials_total{reason="stale",revision="unknown",tag=""}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("made-up") && !text.contains("asm-1-9"),
        "{text}"
    );
}

#[test]
fn a_removed_revision_keeps_its_name_for_stale_denials() {
    let m = Metrics::new();
    m.installed(["asm-1-22", "asm-1-23"], []);
    m.installed(["asm-1-23"], []);
    let stale = r#"revhook_injection_denials_total{reason="stale",revision="asm-1-22",tag=""}"#;
    assert_eq!(
        sample(&m.render(), stale),
        Some(0.0),
        "created when it goes stale"
    );
    m.injection(
        Some("asm-1-22"),
        None,
        InjectOutcome::Denied(DenyReason::Stale),
    );
    assert_eq!(sample(&m.render(), stale), Some(1.0));
    for i in 0..FORMER_KEPT {
        let name = format!("r{i}");
        m.installed([name.as_str()], []);
    }
    m.installed(["last"], []);
    m.injection(
        Some("asm-1-22"),
        None,
        InjectOutcome::Denied(DenyReason::Stale),
    );
    let text = m.render();
    assert_eq!(
        sample(&text, stale),
        Some(1.0),
        "forgotten after {FORMER_KEPT} removals"
    );
}

#[test]
fn unknown_kinds_are_bounded() {
    let m = Metrics::new();
    for i in 0..40 {
        m.unknown_kind(&format!("Kind{i}"));
    }
    let text = m.render();
    let kinds = text
        .lines()
        .filter(|l| l.starts_with("revhook_validate_unknown_kind_total{"))
        .count();
    assert_eq!(kinds, KINDS_KEPT + 1, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"revhook_validate_unknown_kind_total{kind="other"}"#
        ),
        Some((40 - KINDS_KEPT) as f64)
    );
}

#[test]
fn reads_not_after_from_a_certificate() {
    let certs = crate::tls::generate_dev(&[], &[], 30, 60).expect("certs");
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(certs.cert.as_bytes()).expect("pem");
    let not_after = not_after_unix(&der).expect("notAfter");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let days = (not_after - now) as f64 / 86_400.0;
    assert!((29.0..=31.0).contains(&days), "{days} days");
    assert_eq!(not_after_unix(&der[..der.len() / 2]), None);
    assert_eq!(not_after_unix(b"\x30\x00"), None);
}

#[test]
fn der_times() {
    assert_eq!(der_time(0x17, "700101000000Z"), Some(0));
    assert_eq!(der_time(0x18, "20380119031408Z"), Some(2_147_483_648));
    assert_eq!(der_time(0x17, "491231235959Z"), Some(2_524_607_999));
    assert_eq!(der_time(0x17, "7001010000Z"), None);
    assert_eq!(der_time(0x18, "20381319031408Z"), None);
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).expect("fixture")
}

/// Runs one fixture review through the handler and the metrics adapter, as the server does.
fn judged(metrics: &Metrics, webhook: crate::handler::Webhook, name: &str, policy: &Policy) {
    judged_body(metrics, webhook, &fixture(name), policy);
}

fn judged_body(metrics: &Metrics, webhook: crate::handler::Webhook, body: &[u8], policy: &Policy) {
    let config = String::from_utf8(fixture("local-config.yaml")).expect("config");
    judged_in(metrics, webhook, body, policy, &config);
}

fn judged_in(
    metrics: &Metrics,
    webhook: crate::handler::Webhook,
    body: &[u8],
    policy: &Policy,
    config: &str,
) {
    let snapshot = Arc::new(crate::sources::config::parse(config, "test").expect("config"));
    let req = crate::handler::decode(webhook, body).expect("review");
    let handled = crate::handler::judge(
        webhook,
        &req,
        body,
        &crate::handler::Context::new(&snapshot, policy),
    );
    metrics.admission(webhook, &req, &handled.verdict, &snapshot, policy, None);
}

use crate::core::policy::{Mode, OnStale, Policy};
use crate::handler::Webhook;

#[test]
fn guard_mode_and_allowed_stale_pods_are_skips_with_their_revision() {
    let m = Metrics::new();
    let guard = Policy {
        mode: Mode::Guard,
        ..Policy::default()
    };
    // What Istio's injector injected passes guard; the same pod left bare is refused.
    let mut injected: serde_json::Value =
        serde_json::from_slice(&fixture("pod-create-pod-rev-canary.json")).expect("fixture");
    injected["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(serde_json::json!({"name": "istio-proxy", "image": "proxyv2"}));
    judged_body(&m, Webhook::Inject, injected.to_string().as_bytes(), &guard);
    judged(
        &m,
        Webhook::Inject,
        "pod-create-pod-rev-canary.json",
        &guard,
    );
    let lenient = Policy {
        on_stale: OnStale::AllowUninjected,
        ..Policy::default()
    };
    judged(
        &m,
        Webhook::Inject,
        "pod-create-stale-namespace.json",
        &lenient,
    );
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"revhook_injection_skips_total{reason="guard",revision="asm-1-23",tag="prod-canary"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"revhook_injection_skips_total{reason="stale",revision="unknown",tag=""}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"revhook_injection_denials_total{reason="uninjected",revision="asm-1-23",tag="prod-canary"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "sidecar_injection_skip_total"), Some(2.0));
    assert_eq!(
        sample(&text, "sidecar_injection_failure_total"),
        Some(0.0),
        "Istio's injection failed, not revhook's"
    );
}

#[test]
fn validation_denials_name_their_reason() {
    let m = Metrics::new();
    let policy = Policy::default();
    for fixture in [
        "validate/namespace-stale-rev.json",
        "validate/pod-stale-rev.json",
        "validate/namespace-bad-injection-value.json",
        "validate/tag-named-like-revision.json",
        "validate/namespace-valid.json",
    ] {
        judged(&m, Webhook::Validate, fixture, &policy);
    }
    let text = m.render();
    for (series, value) in [
        (
            r#"revhook_validation_denials_total{reason="stale",revision="unknown"}"#,
            2.0,
        ),
        (
            r#"revhook_validation_denials_total{reason="invalid-label",revision=""}"#,
            1.0,
        ),
        (
            r#"revhook_validation_denials_total{reason="tag",revision=""}"#,
            0.0,
        ),
        (
            r#"revhook_validation_denials_total{reason="other",revision=""}"#,
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}: {text}");
    }
    let tag_denials: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"revhook_validation_denials_total{reason="tag""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(tag_denials, 1.0, "{text}");
}

#[test]
fn every_decision_maps_to_its_outcome() {
    use crate::core::verdict::{Allow, Deny, Failure, Skip, Verdict};
    let snapshot = crate::core::snapshot::Snapshot::empty("test");
    for (verdict, outcome) in [
        (
            Verdict::inject("asm-1-22", String::new()),
            InjectOutcome::Injected,
        ),
        (
            Verdict::guard("asm-1-22"),
            InjectOutcome::Skipped(SkipReason::Guard),
        ),
        (
            Verdict::skip(Skip::AlreadyInjected),
            InjectOutcome::Skipped(SkipReason::AlreadyInjected),
        ),
        (
            Verdict::skip(Skip::HostNetwork),
            InjectOutcome::Skipped(SkipReason::HostNetwork),
        ),
        (
            Verdict::skip(Skip::NotAPod),
            InjectOutcome::Skipped(SkipReason::NotAPod),
        ),
        (
            Verdict::allow(Allow::StaleUninjected),
            InjectOutcome::Skipped(SkipReason::StaleAllowed),
        ),
        (
            Verdict::allow(Allow::Clean),
            InjectOutcome::Skipped(SkipReason::Other),
        ),
        // Nothing installed at all: not synced rather than stale.
        (
            Verdict::deny(Deny::Stale, String::new()),
            InjectOutcome::Denied(DenyReason::NotSynced),
        ),
        (
            Verdict::deny(Deny::Conflict, String::new()),
            InjectOutcome::Denied(DenyReason::Conflict),
        ),
        (
            Verdict::fail(Failure::BadPod, String::new()),
            InjectOutcome::Denied(DenyReason::InvalidPod),
        ),
        (
            Verdict::fail(Failure::Patch, String::new()),
            InjectOutcome::Denied(DenyReason::TemplateError),
        ),
        (
            Verdict::deny(Deny::Tag, String::new()),
            InjectOutcome::Denied(DenyReason::Other),
        ),
    ] {
        assert_eq!(
            verdicts::inject_outcome(&verdict, &snapshot),
            outcome,
            "{}",
            verdict.decision
        );
    }
}

#[test]
fn a_bad_override_annotation_is_an_invalid_annotation_failure_of_its_revision() {
    let m = Metrics::new();
    let mut review: serde_json::Value =
        serde_json::from_slice(&fixture("pod-create-prod-stable.json")).expect("json");
    review["request"]["object"]["metadata"]["annotations"] =
        serde_json::json!({"sidecar.istio.io/proxyCPU": "lots"});
    let body = serde_json::to_vec(&review).expect("json");
    judged_body(&m, Webhook::Inject, &body, &Policy::default());
    let text = m.render();
    let series = r#"revhook_injection_denials_total{reason="invalid-annotation",revision="asm-1-22",tag="prod-stable"}"#;
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    assert_eq!(sample(&text, "sidecar_injection_failure_total"), Some(1.0));
}

#[test]
fn a_tag_pointing_at_a_missing_revision_is_named_in_stale_denials() {
    let m = Metrics::new();
    let config = "revisions:\n  - name: asm-1-23\n    image: img:1.23\ntags:\n  prod-stable: asm-1-22\nnamespaces:\n  shop: { istio.io/rev: prod-stable }\n";
    let body = fixture("pod-create-prod-stable.json");
    judged_in(&m, Webhook::Inject, &body, &Policy::default(), config);
    let text = m.render();
    // The tag is installed, its target never was: the tag is named, the revision is not.
    let series =
        r#"revhook_injection_denials_total{reason="stale",revision="unknown",tag="prod-stable"}"#;
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    assert!(!text.contains("asm-1-22"), "{text}");
}

#[test]
fn reason_tables_are_in_declaration_order() {
    for (i, r) in SkipReason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "{r:?}");
    }
    for (i, r) in DenyReason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "{r:?}");
    }
}

#[test]
fn not_synced_denials_count_on_their_series_at_zero() {
    let m = Metrics::new();
    let series =
        r#"revhook_injection_denials_total{reason="not-synced",revision="unknown",tag=""}"#;
    assert_eq!(sample(&m.render(), series), Some(0.0));
    m.injection(None, None, InjectOutcome::Denied(DenyReason::NotSynced));
    let text = m.render();
    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    assert_eq!(sample(&text, "sidecar_injection_failure_total"), Some(1.0));
    let not_synced = text.matches(r#"reason="not-synced""#).count();
    assert_eq!(not_synced, 1, "one not-synced series: {text}");
}
