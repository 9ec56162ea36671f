//! Generators: YAML texts writing random values in varied styles (quoting, flow and block
//! collections, block scalars, comments, document markers, YAML 1.1's odd scalars), their
//! mutations, and JSON values for the emitter.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Scalars YAML 1.1 reads as something other than a string, or almost does.
pub const ODD_SCALARS: &[&str] = &[
    "yes",
    "no",
    "Yes",
    "NO",
    "on",
    "Off",
    "y",
    "n",
    "Y",
    "N",
    "true",
    "False",
    "TRUE",
    "~",
    "null",
    "Null",
    "NULL",
    "",
    "0777",
    "0o17",
    "0x1F",
    "0X1f",
    "0b101",
    "-0b11",
    "0b-1",
    "1_000",
    "1e3",
    "1E3",
    "1e-3",
    "1.5e+10",
    ".5",
    "+.5",
    "-.5",
    "5.",
    "1.",
    "08",
    "09.5",
    ".inf",
    "-.inf",
    "+.Inf",
    ".nan",
    ".NaN",
    ".Nan",
    "1e999",
    "-0",
    "+1",
    "-1",
    "0",
    "00",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1.0",
    "123456789.123",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "12:30:00",
    "1:20",
    "190:20:30",
    "<<",
    "=",
    "0.1",
    "3.14159265358979",
    "1e21",
    "100000000000000000000",
    "1_0.5",
    "._5",
    ".2_2",
    ".2__2",
    "4.041700526150706e+17",
    "-2.4339865399391867e18",
    "0x_1F",
    "yes please",
    "on-off",
    "+",
    "-",
    ".",
    "..",
    "~~",
    "nulls",
    "0xGG",
    "0b2",
    "1__2",
    "_1",
    "1_",
    "0.0",
    "-0.0",
    "1e+",
    "1e",
    "e3",
    "0e0",
];

const WORDS: &[&str] = &[
    "a",
    "b",
    "key",
    "name",
    "istio-proxy",
    "sidecar.istio.io/inject",
    "15090",
    "http-envoy-prom",
    "x y",
    "with: colon",
    "hash #tag",
    "a#b",
    "a:b",
    "- dash",
    "? q",
    "[x]",
    "{y}",
    "a,b",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "tab\there",
    "ünïcödé",
    "日本",
    "emoji 🎉",
    " lead",
    "trail ",
    "@at",
    "`tick",
    "%pct",
    "!bang",
    "&amp",
    "*star",
    "|pipe",
    ">gt",
    "'q'",
    "\"dq\"",
    "a: b: c",
    "--- x",
    "... y",
    "k: v\nk2: v2",
    "line1\nline2",
    "para1\n\npara2",
    "trailing\n",
    "two\n\n",
    "\nlead",
    "  indented\nlines",
    "a\tb\nc",
    "\u{85}nel",
    "ls\u{2028}ps\u{2029}",
];

#[derive(Clone, Debug)]
pub enum Tree {
    Scalar(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(ODD_SCALARS).prop_map(str::to_owned),
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => "[a-z0-9 _.:#'\"-]{0,12}",
        1 => prop::collection::vec(prop::sample::select(WORDS), 10..30).prop_map(|w| w.join(" ")),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
    ]
}

fn key_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-zA-Z0-9.-]{0,10}",
        2 => prop::sample::select(ODD_SCALARS).prop_map(str::to_owned),
        1 => prop::sample::select(WORDS).prop_map(str::to_owned),
    ]
}

pub fn tree() -> impl Strategy<Value = Tree> {
    scalar_text()
        .prop_map(Tree::Scalar)
        .prop_recursive(5, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::Seq),
                prop::collection::vec((key_text(), inner), 0..6).prop_map(Tree::Map),
            ]
        })
}

/// The rendering choices, drawn as a stream of numbers.
struct Dice {
    rolls: Vec<u8>,
    at: usize,
}

