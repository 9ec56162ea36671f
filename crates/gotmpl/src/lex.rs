//! The lexer: splits a template into text and action tokens, applying `{{-`/`-}}` trimming
//! and dropping comments, as Go's `text/template/parse` lexer does.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Ident(Box<str>),
    Keyword(Kw),
    Bool(bool),
    Field(Box<str>),
    Var(Box<str>),
    Dot,
    Number(Box<str>),
    Str(Box<str>),
    Char(i64),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: u32,
    pub end: u32,
}

/// A lexing failure at a byte offset.
#[derive(Debug)]
pub(crate) struct LexError {
    pub pos: usize,
    pub msg: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    toks: Vec<Token>,
    paren_depth: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    if src.len() > u32::MAX as usize {
        return Err(LexError {
            pos: 0,
            msg: "template too large".into(),
        });
    }
    let mut l = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        paren_depth: 0,
    };
    l.run()?;
    Ok(l.toks)
}

impl<'s> Lexer<'s> {
    fn bytes(&self) -> &'s [u8] {
        self.src.as_bytes()
    }

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn emit(&mut self, tok: Tok, start: usize, end: usize) {
        self.toks.push(Token {
            tok,
            start: start as u32,
            end: end as u32,
        });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            msg: msg.into(),
        })
    }

    fn run(&mut self) -> Result<(), LexError> {
        loop {
            let Some(rel) = self.rest().find(LEFT) else {
                self.emit_text(self.pos, self.src.len());
                self.emit(Tok::Eof, self.src.len(), self.src.len());
                return Ok(());
            };
            let delim = self.pos + rel;
            let after = delim + LEFT.len();
            let trim = self.has_left_trim(after);
            let mut text_end = delim;
            if trim {
                while text_end > self.pos && is_space(self.bytes()[text_end - 1]) {
                    text_end -= 1;
                }
            }
            self.emit_text(self.pos, text_end);
            let inner = if trim { after + 2 } else { after };
            if self.src[inner..].starts_with("/*") {
                self.pos = inner;
                self.lex_comment(delim)?;
            } else {
                self.emit(Tok::LeftDelim, delim, inner);
                self.pos = inner;
                self.lex_action(delim)?;
            }
        }
    }

    fn emit_text(&mut self, start: usize, end: usize) {
        if end > start {
            self.emit(Tok::Text, start, end);
        }
    }

    /// `{{- ` : a dash then one space character.
    fn has_left_trim(&self, at: usize) -> bool {
        let b = self.bytes();
        at + 1 < b.len() && b[at] == b'-' && is_space(b[at + 1])
    }

    /// At ` -}}` (trim) or `}}`: returns (is_delim, trims, length).
    fn at_right_delim(&self, at: usize) -> Option<(bool, usize)> {
        let b = &self.src[at..];
        let bb = b.as_bytes();
        if bb.len() >= 4 && is_space(bb[0]) && bb[1] == b'-' && b[2..].starts_with(RIGHT) {
            return Some((true, 4));
        }
        if b.starts_with(RIGHT) {
            return Some((false, 2));
        }
        None
    }

    /// After a right delimiter: a trim marker skips the whitespace that follows.
    fn close_action(&mut self, start: usize, trim: bool, len: usize) {
        self.emit(Tok::RightDelim, start, start + len);
        self.pos = start + len;
        if trim {
            while self.pos < self.src.len() && is_space(self.bytes()[self.pos]) {
                self.pos += 1;
            }
        }
    }

    fn lex_comment(&mut self, delim: usize) -> Result<(), LexError> {
        let Some(rel) = self.rest().find("*/") else {
            return self.err(delim, "unclosed comment");
        };
        let end = self.pos + rel + 2;
        match self.at_right_delim(end) {
            Some((trim, len)) => {
                self.pos = end;
                // A comment emits nothing, but its trim markers still apply.
                self.pos = end + len;
                if trim {
                    while self.pos < self.src.len() && is_space(self.bytes()[self.pos]) {
                        self.pos += 1;
                    }
                }
                Ok(())
            }
            None => self.err(end, "comment ends before closing delimiter"),
        }
    }

    fn lex_action(&mut self, delim: usize) -> Result<(), LexError> {
        loop {
            if let Some((trim, len)) = self.at_right_delim(self.pos) {
                if self.paren_depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.close_action(self.pos, trim, len);
                return Ok(());
            }
            let start = self.pos;
            let Some(c) = self.rest().chars().next() else {
                return self.err(delim, "unclosed action");
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => self.lex_space(),
                '=' => self.one(Tok::Assign, start),
                ':' => {
                    if self.rest().starts_with(":=") {
                        self.pos += 2;
                        self.emit(Tok::Declare, start, self.pos);
                    } else {
                        return self.err(start, "expected :=");
                    }
                }
                '|' => self.one(Tok::Pipe, start),
                ',' => self.one(Tok::Comma, start),
                '"' => self.lex_quote(start)?,
                '`' => self.lex_raw(start)?,
                '\'' => self.lex_char(start)?,
                '$' => self.lex_variable(start)?,
                '(' => {
                    self.paren_depth += 1;
                    self.one(Tok::LParen, start)
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.one(Tok::RParen, start)
                }
                '.' => {
                    let next = self.src[start + 1..].chars().next();
                    match next {
                        Some(d) if d.is_ascii_digit() => self.lex_number(start)?,
                        Some(a) if is_alnum(a) => self.lex_field(start)?,
                        _ => self.one(Tok::Dot, start),
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number(start)?,
                c if is_alnum(c) => self.lex_identifier(start)?,
                c => return self.err(start, format!("unrecognized character in action: {c:?}")),
            }
        }
    }

    fn one(&mut self, tok: Tok, start: usize) {
        self.pos = start + 1;
        self.emit(tok, start, self.pos);
    }

    fn lex_space(&mut self) {
        let start = self.pos;
        while self.pos < self.src.len() && is_space(self.bytes()[self.pos]) {
            // The space of a " -}}" belongs to the trim marker.
            if self.at_right_delim(self.pos).is_some_and(|(t, _)| t) {
                break;
            }
            self.pos += 1;
        }
        if self.pos > start {
            self.emit(Tok::Space, start, self.pos);
        }
    }

    fn word_end(&self, from: usize) -> usize {
        let mut end = from;
        for c in self.src[from..].chars() {
            if !is_alnum(c) {
                break;
            }
            end += c.len_utf8();
        }
        end
    }

    /// After a word, Go demands a terminator so that `.A$x` is an error.
    fn check_terminator(&self, at: usize) -> Result<(), LexError> {
        let Some(c) = self.src[at..].chars().next() else {
            return Ok(());
        };
        if matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(' | '='
        ) || self.at_right_delim(at).is_some()
        {
            return Ok(());
        }
        self.err(at, format!("bad character {c:?}"))
    }

    fn lex_identifier(&mut self, start: usize) -> Result<(), LexError> {
        let end = self.word_end(start);
        self.check_terminator(end)?;
        let word = &self.src[start..end];
        let tok = match word {
            "block" => Tok::Keyword(Kw::Block),
            "break" => Tok::Keyword(Kw::Break),
            "continue" => Tok::Keyword(Kw::Continue),
            "define" => Tok::Keyword(Kw::Define),
            "else" => Tok::Keyword(Kw::Else),
            "end" => Tok::Keyword(Kw::End),
            "if" => Tok::Keyword(Kw::If),
            "nil" => Tok::Keyword(Kw::Nil),
            "range" => Tok::Keyword(Kw::Range),
            "template" => Tok::Keyword(Kw::Template),
            "with" => Tok::Keyword(Kw::With),
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            w => Tok::Ident(w.into()),
        };
        self.pos = end;
        self.emit(tok, start, end);
        Ok(())
    }

    fn lex_field(&mut self, start: usize) -> Result<(), LexError> {
        let end = self.word_end(start + 1);
        self.check_terminator(end)?;
        self.pos = end;
        self.emit(Tok::Field(self.src[start + 1..end].into()), start, end);
        Ok(())
    }

    fn lex_variable(&mut self, start: usize) -> Result<(), LexError> {
        let end = self.word_end(start + 1);
        self.check_terminator(end)?;
        self.pos = end;
        self.emit(Tok::Var(self.src[start..end].into()), start, end);
        Ok(())
    }

    fn lex_number(&mut self, start: usize) -> Result<(), LexError> {
        let b = self.bytes();
        let mut i = start;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let mut digits = "0123456789_";
        let mut exp = b"eE";
        if b[i..].len() >= 2 && b[i] == b'0' {
            match b[i + 1] {
                b'x' | b'X' => {
                    digits = "0123456789abcdefABCDEF_";
                    exp = b"pP";
                    i += 2;
                }
                b'o' | b'O' => {
                    digits = "01234567_";
                    i += 2;
                }
                b'b' | b'B' => {
                    digits = "01_";
                    i += 2;
                }
                _ => {}
            }
        }
        let take = |i: &mut usize, set: &str| {
            while *i < b.len() && set.as_bytes().contains(&b[*i]) {
                *i += 1;
            }
        };
        take(&mut i, digits);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            take(&mut i, digits);
        }
        if i < b.len() && exp.contains(&b[i]) {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            take(&mut i, "0123456789_");
        }
        if let Some(c) = self.src[i..].chars().next() {
            if is_alnum(c) || c == '.' {
                let text = format!("{}{c}", &self.src[start..i]);
                return self.err(start, format!("bad number syntax: {text:?}"));
            }
        }
        self.pos = i;
        self.emit(Tok::Number(self.src[start..i].into()), start, i);
        Ok(())
    }

    fn lex_quote(&mut self, start: usize) -> Result<(), LexError> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        loop {
            let Some((off, c)) = chars.next() else {
                return self.err(start, "unterminated quoted string");
            };
            match c {
                '"' => {
                    self.pos = start + 1 + off + 1;
                    break;
                }
                '\n' => return self.err(start, "unterminated quoted string"),
                '\\' => unescape(&mut chars, &mut out, '"').map_err(|msg| LexError {
                    pos: start + 1 + off,
                    msg,
                })?,
                c => out.push(c),
            }
        }
        self.emit(Tok::Str(out.into()), start, self.pos);
        Ok(())
    }

    fn lex_raw(&mut self, start: usize) -> Result<(), LexError> {
        let Some(rel) = self.src[start + 1..].find('`') else {
            return self.err(start, "unterminated raw quoted string");
        };
        let end = start + 1 + rel;
        // Go drops carriage returns from raw strings.
        let text: String = self.src[start + 1..end]
            .chars()
            .filter(|&c| c != '\r')
            .collect();
        self.pos = end + 1;
        self.emit(Tok::Str(text.into()), start, self.pos);
        Ok(())
    }

    fn lex_char(&mut self, start: usize) -> Result<(), LexError> {
        let mut chars = self.src[start + 1..].char_indices();
        let mut buf = String::new();
        match chars.next() {
            Some((_, '\\')) => {
                unescape(&mut chars, &mut buf, '\'').map_err(|msg| LexError { pos: start, msg })?
            }
            Some((_, '\'')) | Some((_, '\n')) | None => {
                return self.err(start, "malformed character constant")
            }
            Some((_, c)) => buf.push(c),
        }
        match chars.next() {
            Some((off, '\'')) => self.pos = start + 1 + off + 1,
            Some((_, c)) if c != '\n' => return self.err(start, "malformed character constant"),
            _ => return self.err(start, "unterminated character constant"),
        }
        let code = buf.chars().next().map(|c| c as i64).unwrap_or(0);
        self.emit(Tok::Char(code), start, self.pos);
        Ok(())
    }
}

