//! The parser: tokens to the tree in `ast`, with Go's rules for variables in scope,
//! functions known at parse time, `else if`/`else with` chains and `break`/`continue`.

use crate::ast::{Arg, Branch, Cmd, FieldName, List, Node, Pipe, Span};
use crate::error::ParseError;
use crate::funcs::FuncMap;
use crate::lex::{lex, Kw, Tok, Token};
use crate::value::{key_hash, lower_camel, Value};
use std::collections::HashMap;

/// Control structures and parentheses nested deeper than this are refused, so that neither
/// the parser nor the executor can be driven into a stack overflow.
pub(crate) const MAX_NESTING: usize = 200;

/// The trees of one template source: the main one and every `define`/`block`.
pub(crate) struct Parsed {
    pub main: List,
    pub defs: HashMap<String, List>,
}

pub(crate) fn parse(name: &str, src: &str, funcs: &FuncMap) -> Result<Parsed, ParseError> {
    let toks = lex(src).map_err(|e| ParseError::at(name, src, e.pos, e.msg))?;
    let mut p = Parser {
        name,
        src,
        toks,
        i: 0,
        funcs,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
        defs: HashMap::new(),
    };
    let main = p.top()?;
    Ok(Parsed { main, defs: p.defs })
}

/// What ended a list: `{{end}}` or `{{else}}` (with the token index after `else`).
enum Ending {
    End,
    Else,
}

struct Parser<'s, 'f> {
    name: &'s str,
    src: &'s str,
    toks: Vec<Token>,
    i: usize,
    funcs: &'f FuncMap,
    vars: Vec<Box<str>>,
    range_depth: usize,
    depth: usize,
    defs: HashMap<String, List>,
}

type PResult<T> = Result<T, ParseError>;