impl Dice {
    fn roll(&mut self, n: u8) -> u8 {
        let r = self
            .rolls
            .get(self.at % self.rolls.len().max(1))
            .copied()
            .unwrap_or(0);
        self.at += 1;
        if n == 0 {
            0
        } else {
            r % n
        }
    }
    fn one_in(&mut self, n: u8) -> bool {
        self.roll(n) == 0
    }
}

fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !s.contains(['\n', '\r', '\t', '\u{85}', '\u{2028}', '\u{2029}'])
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !(flow && s.contains([',', '[', ']', '{', '}']))
        && !s.starts_with("---")
        && !s.starts_with("...")
}

fn double_quoted(s: &str, d: &mut Dice) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str(if d.one_in(4) { "\\N" } else { "\\n" }),
            '\t' => out.push_str(if d.one_in(2) { "\\t" } else { "\t" }),
            c if (c as u32) < 0x20 || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c if !c.is_ascii() && d.one_in(3) => out.push_str(&format!("\\U{:08x}", c as u32)),
            ' ' if d.one_in(8) => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn scalar(s: &str, flow: bool, d: &mut Dice) -> String {
    match d.roll(6) {
        0..=2 if plain_ok(s, flow) => s.to_owned(),
        3 if !s.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) => single_quoted(s),
        _ => double_quoted(s, d),
    }
}

fn comment(d: &mut Dice) -> &'static str {
    match d.roll(8) {
        0 => " # note",
        1 => " #",
        2 => "\t# tab comment",
        _ => "",
    }
}

