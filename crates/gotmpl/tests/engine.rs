//! Engine behaviour that the Go-checked snippet corpus cannot show: error positions and
//! kinds, limits against hostile templates, struct-like data, caller functions, sharing.

use gotmpl::{
    any_from_json, from_json, istio, ExecErrorKind, FuncMap, Limits, Schema, Template, Value,
};
use serde_json::json;
use std::sync::Arc;

fn funcs() -> Arc<FuncMap> {
    Arc::new(FuncMap::istio())
}

fn render(src: &str, data: &Value) -> Result<String, String> {
    let t = Template::parse("inject", src, &funcs()).map_err(|e| e.to_string())?;
    t.render(data).map_err(|e| e.to_string())
}

fn any(j: serde_json::Value) -> Value {
    any_from_json(&j)
}

#[test]
fn parse_errors_name_template_line_column_and_cause() {
    let e = Template::parse("sidecar", "ok\n  {{ nope 1 }}", &funcs()).unwrap_err();
    assert_eq!((e.template.as_str(), e.line, e.col), ("sidecar", 2, 6));
    assert_eq!(e.msg, "function \"nope\" not defined");
    assert_eq!(
        e.to_string(),
        "template: sidecar:2:6: function \"nope\" not defined"
    );

    let e = Template::parse("t", "{{ if }}{{ end }}", &funcs()).unwrap_err();
    assert_eq!(e.msg, "missing value for if");
    let e = Template::parse("t", "{{ .A = 1 }}", &funcs()).unwrap_err();
    assert!(e.msg.contains("unexpected \"=\""), "{e}");
    let e = Template::parse(
        "t",
        "{{ if .A }}\n{{ else }}\n{{ else }}{{ end }}",
        &funcs(),
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn exec_errors_name_line_and_construct() {
    let t = Template::parse("sidecar", "a\nb\n  {{ index .l 5 }}", &funcs()).unwrap();
    let e = t.render(&any(json!({"l": [1]}))).unwrap_err();
    assert_eq!((e.template.as_str(), e.line, e.col), ("sidecar", 3, 6));
    assert_eq!(e.construct, "index .l 5");
    assert_eq!(
        e.kind,
        ExecErrorKind::Func {
            func: "index".into(),
            msg: "index out of range: 5".into()
        }
    );
}

#[test]
fn output_limit_stops_a_render() {
    let t = Template::parse("t", "{{ range .l }}0123456789{{ end }}", &funcs()).unwrap();
    let data = any(json!({"l": vec![0; 100]}));
    let limits = Limits {
        max_output: 500,
        ..Limits::default()
    };
    let e = t.render_with(&data, limits).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::OutputLimit(500));
    assert_eq!(t.render(&data).unwrap().len(), 1000);
}

#[test]
fn functions_cannot_build_strings_beyond_the_limit() {
    let t = Template::parse("t", "{{ \"a\\nb\" | nindent 100000000 }}", &funcs()).unwrap();
    let e = t.render(&Value::Nil).unwrap_err();
    assert!(
        matches!(e.kind, ExecErrorKind::Func { ref func, .. } if func == "nindent"),
        "{e}"
    );
}

#[test]
fn iteration_limit_stops_nested_ranges() {
    let src = "{{ range .l }}{{ range $.l }}{{ range $.l }}{{ end }}{{ end }}{{ end }}";
    let t = Template::parse("t", src, &funcs()).unwrap();
    let data = any(json!({"l": vec![0; 1000]}));
    let e = t.render(&data).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::IterationLimit(1_000_000));
}

#[test]
fn endless_template_recursion_hits_the_depth_limit() {
    let src = r#"{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}"#;
    let t = Template::parse("t", src, &funcs()).unwrap();
    let e = t.render(&Value::Nil).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::DepthLimit(256));
}

#[test]
fn recursion_through_deeply_nested_blocks_is_bounded_too() {
    // Each level nests 150 control structures: the one depth budget counts both, so the
    // stack stays bounded (this runs on a test thread's default stack).
    let open = "{{ if true }}".repeat(150);
    let close = "{{ end }}".repeat(150);
    let src = format!(
        r#"{{{{ define "r" }}}}{open}{{{{ template "r" . }}}}{close}{{{{ end }}}}{{{{ template "r" . }}}}"#
    );
    let t = Template::parse("t", &src, &funcs()).unwrap();
    let e = t.render(&Value::Nil).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::DepthLimit(256));
}

#[test]
fn parse_refuses_absurd_nesting() {
    let src = format!("{}{}", "{{ if true }}".repeat(500), "{{ end }}".repeat(500));
    let e = Template::parse("t", &src, &funcs()).unwrap_err();
    assert!(e.msg.contains("nesting deeper than 200"), "{e}");
    let src = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
    assert!(Template::parse("t", &src, &funcs()).is_err());
}

