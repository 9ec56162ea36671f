//! The scanner: text to tokens, by the rules of libyaml's scanner as go-yaml v2 ports it
//! (simple keys, indentation columns, flow levels), so that the same texts are accepted and
//! refused. It reads the borrowed `&str` in place: a scalar needing no unfolding or
//! unescaping is a slice of the input, not a copy.

use crate::error::{Error, ErrorKind};
use std::borrow::Cow;
use std::collections::VecDeque;

/// A position: `index` counts characters from the start (go-yaml's simple-key limit is in
/// characters), `line` and `col` are 0-based, `col` in characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub index: usize,
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug)]
pub enum Tok<'a> {
    StreamStart,
    StreamEnd,
    VersionDirective(u8, u8),
    TagDirective { handle: String, prefix: String },
    DocumentStart,
    DocumentEnd,
    BlockSequenceStart,
    BlockMappingStart,
    BlockEnd,
    FlowSequenceStart,
    FlowSequenceEnd,
    FlowMappingStart,
    FlowMappingEnd,
    BlockEntry,
    FlowEntry,
    Key,
    Value,
    Alias(&'a str),
    Anchor(&'a str),
    Tag { handle: String, suffix: String },
    Scalar { value: Cow<'a, str>, style: Style },
}

#[derive(Debug)]
pub struct Token<'a> {
    pub tok: Tok<'a>,
    pub start: Mark,
    pub end: Mark,
    /// The flow level whose possible simple key starts at this token (go-yaml's
    /// `simple_keys_by_tok`), or `NO_KEY`.
    key_level: u32,
}

const NO_KEY: u32 = u32::MAX;
/// go-yaml's `max_flow_level` and `max_indents`.
const MAX_LEVELS: usize = 10000;

#[derive(Clone, Copy, Default)]
struct SimpleKey {
    possible: bool,
    required: bool,
    token_number: usize,
    mark: Mark,
}

/// The line break a fold remembers: `\n` for LF, CR, CRLF and NEL; LS and PS are kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Break {
    None,
    Newline,
    Other(&'static str),
}

pub struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) mark: Mark,
    tokens: VecDeque<Token<'a>>,
    tokens_parsed: usize,
    token_available: bool,
    stream_start_produced: bool,
    stream_end_produced: bool,
    pub(crate) flow_level: usize,
    pub(crate) indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    simple_keys: Vec<SimpleKey>,
    /// The level to attach to the next token pushed (its simple key was just saved).
    pending_key_level: u32,
    /// The text has none of what the fast reader leaves to this one (tabs, CR, NEL, LS,
    /// PS, byte order marks).
    pub(crate) plain_text: bool,
}

type Res<T> = Result<T, Error>;

fn syntax(mark: Mark, message: &str) -> Error {
    Error::new(ErrorKind::Syntax, mark, message)
}

#[inline]
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

#[inline]
fn utf8_width(c: u8) -> usize {
    if c < 0x80 {
        1
    } else if c & 0xE0 == 0xC0 {
        2
    } else if c & 0xF0 == 0xE0 {
        3
    } else {
        4
    }
}

fn hex_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'a'..=b'f' => u32::from(c - b'a') + 10,
        _ => u32::from(c.wrapping_sub(b'A')) + 10,
    }
}

/// ASCII bytes a plain scalar takes without a second look: not blank, not a break, not ':'
/// (nor, in flow context, a flow indicator), not the start of a multi-byte character.
pub(crate) const PLAIN_BLOCK: [bool; 256] = plain_table(false);
const PLAIN_FLOW: [bool; 256] = plain_table(true);

const fn plain_table(flow: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0x21;
    while c < 0x7F {
        t[c] = c != b':' as usize
            && !(flow && matches!(c as u8, b',' | b'?' | b'[' | b']' | b'{' | b'}'));
        c += 1;
    }
    t
}