/// A block scalar (`|`, `>` with chomping and sometimes an indentation indicator) for `s`,
/// starting after the key or dash; `None` if `s` does not suit one.
fn block_scalar(s: &str, indent: usize, d: &mut Dice) -> Option<String> {
    if s.contains(['\r', '\u{85}', '\u{2028}', '\u{2029}', '\t']) || s.is_empty() {
        return None;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    if body.is_empty() || body.lines().any(|l| l.ends_with(' ')) {
        return None;
    }
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let pad = " ".repeat(indent);
    let folded = !body.contains('\n') && !body.starts_with(' ') && d.one_in(2);
    let first_space = body.starts_with(' ') || body.starts_with('\n');
    let indicator = if first_space || d.one_in(6) {
        indent.to_string()
    } else {
        String::new()
    };
    let mut out = format!(
        "{}{indicator}{chomp}{}\n",
        if folded { ">" } else { "|" },
        comment(d)
    );
    if folded {
        // Words on separate lines fold back into single spaces.
        let mut line = String::new();
        for w in body.split(' ') {
            if !line.is_empty()
                && line.len() + w.len() > 20
                && !w.is_empty()
                && !line.ends_with(' ')
            {
                out.push_str(&format!("{pad}{line}\n"));
                line.clear();
            } else if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
        out.push_str(&format!("{pad}{line}\n"));
    } else {
        for l in body.split('\n') {
            if l.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("{pad}{l}\n"));
            }
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}

fn flow(t: &Tree, d: &mut Dice) -> String {
    match t {
        Tree::Scalar(s) => scalar(s, true, d),
        Tree::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|i| flow(i, d)).collect();
            let sep = if d.one_in(3) { ",\n  " } else { ", " };
            format!("[{}]", parts.join(sep))
        }
        Tree::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(k, true, d), flow(v, d)))
                .collect();
            if d.one_in(3) {
                // As Istio's templates write annotations: one entry a line, trailing comma.
                let body: String = parts.iter().map(|p| format!("\n    {p},")).collect();
                format!("{{{body}\n  }}")
            } else {
                format!("{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Writes `t` as the value after `key:` or `- ` at `indent` columns of its parent; `out`
/// already holds the key or dash.
fn block_value(t: &Tree, indent: usize, out: &mut String, d: &mut Dice) {
    let step = [2, 2, 4, 1][usize::from(d.roll(4))];
    match t {
        Tree::Scalar(s) => {
            if s.contains('\n') || d.one_in(10) {
                if let Some(b) = block_scalar(s, indent + step, d) {
                    out.push(' ');
                    out.push_str(&b);
                    return;
                }
            }
            out.push(' ');
            out.push_str(&scalar(s, false, d));
            out.push_str(comment(d));
            out.push('\n');
        }
        Tree::Seq(items) if items.is_empty() || d.one_in(5) => {
            out.push(' ');
            out.push_str(&flow(t, d));
            out.push('\n');
        }
        Tree::Map(entries) if entries.is_empty() || d.one_in(5) => {
            out.push(' ');
            out.push_str(&flow(t, d));
            out.push('\n');
        }
        Tree::Seq(_) | Tree::Map(_) => {
            out.push_str(comment(d));
            out.push('\n');
            // A sequence under a key may sit at the key's own column, as Kubernetes writes it.
            let at = if matches!(t, Tree::Seq(_)) && indent > 0 && d.one_in(2) {
                indent - step.min(indent)
            } else {
                indent
            };
            block(t, at, out, d);
        }
    }
}

fn block(t: &Tree, indent: usize, out: &mut String, d: &mut Dice) {
    let pad = " ".repeat(indent);
    match t {
        Tree::Scalar(_) => {
            out.push_str(&pad);
            block_value(t, indent, out, d);
        }
        Tree::Seq(items) => {
            for item in items {
                if d.one_in(12) {
                    out.push_str(&format!("{pad}# between\n"));
                }
                out.push_str(&pad);
                out.push('-');
                match item {
                    // Compact nested collections: `- k: v` / `- - x` on the dash's line.
                    Tree::Map(e) if !e.is_empty() && d.one_in(2) => {
                        out.push(' ');
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner, d);
                        out.push_str(inner.trim_start_matches(' '));
                    }
                    Tree::Seq(e) if !e.is_empty() && d.one_in(3) => {
                        out.push(' ');
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner, d);
                        out.push_str(inner.trim_start_matches(' '));
                    }
                    _ => block_value(item, indent + 2, out, d),
                }
            }
        }
        Tree::Map(entries) => {
            for (k, v) in entries {
                if d.one_in(12) {
                    out.push_str("# a comment line\n");
                }
                out.push_str(&pad);
                if d.one_in(25) {
                    out.push_str("? ");
                    out.push_str(&scalar(k, false, d));
                    out.push('\n');
                    out.push_str(&pad);
                } else {
                    out.push_str(&scalar(k, false, d));
                }
                out.push(':');
                let step = [2, 2, 4, 1][usize::from(d.roll(4))];
                block_value(v, indent + step, out, d);
            }
        }
    }
}

fn render(t: &Tree, d: &mut Dice) -> String {
    let mut out = String::new();
    match d.roll(6) {
        0 => out.push_str("---\n"),
        1 => out.push_str("# leading comment\n---\n"),
        2 => out.push_str("%YAML 1.1\n---\n"),
        _ => {}
    }
    match t {
        Tree::Map(e) if !e.is_empty() && !d.one_in(6) => block(t, 0, &mut out, d),
        Tree::Seq(e) if !e.is_empty() && !d.one_in(6) => block(t, 0, &mut out, d),
        _ => {
            out.push_str(&flow(t, d));
            out.push('\n');
        }
    }
    match d.roll(8) {
        0 => out.push_str("...\n"),
        1 => out.push_str("---\nsecond: document\n"),
        2 => out.push_str("--- \n"),
        3 => out.push_str("# trailing comment"),
        _ => {}
    }
    if d.one_in(10) {
        out = out.replace('\n', "\r\n");
    }
    out
}

/// A YAML text writing a random value in randomly chosen styles.
pub fn yaml_text() -> impl Strategy<Value = String> {
    (tree(), prop::collection::vec(any::<u8>(), 64)).prop_map(|(t, rolls)| {
        let mut d = Dice { rolls, at: 0 };
        render(&t, &mut d)
    })
}

