//! Strategic merge of a partial pod (`revhook::inject::strategic::merge_pod`): a rendered
//! sidecar overlay on a typical pod (the fixture `sidecar-pod-with-init-and-volumes`), and
//! hostile pods of growing size (n containers with env and ports, half of them in the patch
//! too), whose time per container should stay flat.
//!
//! Run: `cargo bench --bench strategic`

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use revhook::inject::strategic::merge_pod;
use serde_json::{json, Value};

fn fixture(name: &str) -> (Value, Value) {
    let path = format!(
        "{}/tests/fixtures/strategic/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    let case: Value = serde_json::from_str(&text).expect("fixture JSON");
    (case["pod"].clone(), case["patch"].clone())
}

fn containers(names: impl Iterator<Item = usize>) -> Value {
    Value::Array(
        names
            .map(|i| {
                json!({
                    "name": format!("c{i}"),
                    "env": (0..5).map(|e| json!({"name": format!("E{e}"), "value": i})).collect::<Vec<_>>(),
                    "ports": [{"containerPort": 8000 + i}, {"containerPort": 80}],
                })
            })
            .collect(),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("strategic_merge");
    let (pod, patch) = fixture("sidecar-pod-with-init-and-volumes");
    group.bench_function("sidecar_overlay", |b| {
        b.iter_batched(
            || (pod.clone(), patch.clone()),
            |(mut pod, patch)| merge_pod(&mut pod, patch).map(|()| pod),
            BatchSize::SmallInput,
        )
    });
    for n in [100, 1_000, 10_000] {
        let pod = json!({"spec": {"containers": containers(0..n)}});
        let patch = json!({"spec": {"containers": containers((0..n).map(|i| 2 * i))}});
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("containers", n), &n, |b, _| {
            b.iter_batched(
                || (pod.clone(), patch.clone()),
                |(mut pod, patch)| merge_pod(&mut pod, patch).map(|()| pod),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
