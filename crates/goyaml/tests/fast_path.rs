//! The fast reader (plain block YAML, one pass) must give what the full reader gives, for
//! every text it takes on: Istio's reference YAML and this repository's, generated texts
//! and their mutations. (The full reader is held to Go in `go_oracle.rs`.)

mod support;

use proptest::prelude::*;

fn same_answer(text: &str) -> bool {
    let full = goyaml::from_str_full(text);
    let ours = goyaml::from_str(text);
    assert_eq!(ours, full, "fast and full readers differ on {text:?}");
    if let Ok(docs) = goyaml::documents(text) {
        if let Ok(v) = &full {
            assert_eq!(
                docs.first().unwrap_or(&serde_json::Value::Null),
                v,
                "{text:?}"
            );
        }
    }
    goyaml::fast_path_reads(text)
}

#[test]
fn reference_yaml_reads_the_same_both_ways() {
    let Some(files) = support::corpus_files() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but ../shared/reference is missing"
        );
        eprintln!("../shared/reference missing: skipping (CI=true makes this a failure)");
        return;
    };
    let mut fast = 0;
    let mut injected_fast = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // The first document alone, as template output comes.
        let first = text.split("\n---\n").next().unwrap_or_default();
        for t in [text.as_str(), first] {
            if same_answer(t) {
                fast += 1;
                if t == first && f.to_string_lossy().ends_with(".injected") {
                    injected_fast += 1;
                }
            }
        }
    }
    eprintln!("{} files; {fast} texts read by the fast path", files.len());
    assert!(
        injected_fast > 500,
        "only {injected_fast} injected pods took the fast path"
    );
}

#[test]
fn edge_cases_read_the_same_both_ways() {
    let fast = support::gen::EDGE_CASES
        .iter()
        .filter(|t| same_answer(t))
        .count();
    assert!(fast > 10, "only {fast} edge cases took the fast path");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn generated_yaml_reads_the_same_both_ways(text in support::gen::yaml_text()) {
        same_answer(&text);
    }

    #[test]
    fn mutated_yaml_reads_the_same_both_ways(text in support::gen::mutated_yaml_text()) {
        same_answer(&text);
    }
}
