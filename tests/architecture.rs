//! The house's rules, read from the `use` lines of `src/`: the pure core imports no I/O, no
//! server, wire codec or source; inject and validate import no server, codec or source; and
//! no two top-level modules import each other (directly or around a circle).
//!
//! Each rule is a function over (module, imported path) pairs, tested on a synthetic tree
//! first, so a rule that could never fail would show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// External crates that do I/O or belong to the edges.
const EDGE_CRATES: [&str; 10] = [
    "kube",
    "tokio",
    "tokio_rustls",
    "hyper",
    "hyper_util",
    "clap",
    "rustls",
    "arc_swap",
    "prometheus_client",
    "tracing",
];

/// Modules of the crate that the request's pure middle must not reach.
const EDGE_MODULES: [&str; 8] = [
    "sources",
    "server",
    "admission",
    "handler",
    "run",
    "tls",
    "cabundle",
    "metrics",
];

/// One `use`/path reference: the top-level module of the file it is in, and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    file: String,
    module: String,
    /// `crate::x::...` → `crate:x`; an external crate `k::...` → `extern:k`.
    target: String,
}

/// The top-level module a file under `src/` belongs to.
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// The non-test text of a file: test files and everything after `#[cfg(test)]` are left out
/// (tests may reach wider than the code they test).
fn code_part(rel: &Path, text: &str) -> Option<String> {
    if rel.file_name().is_some_and(|n| n == "tests.rs") {
        return None;
    }
    Some(
        text.split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Every `crate::x` path, and every `use k::` of an external crate, in `code`.
fn imports_in(file: &str, module: &str, code: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(Import {
                    file: file.to_owned(),
                    module: module.to_owned(),
                    target: format!("crate:{name}"),
                });
            }
            rest = after;
        }
        if let Some(path) = line
            .strip_prefix("use ")
            .or_else(|| line.strip_prefix("pub use "))
        {
            let name: String = path
                .trim_start_matches("::")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !matches!(
                name.as_str(),
                "crate" | "super" | "self" | "std" | "core" | ""
            ) {
                out.push(Import {
                    file: file.to_owned(),
                    module: module.to_owned(),
                    target: format!("extern:{name}"),
                });
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every library file's non-test code, by path under `src/` (`main.rs` is the CLI edge and
/// left out).
fn library_code() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).ok()?.to_path_buf();
            if rel == Path::new("main.rs") {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            Some((rel.display().to_string(), code_part(&rel, &text)?))
        })
        .collect()
}

/// The imports of the real tree.
fn crate_imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} files in src/", files.len());
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        if let Some(code) = code_part(rel, &text) {
            out.extend(imports_in(&rel.display().to_string(), &module, &code));
        }
    }
    out
}

// === the rules ===

/// Core files may name only the core itself and pure crates.
fn core_violations(imports: &[Import]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| i.module == "core")
        .filter(|i| {
            i.target.strip_prefix("crate:").is_some_and(|m| m != "core")
                || i.target
                    .strip_prefix("extern:")
                    .is_some_and(|c| EDGE_CRATES.contains(&c))
        })
        .map(|i| format!("{} imports {}", i.file, i.target))
        .collect()
}

/// inject and validate judge requests; they may not reach the edges.
fn middle_violations(imports: &[Import]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| i.module == "inject" || i.module == "validate")
        .filter(|i| {
            i.target
                .strip_prefix("crate:")
                .is_some_and(|m| EDGE_MODULES.contains(&m))
                || i.target
                    .strip_prefix("extern:")
                    .is_some_and(|c| EDGE_CRATES.contains(&c))
        })
        .map(|i| format!("{} imports {}", i.file, i.target))
        .collect()
}

/// The CLI's types stay in `main.rs`: the library maps nothing from clap (a derive names it
/// without a `use`, so the text is searched, not the imports).
fn clap_outside_main(code: &[(String, String)]) -> Vec<String> {
    code.iter()
        .filter(|(_, text)| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| l.contains("clap::") || l.trim_start().starts_with("use clap"))
        })
        .map(|(file, _)| format!("{file} names clap"))
        .collect()
}

/// A circle among top-level modules, if there is one (as the list of modules around it).
fn circle(imports: &[Import]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        if let Some(to) = i.target.strip_prefix("crate:") {
            if to != i.module {
                graph.entry(i.module.as_str()).or_default().insert(to);
            }
        }
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut around: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            around.push(node.to_owned());
            return Some(around);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, &graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

// === the rules can fail ===

fn synthetic(files: &[(&str, &str)]) -> Vec<Import> {
    files
        .iter()
        .flat_map(|(file, code)| imports_in(file, &module_of(Path::new(file)), code))
        .collect()
}

#[test]
fn the_rules_catch_what_they_forbid() {
    let tree = synthetic(&[
        (
            "core/snapshot.rs",
            "use crate::sources::SharedSnapshot;\nuse tokio::sync::Mutex;\nuse serde::Deserialize;\nuse crate::core::labels;",
        ),
        ("inject/mod.rs", "use crate::admission::decode;\nuse crate::core::pod::PodIn;"),
        ("validate.rs", "    let x = crate::server::thing();"),
        ("a.rs", "use crate::b::X;"),
        ("b/mod.rs", "use crate::c::Y;"),
        ("c.rs", "pub use crate::a::Z;"),
    ]);
    assert_eq!(
        core_violations(&tree),
        [
            "core/snapshot.rs imports crate:sources",
            "core/snapshot.rs imports extern:tokio"
        ]
    );
    assert_eq!(
        middle_violations(&tree),
        [
            "inject/mod.rs imports crate:admission",
            "validate.rs imports crate:server"
        ]
    );
    assert_eq!(
        circle(&tree),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let test_only = code_part(
        Path::new("core/x.rs"),
        "use crate::core::a;\n#[cfg(test)]\nmod tests { use crate::sources::config; }",
    )
    .expect("code");
    assert!(core_violations(&synthetic(&[("core/x.rs", &test_only)])).is_empty());
}

// === the house ===

#[test]
fn the_core_imports_no_io_no_edge_and_no_source() {
    let violations = core_violations(&crate_imports());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn inject_and_validate_import_no_server_codec_or_source() {
    let violations = middle_violations(&crate_imports());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn no_two_modules_import_each_other() {
    let imports = crate_imports();
    assert!(
        imports.iter().any(|i| i.target == "crate:core"),
        "the scan found no import of the core: it reads nothing"
    );
    assert_eq!(circle(&imports), None);
}

#[test]
fn only_the_cli_knows_clap() {
    let code = library_code();
    assert!(code.len() > 20, "found only {} files", code.len());
    let violations = clap_outside_main(&code);
    assert!(violations.is_empty(), "{violations:#?}");
}