/// One Go escape sequence after a backslash (the backslash already consumed).
fn unescape(
    chars: &mut std::str::CharIndices,
    out: &mut String,
    quote: char,
) -> Result<(), String> {
    let Some((_, c)) = chars.next() else {
        return Err("unterminated escape".into());
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        q if q == quote => Some(q),
        _ => None,
    };
    if let Some(s) = simple {
        out.push(s);
        return Ok(());
    }
    let (count, radix) = match c {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (2, 8),
        _ => return Err(format!("unknown escape sequence: \\{c}")),
    };
    let mut text = String::new();
    if radix == 8 {
        text.push(c);
    }
    for _ in 0..count {
        match chars.next() {
            Some((_, d)) => text.push(d),
            None => return Err("unterminated escape".into()),
        }
    }
    let code =
        u32::from_str_radix(&text, radix).map_err(|_| format!("invalid escape \\{c}{text}"))?;
    if c == 'x' || radix == 8 {
        // A byte escape: Go strings are bytes; we keep ASCII bytes and map the rest to
        // their Latin-1 code point (Go would hold a raw, possibly invalid UTF-8, byte).
        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
    } else {
        out.push(
            char::from_u32(code).ok_or_else(|| format!("invalid Unicode code point {code:#x}"))?,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn trims_and_comments() {
        let src = "a  {{- /* c */ -}}  b";
        let toks = lex(src).unwrap();
        let texts: Vec<&str> = toks
            .iter()
            .filter(|t| t.tok == Tok::Text)
            .map(|t| &src[t.start as usize..t.end as usize])
            .collect();
        assert_eq!(texts, vec!["a", "b"]);
    }

    #[test]
    fn tokens_of_an_action() {
        assert_eq!(
            kinds(r#"{{$x := .A.B | f "s\n" 1}}"#),
            vec![
                Tok::LeftDelim,
                Tok::Var("$x".into()),
                Tok::Space,
                Tok::Declare,
                Tok::Space,
                Tok::Field("A".into()),
                Tok::Field("B".into()),
                Tok::Space,
                Tok::Pipe,
                Tok::Space,
                Tok::Ident("f".into()),
                Tok::Space,
                Tok::Str("s\n".into()),
                Tok::Space,
                Tok::Number("1".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn unclosed_action_is_an_error() {
        assert!(lex("{{ .A ").is_err());
        assert!(lex("{{/* x */ }}").is_err());
    }
}
