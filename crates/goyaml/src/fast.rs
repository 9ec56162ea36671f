//! The fast reader: one pass from text to values for the YAML that templates and manifests
//! are made of (block mappings with simple keys, block sequences, flow collections of
//! scalars and flow collections, plain / quoted / block scalars), without the token queue and
//! events of the full reader. Scalars are scanned by the full reader's own scanner code; the
//! structure follows libyaml's rules for that subset (a mapping's keys at its column, a
//! sequence's dashes at its column or at its parent key's, flow entries between `,`).
//! Anything else — anchors, tags, `?` keys, single-pair mappings in flow sequences,
//! directives, document markers, tabs, odd line breaks, values JSON cannot hold, and every
//! error — makes it give up (`None`), and the full reader reads the text. Tests hold both
//! readers to the same answers.

use crate::gofloat;
use crate::load::{insert, GoKey, MapState};
use crate::resolve::{self, Resolved};
use crate::scan::{Mark, Scanner, PLAIN_BLOCK};
use serde_json::Value;
use std::borrow::Cow;

/// Nesting the fast reader handles; deeper documents go to the full reader.
const MAX_FAST_DEPTH: usize = 64;

/// The only document of a text as the full reader would give it (`Some(None)`: the text
/// has none), or `None` to leave the text to the full reader.
pub(crate) fn only_document(scanner: Scanner<'_>) -> Option<Option<Value>> {
    if !scanner.plain_text {
        return None;
    }
    let mut r = Fast {
        s: scanner,
        depth: 0,
    };
    r.skip_to_token()?;
    if r.s.is_z(0) {
        return Some(None);
    }
    let col = r.s.mark.col;
    let value = match r.token() {
        Token::BlockEntry => r.sequence(col, false)?,
        Token::Scalar => match r.scalar_start()? {
            (Scanned::Key(k, gk), line, _) => r.mapping(col, Some((k, gk)), line)?,
            (Scanned::Value(..), ..) => return None,
        },
        _ => return None,
    };
    // The document must be all there is.
    r.s.is_z(0).then_some(Some(value))
}

struct Fast<'a> {
    s: Scanner<'a>,
    depth: usize,
}

enum Token {
    BlockEntry,
    Scalar,
    /// `[` or `{`.
    Flow,
    BlockScalar(bool),
    Other,
}

/// A scalar read where a key may stand: a key (followed by `: `) or a value.
enum Scanned<'a> {
    Key(String, GoKey),
    Value(Cow<'a, str>, bool),
}

impl<'a> Fast<'a> {
    fn line(&self) -> usize {
        self.s.mark.line
    }

    /// libyaml's `scan_to_next_token` (no tabs here), refusing document markers and
    /// directives.
    fn skip_to_token(&mut self) -> Option<()> {
        loop {
            self.s.skip_spaces();
            if self.s.ch(0) == b'#' {
                while !(self.s.is_z(0) || self.s.is_break(0)) {
                    self.s.skip();
                }
            }
            if self.s.is_break(0) {
                self.s.skip_line();
            } else {
                break;
            }
        }
        let at_marker =
            self.s.mark.col == 0 && (self.s.at_document_indicator() || self.s.ch(0) == b'%');
        (!at_marker).then_some(())
    }

    fn token(&self) -> Token {
        let c = self.s.ch(0);
        let blank_after = |k| self.s.is_blankz(k);
        match c {
            b'-' if blank_after(1) => Token::BlockEntry,
            b'[' | b'{' => Token::Flow,
            b'|' => Token::BlockScalar(true),
            b'>' => Token::BlockScalar(false),
            b'\'' | b'"' => Token::Scalar,
            b'?' | b':' if blank_after(1) => Token::Other,
            b'-' | b'?' | b':' => Token::Scalar,
            b',' | b']' | b'}' | b'#' | b'&' | b'*' | b'!' | b'%' | b'@' | b'`' => Token::Other,
            _ if self.s.is_blankz(0) => Token::Other,
            _ => Token::Scalar,
        }
    }

