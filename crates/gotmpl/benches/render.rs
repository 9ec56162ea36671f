//! Rendering the newest stock sidecar templates (1.29 and master) over `inject/hello.yaml`'s
//! pod with the chart's default values, as revhook does per admitted pod. Needs
//! `../shared/reference` beside the repository; without it there is nothing to measure.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use gotmpl::{from_json, istio, FuncMap, Template};
use std::path::Path;
use std::sync::Arc;

fn bench_render(c: &mut Criterion) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    if !reference.is_dir() {
        eprintln!("{} missing: nothing to bench", reference.display());
        return;
    }
    let mut funcs = FuncMap::istio();
    funcs.set_proxy_config_defaults(from_json(
        &support::default_proxy_config(),
        &istio::proxy_config(),
    ));
    let funcs = Arc::new(funcs);
    for version in ["istio-1.29.0", "istio-master"] {
        let dir = reference.join(version);
        let Ok(src) = std::fs::read_to_string(dir.join("chart/files/injection-template.yaml"))
        else {
            continue;
        };
        let data = support::template_data(
            support::minor_of(&dir),
            &support::hello_deployment(&dir),
            &support::chart_values(&dir),
            &support::default_mesh(),
            false,
        );
        let t = Template::parse("inject", &src, &funcs).expect("stock template parses");
        let out = t.render(&data).expect("stock template renders");
        eprintln!(
            "{version}: {} bytes of output; fastest of 200 batches of 50 renders: {:.1} µs per render",
            out.len(),
            fastest_batch(&t, &data)
        );
        c.bench_function(&format!("render sidecar {version}"), |b| {
            b.iter(|| t.render(std::hint::black_box(&data)).map(|s| s.len()))
        });
        c.bench_function(&format!("parse sidecar {version}"), |b| {
            b.iter(|| Template::parse("inject", std::hint::black_box(&src), &funcs).is_ok())
        });
    }
}

/// The best per-render time over many short batches: on a shared, loaded machine the
/// minimum is a steadier figure than criterion's mean.
fn fastest_batch(t: &Template, data: &gotmpl::Value) -> f64 {
    (0..200)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..50 {
                std::hint::black_box(t.render(std::hint::black_box(data)).map(|s| s.len()).ok());
            }
            start.elapsed().as_secs_f64() * 1e6 / 50.0
        })
        .fold(f64::INFINITY, f64::min)
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