const INSERTS: &[&str] = &[
    " ", "  ", "\t", "\n", ":", ": ", "-", "- ", "#", " #", "'", "\"", "[", "]", "{", "}", ",",
    "?", "? ", "&a ", "*a", "!", "!!str ", "!!int ", "|", ">", "%", "@", "---", "...", "<<: ",
    "\\", "\r\n", "~", "0x", "\u{FEFF}", "é",
];

/// A generated YAML text with a few random edits (inserted indicators, deleted or
/// duplicated characters and lines).
pub fn mutated_yaml_text() -> impl Strategy<Value = String> {
    (
        yaml_text(),
        prop::collection::vec(
            (
                0u8..4,
                any::<prop::sample::Index>(),
                prop::sample::select(INSERTS),
            ),
            1..4,
        ),
    )
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (op, at, ins) in edits {
                let i = if chars.is_empty() {
                    0
                } else {
                    at.index(chars.len())
                };
                match op {
                    0 | 1 => {
                        for (k, c) in ins.chars().enumerate() {
                            chars.insert(i + k, c);
                        }
                    }
                    2 if !chars.is_empty() => {
                        chars.remove(i);
                    }
                    _ => {
                        let start = chars[..i]
                            .iter()
                            .rposition(|&c| c == '\n')
                            .map_or(0, |p| p + 1);
                        let end = chars[i..]
                            .iter()
                            .position(|&c| c == '\n')
                            .map_or(chars.len(), |p| i + p + 1);
                        let line: Vec<char> = chars[start..end].to_vec();
                        for (k, c) in line.into_iter().enumerate() {
                            chars.insert(end + k, c);
                        }
                    }
                }
            }
            chars.into_iter().collect()
        })
}

