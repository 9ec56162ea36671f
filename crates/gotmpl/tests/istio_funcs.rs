//! Istio's injection functions (`createInjectionFuncmap`), each checked against what the Go
//! function in `template.go` returns for the same input.

use gotmpl::{from_json, istio, FuncMap, Schema, Template, Value};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn data() -> Value {
    let schema = Schema::structure(
        "data",
        vec![
            ("A", Schema::map(Schema::String)),
            ("B", Schema::map(Schema::String)),
            ("Meta", istio::object_meta()),
            ("Containers", Schema::list(istio::container())),
            ("Values", Schema::map(Schema::Any)),
            ("PC", istio::proxy_config()),
            ("Mesh", istio::mesh_config()),
        ],
    );
    from_json(
        &json!({
            "a": {"x": "1", "y": "2", "last-applied": "{}"},
            "b": {"y": "20", "z": "30"},
            "meta": {"annotations": {"sidecar.istio.io/logLevel": "debug"}, "labels": {"app.kubernetes.io/version": "v3"}},
            "containers": [
                {"name": "app", "image": "reg:5000/app:1.2@sha256:abc", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 9090, "protocol": "TCP"}]},
                {"name": "istio-proxy", "ports": [{"containerPort": 15090}]}
            ],
            "values": {"port": 15020, "empty": "", "res": {"limits": {"cpu": "2", "memory": 1024}, "requests": {"cpu": "100m"}}, "withNil": {"a": null, "b": {"c": null}, "d": [null, 1]}},
            "pc": {"discoveryAddress": "istiod.istio-system.svc:15012", "statusPort": 15020, "concurrency": 2, "proxyMetadata": {}},
            "mesh": {"extensionProviders": [{"name": "otel", "opentelemetry": {"serviceAttributeEnrichment": "OTEL_SEMANTIC_CONVENTIONS"}}]}
        }),
        &schema,
    )
}

fn funcs() -> Arc<FuncMap> {
    let mut f = FuncMap::istio();
    f.set_env(HashMap::from([
        ("SET".to_string(), "yes".to_string()),
        ("EMPTY".to_string(), String::new()),
    ]));
    f.set_proxy_config_defaults(from_json(
        &json!({"discoveryAddress": "istiod.istio-system.svc:15012", "statusPort": 15020, "proxyAdminPort": 15000}),
        &istio::proxy_config(),
    ));
    Arc::new(f)
}

fn render(src: &str) -> Result<String, String> {
    let t = Template::parse("inject", src, &funcs()).map_err(|e| e.to_string())?;
    t.render(&data()).map_err(|e| e.to_string())
}

fn check(cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(render(src).as_deref(), Ok(*want), "{src}");
    }
}

#[test]
fn maps_of_strings() {
    check(&[
        (
            "{{ isset .A \"x\" }} {{ isset .A \"q\" }} {{ isset .Meta.Labels \"q\" }}",
            "true false false",
        ),
        ("{{ omit .A \"x\" \"last-applied\" }}", "map[y:2]"),
        ("{{ strdict \"k\" \"v\" \"odd\" }}", "map[k:v odd:]"),
        (
            "{{ toJsonMap .A .B }}",
            r#"{"last-applied":"{}","x":"1","y":"20","z":"30"}"#,
        ),
        ("{{ toJsonMap }}", "null"),
        (
            "{{ mergeMaps .A .B }}",
            "map[last-applied:{} x:1 y:20 z:30]",
        ),
        (
            "{{ toJSON .B }} {{ toJSON .Values.nothing }}",
            r#"{"y":"20","z":"30"} {}"#,
        ),
        (
            "{{ toJsonMap (omit .A \"last-applied\") (strdict \"istio.io/rev\" \"default\") }}",
            r#"{"istio.io/rev":"default","x":"1","y":"2"}"#,
        ),
    ]);
}

#[test]
fn string_maps_are_required_where_go_requires_them() {
    let e = render("{{ isset .Values \"port\" }}").unwrap_err();
    assert!(
        e.contains("expected map[string]string; got map[string]interface {}"),
        "{e}"
    );
}

