//! JSON values to YAML text as `sigs.k8s.io/yaml.Marshal` writes them: the value goes through
//! JSON (numbers as `encoding/json` prints them, read back by go-yaml v2 as int, uint64 or
//! float64) and is written by go-yaml v2's emitter (a port of libyaml's): block style, keys
//! in go-yaml's order, scalar styles chosen and lines folded at 80 columns as it does.

use crate::error::{Error, ErrorKind};
use crate::gofloat;
use crate::resolve::{self, Resolved};
use crate::scan::Mark;
use crate::unicode_tables;
use crate::MAX_DEPTH;
use serde_json::{Number, Value};

const BEST_INDENT: isize = 2;
const BEST_WIDTH: usize = 80;

pub fn to_string(value: &Value) -> String {
    try_to_string(value).unwrap_or_default()
}

pub fn try_to_string(value: &Value) -> Result<String, Error> {
    check(value, 0)?;
    let mut e = Emitter {
        out: String::with_capacity(1024),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        flow_level: 0,
    };
    e.node(value, Ctx::default());
    // The document end: a line break unless at the start of an empty line.
    e.write_indent();
    Ok(e.out)
}

/// What makes Go's `Marshal` fail, which is go-yaml refusing the JSON text it reads back:
/// characters its reader refuses and `encoding/json` leaves unescaped (U+007F, the C1
/// controls but NEL, U+FFFE, U+FFFF); a mapping key that is not a simple key (more than
/// 1024 characters once JSON-escaped and quoted, or holding NEL, a line break to YAML).
/// Nesting beyond [`MAX_DEPTH`] is refused here (go-yaml allows 10000).
fn check(value: &Value, depth: usize) -> Result<(), Error> {
    let refuse = |message: &str| Err(Error::new(ErrorKind::Conversion, Mark::default(), message));
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::TooDeep,
            Mark::default(),
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    match value {
        Value::String(s) if has_unreadable(s) => refuse("control characters are not allowed"),
        Value::String(s) if read_back(s).is_none() => {
            refuse("a string go-yaml cannot read back (a document marker after NEL)")
        }
        Value::Array(items) => items.iter().try_for_each(|v| check(v, depth + 1)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if has_unreadable(k) {
                return refuse("control characters are not allowed");
            }
            // At most six characters for each byte once escaped.
            let long = k.len() > 170 && json_escaped_chars(k) + 2 > 1024;
            if long || (!k.is_ascii() && k.contains('\u{85}')) {
                return refuse("mapping key that go-yaml cannot read back as a simple key");
            }
            check(v, depth + 1)
        }),
        _ => Ok(()),
    }
}

fn has_unreadable(s: &str) -> bool {
    if s.is_ascii() {
        return s.as_bytes().contains(&0x7F);
    }
    s.chars().any(unreadable)
}

/// Characters go-yaml's reader refuses that `encoding/json` writes as they are.
fn unreadable(c: char) -> bool {
    matches!(c as u32, 0x7F..=0x84 | 0x86..=0x9F | 0xFFFE | 0xFFFF)
}

/// The string go-yaml reads back from `encoding/json`'s quoted form of `s`: the same, but
/// for NEL (U+0085), which JSON leaves as it is and YAML takes for a line break, folded
/// with the spaces around it. `None` when that text is not YAML at all (a document marker
/// after the break).
fn read_back(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if s.is_ascii() || !s.contains('\u{85}') {
        return Some(s.into());
    }
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                quoted.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    match crate::from_str(&quoted) {
        Ok(Value::String(back)) => Some(back.into()),
        _ => None,
    }
}

/// Characters in `encoding/json`'s escaped form of `s` (without the quotes).
fn json_escaped_chars(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => 6,
            c if (c as u32) < 0x20 => 6,
            _ => 1,
        })
        .sum()
}

#[derive(Clone, Copy, Default)]
struct Ctx {
    mapping: bool,
    simple_key: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

struct Emitter {
    out: String,
    column: usize,
    indent: isize,
    indents: Vec<isize>,
    whitespace: bool,
    indention: bool,
    flow_level: usize,
}

/// What libyaml's `analyze_scalar` learns about a scalar.
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// Bytes that make no difference to how a scalar may be written, wherever they stand:
/// ASCII letters, digits and `-` `_` `.` `/` `=` `+` `~` `$` `^` `(` `)` `;` `<` `\\`.
/// (A leading `-` only matters before a blank or alone; `---`, `...` and `-` are checked
/// apart.)
const QUIET: [bool; 256] = quiet_table();

const fn quiet_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'/'
                    | b'='
                    | b'+'
                    | b'~'
                    | b'$'
                    | b'^'
                    | b'('
                    | b')'
                    | b';'
                    | b'<'
                    | b'\\'
            );
        c += 1;
    }
    t
}

