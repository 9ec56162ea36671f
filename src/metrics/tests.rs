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
