//! Istio's injection function map (`createInjectionFuncmap` in `pkg/kube/inject/template.go`,
//! newest version), written from what each Go function does.

// Every function has the one `BuiltinFn` signature (`&mut Vec`, so that a function can
// move an argument out and the executor can reuse the vector), even where a slice would do.
#![allow(clippy::ptr_arg)]

use super::sprig::{contains, pad_lines};
use super::{
    int_arg, owned, str_arg, str_map_arg, string, want_args, want_at_least, BuiltinFn, Ctx, V,
};
use crate::gofmt::sprint_one;
use crate::json::{to_json, write_json, write_json_string};
use crate::value::{any_from_json, GoMap, MapElem, Value};
use std::collections::BTreeMap;

pub(super) const TABLE: &[(&str, BuiltinFn)] = &[
    ("formatDuration", format_duration),
    ("isset", isset),
    ("excludeInboundPort", exclude_inbound_port),
    ("includeInboundPorts", include_inbound_ports),
    ("kubevirtInterfaces", identity_string),
    ("excludeInterfaces", identity_string),
    ("applicationPorts", application_ports),
    ("annotation", annotation),
    ("valueOrDefault", value_or_default),
    ("toJSON", to_json_str_map),
    ("fromJSON", from_json),
    ("structToJSON", struct_to_json),
    ("protoToJSON", proto_to_json),
    ("toYaml", to_yaml),
    ("indent", indent),
    ("directory", directory),
    ("contains", contains),
    ("toLower", to_lower),
    ("appendMultusNetwork", append_multus_network),
    ("env", env),
    ("omit", omit),
    ("strdict", strdict),
    ("toJsonMap", to_json_map),
    ("mergeMaps", merge_maps),
    ("omitNil", omit_nil),
    ("otelResourceAttributes", otel_resource_attributes),
];

/// A field of a struct-like value (by JSON key) or an entry of a map.
fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Struct(s) => s.get(key),
        Value::Map(m) => m.entries.get(key),
        _ => None,
    }
}

fn get_str<'v>(v: &'v Value, key: &str) -> &'v str {
    get(v, key).and_then(Value::as_str).unwrap_or("")
}

fn list_of(v: &Value) -> &[Value] {
    match v {
        Value::List(items) => items,
        _ => &[],
    }
}

/// `formatDuration d`: Go's `time.Duration.String()` of a protobuf Duration, given as its
/// JSON form (`"1.5s"`) or as `{seconds, nanos}`.
fn format_duration<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let nanos = match &*args[0] {
        Value::Nil => 0,
        Value::String(s) => {
            parse_proto_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))?
        }
        v @ Value::Struct(_) | v @ Value::Map(_) => {
            let num = |k| match get(v, k) {
                Some(Value::Int(i)) => *i as i128,
                Some(Value::Float(f)) => *f as i128,
                _ => 0,
            };
            num("seconds") * 1_000_000_000 + num("nanos")
        }
        other => {
            return Err(format!(
                "wrong type for value; expected *durationpb.Duration; got {}",
                other.type_name()
            ))
        }
    };
    string(go_duration(nanos))
}

fn parse_proto_duration(s: &str) -> Option<i128> {
    let body = s.strip_suffix('s')?;
    let (neg, body) = match body.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() > 9
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i128 = secs.parse().ok()?;
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let total = secs * 1_000_000_000 + nanos;
    Some(if neg { -total } else { total })
}

