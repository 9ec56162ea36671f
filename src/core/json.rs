//! JSON text written by hand on the hot path: string literals with their escapes, and
//! serde helpers for fields borrowed from the request body.

use std::fmt::Write as _;

/// Which bytes JSON strings must escape: `"`, `\\` and control characters.
pub(crate) const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends a JSON string literal (quotes and escapes included).
pub fn push_json_str(buf: &mut String, s: &str) {
    buf.push('"');
    push_json_str_body(buf, s);
    buf.push('"');
}

/// Appends the escaped contents of a JSON string, without the quotes.
pub(crate) fn push_json_str_body(buf: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        buf.push_str(&s[start..i]);
        match b {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            _ => {
                let _ = write!(buf, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
}