/// libyaml's `is_printable` on a character (as go-yaml v2 has it: no 4-byte characters).
fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || (0xE000..=0xFFFD).contains(&u) && u != 0xFEFF
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    if !block_indicators && value != "-" && value.bytes().all(|b| QUIET[usize::from(b)]) {
        // Letters, digits and punctuation that is never an indicator here: plain anywhere.
        return Analysis {
            multiline: false,
            flow_plain_allowed: true,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: true,
        };
    }
    let mut preceded_by_whitespace = true;
    let mut chars = value.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let followed_by_whitespace = next.is_none_or(|n| is_blank(n) || is_break(n));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special_characters = true;
        }
        let last = next.is_none();
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank(c) || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// The style go-yaml's encoder asks for a string: literal if it has a line break, plain if
/// it would read back as the same string, double-quoted otherwise.
fn string_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if resolve::plain(s) == Resolved::Str && !is_base60_float(s) && !is_timestamp(s) {
        Style::Plain
    } else {
        Style::DoubleQuoted
    }
}

/// go-yaml's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let ok = match digits {
            1 => true,
            2 => b[i + 1] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        i += 1 + digits;
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml's `parseTimestamp`: four digits and '-', then one of its layouts as Go's
/// `time.Parse` reads them ("2006-1-2T15:4:5.999999999Z07:00", the same with 't',
/// "2006-1-2 15:4:5.999999999", "2006-1-2").
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let year: u32 = s[..4].parse().unwrap_or(0);
    let mut p = TimeParser { b, i: 5 };
    let Some(month) = p.num() else { return false };
    if !p.lit(b'-') {
        return false;
    }
    let Some(day) = p.num() else { return false };
    if !(1..=12).contains(&month) || day < 1 || day > days_in(month, year) {
        return false;
    }
    if p.i == b.len() {
        return true;
    }
    let rest = p.i;
    for sep in [b'T', b't', b' '] {
        p.i = rest;
        let ok = if sep == b' ' {
            p.spaces() && p.clock() && p.i == b.len()
        } else {
            p.lit(sep) && p.clock() && p.zone() && p.i == b.len()
        };
        if ok {
            return true;
        }
    }
    false
}

fn days_in(month: u32, year: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

struct TimeParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl TimeParser<'_> {
    fn digit(&self, k: usize) -> Option<u32> {
        self.b
            .get(self.i + k)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u32::from(c - b'0'))
    }
    /// Go's `getnum(value, false)`: one or two digits.
    fn num(&mut self) -> Option<u32> {
        let d0 = self.digit(0)?;
        match self.digit(1) {
            Some(d1) => {
                self.i += 2;
                Some(d0 * 10 + d1)
            }
            None => {
                self.i += 1;
                Some(d0)
            }
        }
    }
    fn lit(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// A space in a layout matches a run of spaces.
    fn spaces(&mut self) -> bool {
        if self.b.get(self.i) != Some(&b' ') {
            return false;
        }
        while self.b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
        true
    }
    /// "15:4:5.999999999": hour, minute, second, optional fraction.
    fn clock(&mut self) -> bool {
        let Some(h) = self.num() else { return false };
        if h >= 24 || !self.lit(b':') {
            return false;
        }
        let Some(m) = self.num() else { return false };
        if m >= 60 || !self.lit(b':') {
            return false;
        }
        let Some(s) = self.num() else { return false };
        if s >= 60 {
            return false;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b',')) && self.digit(1).is_some() {
            self.i += 1;
            while self.digit(0).is_some() {
                self.i += 1;
            }
        }
        true
    }
    /// "Z07:00": 'Z' or ±hh:mm.
    fn zone(&mut self) -> bool {
        if self.lit(b'Z') {
            return true;
        }
        let b = &self.b[self.i.min(self.b.len())..];
        if b.len() < 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
            return false;
        }
        let two = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
        if !two(&b[1..3]) || !two(&b[4..6]) {
            return false;
        }
        let hh = u32::from(b[1] - b'0') * 10 + u32::from(b[2] - b'0');
        let mm = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
        if hh > 24 || mm > 60 {
            return false;
        }
        self.i += 6;
        true
    }
}