/// Go's `Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i128) -> String {
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = if u == 0 {
        return "0s".into();
    } else if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs = u / 1_000_000_000;
        let s = frac(u % 60_000_000_000, 9);
        let (h, m) = (secs / 3600, (secs / 60) % 60);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / 10^prec` with the fraction's trailing zeros (and a bare point) left out.
fn frac(v: u128, prec: u32) -> String {
    let p = 10u128.pow(prec);
    let (int, rest) = (v / p, v % p);
    if rest == 0 {
        return int.to_string();
    }
    let digits = format!("{rest:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

fn isset<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let m = str_map_arg(&args[0])?;
    let key = str_arg(&args[1])?;
    owned(Value::Bool(m.is_some_and(|m| m.entries.contains_key(key))))
}

/// `excludeInboundPort port list`: the comma list with `port` added unless present.
fn exclude_inbound_port<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let port = sprint_one(&args[0]).trim().to_string();
    let excluded = str_arg(&args[1])?;
    if port.is_empty() || port == "0" {
        return string(excluded.to_string());
    }
    let mut out: Vec<&str> = Vec::new();
    for p in excluded.split(',') {
        if p == port {
            return string(excluded.to_string());
        }
        let p = p.trim();
        if !p.is_empty() {
            out.push(p);
        }
    }
    out.push(&port);
    string(out.join(","))
}

fn container_ports(containers: &Value, skip_proxy: bool) -> String {
    let mut parts = Vec::new();
    for c in list_of(containers) {
        if skip_proxy && get_str(c, "name") == "istio-proxy" {
            continue;
        }
        for p in get(c, "ports").map(list_of).unwrap_or(&[]) {
            if matches!(get_str(p, "protocol"), "UDP" | "SCTP") {
                continue;
            }
            parts.push(match get(p, "containerPort") {
                Some(v) => sprint_one(v),
                None => "0".into(),
            });
        }
    }
    parts.join(",")
}

fn include_inbound_ports<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(container_ports(&args[0], false))
}

fn application_ports<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(container_ports(&args[0], true))
}

fn identity_string<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    str_arg(&args[0])?;
    Ok(args.swap_remove(0))
}

/// `annotation meta name default`: the pod's annotation, else `fmt.Sprint(default)`.
fn annotation<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 3)?;
    let name = str_arg(&args[1])?;
    let annotations = match &*args[0] {
        Value::Struct(_) => get(&args[0], "annotations"),
        other => {
            return Err(format!(
                "wrong type for value; expected v1.ObjectMeta; got {}",
                other.type_name()
            ))
        }
    };
    match annotations.and_then(|a| get(a, name)) {
        Some(v) => string(sprint_one(v)),
        None => string(sprint_one(&args[2])),
    }
}

/// `valueOrDefault v d`: `d` when `v` is nil or the empty string.
fn value_or_default<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let use_default = match &*args[0] {
        Value::Nil => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    Ok(args.swap_remove(if use_default { 1 } else { 0 }))
}

fn to_json_str_map<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    match str_map_arg(&args[0])? {
        None => string("{}".into()),
        Some(_) => string(to_json(&args[0])),
    }
}

/// `fromJSON s`: the decoded value, or the string `{}` when `s` is not JSON.
fn from_json<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let s = str_arg(&args[0])?;
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(j) => owned(any_from_json(&j)),
        Err(_) => string("{}".into()),
    }
}

fn struct_to_json<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    match &*args[0] {
        Value::Nil => string("{}".into()),
        v => string(to_json(v)),
    }
}

/// The ProxyConfig fields `cleanProxyConfig` drops when they equal the defaults.
const CLEANED_FIELDS: &[&str] = &[
    "configPath",
    "binaryPath",
    "controlPlaneAuthPolicy",
    "serviceCluster",
    "drainDuration",
    "terminationDrainDuration",
    "discoveryAddress",
    "envoyMetricsService",
    "envoyAccessLogService",
    "tracing",
    "proxyAdminPort",
    "statNameLength",
    "statusPort",
    "concurrency",
];

/// `protoToJSON pc`: compact JSON of the proxy config without the fields that equal the
/// defaults the caller registered (`FuncMap::set_proxy_config_defaults`).
fn proto_to_json<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let Value::Struct(pc) = &*args[0] else {
        return match &*args[0] {
            Value::Nil => string("{}".into()),
            other => string(to_json(other)),
        };
    };
    let defaults = ctx.funcs.proxy_config_defaults();
    let dropped = |f: &crate::value::Field| {
        let is_default = CLEANED_FIELDS.contains(&f.key())
            && defaults
                .and_then(|d| get(d, f.key()))
                .is_some_and(|d| *d == *f.value);
        let empty_metadata = f.key() == "proxyMetadata" && !f.value.is_true();
        is_default || empty_metadata
    };
    // Written field by field rather than from a cleaned copy: this runs once per pod.
    let mut out = String::from("{");
    for f in pc.fields.iter().filter(|f| f.present && !dropped(f)) {
        if out.len() > 1 {
            out.push(',');
        }
        write_json_string(&mut out, f.key());
        out.push(':');
        write_json(&mut out, &f.value);
    }
    out.push('}');
    string(out)
}

fn to_yaml<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    // istiod logs a marshalling failure and renders "".
    string(crate::yaml::to_yaml(&args[0]).unwrap_or_default())
}

/// Istio's `indent n s`: every line but the first gets n spaces.
fn indent<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    string(pad_lines(
        ctx,
        int_arg(&args[0])?,
        str_arg(&args[1])?,
        false,
    )?)
}

/// `directory p`: `path.Split`'s directory part, with its trailing slash.
fn directory<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let p = str_arg(&args[0])?;
    string(p.rfind('/').map_or(String::new(), |i| p[..=i].to_string()))
}

fn to_lower<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(str_arg(&args[0])?.to_lowercase())
}

/// `appendMultusNetwork existing network`: adds the Istio CNI network to a Multus
/// networks annotation (a JSON list or a comma list) unless it is there.
fn append_multus_network<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let existing = str_arg(&args[0])?;
    let network = str_arg(&args[1])?;
    string(multus(existing, network, ctx.funcs.legacy_multus()))
}

fn multus(existing: &str, network: &str, legacy: bool) -> String {
    if existing.is_empty() {
        return network.to_string();
    }
    if let Some(i) = existing.rfind(']') {
        let Ok(serde_json::Value::Array(nets)) = serde_json::from_str(existing) else {
            return existing.to_string();
        };
        let (ns, name) = match network.split_once('/') {
            Some(split) if !legacy => split,
            _ => ("", network),
        };
        let present = nets.iter().any(|n| {
            n.get("name").and_then(|v| v.as_str()) == Some(name)
                && match n.get("namespace") {
                    None | Some(serde_json::Value::Null) => ns.is_empty(),
                    Some(v) => v.as_str() == Some(ns),
                }
        });
        if present {
            return existing.to_string();
        }
        let entry = if ns.is_empty() {
            format!(r#", {{"name": "{name}"}}"#)
        } else {
            format!(r#", {{"name": "{name}", "namespace": "{ns}"}}"#)
        };
        return format!("{}{entry}{}", &existing[..i], &existing[i..]);
    }
    if existing.split(',').any(|n| n.trim() == network) {
        return existing.to_string();
    }
    format!("{existing}, {network}")
}

/// `env key default`: the caller's value for key (see `FuncMap::set_env`), else default.
fn env<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let key = str_arg(&args[0])?;
    str_arg(&args[1])?;
    match ctx.funcs.env(key) {
        Some(v) if !v.is_empty() => string(v.to_string()),
        _ => Ok(args.swap_remove(1)),
    }
}

fn str_map(entries: BTreeMap<String, Value>) -> Value {
    Value::Map(GoMap {
        entries,
        elem: MapElem::String,
    })
}

/// `omit dict keys...`: a copy of a string map without the keys.
fn omit<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    let keys = args[1..]
        .iter()
        .map(|k| str_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let entries = match str_map_arg(&args[0])? {
        None => BTreeMap::new(),
        Some(m) => m
            .entries
            .iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    owned(str_map(entries))
}

/// `strdict k1 v1 ...`: a `map[string]string` (an odd last key maps to "").
fn strdict<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let strs = args
        .iter()
        .map(|k| str_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let entries = strs
        .chunks(2)
        .map(|kv| (kv[0].to_string(), Value::str(*kv.get(1).unwrap_or(&""))))
        .collect();
    owned(str_map(entries))
}

fn merged(args: &[V]) -> Result<Option<Value>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut entries = BTreeMap::new();
    for a in args {
        if let Some(m) = str_map_arg(a)? {
            entries.extend(m.entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok(Some(str_map(entries)))
}

/// `mergeMaps m1 m2 ...`: later maps win; no maps at all is nil.
fn merge_maps<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    owned(merged(args)?.unwrap_or(Value::Nil))
}

fn to_json_map<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    string(to_json(&merged(args)?.unwrap_or(Value::Nil)))
}

/// `omitNil v`: maps and lists with nil entries removed, recursively; a collection left
/// empty by that becomes nil itself.
fn omit_nil<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    if !has_nil(&args[0]) {
        return Ok(args.swap_remove(0));
    }
    owned(strip_nil(&args[0]))
}

fn has_nil(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Map(m) => m.entries.values().any(has_nil),
        Value::List(l) => l.iter().any(has_nil),
        _ => false,
    }
}

fn strip_nil(v: &Value) -> Value {
    if !has_nil(v) {
        return v.clone();
    }
    match v {
        Value::Map(m) => {
            let entries: BTreeMap<String, Value> = m
                .entries
                .iter()
                .map(|(k, v)| (k.clone(), strip_nil(v)))
                .filter(|(_, v)| *v != Value::Nil)
                .collect();
            if entries.is_empty() {
                Value::Nil
            } else {
                Value::Map(GoMap {
                    entries,
                    elem: m.elem,
                })
            }
        }
        Value::List(l) => {
            let items: Vec<Value> = l
                .iter()
                .map(strip_nil)
                .filter(|v| *v != Value::Nil)
                .collect();
            if items.is_empty() {
                Value::Nil
            } else {
                Value::List(items)
            }
        }
        _ => Value::Nil,
    }
}

/// `otelResourceAttributes mesh annotations labels namespace containers`: the
/// OTEL_RESOURCE_ATTRIBUTES value when a tracing provider asks for OTel semantic
/// conventions, else "".
fn otel_resource_attributes<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 5)?;
    let (mesh, annotations, labels, containers) = (&*args[0], &*args[1], &*args[2], &*args[4]);
    let namespace = str_arg(&args[3])?;
    let enabled = get(mesh, "extensionProviders")
        .map(list_of)
        .unwrap_or(&[])
        .iter()
        .any(|ep| {
            get(ep, "opentelemetry")
                .map(|o| get_str(o, "serviceAttributeEnrichment") == "OTEL_SEMANTIC_CONVENTIONS")
                .unwrap_or(false)
        });
    if !enabled {
        return string(String::new());
    }
    fn nonempty<'v>(m: &'v Value, k: &str) -> Option<&'v str> {
        get(m, k).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let mut attrs = Vec::new();
    if let Some(v) = nonempty(annotations, "resource.opentelemetry.io/service.namespace") {
        attrs.push(format!("service.namespace={v}"));
    } else if !namespace.is_empty() {
        attrs.push(format!("service.namespace={namespace}"));
    }
    let containers = list_of(containers);
    if let Some(v) = nonempty(annotations, "resource.opentelemetry.io/service.version") {
        attrs.push(format!("service.version={v}"));
    } else if let Some(v) = nonempty(labels, "app.kubernetes.io/version") {
        attrs.push(format!("service.version={v}"));
    } else if containers.len() == 1 {
        let (tag, digest) = image_tag_digest(get_str(&containers[0], "image"));
        let version = match (tag.is_empty(), digest.is_empty()) {
            (false, false) => format!("{tag}@{digest}"),
            (true, false) => digest.to_string(),
            (false, true) => tag.to_string(),
            (true, true) => String::new(),
        };
        if !version.is_empty() {
            attrs.push(format!("service.version={version}"));
        }
    }
    if let Some(v) = nonempty(annotations, "resource.opentelemetry.io/service.instance.id") {
        attrs.push(format!("service.instance.id={v}"));
    } else if let Some(first) = containers.first() {
        attrs.push(format!(
            "service.instance.id={namespace}.$(POD_NAME).{}",
            get_str(first, "name")
        ));
    }
    string(attrs.join(","))
}

fn image_tag_digest(image: &str) -> (&str, &str) {
    let (image, digest) = match image.find('@') {
        Some(i) => (&image[..i], &image[i + 1..]),
        None => (image, ""),
    };
    let slash = image.rfind('/').map_or(-1, |i| i as i64);
    let tag = match image.rfind(':') {
        Some(c) if c as i64 > slash => &image[c + 1..],
        _ => "",
    };
    (tag, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
        assert_eq!(parse_proto_duration("0.100s"), Some(100_000_000));
    }

    #[test]
    fn multus_networks() {
        for legacy in [false, true] {
            assert_eq!(multus("", "istio-cni", legacy), "istio-cni");
            assert_eq!(multus("a, istio-cni", "istio-cni", legacy), "a, istio-cni");
            assert_eq!(multus("a", "istio-cni", legacy), "a, istio-cni");
            assert_eq!(
                multus(r#"[{"name": "a"}]"#, "istio-cni", legacy),
                r#"[{"name": "a"}, {"name": "istio-cni"}]"#
            );
            assert_eq!(
                multus(r#"[{"name": "istio-cni"}]"#, "istio-cni", legacy),
                r#"[{"name": "istio-cni"}]"#
            );
        }
        // A qualified network: split into name and namespace since Istio 1.26, whole before.
        let existing = r#"[{"name": "a"}]"#;
        assert_eq!(
            multus(existing, "default/istio-cni", false),
            r#"[{"name": "a"}, {"name": "istio-cni", "namespace": "default"}]"#
        );
        assert_eq!(
            multus(existing, "default/istio-cni", true),
            r#"[{"name": "a"}, {"name": "default/istio-cni"}]"#
        );
        let present = r#"[{"name": "istio-cni", "namespace": "default"}]"#;
        assert_eq!(multus(present, "default/istio-cni", false), present);
        assert_eq!(
            multus(present, "default/istio-cni", true),
            r#"[{"name": "istio-cni", "namespace": "default"}, {"name": "default/istio-cni"}]"#
        );
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag_digest("nginx:1.21"), ("1.21", ""));
        assert_eq!(image_tag_digest("registry:5000/nginx"), ("", ""));
        assert_eq!(image_tag_digest("nginx:1@sha256:ab"), ("1", "sha256:ab"));
    }
}
