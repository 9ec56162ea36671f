//! Per-pod override annotations, as istiod reads them, each validated: a bad value is a denial
//! that names the annotation and the accepted form, not a pod that starts half-configured.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::core::revisions::Revision;

use crate::core::pod::MetaIn;
use crate::core::sidecar::{InterceptionMode, DEFAULT_STATUS_PORT};

/// An annotation with a value revhook cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}={value:?} is invalid: expected {expected}")]
pub struct OverrideError {
    pub annotation: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// `proxy.istio.io/config`, the parts the sidecar template reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    /// Compact JSON for `PROXY_CONFIG`.
    pub json: String,
    pub hold_application: bool,
    pub concurrency: Option<u32>,
    pub metadata: Vec<(String, String)>,
}

/// Everything a pod's annotations change in the sidecar. Empty for most pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub image: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_limit: Option<String>,
    pub log_level: Option<String>,
    pub component_log_level: Option<String>,
    pub agent_log_level: Option<String>,
    pub interception_mode: Option<InterceptionMode>,
    pub rewrite_probes: bool,
    pub user_volumes: Vec<(String, Value)>,
    pub user_mounts: Vec<(String, Value)>,
    pub include_outbound_ip_ranges: Option<String>,
    pub exclude_outbound_ip_ranges: Option<String>,
    pub include_inbound_ports: Option<String>,
    pub exclude_inbound_ports: Option<String>,
    pub exclude_outbound_ports: Option<String>,
    pub kubevirt_interfaces: Option<String>,
    pub proxy_config: Option<ProxyConfig>,
    pub status_port: u16,
    pub readiness_initial_delay: Option<u32>,
    pub readiness_period: Option<u32>,
    pub readiness_failure_threshold: Option<u32>,
}

impl Overrides {
    pub fn changes_traffic(&self) -> bool {
        self.interception_mode.is_some()
            || self.include_outbound_ip_ranges.is_some()
            || self.exclude_outbound_ip_ranges.is_some()
            || self.include_inbound_ports.is_some()
            || self.exclude_inbound_ports.is_some()
            || self.exclude_outbound_ports.is_some()
            || self.kubevirt_interfaces.is_some()
            || self.status_port != DEFAULT_STATUS_PORT
    }

    pub fn interception(&self) -> InterceptionMode {
        self.interception_mode.unwrap_or_default()
    }
}

const LOG_LEVELS: [&str; 7] = [
    "trace", "debug", "info", "warning", "error", "critical", "off",
];

fn err(annotation: &'static str, value: &str, expected: &'static str) -> OverrideError {
    OverrideError {
        annotation,
        value: value.to_owned(),
        expected,
    }
}

/// A Kubernetes resource quantity: `100m`, `0.5`, `2`, `128Mi`, `1e3`, `1G`.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let valid_number = digits > 0 && number.matches('.').count() <= 1;
    let valid_suffix = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || (suffix.len() > 1
        && suffix.starts_with(['e', 'E'])
        && suffix[1..]
            .strip_prefix(['+', '-'])
            .unwrap_or(&suffix[1..])
            .chars()
            .all(|c| c.is_ascii_digit())
        && suffix[1..]
            .trim_start_matches(['+', '-'])
            .chars()
            .next()
            .is_some());
    valid_number && valid_suffix
}