    /// Reads a plain or quoted scalar (the scanner's `indent` set by the caller) and says
    /// whether it is a key: on one line and followed by `:` and a blank. Also gives the
    /// lines where it starts and ends.
    fn scalar_start(&mut self) -> Option<(Scanned<'a>, usize, usize)> {
        let line = self.line();
        let quoted = matches!(self.s.ch(0), b'\'' | b'"');
        let (text, end_line) = if quoted {
            let single = self.s.ch(0) == b'\'';
            let text = self.s.scan_flow_scalar(single).ok()?;
            (text, self.line())
        } else if let Some(text) = self.plain_on_one_line() {
            (Cow::Borrowed(text), line)
        } else {
            let (text, end) = self.s.scan_plain_scalar().ok()?;
            (text, end.line)
        };
        if end_line == line && self.line() == line && self.s.ch(0) == b':' && self.s.is_blankz(1) {
            let key = if quoted {
                (text.into_owned(), GoKey::Str)
            } else {
                if text == "<<" || text.len() > 1000 {
                    return None;
                }
                let r = resolve::plain(&text);
                (resolve::key_string(r, &text)?, GoKey::of(r))
            };
            self.s.skip();
            return Some((Scanned::Key(key.0, key.1), line, end_line));
        }
        Some((Scanned::Value(text, quoted), line, end_line))
    }

