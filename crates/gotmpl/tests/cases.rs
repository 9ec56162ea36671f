//! The snippet corpus: every `tests/cases/NAME.tmpl` is rendered over `NAME.json` (read as
//! Go's `encoding/json` would into `interface{}`; no file means nil data) with Go's builtins
//! and sprig (`FuncMap::sprig`, what the oracle uses too), and compared with `NAME.out`, or, when `NAME.err` exists, must fail with
//! an error containing its text. The expectations are Go's own results: the `go_oracle`
//! test checks every one of them against Go's text/template with sprig.

use gotmpl::{any_from_json, FuncMap, Template, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut tmpls: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmpl"))
        .collect();
    tmpls.sort();
    tmpls
}

fn data_for(tmpl: &Path) -> Value {
    match std::fs::read_to_string(tmpl.with_extension("json")) {
        Ok(text) => any_from_json(&serde_json::from_str(&text).unwrap()),
        Err(_) => Value::Nil,
    }
}

fn render(funcs: &Arc<FuncMap>, tmpl: &Path) -> Result<String, String> {
    let src = std::fs::read_to_string(tmpl).unwrap();
    let t = Template::parse("inject", &src, funcs).map_err(|e| e.to_string())?;
    t.render(&data_for(tmpl)).map_err(|e| e.to_string())
}

#[test]
fn every_case_renders_as_go_does() {
    let funcs = Arc::new(FuncMap::sprig());
    let cases = case_files();
    assert!(cases.len() >= 60, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for tmpl in &cases {
        let name = tmpl.file_stem().unwrap().to_string_lossy().to_string();
        let got = render(&funcs, tmpl);
        let err_file = tmpl.with_extension("err");
        if err_file.exists() {
            let want = std::fs::read_to_string(&err_file).unwrap();
            let want = want.trim();
            match got {
                Err(e) if e.contains(want) => {}
                Err(e) => failures.push(format!("{name}: error {e:?} lacks {want:?}")),
                Ok(out) => failures.push(format!("{name}: rendered {out:?}, want error {want:?}")),
            }
            continue;
        }
        let want = std::fs::read_to_string(tmpl.with_extension("out"))
            .unwrap_or_else(|_| panic!("{name}: neither .out nor .err"));
        match got {
            Ok(out) if out == want => {}
            Ok(out) => failures.push(format!("{name}:\n   got {out:?}\n  want {want:?}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