#[test]
fn annotation_and_value_or_default() {
    check(&[
        ("{{ annotation .Meta `sidecar.istio.io/logLevel` \"info\" }}", "debug"),
        ("{{ annotation .Meta `missing` .Values.port }}", "15020"),
        ("{{ annotation .Meta `missing` .Values.nothing }}", "<nil>"),
        ("{{ valueOrDefault .Values.empty \"d\" }} {{ valueOrDefault .Values.nothing \"d\" }} {{ valueOrDefault .Values.port \"d\" }}", "d d 15020"),
        ("{{ valueOrDefault 0 \"d\" }}", "0"),
    ]);
}

#[test]
fn ports() {
    check(&[
        (
            "{{ excludeInboundPort .Values.port \"15090,15021\" }}",
            "15090,15021,15020",
        ),
        (
            "{{ excludeInboundPort 15021 \"15090,15021\" }}",
            "15090,15021",
        ),
        ("{{ excludeInboundPort \"\" \"1, 2\" }}", "1, 2"),
        ("{{ excludeInboundPort \"3\" \" 1, ,2\" }}", "1,2,3"),
        ("{{ excludeInboundPort 0 \"1\" }}", "1"),
        ("{{ includeInboundPorts .Containers }}", "8080,9090,15090"),
        ("{{ applicationPorts .Containers }}", "8080,9090"),
        (
            "{{ kubevirtInterfaces \"eth1\" }} {{ excludeInterfaces \"eth2\" }}",
            "eth1 eth2",
        ),
    ]);
}

#[test]
fn json_and_yaml() {
    check(&[
        ("{{ (fromJSON `{\"a\":[1,\"b\"]}`).a }}", "[1 b]"),
        ("{{ fromJSON `not json` }}", "{}"),
        (
            "{{ range $k, $v := fromJSON `{\"b\":1,\"a\":2}` }}{{ $k }}{{ $v }}{{ end }}",
            "a2b1",
        ),
        (
            "{{ structToJSON .Values.nothing }} {{ structToJSON (index .Containers 0).Ports }}",
            r#"{} [{"containerPort":8080},{"containerPort":53,"protocol":"UDP"},{"containerPort":9090,"protocol":"TCP"}]"#,
        ),
        ("{{ protoToJSON .PC }}", r#"{"concurrency":2}"#),
        (
            "{{ toYaml .Values.res }}",
            "limits:\n  cpu: \"2\"\n  memory: 1024\nrequests:\n  cpu: 100m\n",
        ),
        ("{{ toYaml .Values.nothing }}", "null\n"),
        (
            "{{ toYaml .Values.res | indent 4 }}",
            "limits:\n      cpu: \"2\"\n      memory: 1024\n    requests:\n      cpu: 100m\n    ",
        ),
        ("{{ toYaml (omitNil .Values.withNil) }}", "d:\n- 1\n"),
        (
            "{{ omitNil .Values.res }}",
            "map[limits:map[cpu:2 memory:1024] requests:map[cpu:100m]]",
        ),
    ]);
}

#[test]
fn strings() {
    check(&[
        ("[{{ indent 2 \"a\\nb\\n\" }}]", "[a\n  b\n  ]"),
        ("{{ directory \"/etc/certs/ca.pem\" }}|{{ directory \"ca.pem\" }}|{{ directory \"/\" }}", "/etc/certs/||/"),
        ("{{ contains \"an\" \"banana\" }} {{ contains \"banana\" \"an\" }}", "true false"),
        ("{{ toLower \"AbC\" }}", "abc"),
        ("{{ appendMultusNetwork \"a\" \"istio-cni\" }}", "a, istio-cni"),
        ("{{ formatDuration \"90s\" }} {{ formatDuration \"0.250s\" }}", "1m30s 250ms"),
    ]);
}

#[test]
fn env_reads_only_what_the_caller_gave() {
    check(&[(
        "{{ env \"SET\" \"d\" }} {{ env \"EMPTY\" \"d\" }} {{ env \"PATH\" \"d\" }}",
        "yes d d",
    )]);
}

#[test]
fn otel_resource_attributes() {
    check(&[(
        "{{ otelResourceAttributes .Mesh .Meta.Annotations .Meta.Labels \"ns\" .Containers }}",
        "service.namespace=ns,service.version=v3,service.instance.id=ns.$(POD_NAME).app",
    )]);
    let without =
        r#"{{ otelResourceAttributes .PC .Meta.Annotations .Meta.Labels "ns" .Containers }}|"#;
    assert_eq!(render(without).unwrap(), "|");
}