fn pod_data() -> Value {
    let data = json!({
        "objectMeta": {
            "labels": {"app": "hello"},
            "annotations": {"sidecar.istio.io/proxyCPU": "200m"}
        },
        "spec": {
            "containers": [{
                "name": "hello",
                "image": "hello:1.0",
                "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]
            }]
        },
        "proxyConfig": {
            "discoveryAddress": "istiod:15012",
            "holdApplicationUntilProxyStarts": true,
            "tracing": {"tlsSettings": {"caCertificates": "/etc/certs/ca.pem"}},
            "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}
        },
        "meshConfig": {"trustDomain": "cluster.local"},
        "values": {"global": {"proxy": {"statusPort": 15020, "holdApplicationUntilProxyStarts": false}}},
        "proxyUID": 1337
    });
    from_json(&data, &istio::sidecar_template_data())
}

#[test]
fn structs_resolve_go_field_names_and_zero_values() {
    let d = pod_data();
    let cases = [
        ("{{ .ObjectMeta.Name }}|{{ eq .Spec.ServiceAccountName \"\" }}", "|true"),
        ("{{ (index .Spec.Containers 0).Name }} {{ .ProxyUID }} {{ .ProxyGID }}", "hello 1337 0"),
        ("{{ .ProxyConfig.InterceptionMode.String }} {{ .ProxyConfig.InterceptionMode }}", "REDIRECT REDIRECT"),
        ("{{ .ProxyConfig.GetTracing.GetTlsSettings.GetCaCertificates }}", "/etc/certs/ca.pem"),
        ("{{ directory .ProxyConfig.GetTracing.GetTlsSettings.GetCaCertificates }}", "/etc/certs/"),
        ("{{ .ProxyConfig.HoldApplicationUntilProxyStarts.GetValue }}", "true"),
        ("{{ or .ProxyConfig.HoldApplicationUntilProxyStarts.GetValue .Values.global.proxy.holdApplicationUntilProxyStarts }}", "true"),
        ("[{{ index .ObjectMeta.Annotations \"missing\" }}] [{{ .ObjectMeta.Annotations.missing }}]", "[] [<no value>]"),
        ("{{ .Values.global.proxy.statusPort }} {{ .MeshConfig.ProxyListenPort | default \"15001\" }}", "15020 15001"),
        ("{{ range .Spec.Containers }}{{ range .Ports }}{{ structToJSON . }};{{ end }}{{ end }}",
         r#"{"name":"http","containerPort":80};{"containerPort":53,"protocol":"UDP"};"#),
        ("{{ if .ProxyConfig.ProxyMetadata }}{{ range $k, $v := .ProxyConfig.ProxyMetadata }}{{ $k }}={{ $v }}{{ end }}{{ end }}", "ISTIO_META_DNS_CAPTURE=true"),
        ("{{ .TypeMeta }}", "{ }"),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, &d).unwrap(), want, "{src}");
    }
}

#[test]
fn a_getter_on_an_unset_message_is_nil_not_an_error() {
    let d = from_json(&json!({"proxyConfig": {}}), &istio::sidecar_template_data());
    assert_eq!(
        render(
            "{{ if .ProxyConfig.GetTracing.GetTlsSettings }}set{{ else }}unset{{ end }}",
            &d
        )
        .unwrap(),
        "unset"
    );
}

#[test]
fn getters_of_declared_proto_fields_give_their_zero_value() {
    let d = from_json(
        &json!({"proxyConfig": {"tracing": {"tlsSettings": {"mode": "SIMPLE"}}}}),
        &istio::sidecar_template_data(),
    );
    let src = "[{{ directory .ProxyConfig.GetTracing.GetTlsSettings.GetCaCertificates }}]";
    assert_eq!(render(src, &d).unwrap(), "[]");
}

#[test]
fn field_of_a_scalar_is_an_error() {
    let e = render("{{ .ObjectMeta.Name.Foo }}", &pod_data()).unwrap_err();
    assert!(e.contains("can't evaluate field Foo in type string"), "{e}");
}

