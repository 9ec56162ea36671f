//! The pod annotations istiod validates before it renders (`validateAnnotations`), with the
//! same acceptance rules, and messages that name the annotation and the accepted form.
//!
//! One addition of revhook's: the proxy's resource annotations must be Kubernetes quantities.
//! istiod renders any text into the pod, which the API server then refuses with a message
//! about `spec.initContainers[1].resources` that names no annotation.

use std::net::IpAddr;

use crate::core::mesh;

/// The first invalid annotation of a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{value}' for annotation '{annotation}': {reason}")]
pub struct AnnotationError {
    pub annotation: String,
    pub value: String,
    pub reason: String,
}

/// Checks every annotation istiod checks (and the proxy resource quantities), in name order
/// so that the first error reported does not depend on map order.
pub fn validate<'a>(
    annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), AnnotationError> {
    let mut checked: Vec<(&str, &str)> = annotations
        .into_iter()
        .filter(|(k, _)| rule(k).is_some())
        .collect();
    checked.sort_unstable();
    for (name, value) in checked {
        let Some(check) = rule(name) else { continue };
        check(value).map_err(|reason| AnnotationError {
            annotation: name.to_owned(),
            value: value.to_owned(),
            reason,
        })?;
    }
    Ok(())
}

type Check = fn(&str) -> Result<(), String>;

fn rule(name: &str) -> Option<Check> {
    Some(match name {
        "sidecar.istio.io/interceptionMode" => interception_mode,
        "status.sidecar.istio.io/port" => status_port,
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => uint32,
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => include_ip_ranges,
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => exclude_ip_ranges,
        "traffic.sidecar.istio.io/includeInboundPorts" => include_inbound_ports,
        "traffic.sidecar.istio.io/excludeInboundPorts" => exclude_inbound_ports,
        "traffic.sidecar.istio.io/excludeOutboundPorts" => exclude_outbound_ports,
        "prometheus.istio.io/merge-metrics" => go_bool,
        "proxy.istio.io/config" => proxy_config,
        "sidecar.istio.io/proxyCPU"
        | "sidecar.istio.io/proxyMemory"
        | "sidecar.istio.io/proxyCPULimit"
        | "sidecar.istio.io/proxyMemoryLimit" => quantity,
        _ => return None,
    })
}

fn interception_mode(v: &str) -> Result<(), String> {
    match v {
        "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
        _ => Err(format!(
            "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {v}"
        )),
    }
}

fn status_port(v: &str) -> Result<(), String> {
    parse_port(v)
        .map(|_| ())
        .map_err(|e| format!("statusPort invalid: {e}"))
}

fn uint32(v: &str) -> Result<(), String> {
    v.parse::<u32>()
        .map(|_| ())
        .map_err(|_| "expected a whole number from 0 to 4294967295".to_owned())
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn go_bool(v: &str) -> Result<(), String> {
    parse_go_bool(v)
        .map(|_| ())
        .ok_or_else(|| "expected true or false".to_owned())
}

fn include_ip_ranges(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    cidr_list(v).map_err(|e| format!("includeIPRanges invalid: {e}"))
}

fn exclude_ip_ranges(v: &str) -> Result<(), String> {
    cidr_list(v).map_err(|e| format!("excludeIPRanges invalid: {e}"))
}

fn include_inbound_ports(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    port_list(v).map_err(|e| format!("includeInboundPorts invalid: {e}"))
}

fn exclude_inbound_ports(v: &str) -> Result<(), String> {
    port_list(v).map_err(|e| format!("excludeInboundPorts invalid: {e}"))
}

fn exclude_outbound_ports(v: &str) -> Result<(), String> {
    port_list(v).map_err(|e| format!("excludeOutboundPorts invalid: {e}"))
}

/// A comma-separated list of prefixes in `netip.ParsePrefix` form (address/bits, required).
fn cidr_list(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    for cidr in v.split(',') {
        if !is_prefix(cidr) {
            return Err(format!(
                "failed parsing cidr '{cidr}': expected an address/bits prefix such as 10.0.0.0/8"
            ));
        }
    }
    Ok(())
}

fn is_prefix(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'))
        && bits.parse::<u8>().is_ok_and(|b| b <= max)
}

fn parse_port(v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .map_err(|_| format!("failed parsing port '{v}': expected a number from 0 to 65535"))
}

fn port_list(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(());
    }
    for port in v.split(',') {
        parse_port(port)?;
    }
    Ok(())
}