impl<'s, 'f> Parser<'s, 'f> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> &Token {
        self.skip_space();
        self.peek()
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }

    fn err<T>(&self, pos: u32, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError::at(
            self.name,
            self.src,
            pos as usize,
            msg.into(),
        ))
    }

    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Eof => "EOF".into(),
            Tok::RightDelim => "\"}}\"".into(),
            Tok::Space => "space".into(),
            _ => format!("{:?}", &self.src[t.start as usize..t.end as usize]),
        }
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> PResult<T> {
        self.err(
            t.start,
            format!("unexpected {} in {context}", self.describe(t)),
        )
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(())
    }

    fn enter(&mut self, pos: u32) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(pos, format!("nesting deeper than {MAX_NESTING}"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn top(&mut self) -> PResult<List> {
        let mut list = List::default();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof => return Ok(list),
                Tok::LeftDelim => {
                    let save = self.i;
                    self.next();
                    if self.peek_non_space().tok == Tok::Keyword(Kw::Define) {
                        self.next();
                        self.definition()?;
                        continue;
                    }
                    self.i = save;
                }
                _ => {}
            }
            match self.text_or_action()? {
                Item::Node(n) => list.0.push(n),
                Item::End(t) => return self.err(t.start, "unexpected {{end}}"),
                Item::Else(t) => return self.err(t.start, "unexpected {{else}}"),
            }
        }
    }

    /// `{{define "name"}} list {{end}}`: a fresh variable scope with only `$`.
    fn definition(&mut self) -> PResult<()> {
        let pos = self.toks[self.i.saturating_sub(1)].start;
        let name = self.template_name("define clause")?;
        self.expect_right_delim("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, ending) = self.item_list()?;
        self.vars = saved;
        if let (Ending::Else, t) = ending {
            return self.unexpected(&t, "define clause");
        }
        self.add_definition(name, list, pos)
    }

    /// Go's rule: an empty definition never replaces one; two non-empty ones are an error.
    fn add_definition(&mut self, name: String, list: List, pos: u32) -> PResult<()> {
        let is_empty = |l: &List| {
            l.0.iter()
                .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
        };
        match self.defs.get(&name) {
            Some(old) if !is_empty(old) && is_empty(&list) => Ok(()),
            Some(old) if !is_empty(old) => self.err(
                pos,
                format!("template: multiple definition of template {name:?}"),
            ),
            _ => {
                self.defs.insert(name, list);
                Ok(())
            }
        }
    }

    fn template_name(&mut self, context: &str) -> PResult<String> {
        let t = self.next_non_space();
        match t.tok {
            Tok::Str(s) => Ok(s.into()),
            _ => self.unexpected(&t, context),
        }
    }

    fn item_list(&mut self) -> PResult<(List, (Ending, Token))> {
        let mut list = List::default();
        loop {
            if self.peek().tok == Tok::Eof {
                let t = self.peek().clone();
                return self.err(t.start, "unexpected EOF");
            }
            match self.text_or_action()? {
                Item::Node(n) => list.0.push(n),
                Item::End(t) => return Ok((list, (Ending::End, t))),
                Item::Else(t) => return Ok((list, (Ending::Else, t))),
            }
        }
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next();
        match t.tok {
            Tok::Text => Ok(Item::Node(Node::Text(
                self.src[t.start as usize..t.end as usize].into(),
            ))),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> PResult<Item> {
        let t = self.peek_non_space().clone();
        if let Tok::Keyword(kw) = t.tok {
            match kw {
                Kw::Block => {
                    self.next();
                    return self.block(t.start).map(Item::Node);
                }
                Kw::Break | Kw::Continue => {
                    self.next();
                    return self.loop_control(kw, &t).map(Item::Node);
                }
                Kw::Else => {
                    self.next();
                    // `else if` / `else with` keep their keyword for the enclosing control.
                    if !matches!(
                        self.peek_non_space().tok,
                        Tok::Keyword(Kw::If) | Tok::Keyword(Kw::With)
                    ) {
                        self.expect_right_delim("else")?;
                    }
                    return Ok(Item::Else(t));
                }
                Kw::End => {
                    self.next();
                    self.expect_right_delim("end")?;
                    return Ok(Item::End(t));
                }
                Kw::If => {
                    self.next();
                    return self.control("if", t.start).map(|b| Item::Node(Node::If(b)));
                }
                Kw::Range => {
                    self.next();
                    return self
                        .control("range", t.start)
                        .map(|b| Item::Node(Node::Range(b)));
                }
                Kw::With => {
                    self.next();
                    return self
                        .control("with", t.start)
                        .map(|b| Item::Node(Node::With(b)));
                }
                Kw::Template => {
                    self.next();
                    return self.template_call(t.start).map(Item::Node);
                }
                Kw::Define => return self.unexpected(&t, "command"),
                Kw::Nil => {}
            }
        }
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Item::Node(Node::Action(pipe)))
    }

    fn loop_control(&mut self, kw: Kw, t: &Token) -> PResult<Node> {
        let word = if kw == Kw::Break { "break" } else { "continue" };
        if self.range_depth == 0 {
            return self.err(t.start, format!("{{{{{word}}}}} outside {{{{range}}}}"));
        }
        self.expect_right_delim(word)?;
        Ok(if kw == Kw::Break {
            Node::Break
        } else {
            Node::Continue
        })
    }

    fn control(&mut self, context: &str, pos: u32) -> PResult<Branch> {
        self.enter(pos)?;
        let vars_len = self.vars.len();
        let result = self.control_body(context);
        self.vars.truncate(vars_len);
        self.leave();
        result
    }

    fn control_body(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, (ending, _)) = listed?;
        let else_list = match ending {
            Ending::End => None,
            Ending::Else => Some(self.else_part(context)?),
        };
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn else_part(&mut self, context: &str) -> PResult<List> {
        let t = self.peek_non_space().clone();
        let chained = match (context, &t.tok) {
            ("if", Tok::Keyword(Kw::If)) => Some("if"),
            ("with", Tok::Keyword(Kw::With)) => Some("with"),
            _ => None,
        };
        if let Some(kind) = chained {
            // `else if`: a nested control that consumes the single `{{end}}`.
            self.next();
            let branch = self.control(kind, t.start)?;
            let node = if kind == "if" {
                Node::If(branch)
            } else {
                Node::With(branch)
            };
            return Ok(List(vec![node]));
        }
        let (list, (ending, t)) = self.item_list()?;
        if let Ending::Else = ending {
            return self.err(t.start, "expected end; found {{else}}");
        }
        Ok(list)
    }

    fn template_call(&mut self, pos: u32) -> PResult<Node> {
        let name = self.template_name("template clause")?;
        let pipe = if self.peek_non_space().tok == Tok::RightDelim {
            self.next();
            None
        } else {
            Some(self.pipeline("template clause", Tok::RightDelim)?)
        };
        let end = self.toks[self.i.saturating_sub(1)].end;
        Ok(Node::Template {
            name: name.into(),
            pipe,
            span: Span { start: pos, end },
        })
    }

    /// `{{block "name" pipeline}} list {{end}}`: define it, and call it here.
    fn block(&mut self, pos: u32) -> PResult<Node> {
        let name = self.template_name("block clause")?;
        let pipe = self.pipeline("block clause", Tok::RightDelim)?;
        // A block's body is a template of its own: only `$`, and no enclosing range.
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let listed = self.item_list();
        self.vars = saved;
        self.range_depth = saved_range;
        let (list, (ending, t)) = listed?;
        if let Ending::Else = ending {
            return self.unexpected(&t, "block clause");
        }
        self.add_definition(name.clone(), list, pos)?;
        Ok(Node::Template {
            name: name.into(),
            pipe: Some(pipe),
            span: Span {
                start: pos,
                end: t.end,
            },
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let start = self.peek_non_space().start;
        let (decl, assign) = self.declarations(context)?;
        let mut cmds = Vec::new();
        loop {
            let t = self.peek_non_space().clone();
            if t.tok == end {
                self.next();
                let span = Span {
                    start,
                    end: t.start,
                };
                self.check_pipeline(&cmds, context, &t)?;
                return Ok(Pipe {
                    decl,
                    assign,
                    cmds,
                    span,
                });
            }
            match t.tok {
                Tok::Bool(_)
                | Tok::Char(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Keyword(Kw::Nil)
                | Tok::Str(_)
                | Tok::Var(_)
                | Tok::LParen => cmds.push(self.command()?),
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, cmds: &[Cmd], context: &str, t: &Token) -> PResult<()> {
        if cmds.is_empty() {
            return self.err(t.start, format!("missing value for {context}"));
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if c.args.first().is_some_and(Arg::is_literal) {
                return self.err(
                    c.span.start,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    /// `$x :=`, `$x =`, or in `range` `$i, $v :=`.
    fn declarations(&mut self, context: &str) -> PResult<(Vec<Box<str>>, bool)> {
        let mut decl = Vec::new();
        loop {
            let save = self.i;
            let v = self.peek_non_space().clone();
            let Tok::Var(name) = v.tok.clone() else {
                self.i = save;
                break;
            };
            self.next();
            let after = self.peek_non_space().clone();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    self.next();
                    let assign = after.tok == Tok::Assign;
                    if assign && !self.vars.contains(&name) {
                        return self.err(v.start, format!("undefined variable {name:?}"));
                    }
                    decl.push(name.clone());
                    if !assign {
                        self.vars.push(name);
                    }
                    return Ok((decl, assign));
                }
                Tok::Comma => {
                    self.next();
                    decl.push(name.clone());
                    self.vars.push(name);
                    if context != "range" || decl.len() >= 2 {
                        return self
                            .err(after.start, format!("too many declarations in {context}"));
                    }
                    if !matches!(self.peek_non_space().tok, Tok::Var(_)) {
                        return self.err(after.start, "range can only initialize variables");
                    }
                }
                _ => {
                    self.i = save;
                    // Undo a half-read `$i,` pair: it was not a declaration.
                    for d in decl.drain(..) {
                        if let Some(pos) = self.vars.iter().rposition(|v| *v == d) {
                            self.vars.remove(pos);
                        }
                    }
                    break;
                }
            }
        }
        Ok((decl, false))
    }

    fn command(&mut self) -> PResult<Cmd> {
        let start = self.peek_non_space().start;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(arg) = self.operand()? {
                args.push(arg);
            }
            let t = self.peek().clone();
            match t.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RParen => break,
                Tok::Pipe => {
                    self.next();
                    break;
                }
                _ => return self.unexpected(&t, "operand"),
            }
        }
        if args.is_empty() {
            return self.err(start, "empty command");
        }
        let end = self.toks[self.i.saturating_sub(1)].end;
        Ok(Cmd {
            args,
            span: Span { start, end },
        })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let t = self.peek().clone();
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut chain = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            chain.push(field_name(f));
            self.next();
        }
        if chain.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut fs) => {
                fs.extend(chain);
                Arg::Field(fs)
            }
            Arg::Var(v, mut fs) => {
                fs.extend(chain);
                Arg::Var(v, fs)
            }
            a if a.is_literal() => {
                let text = &self.src[t.start as usize..t.end as usize];
                return self.err(t.start, format!("unexpected . after term {text:?}"));
            }
            other => Arg::Chain(Box::new(other), chain),
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.peek().clone();
        let arg = match t.tok {
            Tok::Ident(name) => match self.funcs.lookup(&name) {
                Some(idx) => Arg::Func(idx, name),
                None => return self.err(t.start, format!("function {name:?} not defined")),
            },
            Tok::Dot => Arg::Dot,
            Tok::Keyword(Kw::Nil) => Arg::Nil,
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return self.err(t.start, format!("undefined variable {name:?}"));
                }
                Arg::Var(name, Vec::new())
            }
            Tok::Field(f) => Arg::Field(vec![field_name(&f)]),
            Tok::Bool(b) => Arg::Lit(Value::Bool(b)),
            Tok::Char(c) => Arg::Lit(Value::Int(c)),
            Tok::Number(text) => self.number(&text, t.start)?,
            Tok::Str(s) => Arg::Lit(Value::String(s.into())),
            Tok::LParen => {
                self.next();
                self.enter(t.start)?;
                let pipe = self.pipeline("parenthesized pipeline", Tok::RParen);
                self.leave();
                return Ok(Some(Arg::Pipe(Box::new(pipe?))));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(arg))
    }

    fn number(&self, text: &str, pos: u32) -> PResult<Arg> {
        parse_number(text)
            .ok_or(())
            .or_else(|_| self.err(pos, format!("illegal number syntax: {text:?}")))
    }
}

enum Item {
    Node(Node),
    End(Token),
    Else(Token),
}

fn field_name(go: &str) -> FieldName {
    let json = lower_camel(go);
    FieldName {
        go: go.into(),
        json_hash: key_hash(&json),
        json: json.into(),
        getter: go
            .strip_prefix("Get")
            .filter(|rest| !rest.is_empty())
            .map(|rest| {
                let key = lower_camel(rest);
                let hash = key_hash(&key);
                (key.into(), hash)
            }),
    }
}

/// A Go numeric literal: ints (decimal, 0x, 0o, 0b, legacy octal), and floats when the text
/// has a fraction or exponent.
fn parse_number(text: &str) -> Option<Arg> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) {
            None
        } else {
            i64::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.contains(['.', 'e']) {
        None
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(Arg::Lit(Value::Int(if neg { -i } else { i })));
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        let f = parse_hex_float(hex)?;
        return Some(Arg::Lit(Value::Float(if neg { -f } else { f })));
    }
    let f: f64 = lower.parse().ok().filter(|f: &f64| f.is_finite())?;
    if !lower.contains(['.', 'e']) {
        // An integer literal too large for int64: Go rejects it too.
        return None;
    }
    Some(Arg::Lit(Value::Float(if neg { -f } else { f })))
}

/// `1.8p-2` (after `0x`): hex mantissa, binary exponent.
fn parse_hex_float(hex: &str) -> Option<f64> {
    let (mant, exp) = hex.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{int}{frac}");
    let m = u64::from_str_radix(&digits, 16).ok()? as f64;
    let f = m * 2f64.powi(exp - 4 * frac.len() as i32);
    f.is_finite().then_some(f)
}
