//! A borrowed view of the parts of a Pod that the decision and the patch need.
//!
//! Everything else in the object is skipped by serde without building values, which is most
//! of the cost of an AdmissionReview (see DESIGN.md, "What fast means here").

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Label or annotation map kept as a vector of borrowed pairs: pods carry a handful of keys,
/// a linear scan beats hashing. Values stay raw JSON until read, so a large escaped value
/// nobody asks for (`kubectl.kubernetes.io/last-applied-configuration`) is never unescaped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StringMap<'a>(pub Vec<(Cow<'a, str>, LazyStr<'a>)>);

/// A JSON string value, unescaped on first read (borrowed as is when it holds no escapes).
#[derive(Debug, Clone, Default)]
pub struct LazyStr<'a> {
    /// The JSON string literal, quotes included.
    raw: &'a str,
    decoded: std::sync::OnceLock<String>,
}

impl<'a> LazyStr<'a> {
    pub fn get(&self) -> &str {
        let inner = self
            .raw
            .get(1..self.raw.len().saturating_sub(1))
            .unwrap_or_default();
        if !inner.contains('\\') {
            return inner;
        }
        // The literal was validated by the parser; a failure here can only mean a lone
        // surrogate escape, which reads as empty rather than failing the request.
        self.decoded
            .get_or_init(|| serde_json::from_str(self.raw).unwrap_or_default())
    }
}

impl LazyStr<'_> {
    /// The length of the literal's text as sent, escapes included: never shorter than the
    /// value, so a bound that holds for it holds for the value, without unescaping anything.
    fn escaped_len(&self) -> usize {
        self.raw.len().saturating_sub(2)
    }

    /// The value's length when it is longer than `limit` (unescaped only then).
    pub fn len_over(&self, limit: usize) -> Option<usize> {
        if self.escaped_len() <= limit {
            return None;
        }
        let len = self.get().len();
        (len > limit).then_some(len)
    }
}

impl PartialEq for LazyStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for LazyStr<'_> {}

impl<'a> StringMap<'a> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StringMap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MapVisitor<'a> {
            type Value = StringMap<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringMap::default())
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((k, v)) = map.next_entry::<BorrowedStr<'a>, &'a RawValue>()? {
                    if !v.get().starts_with('"') {
                        return Err(serde::de::Error::invalid_type(
                            serde::de::Unexpected::Other(v.get()),
                            &"a string value",
                        ));
                    }
                    pairs.push((
                        k.0,
                        LazyStr {
                            raw: v.get(),
                            decoded: std::sync::OnceLock::new(),
                        },
                    ));
                }
                Ok(StringMap(pairs))
            }
        }
        deserializer.deserialize_any(MapVisitor(std::marker::PhantomData))
    }
}

/// For `Option<Cow<str>>` fields: serde borrows a bare `Cow<str>` under `#[serde(borrow)]`,
/// but inside an `Option` it always allocates.
pub(crate) fn borrowed_opt<'de: 'a, 'a, D>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BorrowedStr<'a>>::deserialize(deserializer)?.map(|s| s.0))
}

/// A string borrowed from the input when it holds no escapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct BorrowedStr<'a>(#[serde(borrow)] pub Cow<'a, str>);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIn<'a> {
    #[serde(borrow, default, rename = "metadata")]
    pub metadata_in: Option<MetaIn<'a>>,
    #[serde(borrow, default)]
    pub spec: SpecIn<'a>,
}

static NO_META: MetaIn<'static> = MetaIn {
    name: None,
    generate_name: None,
    namespace: None,
    labels: None,
    annotations: None,
    owner_references: None,
};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaIn<'a> {
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    pub generate_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    pub namespace: Option<Cow<'a, str>>,
    /// `None` when the pod has no `labels` object at all (the patch must create it).
    #[serde(borrow, default)]
    pub labels: Option<StringMap<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<StringMap<'a>>,
    #[serde(borrow, default)]
    pub owner_references: Option<Vec<OwnerRefIn<'a>>>,
}

impl MetaIn<'_> {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref().and_then(|m| m.get(key))
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref().and_then(|m| m.get(key))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRefIn<'a> {
    #[serde(borrow)]
    pub api_version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecIn<'a> {
    #[serde(default)]
    pub host_network: Option<bool>,
    /// `None` when the object has no `containers` array (the patch must create it).
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerIn<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<ContainerIn<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<NamedIn<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerIn<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub ports: Option<Vec<PortIn<'a>>>,
    #[serde(borrow, default)]
    pub liveness_probe: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub readiness_probe: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub startup_probe: Option<&'a RawValue>,
}