    /// A plain scalar that ends on its line (what the scanner's `scan_plain_scalar` would
    /// read, leaving the cursor where the next token's search may start), or `None` when it
    /// goes on to the next line (then the scanner reads it).
    fn plain_on_one_line(&mut self) -> Option<&'a str> {
        let b = self.s.bytes();
        let start = self.s.pos;
        let mut i = start;
        let mut continuation_bytes = 0;
        // Where the cursor stays: after the value, or after the spaces before " #"/" :".
        let (end, resume) = loop {
            while b.get(i).is_some_and(|&c| PLAIN_BLOCK[usize::from(c)]) {
                i += 1;
            }
            match b.get(i) {
                None | Some(b'\n') => break (i, i),
                Some(b':') if matches!(b.get(i + 1), None | Some(b' ' | b'\n')) => break (i, i),
                Some(b':') => i += 1,
                Some(b' ') => {
                    let mut j = i;
                    while b.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    match b.get(j) {
                        None | Some(b'\n') => break (i, i),
                        Some(b'#') => break (i, j),
                        Some(b':') if matches!(b.get(j + 1), None | Some(b' ' | b'\n')) => {
                            break (i, j)
                        }
                        _ => i = j,
                    }
                }
                Some(&c) if c >= 0x80 => {
                    let w = if c & 0xE0 == 0xC0 {
                        2
                    } else if c & 0xF0 == 0xE0 {
                        3
                    } else {
                        4
                    };
                    continuation_bytes += w - 1;
                    i += w;
                }
                // Tabs, CR and the like never reach the fast reader.
                Some(_) => return None,
            }
        };
        if end == resume && b.get(end).is_none_or(|&c| c == b'\n' || c == b' ') {
            // At the end of the line: the scalar goes on if a deeper line follows that is
            // not a comment.
            let mut k = end;
            let mut line_start = None;
            loop {
                match b.get(k) {
                    Some(b' ') => k += 1,
                    Some(b'\n') => {
                        k += 1;
                        line_start = Some(k);
                    }
                    _ => break,
                }
            }
            if let Some(ls) = line_start {
                let col = k - ls;
                if b.get(k)
                    .is_some_and(|&c| col as isize > self.s.indent && c != b'#')
                {
                    return None;
                }
                // The scanner has read the blanks and breaks after the scalar too.
                let chars = end - start - continuation_bytes;
                let lines = b[end..ls].iter().filter(|&&c| c == b'\n').count();
                self.s.pos = k;
                self.s.mark.index += chars + (k - end);
                self.s.mark.line += lines;
                self.s.mark.col = col;
                return Some(&self.s.text()[start..end]);
            }
        }
        let chars = resume - start - continuation_bytes;
        self.s.pos = resume;
        self.s.mark.index += chars;
        self.s.mark.col += chars;
        Some(&self.s.text()[start..end])
    }

    /// After a value that ended on `end_line`: the next token must be on a later line.
    fn after_value(&mut self, value: Value, end_line: usize) -> Option<Value> {
        self.skip_to_token()?;
        (self.s.is_z(0) || self.line() > end_line).then_some(value)
    }

    fn scalar_value(text: Cow<'_, str>, quoted: bool) -> Option<Value> {
        if quoted {
            return Some(Value::String(text.into_owned()));
        }
        Some(match resolve::plain(&text) {
            Resolved::Null => Value::Null,
            Resolved::Bool(b) => Value::Bool(b),
            Resolved::Int(i) => Value::from(i),
            Resolved::Uint(u) => Value::from(u),
            Resolved::Float(f) => Value::Number(gofloat::json_number(f)?),
            Resolved::Str => Value::String(text.into_owned()),
        })
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_FAST_DEPTH).then_some(())
    }

    /// A value on the same line as its key or dash (or a block scalar or `[]`/`{}` on a
    /// line of its own), within a collection at `indent`; leaves the cursor on the next
    /// token, which must be on a later line.
    fn inline_value(&mut self, indent: usize) -> Option<Value> {
        self.s.indent = indent as isize;
        let line = self.line();
        match self.token() {
            Token::Scalar => match self.scalar_start()? {
                (Scanned::Value(text, quoted), _, end_line) => {
                    let value = Self::scalar_value(text, quoted)?;
                    self.after_value(value, end_line)
                }
                (Scanned::Key(..), ..) => None,
            },
            Token::BlockScalar(literal) => {
                let value = Value::String(self.s.scan_block_scalar(literal).ok()?.0);
                self.after_value(value, line)
            }
            Token::Flow => {
                let value = self.flow_collection()?;
                let end_line = self.line();
                self.after_value(value, end_line)
            }
            Token::BlockEntry | Token::Other => None,
        }
    }

    /// Spaces, comments and line breaks inside a flow collection.
    fn skip_in_flow(&mut self) -> Option<()> {
        self.skip_to_token()?;
        (!self.s.is_z(0)).then_some(())
    }

    /// A flow collection (`[a, b]`, `{k: v, ...}`, over lines if need be) with plain and
    /// quoted scalars and nested flow collections; the cursor just after its closing
    /// bracket.
    fn flow_collection(&mut self) -> Option<Value> {
        self.enter()?;
        let open = self.s.ch(0);
        self.s.skip();
        let value = if open == b'[' {
            let mut items = Vec::new();
            loop {
                self.skip_in_flow()?;
                if self.s.ch(0) == b']' {
                    break;
                }
                items.push(self.flow_value()?);
                self.skip_in_flow()?;
                match self.s.ch(0) {
                    b',' => self.s.skip(),
                    b']' => break,
                    _ => return None,
                }
            }
            Value::Array(items)
        } else {
            let mut state = MapState::default();
            loop {
                self.skip_in_flow()?;
                if self.s.ch(0) == b'}' {
                    break;
                }
                let (key, go_key) = self.flow_key()?;
                self.skip_in_flow()?;
                let value = if matches!(self.s.ch(0), b',' | b'}') {
                    Value::Null
                } else {
                    self.flow_value()?
                };
                insert(&mut state, key, go_key, value, None, Mark::default()).ok()?;
                self.skip_in_flow()?;
                match self.s.ch(0) {
                    b',' => self.s.skip(),
                    b'}' => break,
                    _ => return None,
                }
            }
            Value::Object(state.map)
        };
        self.s.skip();
        self.depth -= 1;
        Some(value)
    }

    /// A plain or quoted scalar in flow context, as the scanner reads it there.
    fn flow_scalar(&mut self) -> Option<(Cow<'a, str>, bool, usize)> {
        let line = self.line();
        match self.s.ch(0) {
            q @ (b'\'' | b'"') => {
                let text = self.s.scan_flow_scalar(q == b'\'').ok()?;
                Some((text, true, line))
            }
            // In flow context `?` and `:` are always indicators.
            b'-' if !self.s.is_blankz(1) => self.flow_plain(line),
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%'
            | b'@' | b'`' | b'-' | b'?' | b':' => None,
            _ => self.flow_plain(line),
        }
    }

    fn flow_plain(&mut self, line: usize) -> Option<(Cow<'a, str>, bool, usize)> {
        self.s.flow_level = 1;
        let scanned = self.s.scan_plain_scalar();
        self.s.flow_level = 0;
        Some((scanned.ok()?.0, false, line))
    }

    /// A key of a flow mapping: a scalar on one line, then `:` (after a quoted key, right
    /// after it; after a plain one, with a blank).
    fn flow_key(&mut self) -> Option<(String, GoKey)> {
        let (text, quoted, line) = self.flow_scalar()?;
        if self.line() != line || self.s.ch(0) != b':' || text.len() > 1000 {
            return None;
        }
        if !quoted && !self.s.is_blankz(1) {
            return None;
        }
        self.s.skip();
        if quoted {
            return Some((text.into_owned(), GoKey::Str));
        }
        if text == "<<" {
            return None;
        }
        let r = resolve::plain(&text);
        Some((resolve::key_string(r, &text)?, GoKey::of(r)))
    }

    /// A value in a flow collection: a scalar (not followed by `:`: single-pair mappings in
    /// sequences are left to the full reader) or a nested collection.
    fn flow_value(&mut self) -> Option<Value> {
        if matches!(self.s.ch(0), b'[' | b'{') {
            return self.flow_collection();
        }
        let (text, quoted, _) = self.flow_scalar()?;
        self.skip_in_flow()?;
        if self.s.ch(0) == b':' {
            return None;
        }
        Self::scalar_value(text, quoted)
    }

    /// A node starting on a line of its own at a column deeper than its parent's `indent`.
    fn node_below(&mut self, indent: usize) -> Option<Value> {
        let col = self.s.mark.col;
        match self.token() {
            Token::BlockEntry => self.sequence(col, false),
            Token::Scalar => {
                self.s.indent = indent as isize;
                match self.scalar_start()? {
                    (Scanned::Key(k, gk), line, _) => self.mapping(col, Some((k, gk)), line),
                    (Scanned::Value(text, quoted), _, end_line) => {
                        let value = Self::scalar_value(text, quoted)?;
                        self.after_value(value, end_line)
                    }
                }
            }
            Token::BlockScalar(_) | Token::Flow => self.inline_value(indent),
            Token::Other => None,
        }
    }

    /// A block mapping whose keys stand at column `indent`; `first` is its first key when
    /// already read (the cursor then just after its `:`).
    fn mapping(
        &mut self,
        indent: usize,
        first: Option<(String, GoKey)>,
        first_line: usize,
    ) -> Option<Value> {
        self.enter()?;
        let mut state = MapState::default();
        let mut pending = first.map(|k| (k, first_line));
        loop {
            let ((key, go_key), key_line) = match pending.take() {
                Some(k) => k,
                None => {
                    if !matches!(self.token(), Token::Scalar) {
                        return None;
                    }
                    self.s.indent = indent as isize;
                    match self.scalar_start()? {
                        (Scanned::Key(k, gk), line, _) => ((k, gk), line),
                        (Scanned::Value(..), ..) => return None,
                    }
                }
            };
            self.skip_to_token()?;
            let value = if self.s.is_z(0) {
                Value::Null
            } else if self.line() == key_line {
                self.inline_value(indent)?
            } else {
                let col = self.s.mark.col;
                if col > indent {
                    self.node_below(indent)?
                } else if col == indent && matches!(self.token(), Token::BlockEntry) {
                    self.sequence(indent, true)?
                } else {
                    Value::Null
                }
            };
            insert(&mut state, key, go_key, value, None, Mark::default()).ok()?;
            if self.s.is_z(0) || self.s.mark.col < indent {
                break;
            }
            if self.s.mark.col > indent {
                return None;
            }
        }
        self.depth -= 1;
        Some(Value::Object(state.map))
    }

    /// A block sequence whose dashes stand at column `indent`; `indentless` when it is a
    /// mapping value at its key's column (it ends at the next key).
    fn sequence(&mut self, indent: usize, indentless: bool) -> Option<Value> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let dash_line = self.line();
            self.s.skip();
            self.skip_to_token()?;
            let item = if self.s.is_z(0) {
                Value::Null
            } else if self.line() == dash_line {
                let col = self.s.mark.col;
                match self.token() {
                    Token::Scalar => {
                        self.s.indent = indent as isize;
                        match self.scalar_start()? {
                            // `- key: value`: a mapping at the key's column.
                            (Scanned::Key(k, gk), line, _) => {
                                self.mapping(col, Some((k, gk)), line)?
                            }
                            (Scanned::Value(text, quoted), _, end_line) => {
                                let value = Self::scalar_value(text, quoted)?;
                                self.after_value(value, end_line)?
                            }
                        }
                    }
                    Token::BlockEntry | Token::Other => return None,
                    _ => self.inline_value(indent)?,
                }
            } else if self.s.mark.col > indent {
                self.node_below(indent)?
            } else {
                Value::Null
            };
            items.push(item);
            if self.s.is_z(0) || self.s.mark.col < indent {
                break;
            }
            if self.s.mark.col > indent {
                return None;
            }
            if !matches!(self.token(), Token::BlockEntry) {
                if indentless {
                    break;
                }
                return None;
            }
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }
}