/// The plain scalar go-yaml writes for a JSON number: `encoding/json` prints it, go-yaml
/// reads that text back as int, uint64 or float64 and prints that.
fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if let Some(text) = gofloat::json_integer_text(f) {
        // Printed as an integer, read back as one if it fits.
        if let Ok(i) = text.parse::<i64>() {
            return i.to_string();
        }
        if let Ok(u) = text.parse::<u64>() {
            return u.to_string();
        }
    }
    gofloat::format_g(f, false)
}

/// go-yaml v2's order of string keys (`keyList.Less`): runs of digits compare as numbers,
/// letters after other characters.
fn key_less(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return runes_less(a.as_bytes(), b.as_bytes());
    }
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    runes_less(&ar, &br)
}

/// `keyList.Less` on two strings' runes (bytes when both are ASCII).
fn runes_less<T: Copy + Into<u32> + PartialEq + PartialOrd>(ar: &[T], br: &[T]) -> bool {
    let rune = |c: T| char::from_u32(c.into()).unwrap_or('\0');
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = is_letter(rune(ar[i]));
        let bl = is_letter(rune(br[i]));
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if rune(ar[i]) == '0' || rune(br[i]) == '0' {
            let mut j = i;
            while j > 0 && is_digit(rune(ar[j - 1])) {
                j -= 1;
                if rune(ar[j]) != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let digit_value = |c: T| i64::from(c.into()) - i64::from(u32::from('0'));
        let mut ai = i;
        while ai < ar.len() && is_digit(rune(ar[ai])) {
            an = an.wrapping_mul(10).wrapping_add(digit_value(ar[ai]));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(rune(br[bi])) {
            bn = bn.wrapping_mul(10).wrapping_add(digit_value(br[bi]));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let u = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Go's `unicode.IsLetter`.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_ranges(unicode_tables::LETTERS, c)
}

/// Go's `unicode.IsDigit`.
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(unicode_tables::DIGITS, c)
}

/// Sorts keys in go-yaml's order with a merge sort, which (unlike the standard library's
/// sorts) cannot panic should the order not be total for odd keys.
fn sort_keys(keys: &mut Vec<&String>) {
    if keys.len() < 2 {
        return;
    }
    let mut buf = keys.clone();
    merge_sort(keys, &mut buf);
}

fn merge_sort<'a>(v: &mut [&'a String], buf: &mut [&'a String]) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let mid = n / 2;
    merge_sort(&mut v[..mid], &mut buf[..mid]);
    merge_sort(&mut v[mid..], &mut buf[mid..]);
    buf[..n].copy_from_slice(v);
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if key_less(buf[j], buf[i]) {
            v[k] = buf[j];
            j += 1;
        } else {
            v[k] = buf[i];
            i += 1;
        }
        k += 1;
    }
    while i < mid {
        v[k] = buf[i];
        i += 1;
        k += 1;
    }
    while j < n {
        v[k] = buf[j];
        j += 1;
        k += 1;
    }
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// Writes a line break of the value: LF as the output's break, others as they are.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        ind: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in ind.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn node(&mut self, v: &Value, ctx: Ctx) {
        match v {
            Value::Null => self.scalar("null", Style::Plain, ctx),
            Value::Bool(true) => self.scalar("true", Style::Plain, ctx),
            Value::Bool(false) => self.scalar("false", Style::Plain, ctx),
            Value::Number(n) => self.scalar(&number_text(n), Style::Plain, ctx),
            Value::String(s) => {
                let s = read_back(s).unwrap_or_default();
                self.scalar(&s, string_style(&s), ctx)
            }
            Value::Array(items) if items.is_empty() || self.flow_level > 0 => {
                self.flow_empty("[", "]")
            }
            Value::Object(map) if map.is_empty() || self.flow_level > 0 => {
                self.flow_empty("{", "}")
            }
            Value::Array(items) => {
                self.increase_indent(false, ctx.mapping && !self.indention);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, Ctx::default());
                }
                self.pop_indent();
            }
            Value::Object(map) => {
                self.increase_indent(false, false);
                let mut keys: Vec<&String> = map.keys().collect();
                sort_keys(&mut keys);
                for k in keys {
                    self.write_indent();
                    let value = &map[k.as_str()];
                    if k.len() <= 128 && !analyze(k).multiline {
                        let ctx = Ctx {
                            mapping: true,
                            simple_key: true,
                        };
                        self.scalar(k, string_style(k), ctx);
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        let ctx = Ctx {
                            mapping: true,
                            simple_key: false,
                        };
                        self.scalar(k, string_style(k), ctx);
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(
                        value,
                        Ctx {
                            mapping: true,
                            simple_key: false,
                        },
                    );
                }
                self.pop_indent();
            }
        }
    }

    fn flow_empty(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.increase_indent(true, false);
        self.pop_indent();
        self.write_indicator(close, false, false, false);
    }

    fn scalar(&mut self, value: &str, requested: Style, ctx: Ctx) {
        let a = analyze(value);
        let mut style = requested;
        if ctx.simple_key && a.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain {
            let allowed = if self.flow_level > 0 {
                a.flow_plain_allowed
            } else {
                a.block_plain_allowed
            };
            if !allowed || (value.is_empty() && (self.flow_level > 0 || ctx.simple_key)) {
                style = Style::SingleQuoted;
            }
        }
        if style == Style::SingleQuoted && !a.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!a.block_allowed || self.flow_level > 0 || ctx.simple_key) {
            style = Style::DoubleQuoted;
        }
        self.increase_indent(true, false);
        let allow_breaks = !ctx.simple_key;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(value, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let mut spaces = false;
        let mut breaks = false;
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ' ' {
                let next_space = chars.peek() == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let mut chars = value.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            if c == ' ' {
                let next = chars.peek().map(|&(_, n)| n);
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && next.is_some()
                    && next != Some(' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        // libyaml's `is_bom` looks at the start of the value, whatever the position: a value
        // starting with U+FEFF has every character escaped.
        let bom = value.starts_with('\u{FEFF}');
        let mut spaces = false;
        let len = value.len();
        let mut iter = value.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if !is_printable(c) || bom || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let esc = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match esc {
                    Some(e) => self.put(e),
                    None => {
                        let v = c as u32;
                        let (letter, digits) = if v <= 0xFF {
                            ('x', 2)
                        } else if v <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(letter);
                        for k in (0..digits).rev() {
                            let d = (v >> (k * 4)) & 0xF;
                            self.put(char::from_digit(d, 16).unwrap_or('0').to_ascii_uppercase());
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i + 1 < len {
                    self.write_indent();
                    if iter.peek().is_some_and(|&(_, n)| n == ' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        if value.starts_with(' ') || value.starts_with(is_break) {
            self.write_indicator("2", false, false, false);
        }
        let mut rev = value.chars().rev();
        let chomp = match (rev.next(), rev.next()) {
            (Some(last), _) if !is_break(last) => Some("-"),
            (Some(_), None) => Some("+"),
            (Some(_), Some(prev)) if is_break(prev) => Some("+"),
            _ => None,
        };
        if let Some(c) = chomp {
            self.write_indicator(c, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in value.chars() {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_as_go_writes_it() {
        let v = json!({"b": [1, {"x": "w", "z": []}], "a": {}, "c": "multi\nline", "d": ""});
        assert_eq!(
            to_string(&v),
            "a: {}\nb:\n- 1\n- x: w\n  z: []\nc: |-\n  multi\n  line\nd: \"\"\n"
        );
        assert_eq!(to_string(&json!(null)), "null\n");
        assert_eq!(to_string(&json!([])), "[]\n");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        let v = json!([
            "yes",
            "1",
            "1.5",
            "~",
            "0777",
            "2001-12-14",
            "1:20",
            "a: b",
            "- x",
            "plain"
        ]);
        assert_eq!(
            to_string(&v),
            "- \"yes\"\n- \"1\"\n- \"1.5\"\n- \"~\"\n- \"0777\"\n- \"2001-12-14\"\n- \"1:20\"\n- 'a: b'\n- '- x'\n- plain\n"
        );
    }

    #[test]
    fn go_key_order() {
        let mut keys: Vec<String> = ["a10", "a2", "b", "A", "a1", "_x", "1", "01"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut refs: Vec<&String> = keys.iter().collect();
        sort_keys(&mut refs);
        let sorted: Vec<&str> = refs.iter().map(|s| s.as_str()).collect();
        // As Go writes them: `_` (not a letter, not a digit: 0) before digit runs.
        assert_eq!(sorted, ["_x", "1", "01", "A", "a1", "a2", "a10", "b"]);
        keys.clear();
    }

    #[test]
    fn numbers_as_go_prints_them() {
        let v = json!([1.0, 1e6, 1e21, 0.5, 1e-7, 1e20]);
        assert_eq!(
            to_string(&v),
            "- 1\n- 1000000\n- 1e+21\n- 0.5\n- 1e-07\n- 1e+20\n"
        );
    }
}