impl ContainerIn<'_> {
    pub fn has_probes(&self) -> bool {
        self.liveness_probe.is_some()
            || self.readiness_probe.is_some()
            || self.startup_probe.is_some()
    }
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortIn<'a> {
    #[serde(
        borrow,
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::core::pod::borrowed_opt"
    )]
    pub name: Option<Cow<'a, str>>,
    pub container_port: i32,
    #[serde(
        borrow,
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::core::pod::borrowed_opt"
    )]
    pub protocol: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct NamedIn<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

impl<'a> PodIn<'a> {
    /// Parses the pod from the review's raw `object`.
    pub fn parse(raw: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }

    /// The pod's metadata (an empty one when the object has none).
    pub fn meta(&self) -> &MetaIn<'a> {
        self.metadata_in.as_ref().unwrap_or(&NO_META)
    }

    pub fn containers(&self) -> &[ContainerIn<'a>] {
        self.spec.containers.as_deref().unwrap_or_default()
    }

    pub fn init_containers(&self) -> &[ContainerIn<'a>] {
        self.spec.init_containers.as_deref().unwrap_or_default()
    }

    pub fn volumes(&self) -> &[NamedIn<'a>] {
        self.spec.volumes.as_deref().unwrap_or_default()
    }

    pub fn is_host_network(&self) -> bool {
        self.spec.host_network.unwrap_or(false)
    }

    /// Index of a container by name in `spec.containers`.
    pub fn container_index(&self, name: &str) -> Option<usize> {
        self.containers().iter().position(|c| c.name == name)
    }
}

/// Finds the raw JSON of `spec.containers[i]` (only needed on the rare custom-injection path).
pub fn raw_container(
    pod_raw: &str,
    array: &str,
    index: usize,
) -> Result<serde_json::Value, serde_json::Error> {
    let pod: serde_json::Value = serde_json::from_str(pod_raw)?;
    Ok(pod["spec"][array]
        .get(index)
        .cloned()
        .unwrap_or(serde_json::Value::Null))
}