/// Hand-written texts for features the generator does not reach.
pub const EDGE_CASES: &[&str] = &[
    "",
    "   \n# only a comment\n",
    "---\n",
    "--- \n...\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\n...\nb: 2\n",
    "a: 1\n...\n---\nb: 2\n",
    "--- |\n  text\n--- >\n  folded\n  text\n",
    "\u{FEFF}a: 1\n",
    "a: 1\r\nb:\r\n  - x\r\n",
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
    "base: &b {x: 1, y: 2}\nderived:\n  y: 3\n  <<: *b\n",
    "a: &a {x: 1}\nb: &b {x: 2, z: 3}\nc:\n  <<: [*a, *b]\n",
    "a: &a [1, 2]\nb: *a\nc: *a\n",
    "a: &a 1.5\n*a : x\n",
    "a: &x\n  b: *x\n",
    "a: *missing\n",
    "a: &s scalar\n<<: *s\n",
    "<<: {x: 1}\n",
    "'<<': {x: 1}\n",
    "!!merge <<: {x: 1}\n",
    "a: !!str 123\nb: !!int \"42\"\nc: !!float 1\nd: !!bool yes\ne: !!null ~\n",
    "a: !!int abc\n",
    "a: !!float 18446744073709551615\n",
    "a: !!binary aGVsbG8=\nb: !!binary |\n  aGVs\n  bG8=\n",
    "a: !!binary not-base64\n",
    "a: !custom value\nb: ! 12\nc: !<tag:yaml.org,2002:int> 7\n",
    "%TAG !e! tag:yaml.org,2002:\n---\na: !e!int 5\n",
    "a: !e!int 5\n",
    "%YAML 1.2\n---\na: 1\n",
    "%YAML 1.1\n%YAML 1.1\n---\na: 1\n",
    "a: !!timestamp 2001-12-14\n",
    "1: one\n1.5: x\n0x10: hex\nyes: y\n~: null key\n",
    "1.0: x\n",
    "0.1234567890123: x\n1e39: big\n.nan: n\n-.inf: m\n",
    "18446744073709551615: x\n",
    "a: {~: 1}\na: 2\n",
    "a: .inf\na: 1\n",
    "a: .inf\n",
    "a: [.nan]\n",
    "a: {b: .inf}\na: 3\n",
    "a: {b: .inf, b: 1}\n",
    "a: 1\na: 2\n",
    "1: a\n0x1: b\n01: c\n",
    "true: a\nyes: b\nOn: c\n",
    "0.0: a\n\"0\": b\n",
    "1.5: a\n1.50: b\n",
    "base: &b {0.0: a}\nm:\n  \"0\": b\n  <<: *b\n",
    "m:\n  \"0\": b\n  <<: [{0.0: a}]\n",
    "[a]: b\n",
    "{a: 1}: b\n",
    "? - a\n: b\n",
    "? a\n? b\n: c\n",
    ": a\n",
    "a:\n- b\n- c\nd: e\n",
    "- a: 1\n  b: 2\n- - x\n  - y\n",
    "a: |2-\n    indented\n  x\n",
    "a: |+\n  keep\n\n\nb: 1\n",
    "a: >-\n  folded\n  lines\n\n  para\n   more indented\n  back\n",
    "a: |0\n  x\n",
    "a: \"multi\n  line\n\n  quoted\"\n",
    "a: 'single\n  line '' quote'\n",
    "a: \"esc \\x41 \\u00e9 \\U0001F600 \\N \\_ \\L \\P \\0 \\e\"\n",
    "a: \"bad \\q\"\n",
    "a: \"bad \\uD800\"\n",
    "a: plain\n  continued\n\n  paragraph\n",
    "a:\tb\n",
    "a: b\tc\n",
    "\ta: b\n",
    "a:\n\t- b\n",
    "key: value # comment\n# full line\nother: x#not comment\n",
    "a: [1, 2,]\n",
    "a: [1 2]\n",
    "{a: 1, b}\n",
    "[a: 1, b: 2]\n",
    "[? a : 1]\n",
    "{a: [1, {b: c}], 'd': \"e\"}\n",
    "a: {b:c}\n",
    "a: [b:c]\n",
    "- &anchor a\n- *anchor\n",
    "&a a: *a\n",
    "a: b: c\n",
    "a:\n  b\n  c: d\n",
    "- a\nb: c\n",
    "a: 'unterminated\n",
    "a: \"x\" trailing\n",
    "a: @reserved\n",
    "a: `tick\n",
    "a: %pct\n",
    "x: \u{1}\n",
    "x: \u{7f}\n",
    "x: \u{85}\n",
    "x: a\u{2028}b\n",
    "---\n---\n---\n",
    "--- a\n--- b\n",
    "... \n",
    "a: 1\n--- [\n",
    "foo\n--- x\n",
    "a: ---\n",
    "a:\n  ---\n",
    "? |\n  block key\n: v\n",
    "a: >\n\n  leading blank\n",
    "a: |\n  \n  \n",
    "a: |-\n",
    "a: |\nb: 1\n",
    "- |\n text\n- >\n text\n",
    "0777: x\n0o17: y\n",
    "a: 2001-12-14\nb: 2001-12-14 21:59:43.10 -5\n",
    "- 1_000\n- 0b1010\n- -0x1F\n- +12\n- 0xFFFFFFFFFFFFFFFF\n- 0x10000000000000000\n",
    "- 1e308\n- 1e309\n- 4.9e-324\n- 1e-400\n- -0.0\n- 123456789012345678901234567890\n",
    "a: [[[[[[[[[[1]]]]]]]]]]\n",
    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    "a: &a [\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\nd: &d [*c,*c,*c]\ne: [*d,*d,*d]\n",
];

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(ODD_SCALARS).prop_map(str::to_owned),
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        2 => "[ -~]{0,20}",
        1 => "\\PC{0,12}",
        1 => "[a-z \n\t]{0,30}",
        1 => prop::collection::vec(prop::sample::select(WORDS), 5..40).prop_map(|w| w.join(" ")),
        1 => prop::collection::vec("[a-z]{1,12}", 5..30).prop_map(|w| w.join(" ")),
        1 => prop::collection::vec("[a-z ]{0,30}", 1..5).prop_map(|w| w.join("\n")),
        1 => "[\\x00-\\x1f\\x7f\u{80}-\u{a0}\u{2028}\u{feff}a ]{0,8}",
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z][a-zA-Z0-9._/-]{0,12}",
        2 => "[a-c0-2._-]{0,4}",
        1 => json_string(),
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => any::<i64>().prop_map(Value::from),
        1 => (0i64..1000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        2 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => prop::sample::select(&[
            0.5, 1.0, -1.0, 1e6, 1e20, 1e21, 1e-6, 1e-7, 123456.0, 1234567.0, 0.1, 1e100, -0.0,
            3.0e15, 9.007199254740993e15, 1.8446744073709552e19, 12345678.9, 0.000123,
        ][..])
        .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
    ]
}

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => json_number(),
        5 => json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Values whose text the emitter must get right and that random values rarely hit.
