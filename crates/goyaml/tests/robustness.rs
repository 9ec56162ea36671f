//! Hostile and random input: no panic, no stack overflow, bounded work. (What the answers
//! are is checked against Go in `go_oracle.rs`.)

mod support;

use goyaml::ErrorKind;
use proptest::prelude::*;
use serde_json::{json, Value};

fn read_both(text: &str) {
    let first = goyaml::from_str(text);
    let all = goyaml::documents(text);
    // A stream that reads starts with the document `from_str` gives.
    if let (Ok(docs), Ok(v)) = (&all, &first) {
        assert_eq!(docs.first().unwrap_or(&Value::Null), v, "{text:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        read_both(&text);
    }

    #[test]
    fn random_indicator_soup_never_panics(
        parts in prop::collection::vec(prop::sample::select(&[
            " ", "\n", "\t", ":", "- ", "-", "?", "[", "]", "{", "}", ",", "#", "&a", "*a", "!", "!!str",
            "|", ">", "'", "\"", "\\", "%YAML 1.1", "%TAG ! x", "---", "...", "<<", "a", "1", "~",
            "\r\n", "\u{85}", "\u{2028}", "é", "2-", "+", "0x", "\u{FEFF}",
        ][..]), 0..80)
    ) {
        read_both(&parts.concat());
    }

    #[test]
    fn mutated_yaml_never_panics(text in support::gen::mutated_yaml_text()) {
        read_both(&text);
    }

    #[test]
    fn writing_never_panics_and_reads_back(v in support::gen::json_value()) {
        let text = goyaml::to_string(&v);
        // (A `<<` key reads back as a merge, in Go too.)
        if goyaml::try_to_string(&v).is_ok() && support::gen::no_merge_keys(&v) {
            // Ends with a line break. YAML 1.1 (and so go-yaml) counts U+0085, U+2028 and
            // U+2029 as line breaks: a literal block ending in one gets no '\n' after it, in
            // Go's output too (the Go oracle test compares the text itself).
            prop_assert!(text.ends_with(['\n', '\u{85}', '\u{2028}', '\u{2029}']), "{text:?}");
            let back = goyaml::from_str(&text);
            prop_assert!(back.is_ok(), "{text:?}: {back:?}");
        }
    }
}

#[test]
fn deep_flow_nesting_is_refused_not_overflowed() {
    for depth in [1_001, 20_000, 200_000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let err = goyaml::from_str(&text).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::TooDeep | ErrorKind::Syntax),
            "{depth}: {err}"
        );
    }
    let text = format!("{}{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    assert!(goyaml::from_str(&text).is_err());
}

#[test]
fn deep_block_nesting_is_refused_not_overflowed() {
    let mut text = String::new();
    for i in 0..5_000 {
        text.push_str(&" ".repeat(i));
        text.push_str("- \n");
    }
    assert!(goyaml::from_str(&text).is_err());
    let mut text = String::new();
    for i in 0..5_000 {
        text.push_str(&" ".repeat(i));
        text.push_str("a:\n");
    }
    let err = goyaml::from_str(&text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooDeep, "{err}");
}

#[test]
fn nesting_up_to_the_limit_reads() {
    let depth = goyaml::MAX_DEPTH;
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let mut v = goyaml::from_str(&text).unwrap();
    for _ in 0..depth {
        v = v.as_array().unwrap()[0].clone();
    }
    assert_eq!(v, json!(1));
}

#[test]
fn billion_laughs_is_refused_as_go_refuses_it() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names: Vec<String> = (b'b'..=b'i').map(|c| (c as char).to_string()).collect();
    let mut prev = "a".to_string();
    for n in &names {
        text.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = n.clone();
    }
    let err = goyaml::from_str(&text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conversion);
    assert!(err.message.contains("excessive aliasing"), "{err}");
}

#[test]
fn large_documents_read_in_one_pass() {
    // 50k entries, a few MB: completes (a quadratic step would not, in test time).
    let mut text = String::new();
    for i in 0..50_000 {
        text.push_str(&format!("key{i}: {{a: [1, 'two', \"three\"], b: .inf}}\n"));
    }
    text.push_str("key0: 1\n");
    let err = goyaml::from_str(&text).unwrap_err();
    assert!(err.message.contains("unsupported value"), "{err}");
    let long_scalar = format!("k: {}\n", "word ".repeat(200_000));
    assert!(goyaml::from_str(&long_scalar).is_ok());
}

#[test]
fn errors_say_where() {
    let err = goyaml::from_str("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert_eq!((err.line, err.column), (3, 2), "{err}");
    let err = goyaml::from_str("a:\n  b: \"x\\q\"\n").unwrap_err();
    assert_eq!((err.line, err.column), (2, 6), "{err}");
    let err = goyaml::from_str("a: *nope\n").unwrap_err();
    assert_eq!(
        (err.kind, err.line, err.column),
        (ErrorKind::Conversion, 1, 4)
    );
}

#[test]
fn writing_deep_or_unreadable_values_fails_as_go_does() {
    let mut v = json!(1);
    for _ in 0..(goyaml::MAX_DEPTH + 1) {
        v = json!([v]);
    }
    assert_eq!(
        goyaml::try_to_string(&v).unwrap_err().kind,
        ErrorKind::TooDeep
    );
    assert_eq!(goyaml::to_string(&v), "");
    let long_key = json!({ "k".repeat(1023): 1 });
    assert!(goyaml::try_to_string(&long_key).is_err());
    let ok_key = json!({ "k".repeat(1022): 1 });
    assert!(goyaml::try_to_string(&ok_key).unwrap().starts_with("? "));
    assert!(goyaml::try_to_string(&json!("a\u{7f}")).is_err());
}