/// Kubernetes' own bounds on object metadata (apimachinery's validation): larger values
/// would be refused by the API server after admission anyway, and refusing them first keeps
/// every step of judging a pod small.
pub const MAX_NAME_LEN: usize = 253;
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// A qualified key: a DNS-subdomain prefix, `/`, and a 63-character name.
pub const MAX_LABEL_KEY_LEN: usize = 253 + 1 + 63;
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// What in the metadata is larger than Kubernetes allows, if anything.
pub fn oversized(meta: &MetaIn<'_>) -> Option<String> {
    for (field, value) in [
        ("metadata.name", &meta.name),
        ("metadata.generateName", &meta.generate_name),
        ("metadata.namespace", &meta.namespace),
    ] {
        let len = value.as_deref().map_or(0, str::len);
        if len > MAX_NAME_LEN {
            return Some(format!(
                "{field} is {len} bytes; Kubernetes allows at most {MAX_NAME_LEN}"
            ));
        }
    }
    for (key, value) in meta.labels.iter().flat_map(|m| m.0.iter()) {
        if key.len() > MAX_LABEL_KEY_LEN {
            return Some(format!(
                "a label key is {} bytes; Kubernetes allows at most {MAX_LABEL_KEY_LEN}",
                key.len()
            ));
        }
        if let Some(len) = value.len_over(MAX_LABEL_VALUE_LEN) {
            return Some(format!(
                "label {key:.63} has a value of {len} bytes; Kubernetes allows at most {MAX_LABEL_VALUE_LEN}"
            ));
        }
    }
    let entries = || meta.annotations.iter().flat_map(|m| m.0.iter());
    // The escaped lengths bound the total from above: values are unescaped (large
    // `last-applied-configuration` ones especially) only when that bound is exceeded.
    let bound: usize = entries().map(|(k, v)| k.len() + v.escaped_len()).sum();
    if bound <= MAX_ANNOTATIONS_BYTES {
        return None;
    }
    let annotations: usize = entries().map(|(k, v)| k.len() + v.get().len()).sum();
    (annotations > MAX_ANNOTATIONS_BYTES).then(|| {
        format!(
            "annotations total {annotations} bytes; Kubernetes allows at most {MAX_ANNOTATIONS_BYTES}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_what_it_needs_and_borrows() {
        let raw = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"x","a/b":"c"},
            "annotations":{"k":"v\"q"},"managedFields":[{"huge":true}]},
            "spec":{"containers":[{"name":"app","image":"i","ports":[{"containerPort":80,"name":"http"}]}],
            "volumes":[{"name":"v","emptyDir":{}}]}}"#;
        let pod = PodIn::parse(raw).expect("parses");
        assert_eq!(pod.meta().label("a/b"), Some("c"));
        let labels = pod.meta().labels.as_ref().expect("labels");
        assert!(
            labels.0[0].1.decoded.get().is_none(),
            "unescaped values are borrowed as is"
        );
        let annotations = pod.meta().annotations.as_ref().expect("annotations");
        assert!(
            annotations.0[0].1.decoded.get().is_none(),
            "escaped values wait to be read"
        );
        assert_eq!(pod.meta().annotation("k"), Some("v\"q"));
        assert!(annotations.0[0].1.decoded.get().is_some());
        assert_eq!(pod.containers()[0].name, "app");
        assert!(pod.spec.init_containers.is_none());
        assert_eq!(pod.spec.volumes.as_ref().map(Vec::len), Some(1));
        assert!(matches!(pod.meta().name, Some(Cow::Borrowed("p"))));
        let port = &pod.containers()[0].ports.as_ref().expect("ports")[0];
        assert!(matches!(port.name, Some(Cow::Borrowed("http"))));
        let escaped = PodIn::parse(r#"{"metadata":{"namespace":"a\u0062"}}"#).expect("parses");
        assert_eq!(escaped.meta().namespace.as_deref(), Some("ab"));
    }

    #[test]
    fn null_maps_are_empty_and_wrong_types_are_errors() {
        let pod = PodIn::parse(r#"{"metadata":{"labels":null},"spec":{"containers":[]}}"#)
            .expect("null labels");
        assert!(pod.meta().labels.is_none(), "null is as good as absent");
        assert!(PodIn::parse(r#"{"metadata":{"labels":{"a":1}}}"#).is_err());
        assert!(PodIn::parse(r#"{"spec":{"hostNetwork":"yes"}}"#).is_err());
        assert!(PodIn::parse(r#"{"spec":{"containers":[{"image":"no-name"}]}}"#).is_err());
    }

    #[test]
    fn metadata_larger_than_kubernetes_allows_is_named() {
        let pod = |meta: serde_json::Value| serde_json::json!({"metadata": meta}).to_string();
        let ok = pod(
            serde_json::json!({"name": "p", "labels": {"app": "x"}, "annotations": {"a": "b"}}),
        );
        assert_eq!(oversized(PodIn::parse(&ok).expect("pod").meta()), None);
        let cases = [
            (
                serde_json::json!({"name": "n".repeat(254)}),
                "metadata.name is 254 bytes",
            ),
            (
                serde_json::json!({"labels": {"istio.io/rev": "r".repeat(64)}}),
                "label istio.io/rev has a value of 64 bytes",
            ),
            (
                serde_json::json!({"labels": {"k".repeat(318): "v"}}),
                "a label key is 318 bytes",
            ),
            (
                serde_json::json!({"annotations": {"a": "x".repeat(256 * 1024)}}),
                "annotations total 262145 bytes",
            ),
        ];
        for (meta, want) in cases {
            let raw = pod(meta);
            let parsed = PodIn::parse(&raw).expect("pod");
            let got = oversized(parsed.meta()).unwrap_or_default();
            assert!(got.starts_with(want), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn sizes_are_checked_without_unescaping_what_fits() {
        // An escaped last-applied-configuration well under the limit stays raw.
        let big = "{\\\"a\\\":1}".repeat(2_000);
        let raw = format!(
            r#"{{"metadata":{{"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{big}"}}}}}}"#
        );
        let pod = PodIn::parse(&raw).expect("pod");
        assert_eq!(oversized(pod.meta()), None);
        let annotations = pod.meta().annotations.as_ref().expect("annotations");
        assert!(
            annotations.0[0].1.decoded.get().is_none(),
            "unescaped for nothing"
        );
        // A label whose escapes make it long on the wire but 40 bytes as a value is fine.
        let escaped = "\\u0041".repeat(40);
        let raw = format!(r#"{{"metadata":{{"labels":{{"app":"{escaped}"}}}}}}"#);
        assert_eq!(oversized(PodIn::parse(&raw).expect("pod").meta()), None);
    }
}
