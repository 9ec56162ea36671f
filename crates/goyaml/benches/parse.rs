//! Reading what revhook reads on every pod creation: the YAML text of a rendered sidecar
//! template (Istio 1.29's stock template over `inject/hello.yaml`'s pod, rendered with
//! gotmpl) and the first document of `inject/hello.yaml.injected` (an injected pod), with
//! goyaml and, beside it, serde-saphyr (the baseline: a maintained YAML crate, reading into
//! the same `serde_json::Value`) and serde_json on the same document as JSON (a floor).
//! Needs `../shared/reference` beside the repository.
//!
//! `cargo bench -p goyaml --bench parse`

#[path = "../../gotmpl/tests/support/mod.rs"]
mod template_support;

use criterion::{criterion_group, criterion_main, Criterion};
use gotmpl::{from_json, istio, FuncMap, Template};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

/// The sidecar template of `version` rendered for `inject/hello.yaml`'s deployment.
fn rendered_sidecar(dir: &Path) -> Option<String> {
    let src = std::fs::read_to_string(dir.join("chart/files/injection-template.yaml")).ok()?;
    let mut funcs = FuncMap::istio();
    funcs.set_proxy_config_defaults(from_json(
        &template_support::default_proxy_config(),
        &istio::proxy_config(),
    ));
    let data = template_support::template_data(
        template_support::minor_of(dir),
        &template_support::hello_deployment(dir),
        &template_support::chart_values(dir),
        &template_support::default_mesh(),
        false,
    );
    let t = Template::parse("inject", &src, &Arc::new(funcs)).ok()?;
    t.render(&data).ok()
}

/// The first document of a `---` stream, as text.
fn first_document(text: &str) -> String {
    text.split("\n---").next().unwrap_or_default().to_owned()
}

fn bench_parse(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/istio-1.29.0");
    let Ok(injected) = std::fs::read_to_string(dir.join("inject/hello.yaml.injected")) else {
        eprintln!("{} missing: nothing to bench", dir.display());
        return;
    };
    let inputs = [
        (
            "rendered sidecar template",
            rendered_sidecar(&dir).expect("the stock template renders"),
        ),
        ("injected pod", first_document(&injected)),
    ];
    for (name, text) in &inputs {
        let value = goyaml::from_str(text).expect("goyaml reads it");
        let baseline: serde_json::Value =
            serde_saphyr::from_str(text).expect("serde-saphyr reads it");
        let json = serde_json::to_string(&value).unwrap_or_default();
        eprintln!(
            "{name}: {} bytes of YAML ({} as JSON); serde-saphyr reads the same value: {}",
            text.len(),
            json.len(),
            baseline == value
        );
        let mut group = c.benchmark_group(*name);
        group.bench_function("goyaml::from_str", |b| {
            b.iter(|| goyaml::from_str(black_box(text)).map(|v| v.is_object()))
        });
        group.bench_function("serde_saphyr::from_str (baseline)", |b| {
            b.iter(|| {
                serde_saphyr::from_str::<serde_json::Value>(black_box(text)).map(|v| v.is_object())
            })
        });
        group.bench_function("serde_json::from_str on the JSON form", |b| {
            b.iter(|| {
                serde_json::from_str::<serde_json::Value>(black_box(&json)).map(|v| v.is_object())
            })
        });
        group.bench_function("goyaml::to_string", |b| {
            b.iter(|| goyaml::to_string(black_box(&value)).len())
        });
        group.finish();
    }
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