#[test]
fn caller_functions_are_called_and_their_errors_reported() {
    let mut f = FuncMap::istio();
    f.insert("required", |args: &[&Value]| match args {
        [msg, Value::Nil] => Err(msg.as_str().unwrap_or("required").to_string()),
        [_, v] => Ok((*v).clone()),
        _ => Err("want 2 args".into()),
    });
    let funcs = Arc::new(f);
    let t = Template::parse("t", r#"{{ required "need a" .a }}"#, &funcs).unwrap();
    assert_eq!(t.render(&any(json!({"a": "x"}))).unwrap(), "x");
    let e = t.render(&any(json!({}))).unwrap_err();
    assert_eq!(
        e.kind,
        ExecErrorKind::Func {
            func: "required".into(),
            msg: "need a".into()
        }
    );
    // Unregistered, the same template does not parse.
    assert!(Template::parse("t", r#"{{ required "x" .a }}"#, &Arc::new(FuncMap::istio())).is_err());
}

#[test]
fn one_template_renders_on_many_threads() {
    let t = Arc::new(
        Template::parse(
            "t",
            "{{ range $i, $v := .l }}{{ $i }}{{ $v | quote }}{{ end }}",
            &funcs(),
        )
        .unwrap(),
    );
    let data = Arc::new(any(json!({"l": ["a", "b"]})));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (t, data) = (Arc::clone(&t), Arc::clone(&data));
            std::thread::spawn(move || t.render(&data).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), r#"0"a"1"b""#);
    }
}

#[test]
fn named_templates_render_alone_and_dollar_is_their_dot() {
    let t = Template::parse("t", r#"{{ define "x" }}{{ $.n }}{{ end }}main"#, &funcs()).unwrap();
    let d = any(json!({"n": "N"}));
    assert_eq!(t.render(&d).unwrap(), "main");
    assert_eq!(t.render_named("x", &d, Limits::default()).unwrap(), "N");
    assert_eq!(t.defined().collect::<Vec<_>>(), vec!["x"]);
}

#[test]
fn schema_any_keeps_json_numbers_as_float64() {
    let v = from_json(&json!({"a": 1}), &Schema::Any);
    let e = render("{{ eq .a 1 }}", &v).unwrap_err();
    assert!(e.contains("incompatible types for comparison"), "{e}");
    assert_eq!(render("{{ eq .a 1.0 }}", &v).unwrap(), "true");
}

#[test]
fn quadratic_append_loops_run_out_of_work_budget() {
    // Each append copies the list: 1e6 iterations would copy 5e11 elements.
    let src = "{{ $x := list }}{{ range 1000000 }}{{ $x = append $x 1 }}{{ end }}{{ len $x }}";
    let t = Template::parse("t", src, &funcs()).unwrap();
    let limits = Limits {
        max_work: 2_000_000,
        ..Limits::default()
    };
    let e = t.render_with(&Value::Nil, limits).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::WorkLimit(2_000_000));
    // The same loop, short, is fine.
    let t = Template::parse("t", &src.replace("1000000", "1000"), &funcs()).unwrap();
    assert_eq!(t.render(&Value::Nil).unwrap(), "1000");
}

#[test]
fn values_cannot_nest_without_bound() {
    let src = "{{ $x := list }}{{ range 100000 }}{{ $x = list $x }}{{ end }}x";
    let t = Template::parse("t", src, &funcs()).unwrap();
    let e = t.render(&Value::Nil).unwrap_err();
    assert!(
        e.to_string().contains("value nested deeper than 256"),
        "{e}"
    );
}

#[test]
fn self_escaping_strings_stop_at_the_output_limit() {
    // Each toJson doubles the backslashes: unbounded, this grows exponentially.
    let src = r#"{{ $x := "\"" }}{{ range 200 }}{{ $x = toJson $x }}{{ end }}{{ len $x }}"#;
    let t = Template::parse("t", src, &funcs()).unwrap();
    let limits = Limits {
        max_output: 1 << 20,
        ..Limits::default()
    };
    let e = t.render_with(&Value::Nil, limits).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::OutputLimit(1 << 20));
}

#[test]
fn printing_a_big_value_stops_at_the_output_limit() {
    let t = Template::parse("t", "é{{ .l }}", &funcs()).unwrap();
    let data = any(json!({"l": vec!["é"; 1000]}));
    let limits = Limits {
        max_output: 101,
        ..Limits::default()
    };
    let e = t.render_with(&data, limits).unwrap_err();
    assert_eq!(e.kind, ExecErrorKind::OutputLimit(101));
}

#[test]
fn functions_cannot_build_huge_lists() {
    for src in [
        "{{ until 100000000 }}",
        r#"{{ splitList "," (repeat 2000000 ",") }}"#,
    ] {
        let e = render(src, &Value::Nil).unwrap_err();
        assert!(e.contains("exceeds the limit of 1000000"), "{src}: {e}");
    }
}

#[test]
fn template_data_has_the_fields_of_its_istio_version() {
    let json = json!({"nativeSidecars": true, "proxyInitImage": "init:1"});
    let old = from_json(&json, &istio::sidecar_template_data_for(26));
    let e = render("{{ .NativeSidecars }}", &old).unwrap_err();
    assert!(
        e.contains("can't evaluate field NativeSidecars in type *inject.SidecarTemplateData"),
        "{e}"
    );
    let v1_27 = from_json(&json, &istio::sidecar_template_data_for(27));
    assert_eq!(render("{{ .NativeSidecars }}", &v1_27).unwrap(), "true");
    assert!(render("{{ .ProxyInitImage }}", &v1_27).is_err());
    let master = from_json(&json, &istio::sidecar_template_data());
    assert_eq!(render("{{ .ProxyInitImage }}", &master).unwrap(), "init:1");
    assert!(render("{{ .TypeMeta.Bogus }}", &master).is_err());
    // Kubernetes and protobuf types are declared in part: other fields read as they come.
    assert_eq!(
        render("[{{ .Spec.NotAField }}]", &master).unwrap(),
        "[<no value>]"
    );
}
