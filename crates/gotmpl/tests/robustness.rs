//! Never panic: every snippet of the corpus, mutated many times (bytes deleted, duplicated,
//! replaced by template punctuation), must either fail to parse with an error or render
//! (or fail) with an error, under tight limits.

use gotmpl::{any_from_json, FuncMap, Limits, Template, Value};
use std::path::Path;
use std::sync::Arc;

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

const PIECES: &[&str] = &[
    "{{", "}}", "{{-", " -}}", "(", ")", "|", "$", "$x", ":=", "=", ".", ".A", "\"", "`", "'", " ",
    "\n", "-", "1", "1e9", "0x", "end", "else", "if", "range", "with", "define", "template",
    "block", "break", "nil", "/*", "*/", ",", "é", "\\",
];

fn mutate(src: &str, rng: &mut Lcg) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for _ in 0..=rng.next(4) {
        let at = rng.next(chars.len() + 1);
        match rng.next(3) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => {
                let piece = PIECES[rng.next(PIECES.len())];
                for (k, c) in piece.chars().enumerate() {
                    chars.insert(at + k, c);
                }
            }
            _ if at < chars.len() => {
                let end = (at + rng.next(8)).min(chars.len());
                let dup: Vec<char> = chars[at..end].to_vec();
                for (k, c) in dup.into_iter().enumerate() {
                    chars.insert(end + k, c);
                }
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_templates_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmpl"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let funcs = Arc::new(FuncMap::istio());
    let limits = Limits {
        max_output: 1 << 16,
        max_iterations: 10_000,
        max_depth: 64,
        max_work: 1_000_000,
    };
    let mut rng = Lcg(0x5eed);
    let (mut parsed, mut rendered, mut total) = (0, 0, 0);
    for case in &cases {
        let src = std::fs::read_to_string(case).unwrap();
        let data = match std::fs::read_to_string(case.with_extension("json")) {
            Ok(t) => any_from_json(&serde_json::from_str(&t).unwrap()),
            Err(_) => Value::Nil,
        };
        for _ in 0..60 {
            total += 1;
            let text = mutate(&src, &mut rng);
            if let Ok(t) = Template::parse("fuzz", &text, &funcs) {
                parsed += 1;
                if t.render_with(&data, limits).is_ok() {
                    rendered += 1;
                }
            }
        }
    }
    // Mutations must exercise both outcomes, or the test proves nothing.
    assert!(
        parsed > total / 10 && parsed < total,
        "{parsed} of {total} parsed"
    );
    assert!(rendered > 0, "none of {total} rendered");
}
