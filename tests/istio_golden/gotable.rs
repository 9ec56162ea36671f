//! Just enough of Go's syntax to read the case tables of Istio's `inject_test.go`: a function's
//! body, the `cases := []testCase{...}` composite literal, and each case's `field: value`s.
//!
//! Strings (interpreted and raw), runes and comments are skipped while matching braces, so a
//! brace inside a template string or a comment does not end a block.

use std::collections::BTreeMap;

/// A value in a case literal.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    Str(String),
    Bool(bool),
    Strings(Vec<String>),
    /// A `func(...) { ... }` literal: its body with whitespace runs collapsed to one space.
    Func(String),
}

/// One `{ in: ..., want: ..., ... }` element, by field name.
pub type GoCase = BTreeMap<String, GoValue>;

/// The body (between its braces) of `func NAME(`, or `None` if the file has no such function.
pub fn func_body<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    let start = src.find(&format!("func {name}("))?;
    let open = start + find_code(&src[start..], b'{')?;
    let close = matching(src, open);
    Some(&src[open + 1..close])
}

/// The elements of the `cases := []testCase{ ... }` literal in a function body.
pub fn cases(body: &str) -> Vec<GoCase> {
    let start = body
        .find("cases := []testCase{")
        .unwrap_or_else(|| panic!("no `cases := []testCase{{` in the function"));
    let open = start + body[start..].find('{').unwrap_or(0);
    let close = matching(body, open);
    split_top_level(&body[open + 1..close])
        .into_iter()
        .map(|element| {
            let element = element.trim();
            assert!(
                element.starts_with('{') && element.ends_with('}'),
                "unexpected case element: {element}"
            );
            parse_case(&element[1..element.len() - 1])
        })
        .collect()
}

/// Every `KubeletVersion: "v1.N.P"` minor in a text (the fake cluster's Nodes).
pub fn kubelet_minors(text: &str) -> Vec<u32> {
    text.match_indices("KubeletVersion:")
        .filter_map(|(i, _)| {
            let rest = text[i..].split('"').nth(1)?;
            rest.trim_start_matches('v').split('.').nth(1)?.parse().ok()
        })
        .collect()
}

fn parse_case(fields: &str) -> GoCase {
    split_top_level(fields)
        .into_iter()
        .map(|field| {
            let field = field.trim();
            let (name, value) = field
                .split_once(':')
                .unwrap_or_else(|| panic!("not a `name: value` field: {field}"));
            (name.trim().to_owned(), parse_value(value.trim()))
        })
        .collect()
}

fn parse_value(text: &str) -> GoValue {
    match text {
        "true" => return GoValue::Bool(true),
        "false" => return GoValue::Bool(false),
        _ => {}
    }
    if text.starts_with('"') || text.starts_with('`') {
        return GoValue::Str(string_literal(text));
    }
    if let Some(list) = text.strip_prefix("[]string{") {
        let list = list.strip_suffix('}').unwrap_or(list);
        return GoValue::Strings(
            split_top_level(list)
                .iter()
                .map(|s| string_literal(s.trim()))
                .collect(),
        );
    }
    if text.starts_with("func(") {
        let open = find_code(text, b'{').unwrap_or_else(|| panic!("func without body: {text}"));
        let close = matching(text, open);
        return GoValue::Func(collapse_whitespace(&text[open + 1..close]));
    }
    panic!("a Go value this reader does not know: {text}")
}

/// `"a\"b"` or `` `raw` `` → its text.
fn string_literal(text: &str) -> String {
    if let Some(raw) = text.strip_prefix('`') {
        return raw.strip_suffix('`').unwrap_or(raw).to_owned();
    }
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a string literal: {text}"));
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits at commas outside brackets, strings and comments; drops empty pieces and comments.
fn split_top_level(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        let skipped = skip_literal_or_comment(text, i);
        if skipped > i {
            if !text[i..].starts_with("//") && !text[i..].starts_with("/*") {
                current.push_str(&text[i..skipped]);
            }
            i = skipped;
            continue;
        }
        let c = bytes[i];
        match c {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            b',' if depth == 0 => {
                pieces.push(std::mem::take(&mut current));
                i += 1;
                continue;
            }
            _ => {}
        }
        // Copy whole UTF-8 characters: comments and strings may hold any text.
        let width = text[i..].chars().next().map_or(1, char::len_utf8);
        current.push_str(&text[i..i + width]);
        i += width;
    }
    pieces.push(current);
    pieces
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect()
}

/// Index of the brace closing the one at `open`.
fn matching(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut i = open;
    while i < bytes.len() {
        let skipped = skip_literal_or_comment(text, i);
        if skipped > i {
            i = skipped;
            continue;
        }
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced braces from byte {open}")
}

/// The first `byte` outside strings and comments.
fn find_code(text: &str, byte: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let skipped = skip_literal_or_comment(text, i);
        if skipped > i {
            i = skipped;
            continue;
        }
        if bytes[i] == byte {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// If a string, rune or comment starts at `i`, the index just past it; else `i`.
fn skip_literal_or_comment(text: &str, i: usize) -> usize {
    let bytes = text.as_bytes();
    let rest = &text[i..];
    if rest.starts_with("//") {
        return rest.find('\n').map_or(text.len(), |n| i + n);
    }
    if rest.starts_with("/*") {
        return rest.find("*/").map_or(text.len(), |n| i + n + 2);
    }
    match bytes[i] {
        b'`' => rest[1..].find('`').map_or(text.len(), |n| i + n + 2),
        quote @ (b'"' | b'\'') => {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != quote {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        }
        _ => i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
func TestOther(t *testing.T) { x := "}" }

func TestInjection(t *testing.T) {
	nodes := []*corev1.Node{{Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.33.0"}}}}
	cases := []testCase{
		// a comment with a brace }
		{
			in:   "hello.yaml",
			want: "hello.yaml.cni.injected",
			setFlags: []string{
				"components.cni.enabled=true",
				`values.global.proxy.excludeInboundPorts=4,5,6`,
			},
		},
		{
			in:            "bad.yaml",
			expectedError: "includeipranges",
			skipWebhook:   true,
			mesh: func(m *meshapi.MeshConfig) {
				m.DefaultConfig.Tracing = &meshapi.Tracing{}
			},
		},
	}
	_ = cases
}
"#;

    #[test]
    fn reads_a_case_table_with_strings_lists_funcs_and_comments() {
        let body = func_body(SRC, "TestInjection").expect("function");
        assert_eq!(kubelet_minors(body), vec![33]);
        let cases = cases(body);
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0]["in"], GoValue::Str("hello.yaml".into()));
        assert_eq!(
            cases[0]["setFlags"],
            GoValue::Strings(vec![
                "components.cni.enabled=true".into(),
                "values.global.proxy.excludeInboundPorts=4,5,6".into()
            ])
        );
        assert_eq!(cases[1]["skipWebhook"], GoValue::Bool(true));
        assert_eq!(
            cases[1]["mesh"],
            GoValue::Func("m.DefaultConfig.Tracing = &meshapi.Tracing{}".into())
        );
        assert!(func_body(SRC, "TestMissing").is_none());
    }
}