fn is_cidr(s: &str) -> bool {
    let (ip, prefix) = s.split_once('/').unwrap_or((s, ""));
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_empty() || prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

/// `*`, empty, or a comma-separated list accepted by `item`.
fn is_list(s: &str, star: bool, item: impl Fn(&str) -> bool) -> bool {
    let s = s.trim();
    s.is_empty() || (star && s == "*") || s.split(',').all(|p| item(p.trim()))
}

fn is_port(s: &str) -> bool {
    s.parse::<u16>().is_ok_and(|p| p > 0)
}

fn json_map(annotation: &'static str, value: &str) -> Result<Vec<(String, Value)>, OverrideError> {
    match serde_json::from_str::<Map<String, Value>>(value) {
        Ok(map) if map.values().all(Value::is_object) => Ok(map.into_iter().collect()),
        _ => Err(err(annotation, value, "a JSON object of name -> object")),
    }
}

fn parse_u32(annotation: &'static str, value: &str) -> Result<u32, OverrideError> {
    value
        .trim()
        .parse()
        .map_err(|_| err(annotation, value, "a non-negative whole number"))
}

fn parse_proxy_config(value: &str) -> Result<ProxyConfig, OverrideError> {
    const NAME: &str = "proxy.istio.io/config";
    // JSON is YAML too, but a JSON parser is many times faster, and most annotations are JSON.
    let parsed: Value = match serde_json::from_str(value) {
        Ok(parsed) => parsed,
        Err(_) if !yaml_is_bounded(value) => {
            return Err(err(
                NAME,
                value,
                "a ProxyConfig in JSON, or in YAML of at most 16 KiB with [ ] and { } nested at most 16 deep",
            ))
        }
        Err(_) => serde_yaml::from_str(value)
            .map_err(|_| err(NAME, value, "a ProxyConfig in YAML or JSON"))?,
    };
    let Value::Object(map) = parsed else {
        return Err(err(NAME, value, "a ProxyConfig in YAML or JSON"));
    };
    let hold = match map.get("holdApplicationUntilProxyStarts") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(err(
                NAME,
                value,
                "holdApplicationUntilProxyStarts: true or false",
            ))
        }
    };
    let concurrency = match map.get("concurrency") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| err(NAME, value, "concurrency: a whole number"))?,
        ),
    };
    let metadata = match map.get("proxyMetadata") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(err(NAME, value, "proxyMetadata: a map of strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err(NAME, value, "proxyMetadata: a map of strings")),
    };
    Ok(ProxyConfig {
        json: Value::Object(map).to_string(),
        hold_application: hold,
        concurrency,
        metadata,
    })
}

