//! Istio's mesh config (`MeshConfig`) and proxy config (`ProxyConfig`) as protobuf JSON
//! values: the defaults istiod starts from, and how it layers a mesh ConfigMap and a pod's
//! `proxy.istio.io/config` annotation over them.
//!
//! The layering follows istiod's `ApplyMeshConfig` / `MergeProxyConfig`: a field given
//! replaces the default (a nested message as a whole), except that `defaultConfig` is merged
//! field by field into the default proxy config, `proxyMetadata` entries are merged,
//! `extensionProviders` are merged by name, `trustDomainAliases` are the sorted union, and
//! `proxyHeaders` keeps the previous value of each header left empty.

use serde_json::{json, Map, Value};

use super::yaml::{self, YamlError};

/// Why a mesh or proxy config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("not YAML: {0}")]
    Yaml(#[from] YamlError),
    #[error("{what} must be a mapping, found {found}")]
    NotAMapping { what: &'static str, found: String },
    /// A `google.protobuf.Duration` field that Go's `time.ParseDuration` refuses, as istiod's
    /// protobuf JSON reader does (`bad Duration: time: invalid duration "forever"`).
    #[error("{field}: bad Duration: {value} is not a duration such as 5s, 1m30s or 250ms")]
    Duration { field: &'static str, value: String },
}

/// The `ProxyConfig` fields of type `google.protobuf.Duration`.
const PROXY_DURATIONS: [&str; 4] = [
    "drainDuration",
    "discoveryRefreshDelay",
    "terminationDrainDuration",
    "fileFlushInterval",
];

/// `mesh.DefaultProxyConfig()` as protobuf JSON (zero values left out, as protobuf JSON does).
pub fn default_proxy_config() -> Value {
    json!({
        "configPath": "./etc/istio/proxy",
        "binaryPath": "/usr/local/bin/envoy",
        "serviceCluster": "istio-proxy",
        "drainDuration": "45s",
        "terminationDrainDuration": "5s",
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "proxyAdminPort": 15000,
        "controlPlaneAuthPolicy": "MUTUAL_TLS",
        "statNameLength": 189,
        "statusPort": 15020
    })
}

/// `mesh.DefaultMeshConfig()` as protobuf JSON.
pub fn default_mesh_config() -> Value {
    json!({
        "enableTracing": true,
        "protocolDetectionTimeout": "0s",
        "ingressService": "istio-ingressgateway",
        "ingressControllerMode": "STRICT",
        "ingressClass": "istio",
        "trustDomain": "cluster.local",
        "enableAutoMtls": true,
        "outboundTrafficPolicy": {"mode": "ALLOW_ANY"},
        "inboundTrafficPolicy": {"mode": "PASSTHROUGH"},
        "localityLbSetting": {"enabled": true},
        "defaultConfig": default_proxy_config(),
        "rootNamespace": "istio-system",
        "proxyListenPort": 15001,
        "proxyInboundListenPort": 15006,
        "connectTimeout": "10s",
        "defaultServiceExportTo": ["*"],
        "defaultVirtualServiceExportTo": ["*"],
        "defaultDestinationRuleExportTo": ["*"],
        "dnsRefreshRate": "60s",
        "enablePrometheusMerge": true,
        "defaultProviders": {},
        "extensionProviders": [
            {"name": "prometheus", "prometheus": {}},
            {"name": "stackdriver", "stackdriver": {}},
            {"name": "envoy", "envoyFileAccessLog": {"path": "/dev/stdout"}}
        ]
    })
}

/// The mapping a YAML text holds; an empty text is an empty mapping.
fn mapping(text: &str, what: &'static str) -> Result<Map<String, Value>, MeshError> {
    match yaml::parse(text)? {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        other => Err(MeshError::NotAMapping {
            what,
            found: kind_of(&other).to_owned(),
        }),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `ApplyMeshConfig(text, base)`: a mesh config YAML layered over `base` (itself the defaults
/// or an earlier layer, as AKS layers `istio-shared-configmap-<rev>` over the add-on's).
pub fn apply_mesh_config(text: &str, base: &Value) -> Result<Value, MeshError> {
    let given = mapping(text, "mesh config")?;
    let mut mesh = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (key, value) in &given {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "defaultConfig" => {}
            "defaultProviders" => {
                let merged = replace_fields(mesh.get(key), value);
                mesh.insert(key.clone(), merged);
            }
            "extensionProviders" => {
                let merged = merge_providers(mesh.get(key), value);
                mesh.insert(key.clone(), merged);
            }
            "trustDomainAliases" => {
                let merged = sorted_union(mesh.get(key), value);
                mesh.insert(key.clone(), merged);
            }
            _ => {
                mesh.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(pc) = given.get("defaultConfig").filter(|v| !v.is_null()) {
        let Value::Object(pc) = pc else {
            return Err(MeshError::NotAMapping {
                what: "defaultConfig",
                found: kind_of(pc).to_owned(),
            });
        };
        let mut pc = pc.clone();
        canonical_durations(&mut pc)?;
        let base_pc = mesh.get("defaultConfig").cloned().unwrap_or(Value::Null);
        mesh.insert("defaultConfig".into(), merge_proxy_fields(&base_pc, &pc));
    }
    Ok(Value::Object(mesh))
}

/// `MergeProxyConfig(text, base)`: a `proxy.istio.io/config` annotation (YAML or JSON) over
/// a proxy config.
pub fn merge_proxy_config(text: &str, base: &Value) -> Result<Value, MeshError> {
    let mut given = mapping(text, "proxy config")?;
    canonical_durations(&mut given)?;
    Ok(merge_proxy_fields(base, &given))
}

/// Reads a proxy config's durations as istiod's protobuf JSON reader does (Go's
/// `time.ParseDuration`: `1m30s`, `250ms`, `1.5h`) and writes them as its writer does
/// (`90s`, `0.250s`, `5400s`), so `PROXY_CONFIG` says what istiod's says; a value Go refuses
/// is an error, as it is for istiod.
fn canonical_durations(pc: &mut Map<String, Value>) -> Result<(), MeshError> {
    for field in PROXY_DURATIONS {
        let Some(value) = pc.get_mut(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let nanos = value.as_str().and_then(go_duration_nanos);
        let Some(nanos) = nanos else {
            return Err(MeshError::Duration {
                field,
                value: value.to_string(),
            });
        };
        *value = Value::String(proto_duration(nanos));
    }
    Ok(())
}

/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers each with a
/// unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), or a bare `0`; `None` where Go errs
/// (no unit, an unknown unit, beyond ±292 years).
fn go_duration_nanos(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = duration_term(rest)?;
        total = total.checked_add(nanos)?;
        if total > 1u128 << 63 {
            return None;
        }
        rest = after;
    }
    let total = i128::try_from(total).ok()?;
    i64::try_from(if negative { -total } else { total }).ok()
}

/// One `<digits>[.<digits>]<unit>` term of a Go duration in nanoseconds (the fraction
/// truncated toward zero, as Go does), and the text after it.
fn duration_term(text: &str) -> Option<(u128, &str)> {
    let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (whole, after) = text.split_at(digits(text));
    let (fraction, after) = match after.strip_prefix('.') {
        Some(f) => f.split_at(digits(f)),
        None => ("", after),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let unit_len = after
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(after.len());
    let (unit, after) = after.split_at(unit_len);
    let scale: u128 = match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // 18 digits are finer than a nanosecond even in hours, and keep the product in a u128.
    let (frac, divisor) = fraction.bytes().take(18).fold((0u128, 1u128), |(f, d), b| {
        (f * 10 + u128::from(b - b'0'), d * 10)
    });
    let nanos = whole
        .checked_mul(scale)?
        .checked_add(frac * scale / divisor)?;
    Some((nanos, after))
}

/// A duration as protobuf JSON writes it: seconds, with 3, 6 or 9 fraction digits when
/// needed, and an `s` (`90s`, `0.250s`, `-1.000000500s`).
fn proto_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (secs, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    let mut out = format!("{sign}{secs}.{frac:09}");
    for _ in 0..2 {
        if let Some(shorter) = out.strip_suffix("000") {
            out.truncate(shorter.len());
        }
    }
    if let Some(shorter) = out.strip_suffix(".000") {
        out.truncate(shorter.len());
    }
    out + "s"
}

fn merge_proxy_fields(base: &Value, given: &Map<String, Value>) -> Value {
    let mut pc = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let old_metadata = pc.get("proxyMetadata").cloned();
    let old_headers = pc.get("proxyHeaders").cloned();
    for (key, value) in given {
        if value.is_null() {
            continue;
        }
        pc.insert(key.clone(), value.clone());
    }
    if let (Some(Value::Object(old)), Some(Value::Object(new))) =
        (&old_metadata, given.get("proxyMetadata"))
    {
        let mut merged = old.clone();
        merged.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
        pc.insert("proxyMetadata".into(), Value::Object(merged));
    }
    if let (Some(Value::Object(old)), Some(Value::Object(new))) =
        (&old_headers, pc.get_mut("proxyHeaders"))
    {
        for (k, v) in old {
            let empty = new.get(k).is_none_or(is_empty_header);
            if empty {
                new.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(pc)
}

/// A proxy header setting left unset (`ptr.NonEmptyOrDefault` keeps the old one then).
fn is_empty_header(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn replace_fields(base: Option<&Value>, given: &Value) -> Value {
    match (base, given) {
        (Some(Value::Object(b)), Value::Object(g)) => {
            let mut out = b.clone();
            out.extend(g.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(out)
        }
        _ => given.clone(),
    }
}

/// Extension providers: one of the same name is replaced in place, new ones are appended.
fn merge_providers(base: Option<&Value>, given: &Value) -> Value {
    let mut out: Vec<Value> = match base {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let Value::Array(new) = given else {
        return given.clone();
    };
    for p in new {
        let name = p.get("name");
        match out.iter_mut().find(|e| e.get("name") == name) {
            Some(existing) => *existing = p.clone(),
            None => out.push(p.clone()),
        }
    }
    Value::Array(out)
}

fn sorted_union(base: Option<&Value>, given: &Value) -> Value {
    let mut all: Vec<String> = [base, Some(given)]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    all.sort();
    all.dedup();
    Value::Array(all.into_iter().map(Value::String).collect())
}

/// istiod's `InboundTrafficPolicyMode`: `localhost` or `passthrough`.
pub fn inbound_traffic_policy_mode(mesh: &Value) -> &'static str {
    match mesh["inboundTrafficPolicy"]["mode"].as_str() {
        Some("LOCALHOST") => "localhost",
        _ => "passthrough",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `time.ParseDuration` accepts these and istiod's protobuf JSON writes them back as
    /// the right-hand side (checked with Go: `jsonpb` over `meshconfig.ProxyConfig`).
    #[test]
    fn durations_are_read_as_go_reads_them_and_written_as_protobuf_json() {
        for (given, written) in [
            ("45s", "45s"),
            ("1m30s", "90s"),
            ("1.5h", "5400s"),
            ("250ms", "0.250s"),
            ("1.000000500s", "1.000000500s"),
            ("2us", "0.000002s"),
            ("3µs", "0.000003s"),
            ("0", "0s"),
            ("-1.5s", "-1.500s"),
            ("+5m", "300s"),
            ("1h1m1s1ms1us1ns", "3661.001001001s"),
            (".5s", "0.500s"),
            ("1.s", "1s"),
        ] {
            let nanos = go_duration_nanos(given).unwrap_or_else(|| panic!("{given} is valid"));
            assert_eq!(proto_duration(nanos), written, "{given}");
        }
        for bad in [
            "",
            "forever",
            "5",
            "1x",
            "s",
            ".s",
            "-",
            "1.5",
            "9999999999h",
            "1h 2m",
            "--1s",
        ] {
            assert_eq!(go_duration_nanos(bad), None, "{bad:?} is refused by Go");
        }
    }

    #[test]
    fn a_proxy_config_duration_go_refuses_is_an_error_and_a_good_one_is_canonical() {
        let base = default_proxy_config();
        let err = merge_proxy_config("drainDuration: forever", &base).expect_err("refused");
        assert!(
            matches!(
                err,
                MeshError::Duration {
                    field: "drainDuration",
                    ..
                }
            ),
            "{err}"
        );
        assert!(merge_proxy_config("terminationDrainDuration: 5", &base).is_err());
        let pc = merge_proxy_config("terminationDrainDuration: 1m", &base).expect("merged");
        assert_eq!(pc["terminationDrainDuration"], "60s");
        let mesh = apply_mesh_config("defaultConfig: {drainDuration: 2m}", &default_mesh_config())
            .expect("mesh");
        assert_eq!(mesh["defaultConfig"]["drainDuration"], "120s");
        assert!(apply_mesh_config(
            "defaultConfig: {drainDuration: soon}",
            &default_mesh_config()
        )
        .is_err());
    }

    #[test]
    fn an_empty_mesh_is_the_defaults() {
        let mesh = apply_mesh_config("", &default_mesh_config()).expect("mesh");
        assert_eq!(mesh, default_mesh_config());
    }

    #[test]
    fn given_fields_replace_and_default_config_merges() {
        let text = "trustDomain: example.org\nrootNamespace: aks-istio-system\n\
                    defaultConfig:\n  discoveryAddress: istiod-asm-1-23.aks-istio-system.svc:15012\n  \
                    proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}\n";
        let mesh = apply_mesh_config(text, &default_mesh_config()).expect("mesh");
        assert_eq!(mesh["trustDomain"], "example.org");
        assert_eq!(mesh["rootNamespace"], "aks-istio-system");
        let pc = &mesh["defaultConfig"];
        assert_eq!(
            pc["discoveryAddress"],
            "istiod-asm-1-23.aks-istio-system.svc:15012"
        );
        assert_eq!(pc["drainDuration"], "45s", "the other defaults stay");
        assert_eq!(pc["proxyMetadata"]["ISTIO_META_DNS_CAPTURE"], "true");
    }

    #[test]
    fn layers_stack_as_on_aks() {
        let base = apply_mesh_config(
            "defaultConfig:\n  proxyMetadata: {A: '1'}\n",
            &default_mesh_config(),
        )
        .expect("base");
        let shared = apply_mesh_config(
            "defaultConfig:\n  proxyMetadata: {B: '2'}\n  holdApplicationUntilProxyStarts: true\n",
            &base,
        )
        .expect("shared");
        let pc = &shared["defaultConfig"];
        assert_eq!(pc["proxyMetadata"], json!({"A": "1", "B": "2"}));
        assert_eq!(pc["holdApplicationUntilProxyStarts"], true);
    }

    #[test]
    fn providers_merge_by_name_and_aliases_union() {
        let text = "extensionProviders:\n- {name: envoy, envoyFileAccessLog: {path: /tmp/log}}\n\
                    - {name: otel, opentelemetry: {service: c}}\ntrustDomainAliases: [b, a]\n";
        let base = apply_mesh_config("trustDomainAliases: [c, a]\n", &default_mesh_config())
            .expect("base");
        let mesh = apply_mesh_config(text, &base).expect("mesh");
        let names: Vec<&str> = mesh["extensionProviders"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["prometheus", "stackdriver", "envoy", "otel"]);
        assert_eq!(
            mesh["extensionProviders"][2]["envoyFileAccessLog"]["path"],
            "/tmp/log"
        );
        assert_eq!(mesh["trustDomainAliases"], json!(["a", "b", "c"]));
    }

    #[test]
    fn proxy_annotation_merges_metadata_and_keeps_unset_headers() {
        let base = json!({
            "proxyMetadata": {"A": "1"},
            "proxyHeaders": {"server": {"disabled": true}, "requestId": {"disabled": true}},
            "concurrency": 2
        });
        let pc = merge_proxy_config(
            "proxyMetadata: {B: '2'}\nproxyHeaders: {server: {value: x}}\nconcurrency: 4\n",
            &base,
        )
        .expect("pc");
        assert_eq!(pc["proxyMetadata"], json!({"A": "1", "B": "2"}));
        assert_eq!(pc["proxyHeaders"]["server"], json!({"value": "x"}));
        assert_eq!(pc["proxyHeaders"]["requestId"], json!({"disabled": true}));
        assert_eq!(pc["concurrency"], 4);
    }

    #[test]
    fn json_annotations_and_bad_shapes() {
        let pc = merge_proxy_config(r#"{"holdApplicationUntilProxyStarts": true}"#, &json!({}))
            .expect("json is yaml");
        assert_eq!(pc["holdApplicationUntilProxyStarts"], true);
        assert!(matches!(
            merge_proxy_config("[1, 2]", &json!({})),
            Err(MeshError::NotAMapping { .. })
        ));
        assert!(matches!(
            apply_mesh_config("defaultConfig: 3", &default_mesh_config()),
            Err(MeshError::NotAMapping { .. })
        ));
    }

    /// A pod's author writes the annotation: 128 KiB of nested `{a: ` or `[` (which libyaml
    /// rescans at every token) is refused at the reader's depth limit, as YAML or as JSON.
    #[test]
    fn hostile_nesting_in_the_annotation_is_refused() {
        for unit in ["{a: ", "[", "{\"a\": "] {
            let text = unit.repeat(128 * 1024 / unit.len());
            match merge_proxy_config(&text, &default_proxy_config()) {
                Err(MeshError::Yaml(e)) => {
                    assert_eq!(
                        e.kind(),
                        super::yaml::YamlErrorKind::TooDeep,
                        "{unit:?}: {e}"
                    )
                }
                other => panic!("{unit:?}: {other:?}"),
            }
        }
    }

    /// YAML 1.1 as Go reads it: `on` is a boolean, `0777` octal.
    #[test]
    fn annotation_scalars_are_read_as_go_reads_them() {
        let pc = merge_proxy_config(
            "holdApplicationUntilProxyStarts: on\nconcurrency: 010\n",
            &json!({}),
        )
        .expect("pc");
        assert_eq!(pc["holdApplicationUntilProxyStarts"], true);
        assert_eq!(pc["concurrency"], 8);
    }

    #[test]
    fn inbound_policy_mode_names() {
        assert_eq!(
            inbound_traffic_policy_mode(&default_mesh_config()),
            "passthrough"
        );
        let m = json!({"inboundTrafficPolicy": {"mode": "LOCALHOST"}});
        assert_eq!(inbound_traffic_policy_mode(&m), "localhost");
    }
}