fn proxy_config(v: &str) -> Result<(), String> {
    let pc = mesh::merge_proxy_config(v, &mesh::default_proxy_config())
        .map_err(|e| format!("failed to apply proxy config: {e}"))?;
    validate_proxy_config(&pc)
}

/// The checks of `ValidateMeshConfigProxyConfig` that a pod annotation can break.
fn validate_proxy_config(pc: &serde_json::Value) -> Result<(), String> {
    if let Some(port) = pc.get("statusPort") {
        let ok = port.as_i64().is_some_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err(format!("statusPort {port} is not a port number"));
        }
    }
    if let Some(port) = pc.get("proxyAdminPort") {
        let ok = port.as_i64().is_some_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err(format!("proxyAdminPort {port} is not a port number"));
        }
    }
    if let Some(c) = pc.get("concurrency") {
        if c.as_i64().is_some_and(|c| c < 0) {
            return Err("concurrency must not be negative".to_owned());
        }
    }
    if let Some(mode) = pc.get("interceptionMode") {
        if !matches!(mode.as_str(), Some("REDIRECT" | "TPROXY" | "NONE")) {
            return Err(format!(
                "interceptionMode {mode} is not REDIRECT, TPROXY or NONE"
            ));
        }
    }
    Ok(())
}

/// A Kubernetes resource quantity: `100m`, `0.5`, `2`, `128Mi`, `1e3`, `1G`.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let valid_number = digits > 0 && number.matches('.').count() <= 1;
    valid_number && is_quantity_suffix(suffix)
}

fn is_quantity_suffix(suffix: &str) -> bool {
    const SI: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if SI.contains(&suffix) {
        return true;
    }
    let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn quantity(v: &str) -> Result<(), String> {
    if is_quantity(v.trim()) {
        Ok(())
    } else {
        Err("expected a Kubernetes quantity such as 100m, 0.5, 2 or 128Mi".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<(), AnnotationError> {
        validate([(name, value)])
    }

    #[test]
    fn istiods_annotations_are_checked_as_istiod_does() {
        for (name, good, bad) in [
            ("sidecar.istio.io/interceptionMode", "TPROXY", "tproxy"),
            ("status.sidecar.istio.io/port", "15021", "70000"),
            ("readiness.status.sidecar.istio.io/periodSeconds", "0", "-1"),
            (
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "*",
                "10.0.0.0",
            ),
            (
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0/8,::1/128",
                "*",
            ),
            ("traffic.sidecar.istio.io/includeInboundPorts", "*", "80,x"),
            (
                "traffic.sidecar.istio.io/excludeInboundPorts",
                " 80, 90 ",
                "65536",
            ),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "", "a"),
            ("prometheus.istio.io/merge-metrics", "F", "no"),
            ("proxy.istio.io/config", "concurrency: 2", "statusPort: 0"),
            (
                "proxy.istio.io/config",
                "drainDuration: 1m30s",
                "drainDuration: forever",
            ),
            ("sidecar.istio.io/proxyCPU", "100m", "lots"),
        ] {
            assert!(check(name, good).is_ok(), "{name}={good}");
            let err = check(name, bad).expect_err(bad);
            assert_eq!(err.annotation, name);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn messages_carry_istios_parameter_names() {
        let err = check(
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            "1.1.1.1",
        )
        .expect_err("no bits");
        assert!(err.to_string().contains("includeIPRanges invalid"), "{err}");
        let err = check("traffic.sidecar.istio.io/excludeInboundPorts", "x").expect_err("port");
        assert!(
            err.to_string().contains("excludeInboundPorts invalid"),
            "{err}"
        );
    }

    #[test]
    fn other_annotations_are_not_checked_and_errors_come_in_name_order() {
        assert!(validate([("sidecar.istio.io/logLevel", "anything")]).is_ok());
        let err = validate([
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "x"),
            ("sidecar.istio.io/interceptionMode", "x"),
        ])
        .expect_err("two");
        assert_eq!(err.annotation, "sidecar.istio.io/interceptionMode");
    }

    #[test]
    fn quantities() {
        for q in ["100m", "0.5", "2", "128Mi", "1e3", "1G", "+1", "1.5Gi"] {
            assert!(is_quantity(q), "{q}");
        }
        for q in ["", "m", "1.2.3", "10mb", "1e", "lots"] {
            assert!(!is_quantity(q), "{q}");
        }
    }
}