/// Whether `value` is small and shallow enough for the YAML parser. libyaml checks every
/// open flow collection at every token, so nested `[`/`{` cost time quadratic in their depth
/// (measured: 128 KiB of `{a: ` took 14.6 s, 256 KiB of `[` 3.2 s); a ProxyConfig is a few
/// hundred bytes. Brackets inside quoted strings count too: a looser bound, never a tighter.
fn yaml_is_bounded(value: &str) -> bool {
    const MAX_YAML: usize = 16 * 1024;
    const MAX_FLOW_DEPTH: usize = 16;
    if value.len() > MAX_YAML {
        return false;
    }
    let mut depth = 0usize;
    for b in value.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

thread_local! {
    /// Pods of one workload carry the same `proxy.istio.io/config`, and parsing YAML costs
    /// more than the rest of an injection: remember the last few results per thread.
    static PROXY_CONFIGS: std::cell::RefCell<std::collections::HashMap<String, Result<ProxyConfig, OverrideError>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

const PROXY_CONFIG_CACHE: usize = 256;
const PROXY_CONFIG_CACHED_LEN: usize = 4096;

fn cached_proxy_config(value: &str) -> Result<ProxyConfig, OverrideError> {
    PROXY_CONFIGS.with(|cache| {
        if let Some(hit) = cache.borrow().get(value) {
            return hit.clone();
        }
        let parsed = parse_proxy_config(value);
        // Only values of the usual size are kept: 256 of the largest annotations would hold
        // 64 MiB per judging thread.
        if value.len() > PROXY_CONFIG_CACHED_LEN {
            return parsed;
        }
        let mut cache = cache.borrow_mut();
        if cache.len() >= PROXY_CONFIG_CACHE {
            cache.clear();
        }
        cache.insert(value.to_owned(), parsed.clone());
        parsed
    })
}

/// Reads and validates a pod's override annotations.
pub fn parse(meta: &MetaIn<'_>, revision: &Revision) -> Result<Overrides, OverrideError> {
    let mut o = Overrides {
        rewrite_probes: true,
        status_port: DEFAULT_STATUS_PORT,
        ..Overrides::default()
    };
    let Some(annotations) = meta.annotations.as_ref() else {
        return Ok(o);
    };
    let mut image_type = None;
    for (key, value) in &annotations.0 {
        // Only the annotations below are unescaped; others (last-applied...) are skipped.
        if !key.starts_with("sidecar.istio.io/")
            && !key.starts_with("traffic.sidecar.istio.io/")
            && !key.starts_with("proxy.istio.io/")
            && !key.contains("status.sidecar.istio.io/")
        {
            continue;
        }
        let value: &str = value.get();
        match key.as_ref() {
            "sidecar.istio.io/proxyImage" => {
                o.image = Some(proxy_image(value, &revision.proxy_image))
            }
            "sidecar.istio.io/proxyImageType" => {
                if !matches!(value, "default" | "distroless" | "debug") {
                    return Err(err(
                        "sidecar.istio.io/proxyImageType",
                        value,
                        "default, distroless or debug",
                    ));
                }
                image_type = Some(value);
            }
            "sidecar.istio.io/proxyCPU" => {
                o.cpu = Some(quantity("sidecar.istio.io/proxyCPU", value)?)
            }
            "sidecar.istio.io/proxyMemory" => {
                o.memory = Some(quantity("sidecar.istio.io/proxyMemory", value)?)
            }
            "sidecar.istio.io/proxyCPULimit" => {
                o.cpu_limit = Some(quantity("sidecar.istio.io/proxyCPULimit", value)?)
            }
            "sidecar.istio.io/proxyMemoryLimit" => {
                o.memory_limit = Some(quantity("sidecar.istio.io/proxyMemoryLimit", value)?)
            }
            "sidecar.istio.io/logLevel" => {
                o.log_level = Some(log_level("sidecar.istio.io/logLevel", value)?)
            }
            "sidecar.istio.io/agentLogLevel" => o.agent_log_level = Some(value.to_owned()),
            "sidecar.istio.io/componentLogLevel" => {
                let ok = value.split(',').all(|p| {
                    p.split_once(':')
                        .is_some_and(|(c, l)| !c.is_empty() && LOG_LEVELS.contains(&l))
                });
                if !ok {
                    return Err(err(
                        "sidecar.istio.io/componentLogLevel",
                        value,
                        "component:level pairs separated by commas, e.g. misc:error,rbac:debug",
                    ));
                }
                o.component_log_level = Some(value.to_owned());
            }
            "sidecar.istio.io/interceptionMode" => {
                let Some(mode) = InterceptionMode::parse(value) else {
                    return Err(err(
                        "sidecar.istio.io/interceptionMode",
                        value,
                        "REDIRECT, TPROXY or NONE",
                    ));
                };
                o.interception_mode = Some(mode);
            }
            "sidecar.istio.io/rewriteAppHTTPProbers" => {
                o.rewrite_probes =
                    crate::core::labels::parse_inject_flag(value).ok_or_else(|| {
                        err(
                            "sidecar.istio.io/rewriteAppHTTPProbers",
                            value,
                            "true or false",
                        )
                    })?;
            }
            "sidecar.istio.io/userVolume" => {
                o.user_volumes = json_map("sidecar.istio.io/userVolume", value)?
            }
            "sidecar.istio.io/userVolumeMount" => {
                o.user_mounts = json_map("sidecar.istio.io/userVolumeMount", value)?
            }
            "traffic.sidecar.istio.io/includeOutboundIPRanges" => {
                o.include_outbound_ip_ranges = Some(cidrs(
                    "traffic.sidecar.istio.io/includeOutboundIPRanges",
                    value,
                    true,
                )?)
            }
            "traffic.sidecar.istio.io/excludeOutboundIPRanges" => {
                o.exclude_outbound_ip_ranges = Some(cidrs(
                    "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                    value,
                    false,
                )?)
            }
            "traffic.sidecar.istio.io/includeInboundPorts" => {
                o.include_inbound_ports = Some(ports(
                    "traffic.sidecar.istio.io/includeInboundPorts",
                    value,
                    true,
                )?)
            }
            "traffic.sidecar.istio.io/excludeInboundPorts" => {
                o.exclude_inbound_ports = Some(ports(
                    "traffic.sidecar.istio.io/excludeInboundPorts",
                    value,
                    false,
                )?)
            }
            "traffic.sidecar.istio.io/excludeOutboundPorts" => {
                o.exclude_outbound_ports = Some(ports(
                    "traffic.sidecar.istio.io/excludeOutboundPorts",
                    value,
                    false,
                )?)
            }
            "traffic.sidecar.istio.io/kubevirtInterfaces" => {
                o.kubevirt_interfaces = Some(value.to_owned())
            }
            "proxy.istio.io/config" => o.proxy_config = Some(cached_proxy_config(value)?),
            "status.sidecar.istio.io/port" => {
                o.status_port = value.trim().parse().map_err(|_| {
                    err(
                        "status.sidecar.istio.io/port",
                        value,
                        "a port number (0 disables)",
                    )
                })?;
            }
            "readiness.status.sidecar.istio.io/initialDelaySeconds" => {
                o.readiness_initial_delay = Some(parse_u32(
                    "readiness.status.sidecar.istio.io/initialDelaySeconds",
                    value,
                )?)
            }
            "readiness.status.sidecar.istio.io/periodSeconds" => {
                o.readiness_period = Some(parse_u32(
                    "readiness.status.sidecar.istio.io/periodSeconds",
                    value,
                )?)
            }
            "readiness.status.sidecar.istio.io/failureThreshold" => {
                o.readiness_failure_threshold = Some(parse_u32(
                    "readiness.status.sidecar.istio.io/failureThreshold",
                    value,
                )?)
            }
            _ => {}
        }
    }
    if let Some(variant) = image_type {
        let base = o
            .image
            .clone()
            .unwrap_or_else(|| revision.proxy_image.clone());
        o.image = Some(with_variant(&base, variant));
    }
    Ok(o)
}

fn quantity(annotation: &'static str, value: &str) -> Result<String, OverrideError> {
    if is_quantity(value.trim()) {
        Ok(value.trim().to_owned())
    } else {
        Err(err(
            annotation,
            value,
            "a Kubernetes quantity such as 100m, 0.5, 2 or 128Mi",
        ))
    }
}

fn log_level(annotation: &'static str, value: &str) -> Result<String, OverrideError> {
    if LOG_LEVELS.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(err(
            annotation,
            value,
            "one of trace, debug, info, warning, error, critical, off",
        ))
    }
}

fn cidrs(annotation: &'static str, value: &str, star: bool) -> Result<String, OverrideError> {
    if is_list(value, star, is_cidr) {
        Ok(value.to_owned())
    } else {
        Err(err(
            annotation,
            value,
            "a comma-separated list of CIDRs such as 10.0.0.0/8 (or *)",
        ))
    }
}

fn ports(annotation: &'static str, value: &str, star: bool) -> Result<String, OverrideError> {
    if is_list(value, star, is_port) {
        Ok(value.to_owned())
    } else {
        Err(err(
            annotation,
            value,
            "a comma-separated list of ports such as 8080,9090 (or *)",
        ))
    }
}

/// istiod's rule: a value with a `/` is a full image; a bare name is combined with the
/// revision's hub and tag.
pub fn proxy_image(value: &str, revision_image: &str) -> String {
    if value.contains('/') {
        return value.to_owned();
    }
    let (repo, tag) = split_image(revision_image);
    let hub = repo.rsplit_once('/').map_or("", |(hub, _)| hub);
    match (hub.is_empty(), tag) {
        (true, Some(tag)) => format!("{value}:{tag}"),
        (true, None) => value.to_owned(),
        (false, Some(tag)) => format!("{hub}/{value}:{tag}"),
        (false, None) => format!("{hub}/{value}"),
    }
}

fn split_image(image: &str) -> (&str, Option<&str>) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, None),
    }
}