/// The first character go-yaml's reader refuses ("control characters are not allowed"),
/// as a byte offset; and whether the text is free of tabs, CR, NEL, LS, PS and U+FEFF.
fn check_characters(b: &[u8]) -> (Option<usize>, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut plain = true;
    let mut i = 0;
    while i < b.len() {
        // Eight printable ASCII bytes or LFs at a time (no byte >= 0x80, 0x7F, or below 0x20
        // but LF).
        if let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            // The high bit of each zero byte of x, exactly (no borrows between bytes).
            let zeros = |x: u64| !((((x & !HIGH) + !HIGH) | x) | !HIGH);
            let control = zeros(w & (ONES * 0xE0)) & !zeros(w ^ (ONES * b'\n' as u64));
            let del = zeros(w ^ (ONES * 0x7F));
            if (w & HIGH) | control | del == 0 {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        if c < 0x80 {
            match c {
                b'\t' | b'\r' => plain = false,
                0x20..=0x7E | b'\n' => {}
                _ => return (Some(i), plain),
            }
            i += 1;
            continue;
        }
        let next = b.get(i + 1).copied().unwrap_or(0);
        let third = b.get(i + 2).copied().unwrap_or(0);
        match c {
            0xC2 if next == 0x85 => plain = false,
            0xC2 if next < 0xA0 => return (Some(i), plain),
            0xE2 if next == 0x80 && matches!(third, 0xA8 | 0xA9) => plain = false,
            0xEF if next == 0xBF && matches!(third, 0xBE | 0xBF) => return (Some(i), plain),
            0xEF if next == 0xBB && third == 0xBF => plain = false,
            _ => {}
        }
        i += utf8_width(c);
    }
    (None, plain)
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Res<Self> {
        let (disallowed, plain_text) = check_characters(text.as_bytes());
        if let Some(at) = disallowed {
            let before = &text[..at];
            let line = before.matches('\n').count();
            let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count();
            return Err(syntax(
                Mark {
                    index: 0,
                    line,
                    col,
                },
                "control characters are not allowed",
            ));
        }
        // The reader takes a UTF-8 byte order mark as the encoding's, not as content.
        let src = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        Ok(Scanner {
            src,
            b: src.as_bytes(),
            pos: 0,
            mark: Mark::default(),
            tokens: VecDeque::new(),
            tokens_parsed: 0,
            token_available: false,
            stream_start_produced: false,
            stream_end_produced: false,
            flow_level: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: false,
            simple_keys: Vec::new(),
            pending_key_level: NO_KEY,
            plain_text,
        })
    }

    // ---- the parser's interface ----------------------------------------------------

    /// The next token, scanning as far ahead as simple keys require.
    pub fn peek(&mut self) -> Res<&Token<'a>> {
        if !self.token_available {
            self.fetch_more_tokens()?;
        }
        match self.tokens.front() {
            Some(t) => Ok(t),
            None => Err(syntax(self.mark, "no more tokens")),
        }
    }

    pub fn skip_token(&mut self) -> Option<Token<'a>> {
        self.token_available = false;
        self.tokens_parsed += 1;
        let t = self.tokens.pop_front();
        if matches!(
            t,
            Some(Token {
                tok: Tok::StreamEnd,
                ..
            })
        ) {
            self.stream_end_produced = true;
        }
        t
    }

    pub fn stream_ended(&self) -> bool {
        self.stream_end_produced
    }

    // ---- characters -------------------------------------------------------------------

    #[inline]
    pub(crate) fn ch(&self, k: usize) -> u8 {
        self.b.get(self.pos + k).copied().unwrap_or(0)
    }

    #[inline]
    pub(crate) fn is_z(&self, k: usize) -> bool {
        self.pos + k >= self.b.len()
    }

    #[inline]
    pub(crate) fn is_blank(&self, k: usize) -> bool {
        matches!(self.ch(k), b' ' | b'\t')
    }

    #[inline]
    pub(crate) fn is_break(&self, k: usize) -> bool {
        match self.ch(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.ch(k + 1) == 0x85,
            0xE2 => self.ch(k + 1) == 0x80 && matches!(self.ch(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    #[inline]
    fn is_breakz(&self, k: usize) -> bool {
        self.is_z(k) || self.is_break(k)
    }

    #[inline]
    pub(crate) fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_breakz(k)
    }

    #[inline]
    pub(crate) fn skip(&mut self) {
        let w = utf8_width(self.ch(0));
        self.pos = (self.pos + w).min(self.b.len());
        self.mark.index += 1;
        self.mark.col += 1;
    }

    /// The text being read, as bytes.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.b
    }

    pub(crate) fn text(&self) -> &'a str {
        self.src
    }

    /// Skips a run of spaces.
    #[inline]
    pub(crate) fn skip_spaces(&mut self) {
        let n = self.b[self.pos..]
            .iter()
            .take_while(|&&c| c == b' ')
            .count();
        self.pos += n;
        self.mark.index += n;
        self.mark.col += n;
    }

    /// Skips one line break (CRLF counts as one).
    pub(crate) fn skip_line(&mut self) {
        if self.ch(0) == b'\r' && self.ch(1) == b'\n' {
            self.pos += 2;
            self.mark.index += 2;
        } else if self.is_break(0) {
            self.pos += utf8_width(self.ch(0));
            self.mark.index += 1;
        } else {
            return;
        }
        self.mark.col = 0;
        self.mark.line += 1;
    }

    /// Appends the current character to `s` and skips it.
    #[inline]
    fn read(&mut self, s: &mut String) {
        let w = utf8_width(self.ch(0));
        let end = (self.pos + w).min(self.b.len());
        s.push_str(&self.src[self.pos..end]);
        self.skip();
    }

    /// Skips a line break and says how a fold sees it.
    fn read_line(&mut self) -> Break {
        let br = match self.ch(0) {
            b'\r' | b'\n' => Break::Newline,
            0xC2 => Break::Newline,
            _ if self.ch(2) == 0xA8 => Break::Other("\u{2028}"),
            _ => Break::Other("\u{2029}"),
        };
        self.skip_line();
        br
    }

    pub(crate) fn at_document_indicator(&self) -> bool {
        self.mark.col == 0
            && ((self.ch(0) == b'-' && self.ch(1) == b'-' && self.ch(2) == b'-')
                || (self.ch(0) == b'.' && self.ch(1) == b'.' && self.ch(2) == b'.'))
            && self.is_blankz(3)
    }

    // ---- token queue and simple keys --------------------------------------------------

    fn push_token(&mut self, tok: Tok<'a>, start: Mark, end: Mark) {
        let key_level = std::mem::replace(&mut self.pending_key_level, NO_KEY);
        self.tokens.push_back(Token {
            tok,
            start,
            end,
            key_level,
        });
    }

    fn insert_token(&mut self, at: usize, tok: Tok<'a>, mark: Mark) {
        let at = at.min(self.tokens.len());
        self.tokens.insert(
            at,
            Token {
                tok,
                start: mark,
                end: mark,
                key_level: NO_KEY,
            },
        );
    }

    fn forget_key_token(&mut self, token_number: usize) {
        if let Some(i) = token_number.checked_sub(self.tokens_parsed) {
            if let Some(t) = self.tokens.get_mut(i) {
                t.key_level = NO_KEY;
            }
        }
        if token_number == self.tokens_parsed + self.tokens.len() {
            self.pending_key_level = NO_KEY;
        }
    }

    fn fetch_more_tokens(&mut self) -> Res<()> {
        loop {
            if let Some(head) = self.tokens.front() {
                let level = head.key_level;
                if level == NO_KEY || !self.simple_key_is_valid(level as usize)? {
                    break;
                }
            }
            self.fetch_next_token()?;
        }
        self.token_available = true;
        Ok(())
    }

    fn simple_key_is_valid(&mut self, level: usize) -> Res<bool> {
        let mark = self.mark;
        let Some(key) = self.simple_keys.get_mut(level) else {
            return Ok(false);
        };
        if !key.possible {
            return Ok(false);
        }
        if key.mark.line < mark.line || key.mark.index + 1024 < mark.index {
            if key.required {
                return Err(syntax(key.mark, "could not find expected ':'"));
            }
            key.possible = false;
            return Ok(false);
        }
        Ok(true)
    }

    fn save_simple_key(&mut self) -> Res<()> {
        let required = self.flow_level == 0 && self.indent == self.mark.col as isize;
        if self.simple_key_allowed {
            let key = SimpleKey {
                possible: true,
                required,
                token_number: self.tokens_parsed + self.tokens.len(),
                mark: self.mark,
            };
            self.remove_simple_key()?;
            let level = self.simple_keys.len() - 1;
            self.simple_keys[level] = key;
            self.pending_key_level = level as u32;
        }
        Ok(())
    }

    fn remove_simple_key(&mut self) -> Res<()> {
        let i = self.simple_keys.len() - 1;
        let key = self.simple_keys[i];
        if key.possible {
            if key.required {
                return Err(syntax(key.mark, "could not find expected ':'"));
            }
            self.simple_keys[i].possible = false;
            self.forget_key_token(key.token_number);
        }
        Ok(())
    }

    fn increase_flow_level(&mut self) -> Res<()> {
        self.simple_keys.push(SimpleKey {
            token_number: self.tokens_parsed + self.tokens.len(),
            mark: self.mark,
            ..SimpleKey::default()
        });
        self.flow_level += 1;
        if self.flow_level > MAX_LEVELS {
            return Err(syntax(self.mark, "exceeded max depth of 10000"));
        }
        Ok(())
    }

    fn decrease_flow_level(&mut self) {
        if self.flow_level > 0 {
            self.flow_level -= 1;
            if let Some(key) = self.simple_keys.pop() {
                self.forget_key_token(key.token_number);
            }
        }
    }

    /// Opens a block collection at `column` if it is deeper than the current one; the start
    /// token goes at `number` (a simple key's token number) or at the end.
    fn roll_indent(
        &mut self,
        column: usize,
        number: Option<usize>,
        tok: Tok<'a>,
        mark: Mark,
    ) -> Res<()> {
        if self.flow_level > 0 {
            return Ok(());
        }
        if self.indent < column as isize {
            self.indents.push(self.indent);
            self.indent = column as isize;
            if self.indents.len() > MAX_LEVELS {
                return Err(syntax(self.mark, "exceeded max depth of 10000"));
            }
            match number {
                Some(n) => self.insert_token(n.saturating_sub(self.tokens_parsed), tok, mark),
                None => self.push_token(tok, mark, mark),
            }
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow_level > 0 {
            return;
        }
        while self.indent > column {
            let m = self.mark;
            self.push_token(Tok::BlockEnd, m, m);
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    // ---- fetching tokens --------------------------------------------------------------

    fn fetch_next_token(&mut self) -> Res<()> {
        if !self.stream_start_produced {
            self.indent = -1;
            self.simple_keys.push(SimpleKey::default());
            self.simple_key_allowed = true;
            self.stream_start_produced = true;
            let m = self.mark;
            self.push_token(Tok::StreamStart, m, m);
            return Ok(());
        }
        if self.stream_end_produced {
            return Err(syntax(
                self.mark,
                "no more tokens after the end of the stream",
            ));
        }
        self.scan_to_next_token()?;
        self.unroll_indent(self.mark.col as isize);
        if self.is_z(0) {
            return self.fetch_stream_end();
        }
        let c = self.ch(0);
        if self.mark.col == 0 && c == b'%' {
            return self.fetch_directive();
        }
        if self.mark.col == 0
            && c == b'-'
            && self.ch(1) == b'-'
            && self.ch(2) == b'-'
            && self.is_blankz(3)
        {
            return self.fetch_document_indicator(Tok::DocumentStart);
        }
        if self.mark.col == 0
            && c == b'.'
            && self.ch(1) == b'.'
            && self.ch(2) == b'.'
            && self.is_blankz(3)
        {
            return self.fetch_document_indicator(Tok::DocumentEnd);
        }
        match c {
            b'[' => return self.fetch_flow_collection_start(Tok::FlowSequenceStart),
            b'{' => return self.fetch_flow_collection_start(Tok::FlowMappingStart),
            b']' => return self.fetch_flow_collection_end(Tok::FlowSequenceEnd),
            b'}' => return self.fetch_flow_collection_end(Tok::FlowMappingEnd),
            b',' => return self.fetch_flow_entry(),
            _ => {}
        }
        if c == b'-' && self.is_blankz(1) {
            return self.fetch_block_entry();
        }
        if c == b'?' && (self.flow_level > 0 || self.is_blankz(1)) {
            return self.fetch_key();
        }
        if c == b':' && (self.flow_level > 0 || self.is_blankz(1)) {
            return self.fetch_value();
        }
        match c {
            b'*' => return self.fetch_anchor(true),
            b'&' => return self.fetch_anchor(false),
            b'!' => return self.fetch_tag(),
            b'|' if self.flow_level == 0 => return self.fetch_block_scalar(true),
            b'>' if self.flow_level == 0 => return self.fetch_block_scalar(false),
            b'\'' => return self.fetch_flow_scalar(true),
            b'"' => return self.fetch_flow_scalar(false),
            _ => {}
        }
        let indicator = self.is_blankz(0)
            || matches!(
                c,
                b'-' | b'?'
                    | b':'
                    | b','
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'#'
                    | b'&'
                    | b'*'
                    | b'!'
                    | b'|'
                    | b'>'
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'`'
            );
        if !indicator
            || (c == b'-' && !self.is_blank(1))
            || (self.flow_level == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
        {
            return self.fetch_plain_scalar();
        }
        Err(syntax(
            self.mark,
            "found character that cannot start any token",
        ))
    }

    fn scan_to_next_token(&mut self) -> Res<()> {
        loop {
            while self.ch(0) == b' '
                || ((self.flow_level > 0 || !self.simple_key_allowed) && self.ch(0) == b'\t')
            {
                self.skip();
            }
            if self.ch(0) == b'#' {
                while !self.is_breakz(0) {
                    self.skip();
                }
            }
            if self.is_break(0) {
                self.skip_line();
                if self.flow_level == 0 {
                    self.simple_key_allowed = true;
                }
            } else {
                return Ok(());
            }
        }
    }

    fn fetch_stream_end(&mut self) -> Res<()> {
        if self.mark.col != 0 {
            self.mark.col = 0;
            self.mark.line += 1;
        }
        self.unroll_indent(-1);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        let m = self.mark;
        self.push_token(Tok::StreamEnd, m, m);
        Ok(())
    }

    fn fetch_directive(&mut self) -> Res<()> {
        self.unroll_indent(-1);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        let tok = self.scan_directive()?;
        let end = self.mark;
        self.push_token(tok, start, end);
        Ok(())
    }

    fn fetch_document_indicator(&mut self, tok: Tok<'a>) -> Res<()> {
        self.unroll_indent(-1);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        self.skip();
        self.skip();
        self.skip();
        let end = self.mark;
        self.push_token(tok, start, end);
        Ok(())
    }

    fn fetch_flow_collection_start(&mut self, tok: Tok<'a>) -> Res<()> {
        self.save_simple_key()?;
        self.increase_flow_level()?;
        self.simple_key_allowed = true;
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(tok, start, end);
        Ok(())
    }

    fn fetch_flow_collection_end(&mut self, tok: Tok<'a>) -> Res<()> {
        self.remove_simple_key()?;
        self.decrease_flow_level();
        self.simple_key_allowed = false;
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(tok, start, end);
        Ok(())
    }

    fn fetch_flow_entry(&mut self) -> Res<()> {
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(Tok::FlowEntry, start, end);
        Ok(())
    }

    fn fetch_block_entry(&mut self) -> Res<()> {
        if self.flow_level == 0 {
            if !self.simple_key_allowed {
                return Err(syntax(
                    self.mark,
                    "block sequence entries are not allowed in this context",
                ));
            }
            let m = self.mark;
            self.roll_indent(m.col, None, Tok::BlockSequenceStart, m)?;
        }
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(Tok::BlockEntry, start, end);
        Ok(())
    }

    fn fetch_key(&mut self) -> Res<()> {
        if self.flow_level == 0 {
            if !self.simple_key_allowed {
                return Err(syntax(
                    self.mark,
                    "mapping keys are not allowed in this context",
                ));
            }
            let m = self.mark;
            self.roll_indent(m.col, None, Tok::BlockMappingStart, m)?;
        }
        self.remove_simple_key()?;
        self.simple_key_allowed = self.flow_level == 0;
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(Tok::Key, start, end);
        Ok(())
    }

    fn fetch_value(&mut self) -> Res<()> {
        let level = self.simple_keys.len() - 1;
        if self.simple_key_is_valid(level)? {
            let key = self.simple_keys[level];
            // The key token and, for a new block mapping, its start go before the key.
            self.forget_key_token(key.token_number);
            self.insert_token(
                key.token_number.saturating_sub(self.tokens_parsed),
                Tok::Key,
                key.mark,
            );
            self.roll_indent(
                key.mark.col,
                Some(key.token_number),
                Tok::BlockMappingStart,
                key.mark,
            )?;
            self.simple_keys[level].possible = false;
            self.simple_key_allowed = false;
        } else {
            if self.flow_level == 0 {
                if !self.simple_key_allowed {
                    return Err(syntax(
                        self.mark,
                        "mapping values are not allowed in this context",
                    ));
                }
                let m = self.mark;
                self.roll_indent(m.col, None, Tok::BlockMappingStart, m)?;
            }
            self.simple_key_allowed = self.flow_level == 0;
        }
        let start = self.mark;
        self.skip();
        let end = self.mark;
        self.push_token(Tok::Value, start, end);
        Ok(())
    }

    fn fetch_anchor(&mut self, alias: bool) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        self.skip();
        let from = self.pos;
        while is_alpha(self.ch(0)) {
            self.skip();
        }
        let name = &self.src[from..self.pos];
        let end = self.mark;
        if name.is_empty()
            || !(self.is_blankz(0)
                || matches!(
                    self.ch(0),
                    b'?' | b':' | b',' | b']' | b'}' | b'%' | b'@' | b'`'
                ))
        {
            return Err(syntax(
                start,
                "did not find expected alphabetic or numeric character",
            ));
        }
        let tok = if alias {
            Tok::Alias(name)
        } else {
            Tok::Anchor(name)
        };
        self.push_token(tok, start, end);
        Ok(())
    }

    fn fetch_tag(&mut self) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        let (handle, suffix) = if self.ch(1) == b'<' {
            self.skip();
            self.skip();
            let suffix = self.scan_tag_uri(false, "", start)?;
            if self.ch(0) != b'>' {
                return Err(syntax(start, "did not find the expected '>'"));
            }
            self.skip();
            (String::new(), suffix)
        } else {
            let handle = self.scan_tag_handle(false, start)?;
            if handle.len() > 1 && handle.starts_with('!') && handle.ends_with('!') {
                let suffix = self.scan_tag_uri(false, "", start)?;
                (handle, suffix)
            } else {
                let suffix = self.scan_tag_uri(false, &handle, start)?;
                if suffix.is_empty() {
                    (String::new(), "!".to_owned())
                } else {
                    ("!".to_owned(), suffix)
                }
            }
        };
        if !self.is_blankz(0) {
            return Err(syntax(
                start,
                "did not find expected whitespace or line break",
            ));
        }
        let end = self.mark;
        self.push_token(Tok::Tag { handle, suffix }, start, end);
        Ok(())
    }

    fn fetch_block_scalar(&mut self, literal: bool) -> Res<()> {
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let start = self.mark;
        let (value, end) = self.scan_block_scalar(literal)?;
        let style = if literal {
            Style::Literal
        } else {
            Style::Folded
        };
        self.push_token(
            Tok::Scalar {
                value: Cow::Owned(value),
                style,
            },
            start,
            end,
        );
        Ok(())
    }

    fn fetch_flow_scalar(&mut self, single: bool) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        let value = self.scan_flow_scalar(single)?;
        let end = self.mark;
        let style = if single {
            Style::SingleQuoted
        } else {
            Style::DoubleQuoted
        };
        self.push_token(Tok::Scalar { value, style }, start, end);
        Ok(())
    }

    fn fetch_plain_scalar(&mut self) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let start = self.mark;
        let (value, end) = self.scan_plain_scalar()?;
        self.push_token(
            Tok::Scalar {
                value,
                style: Style::Plain,
            },
            start,
            end,
        );
        Ok(())
    }

    // ---- scanning token bodies --------------------------------------------------------

    fn skip_blanks_and_comment(&mut self) {
        while self.is_blank(0) {
            self.skip();
        }
        if self.ch(0) == b'#' {
            while !self.is_breakz(0) {
                self.skip();
            }
        }
    }

    fn scan_directive(&mut self) -> Res<Tok<'a>> {
        let start = self.mark;
        self.skip();
        let from = self.pos;
        while is_alpha(self.ch(0)) {
            self.skip();
        }
        let name = &self.src[from..self.pos];
        if name.is_empty() {
            return Err(syntax(start, "could not find expected directive name"));
        }
        if !self.is_blankz(0) {
            return Err(syntax(start, "found unexpected non-alphabetical character"));
        }
        let tok = match name {
            "YAML" => {
                while self.is_blank(0) {
                    self.skip();
                }
                let major = self.scan_version_number(start)?;
                if self.ch(0) != b'.' {
                    return Err(syntax(
                        start,
                        "did not find expected digit or '.' character",
                    ));
                }
                self.skip();
                let minor = self.scan_version_number(start)?;
                Tok::VersionDirective(major, minor)
            }
            "TAG" => {
                while self.is_blank(0) {
                    self.skip();
                }
                let handle = self.scan_tag_handle(true, start)?;
                if !self.is_blank(0) {
                    return Err(syntax(start, "did not find expected whitespace"));
                }
                while self.is_blank(0) {
                    self.skip();
                }
                let prefix = self.scan_tag_uri(true, "", start)?;
                if !self.is_blankz(0) {
                    return Err(syntax(
                        start,
                        "did not find expected whitespace or line break",
                    ));
                }
                Tok::TagDirective { handle, prefix }
            }
            _ => return Err(syntax(start, "found unknown directive name")),
        };
        self.skip_blanks_and_comment();
        if !self.is_breakz(0) {
            return Err(syntax(start, "did not find expected comment or line break"));
        }
        self.skip_line();
        Ok(tok)
    }

    fn scan_version_number(&mut self, start: Mark) -> Res<u8> {
        let mut value = 0u8;
        let mut length = 0;
        while self.ch(0).is_ascii_digit() {
            length += 1;
            if length > 2 {
                return Err(syntax(start, "found extremely long version number"));
            }
            value = value * 10 + (self.ch(0) - b'0');
            self.skip();
        }
        if length == 0 {
            return Err(syntax(start, "did not find expected version number"));
        }
        Ok(value)
    }

    fn scan_tag_handle(&mut self, directive: bool, start: Mark) -> Res<String> {
        if self.ch(0) != b'!' {
            return Err(syntax(start, "did not find expected '!'"));
        }
        let mut s = String::new();
        self.read(&mut s);
        while is_alpha(self.ch(0)) {
            self.read(&mut s);
        }
        if self.ch(0) == b'!' {
            self.read(&mut s);
        } else if directive && s != "!" {
            return Err(syntax(start, "did not find expected '!'"));
        }
        Ok(s)
    }

    fn scan_tag_uri(&mut self, directive: bool, head: &str, start: Mark) -> Res<String> {
        let mut has_tag = !head.is_empty();
        let mut s = String::new();
        if head.len() > 1 {
            s.push_str(&head[1..]);
        }
        loop {
            let c = self.ch(0);
            let uri_char = is_alpha(c)
                || matches!(
                    c,
                    b';' | b'/'
                        | b'?'
                        | b':'
                        | b'@'
                        | b'&'
                        | b'='
                        | b'+'
                        | b'$'
                        | b','
                        | b'.'
                        | b'!'
                        | b'~'
                        | b'*'
                        | b'\''
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b'%'
                );
            if !uri_char {
                break;
            }
            if c == b'%' {
                self.scan_uri_escapes(directive, start, &mut s)?;
            } else {
                self.read(&mut s);
            }
            has_tag = true;
        }
        if !has_tag {
            return Err(syntax(start, "did not find expected tag URI"));
        }
        Ok(s)
    }

    fn scan_uri_escapes(&mut self, _directive: bool, start: Mark, s: &mut String) -> Res<()> {
        let mut bytes = Vec::new();
        let mut width = 0usize;
        loop {
            if !(self.ch(0) == b'%'
                && self.ch(1).is_ascii_hexdigit()
                && self.ch(2).is_ascii_hexdigit())
            {
                return Err(syntax(start, "did not find URI escaped octet"));
            }
            let octet = (hex_value(self.ch(1)) << 4 | hex_value(self.ch(2))) as u8;
            if bytes.is_empty() {
                width = match octet {
                    o if o & 0x80 == 0 => 1,
                    o if o & 0xE0 == 0xC0 => 2,
                    o if o & 0xF0 == 0xE0 => 3,
                    o if o & 0xF8 == 0xF0 => 4,
                    _ => return Err(syntax(start, "found an incorrect leading UTF-8 octet")),
                };
            } else if octet & 0xC0 != 0x80 {
                return Err(syntax(start, "found an incorrect trailing UTF-8 octet"));
            }
            bytes.push(octet);
            self.skip();
            self.skip();
            self.skip();
            if bytes.len() == width {
                break;
            }
        }
        // go-yaml keeps the octets as they are; a tag only matters when it equals one of
        // YAML's own, which are ASCII, so an invalid sequence may become U+FFFD.
        s.push_str(&String::from_utf8_lossy(&bytes));
        Ok(())
    }

    pub(crate) fn scan_block_scalar(&mut self, literal: bool) -> Res<(String, Mark)> {
        let start = self.mark;
        self.skip();
        let mut chomping = 0i8;
        let mut increment = 0usize;
        if matches!(self.ch(0), b'+' | b'-') {
            chomping = if self.ch(0) == b'+' { 1 } else { -1 };
            self.skip();
            if self.ch(0).is_ascii_digit() {
                if self.ch(0) == b'0' {
                    return Err(syntax(start, "found an indentation indicator equal to 0"));
                }
                increment = usize::from(self.ch(0) - b'0');
                self.skip();
            }
        } else if self.ch(0).is_ascii_digit() {
            if self.ch(0) == b'0' {
                return Err(syntax(start, "found an indentation indicator equal to 0"));
            }
            increment = usize::from(self.ch(0) - b'0');
            self.skip();
            if matches!(self.ch(0), b'+' | b'-') {
                chomping = if self.ch(0) == b'+' { 1 } else { -1 };
                self.skip();
            }
        }
        self.skip_blanks_and_comment();
        if !self.is_breakz(0) {
            return Err(syntax(start, "did not find expected comment or line break"));
        }
        if self.is_break(0) {
            self.skip_line();
        }
        let mut end = self.mark;
        let mut indent = 0usize;
        if increment > 0 {
            indent = if self.indent >= 0 {
                self.indent as usize + increment
            } else {
                increment
            };
        }
        let mut s = String::new();
        let mut leading_break = Break::None;
        let mut trailing_breaks = String::new();
        self.scan_block_scalar_breaks(&mut indent, &mut trailing_breaks, start, &mut end)?;
        let mut leading_blank = false;
        while self.mark.col == indent && !self.is_z(0) {
            let trailing_blank = self.is_blank(0);
            if !literal && !leading_blank && !trailing_blank && leading_break == Break::Newline {
                if trailing_breaks.is_empty() {
                    s.push(' ');
                }
            } else {
                push_break(&mut s, leading_break);
            }
            s.push_str(&trailing_breaks);
            trailing_breaks.clear();
            leading_blank = self.is_blank(0);
            let from = self.pos;
            while !self.is_breakz(0) {
                self.skip();
            }
            s.push_str(&self.src[from..self.pos]);
            leading_break = if self.is_z(0) {
                Break::None
            } else {
                self.read_line()
            };
            self.scan_block_scalar_breaks(&mut indent, &mut trailing_breaks, start, &mut end)?;
        }
        if chomping != -1 {
            push_break(&mut s, leading_break);
        }
        if chomping == 1 {
            s.push_str(&trailing_breaks);
        }
        Ok((s, end))
    }

    fn scan_block_scalar_breaks(
        &mut self,
        indent: &mut usize,
        breaks: &mut String,
        start: Mark,
        end: &mut Mark,
    ) -> Res<()> {
        *end = self.mark;
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || self.mark.col < *indent) && self.ch(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.mark.col);
            if (*indent == 0 || self.mark.col < *indent) && self.ch(0) == b'\t' {
                return Err(syntax(
                    start,
                    "found a tab character where an indentation space is expected",
                ));
            }
            if !self.is_break(0) {
                break;
            }
            let br = self.read_line();
            push_break(breaks, br);
            *end = self.mark;
        }
        if *indent == 0 {
            *indent = max_indent.max((self.indent + 1).max(1) as usize);
        }
        Ok(())
    }

    pub(crate) fn scan_flow_scalar(&mut self, single: bool) -> Res<Cow<'a, str>> {
        let start = self.mark;
        self.skip();
        if let Some(v) = self.quoted_on_one_line(single) {
            return Ok(Cow::Borrowed(v));
        }
        let mut s = String::new();
        let mut leading_break = Break::None;
        let mut trailing_breaks = String::new();
        let mut whitespaces = String::new();
        loop {
            if self.at_document_indicator() {
                return Err(syntax(start, "found unexpected document indicator"));
            }
            if self.is_z(0) {
                return Err(syntax(start, "found unexpected end of stream"));
            }
            let mut leading_blanks = false;
            while !self.is_blankz(0) {
                let c = self.ch(0);
                if single && c == b'\'' && self.ch(1) == b'\'' {
                    s.push('\'');
                    self.skip();
                    self.skip();
                } else if single && c == b'\'' || !single && c == b'"' {
                    break;
                } else if !single && c == b'\\' && self.is_break(1) {
                    self.skip();
                    self.skip_line();
                    leading_blanks = true;
                    break;
                } else if !single && c == b'\\' {
                    self.scan_escape(&mut s, start)?;
                } else {
                    self.read(&mut s);
                }
            }
            if self.ch(0) == if single { b'\'' } else { b'"' } {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    if !leading_blanks {
                        self.read(&mut whitespaces);
                    } else {
                        self.skip();
                    }
                } else if !leading_blanks {
                    whitespaces.clear();
                    leading_break = self.read_line();
                    leading_blanks = true;
                } else {
                    let br = self.read_line();
                    push_break(&mut trailing_breaks, br);
                }
            }
            if leading_blanks {
                if leading_break == Break::Newline {
                    if trailing_breaks.is_empty() {
                        s.push(' ');
                    } else {
                        s.push_str(&trailing_breaks);
                    }
                } else {
                    push_break(&mut s, leading_break);
                    s.push_str(&trailing_breaks);
                }
                trailing_breaks.clear();
                leading_break = Break::None;
            } else {
                s.push_str(&whitespaces);
                whitespaces.clear();
            }
        }
        self.skip();
        Ok(Cow::Owned(s))
    }

    /// The common quoted scalar: closed on its own line, without escapes or doubled quotes.
    /// Returns it as a slice (and moves past the closing quote), or `None` for the slow path.
    fn quoted_on_one_line(&mut self, single: bool) -> Option<&'a str> {
        let quote = if single { b'\'' } else { b'"' };
        let rest = &self.b[self.pos..];
        let mut chars = 0;
        for (i, &c) in rest.iter().enumerate() {
            if c == quote {
                if single && rest.get(i + 1) == Some(&b'\'') {
                    return None;
                }
                let v = &self.src[self.pos..self.pos + i];
                self.pos += i + 1;
                self.mark.index += chars + 1;
                self.mark.col += chars + 1;
                return Some(v);
            }
            match c {
                b'\\' if !single => return None,
                b'\r' | b'\n' | 0xC2 | 0xE2 => return None,
                _ => {}
            }
            if c & 0xC0 != 0x80 {
                chars += 1;
            }
        }
        None
    }

    fn scan_escape(&mut self, s: &mut String, start: Mark) -> Res<()> {
        let code_length = match self.ch(1) {
            b'0' => {
                s.push('\0');
                0
            }
            b'a' => {
                s.push('\x07');
                0
            }
            b'b' => {
                s.push('\x08');
                0
            }
            b't' | b'\t' => {
                s.push('\t');
                0
            }
            b'n' => {
                s.push('\n');
                0
            }
            b'v' => {
                s.push('\x0B');
                0
            }
            b'f' => {
                s.push('\x0C');
                0
            }
            b'r' => {
                s.push('\r');
                0
            }
            b'e' => {
                s.push('\x1B');
                0
            }
            b' ' => {
                s.push(' ');
                0
            }
            b'"' => {
                s.push('"');
                0
            }
            b'\'' => {
                s.push('\'');
                0
            }
            b'\\' => {
                s.push('\\');
                0
            }
            b'N' => {
                s.push('\u{85}');
                0
            }
            b'_' => {
                s.push('\u{A0}');
                0
            }
            b'L' => {
                s.push('\u{2028}');
                0
            }
            b'P' => {
                s.push('\u{2029}');
                0
            }
            b'x' => 2,
            b'u' => 4,
            b'U' => 8,
            _ => return Err(syntax(start, "found unknown escape character")),
        };
        self.skip();
        self.skip();
        if code_length > 0 {
            let mut value: u32 = 0;
            for k in 0..code_length {
                let c = self.ch(k);
                if !c.is_ascii_hexdigit() {
                    return Err(syntax(start, "did not find expected hexdecimal number"));
                }
                value = (value << 4) + hex_value(c);
            }
            let Some(c) = char::from_u32(value) else {
                return Err(syntax(start, "found invalid Unicode character escape code"));
            };
            s.push(c);
            for _ in 0..code_length {
                self.skip();
            }
        }
        Ok(())
    }

    pub(crate) fn scan_plain_scalar(&mut self) -> Res<(Cow<'a, str>, Mark)> {
        // Borrowed until a line break is folded into the value; then an owned copy.
        let from = self.pos;
        let mut to = self.pos;
        let mut owned: Option<String> = None;
        let mut leading_break = Break::None;
        let mut trailing_breaks = String::new();
        let mut whitespace: Option<(usize, usize)> = None;
        let mut leading_blanks = false;
        let indent = self.indent + 1;
        let start = self.mark;
        let mut end = self.mark;
        loop {
            if self.at_document_indicator() || self.ch(0) == b'#' {
                break;
            }
            let flow = self.flow_level > 0;
            loop {
                let c = self.ch(0);
                let w = if c < 0x80 {
                    match c {
                        b' ' | b'\t' | b'\r' | b'\n' => break,
                        0 if self.is_z(0) => break,
                        b':' if self.is_blankz(1) => break,
                        b',' | b'?' | b'[' | b']' | b'{' | b'}' if flow => break,
                        _ => 1,
                    }
                } else {
                    if self.is_break(0) {
                        break;
                    }
                    utf8_width(c)
                };
                if leading_blanks || whitespace.is_some() {
                    if leading_blanks {
                        let s = owned.get_or_insert_with(|| self.src[from..to].to_owned());
                        if leading_break == Break::Newline {
                            if trailing_breaks.is_empty() {
                                s.push(' ');
                            } else {
                                s.push_str(&trailing_breaks);
                            }
                        } else {
                            push_break(s, leading_break);
                            s.push_str(&trailing_breaks);
                        }
                        trailing_breaks.clear();
                        leading_break = Break::None;
                        leading_blanks = false;
                    } else if let (Some(s), Some((a, b))) = (owned.as_mut(), whitespace) {
                        s.push_str(&self.src[a..b]);
                    }
                    whitespace = None;
                }
                // This character and the ordinary ASCII ones after it, in one step.
                let mut next = (self.pos + w).min(self.b.len());
                let mut chars = 1;
                if c < 0x80 && c != b':' {
                    let table = if flow { &PLAIN_FLOW } else { &PLAIN_BLOCK };
                    let run = self.b[next..]
                        .iter()
                        .take_while(|&&d| table[usize::from(d)])
                        .count();
                    next += run;
                    chars += run;
                }
                if let Some(s) = owned.as_mut() {
                    s.push_str(&self.src[self.pos..next]);
                }
                self.pos = next;
                self.mark.index += chars;
                self.mark.col += chars;
                end = self.mark;
                to = self.pos;
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if leading_blanks && self.ch(0) == b' ' {
                    // Indentation: a run of spaces in one step.
                    let n = self.b[self.pos..]
                        .iter()
                        .take_while(|&&c| c == b' ')
                        .count();
                    self.pos += n;
                    self.mark.index += n;
                    self.mark.col += n;
                    continue;
                }
                if self.is_blank(0) {
                    if leading_blanks && (self.mark.col as isize) < indent && self.ch(0) == b'\t' {
                        return Err(syntax(
                            start,
                            "found a tab character that violates indentation",
                        ));
                    }
                    if !leading_blanks {
                        let a = whitespace.map_or(self.pos, |(a, _)| a);
                        self.skip();
                        whitespace = Some((a, self.pos));
                    } else {
                        self.skip();
                    }
                } else if !leading_blanks {
                    whitespace = None;
                    leading_break = self.read_line();
                    leading_blanks = true;
                } else {
                    let br = self.read_line();
                    push_break(&mut trailing_breaks, br);
                }
            }
            if self.flow_level == 0 && (self.mark.col as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
        let value = match owned {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(&self.src[from..to]),
        };
        Ok((value, end))
    }
}

fn push_break(s: &mut String, br: Break) {
    match br {
        Break::None => {}
        Break::Newline => s.push('\n'),
        Break::Other(t) => s.push_str(t),
    }
}