pub fn edge_values() -> Vec<Value> {
    let long = "word ".repeat(40);
    let no_spaces = "x".repeat(120);
    [
        serde_json::json!(null),
        serde_json::json!({}),
        serde_json::json!([]),
        serde_json::json!({"a": {}, "b": [], "c": [{}], "d": [[]]}),
        serde_json::json!({"a10": 1, "a2": 2, "a1": 3, "b": 4, "A": 5, "_": 6, "1": 7, "01": 8, "-": 9, "a-1": 10, "a.1": 11}),
        serde_json::json!({"x": long, "y": no_spaces, "z": format!("{long}\n{long}")}),
        serde_json::json!({"s": ["yes", "no", "on", "1", "1.5", "", " ", "~", "null", "0777", "-", "- a", "a: b", "#c", "a #b", "2001-12-14"]}),
        serde_json::json!({"m": "line\nline2\n", "n": "trailing  \nspace", "o": "\ttab\nx", "p": "x\n\n\n"}),
        serde_json::json!([1, -1, 0.5, 1e21, 1e-7, 1e6, 12345678901234567u64, u64::MAX, i64::MIN]),
        serde_json::json!({"nested": {"list": [{"k": "v", "k2": [1, 2]}, [3, [4]]]}}),
        serde_json::json!("top level string"),
        serde_json::json!(["\u{85}", "\u{2028}", "\u{feff}x", "é", "\u{7f}"]),
        serde_json::json!({ "k".repeat(1022): 1 }),
        serde_json::json!({ "k".repeat(1023): 1 }),
        serde_json::json!({ "<".repeat(170): 1 }),
        serde_json::json!({ "<".repeat(171): 1 }),
        serde_json::json!({ "a\u{85}b": 1 }),
        serde_json::json!(["a \u{85} b", "a\u{85}\u{85}b", "x\u{85}--- y", "\u{85}"]),
        serde_json::json!({ "k".repeat(200): {"a": [1]}, "x y ".repeat(40): "v" }),
    ]
    .into()
}

/// Whether Go keeps `v` exactly through YAML: no floats (which go through float64 text),
/// no NEL in strings (a line break to YAML, folded when JSON text is read back).
pub fn exact_in_go(v: &Value) -> bool {
    match v {
        Value::Number(n) => !n.is_f64(),
        Value::String(s) => !s.contains('\u{85}'),
        Value::Array(a) => a.iter().all(exact_in_go),
        // `<<` is a merge key to go-yaml.
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| !k.contains('\u{85}') && k != "<<" && exact_in_go(v)),
        _ => true,
    }
}

/// Whether no mapping of `v` has the key `<<` (which go-yaml reads back as a merge).
pub fn no_merge_keys(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(no_merge_keys),
        Value::Object(m) => m.iter().all(|(k, v)| k != "<<" && no_merge_keys(v)),
        _ => true,
    }
}