/// Replaces an image tag's variant suffix (`-distroless`, `-debug`) with `variant`.
fn with_variant(image: &str, variant: &str) -> String {
    let (repo, tag) = split_image(image);
    let Some(tag) = tag else {
        return image.to_owned();
    };
    let base = tag
        .strip_suffix("-distroless")
        .or_else(|| tag.strip_suffix("-debug"))
        .unwrap_or(tag);
    if variant == "default" {
        format!("{repo}:{base}")
    } else {
        format!("{repo}:{base}-{variant}")
    }
}

/// The proxy container's resources with overrides applied.
pub fn resources(o: &Overrides, rev: &Revision) -> Option<Value> {
    if o.cpu.is_none() && o.memory.is_none() && o.cpu_limit.is_none() && o.memory_limit.is_none() {
        return None;
    }
    let p = &rev.proxy;
    Some(json!({
        "limits": {"cpu": o.cpu_limit.as_deref().unwrap_or(&p.cpu_limit), "memory": o.memory_limit.as_deref().unwrap_or(&p.memory_limit)},
        "requests": {"cpu": o.cpu.as_deref().unwrap_or(&p.cpu_request), "memory": o.memory.as_deref().unwrap_or(&p.memory_request)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pod::PodIn;
    use crate::core::revisions::MeshSettings;

    fn rev() -> Revision {
        Revision::new(
            "r",
            "docker.io/istio/proxyv2:1.23.0-distroless",
            &MeshSettings::default(),
        )
    }

    fn parse_ann(pairs: &[(&str, &str)]) -> Result<Overrides, OverrideError> {
        let ann: Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let raw = json!({"metadata": {"annotations": ann}}).to_string();
        let pod = PodIn::parse(&raw).expect("pod");
        parse(pod.meta(), &rev())
    }

    #[test]
    fn quantities() {
        for ok in ["100m", "0.5", "2", "128Mi", "1e3", "1G", ".5", "+1"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["lots", "", "1.2.3", "10mb", "m", "1e", "Mi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_annotation_and_the_accepted_form() {
        let e = parse_ann(&[("sidecar.istio.io/proxyCPU", "lots")]).expect_err("bad cpu");
        assert_eq!(
            e.to_string(),
            "annotation sidecar.istio.io/proxyCPU=\"lots\" is invalid: expected a Kubernetes quantity such as 100m, 0.5, 2 or 128Mi"
        );
        for (k, v) in [
            ("sidecar.istio.io/logLevel", "loud"),
            ("sidecar.istio.io/interceptionMode", "MAGIC"),
            (
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/99",
            ),
            ("traffic.sidecar.istio.io/excludeInboundPorts", "80,http"),
            ("proxy.istio.io/config", "[1, 2]"),
            ("sidecar.istio.io/userVolume", "{\"v\": 1}"),
            ("status.sidecar.istio.io/port", "-1"),
            ("sidecar.istio.io/componentLogLevel", "misc"),
        ] {
            let e = parse_ann(&[(k, v)]).expect_err(k);
            assert_eq!(e.annotation, k);
        }
    }

    #[test]
    fn yaml_proxy_config_is_bounded_json_is_not() {
        let shallow = format!("a: {}1{}", "[".repeat(16), "]".repeat(16));
        assert!(yaml_is_bounded(&shallow));
        assert!(
            parse_proxy_config(&shallow).is_ok(),
            "16 deep is read as YAML"
        );
        let deep = format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        let e = parse_proxy_config(&deep).expect_err("too deep for YAML");
        assert!(e.expected.contains("at most 16 deep"), "{}", e.expected);
        let long = format!("concurrency: 2\n{}", "# padding\n".repeat(2000));
        let e = parse_proxy_config(&long).expect_err("too long for YAML");
        assert!(e.expected.contains("16 KiB"), "{}", e.expected);
        // The same size as JSON is read whatever its length.
        let json = format!(
            "{{\"concurrency\": 2, \"proxyMetadata\": {{\"A\": \"{}\"}}}}",
            "x".repeat(20_000)
        );
        assert_eq!(
            parse_proxy_config(&json).expect("json").concurrency,
            Some(2)
        );
    }

    #[test]
    fn values_are_read() {
        let o = parse_ann(&[
            ("sidecar.istio.io/proxyCPU", "50m"),
            (
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/8, 172.16.0.0/12",
            ),
            ("traffic.sidecar.istio.io/includeInboundPorts", "*"),
            (
                "proxy.istio.io/config",
                "holdApplicationUntilProxyStarts: true\nconcurrency: 2\nproxyMetadata: {A: b}",
            ),
            ("sidecar.istio.io/rewriteAppHTTPProbers", "false"),
        ])
        .expect("valid");
        assert_eq!(o.cpu.as_deref(), Some("50m"));
        assert!(!o.rewrite_probes);
        let pc = o.proxy_config.clone().expect("proxy config");
        assert!(pc.hold_application);
        assert_eq!(pc.concurrency, Some(2));
        assert_eq!(pc.metadata, vec![("A".to_owned(), "b".to_owned())]);
        assert!(o.changes_traffic());
    }

    #[test]
    fn images_follow_istiod_rules() {
        assert_eq!(
            proxy_image("example.com/p:1", "docker.io/istio/proxyv2:1.23.0"),
            "example.com/p:1"
        );
        assert_eq!(
            proxy_image("proxyTest", "docker.io/istio/proxyv2:1.23.0"),
            "docker.io/istio/proxyTest:1.23.0"
        );
        assert_eq!(
            with_variant("docker.io/istio/proxyv2:1.23.0-distroless", "debug"),
            "docker.io/istio/proxyv2:1.23.0-debug"
        );
        assert_eq!(
            with_variant("localhost:5000/proxyv2:1.23.0", "distroless"),
            "localhost:5000/proxyv2:1.23.0-distroless"
        );
        assert_eq!(
            with_variant("docker.io/istio/proxyv2:1.23.0-debug", "default"),
            "docker.io/istio/proxyv2:1.23.0"
        );
        let o = parse_ann(&[("sidecar.istio.io/proxyImageType", "debug")]).expect("valid");
        assert_eq!(
            o.image.as_deref(),
            Some("docker.io/istio/proxyv2:1.23.0-debug")
        );
    }
}
