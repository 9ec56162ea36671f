//! The executor: walks a parsed tree over a value, writing into one `String`. Values are
//! `Cow`s: anything reached from the data or the template's constants is borrowed, only
//! function results are owned.

use crate::ast::{Arg, Branch, Cmd, FieldName, List, Node, Pipe, Span};
use crate::error::{line_col, ExecError, ExecErrorKind};
use crate::funcs::{Ctx, Func};
use crate::gofmt::{sprint_one, write_value, NilAs};
use crate::value::Value;
use crate::Template;
use std::borrow::Cow;

pub(crate) type V<'a> = Cow<'a, Value>;

/// Bounds on one execution, so hostile templates or data cannot hang or exhaust memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest output, in bytes (also the largest string a function may build).
    pub max_output: usize,
    /// Total `range` iterations over the whole execution.
    pub max_iterations: u64,
    /// Nesting of `{{template}}` calls and control structures together (Go allows 100000
    /// template calls on its growable stacks; ours are fixed, so the default is lower).
    pub max_depth: usize,
    /// Values built by functions and copied out of variables, counted in elements (and
    /// string bytes / 16). Bounds loops such as `$l = append $l x` that are quadratic.
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 16 << 20,
            max_iterations: 1_000_000,
            max_depth: 256,
            max_work: 50_000_000,
        }
    }
}

/// What a list ended with: normally, or at `{{break}}` / `{{continue}}`.
#[derive(PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, ExecError>;

pub(crate) struct State<'a> {
    tmpl: &'a Template,
    pub out: String,
    vars: Vec<(&'a str, V<'a>)>,
    limits: Limits,
    iterations: u64,
    depth: usize,
    work: u64,
    arg_pool: Vec<Vec<V<'a>>>,
}

impl<'a> State<'a> {
    pub fn new(tmpl: &'a Template, data: &'a Value, limits: Limits) -> Self {
        State {
            tmpl,
            out: String::with_capacity(tmpl.src.len() + 1024),
            vars: vec![("$", Cow::Borrowed(data))],
            limits,
            iterations: 0,
            depth: 0,
            work: 0,
            arg_pool: Vec::new(),
        }
    }

    pub fn run(&mut self, list: &'a List, data: &'a Value) -> R<()> {
        self.walk(&Cow::Borrowed(data), list).map(|_| ())
    }

    fn error(&self, span: Span, kind: ExecErrorKind) -> ExecError {
        let src = &self.tmpl.src;
        let (line, col) = line_col(src, span.start as usize);
        let (s, e) = (span.start as usize, (span.end as usize).min(src.len()));
        let construct = src.get(s..e).unwrap_or("").trim();
        let construct: String = construct.chars().take(120).collect();
        ExecError {
            template: self.tmpl.name.clone(),
            line,
            col,
            construct,
            kind,
        }
    }

    fn invalid(&self, span: Span, msg: impl Into<String>) -> ExecError {
        self.error(span, ExecErrorKind::Invalid(msg.into()))
    }

    fn write(&mut self, span: Span, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.limits.max_output {
            return Err(self.error(span, ExecErrorKind::OutputLimit(self.limits.max_output)));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn write_value(&mut self, span: Span, v: &Value) -> R<()> {
        match v {
            Value::String(s) => self.write(span, s),
            other => {
                // Straight into the output; a value too big to print is caught after.
                let before = self.out.len();
                write_value(&mut self.out, other, NilAs::NoValue);
                if self.out.len() > self.limits.max_output {
                    self.out.truncate(before);
                    return Err(
                        self.error(span, ExecErrorKind::OutputLimit(self.limits.max_output))
                    );
                }
                Ok(())
            }
        }
    }

    fn charge(&mut self, span: Span, units: u64) -> R<()> {
        self.work = self.work.saturating_add(units);
        if self.work > self.limits.max_work {
            return Err(self.error(span, ExecErrorKind::WorkLimit(self.limits.max_work)));
        }
        Ok(())
    }

    /// A copy of a value: free when borrowed, charged by size when it is an owned result.
    fn copy(&mut self, v: &V<'a>, span: Span) -> R<V<'a>> {
        if let Cow::Owned(o) = v {
            self.charge(span, deep_weight(o))?;
        }
        Ok(v.clone())
    }

    fn enter(&mut self, span: Span) -> R<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(self.error(span, ExecErrorKind::DepthLimit(self.limits.max_depth)));
        }
        Ok(())
    }

    fn walk(&mut self, dot: &V<'a>, list: &'a List) -> R<Flow> {
        for node in &list.0 {
            let flow = self.walk_node(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_node(&mut self, dot: &V<'a>, node: &'a Node) -> R<Flow> {
        match node {
            Node::Text(t) => self.write(Span::default(), t).map(|_| Flow::Normal),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.write_value(pipe.span, &v)?;
                }
                Ok(Flow::Normal)
            }
            Node::If(b) => self.nested(b.pipe.span, |s| s.walk_if_with(dot, b, false)),
            Node::With(b) => self.nested(b.pipe.span, |s| s.walk_if_with(dot, b, true)),
            Node::Range(b) => self.nested(b.pipe.span, |s| s.walk_range(dot, b)),
            Node::Template { name, pipe, span } => {
                self.walk_template(dot, name, pipe.as_ref(), *span)?;
                Ok(Flow::Normal)
            }
            Node::Break => Ok(Flow::Break),
            Node::Continue => Ok(Flow::Continue),
        }
    }

    /// Runs a control structure one level deeper, with its variables popped at its end.
    fn nested(&mut self, span: Span, f: impl FnOnce(&mut Self) -> R<Flow>) -> R<Flow> {
        self.enter(span)?;
        let mark = self.vars.len();
        let result = f(self);
        self.vars.truncate(mark);
        self.depth -= 1;
        result
    }

    fn walk_if_with(&mut self, dot: &V<'a>, b: &'a Branch, is_with: bool) -> R<Flow> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        if v.is_true() {
            if is_with {
                self.walk(&v, &b.list)
            } else {
                self.walk(dot, &b.list)
            }
        } else if let Some(else_list) = &b.else_list {
            self.walk(dot, else_list)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn walk_range(&mut self, dot: &V<'a>, b: &'a Branch) -> R<Flow> {
        let v = self.eval_pipeline_raw(dot, &b.pipe)?;
        // The declared variables exist (Go pushes them) before the first iteration.
        if !b.pipe.assign {
            for name in &b.pipe.decl {
                self.vars.push((name, Cow::Borrowed(&NIL)));
            }
        }
        let index = |i: usize| Cow::Owned(Value::Int(i as i64));
        let key = |k: String| Cow::Owned(Value::String(k));
        let ran = match v {
            Cow::Borrowed(Value::List(items)) => {
                let pairs = items.iter().enumerate();
                self.iterate(b, pairs.map(|(i, x)| (index(i), Cow::Borrowed(x))))?
            }
            Cow::Owned(Value::List(items)) => {
                let pairs = items.into_iter().enumerate();
                self.iterate(b, pairs.map(|(i, x)| (index(i), Cow::Owned(x))))?
            }
            Cow::Borrowed(Value::Map(m)) => {
                let pairs = m.entries.iter();
                self.iterate(b, pairs.map(|(k, x)| (key(k.clone()), Cow::Borrowed(x))))?
            }
            Cow::Owned(Value::Map(m)) => {
                let pairs = m.entries.into_iter();
                self.iterate(b, pairs.map(|(k, x)| (key(k), Cow::Owned(x))))?
            }
            other => self.range_scalar(b, &other)?,
        };
        match &b.else_list {
            Some(else_list) if !ran => self.walk(dot, else_list),
            _ => Ok(Flow::Normal),
        }
    }

    /// Runs the body for each (key, element); whether it ran at all.
    fn iterate(&mut self, b: &'a Branch, pairs: impl Iterator<Item = (V<'a>, V<'a>)>) -> R<bool> {
        let mut ran = false;
        for (key, item) in pairs {
            ran = true;
            if self.iteration(b, key, item)? == Flow::Break {
                break;
            }
        }
        Ok(ran)
    }

    /// `range` over an integer (0..n, Go 1.22) or nil (nothing); anything else is an error.
    fn range_scalar(&mut self, b: &'a Branch, v: &Value) -> R<bool> {
        match *v {
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    let msg = "can't use two variables to range over an integer";
                    return Err(self.invalid(b.pipe.span, msg));
                }
                let ints =
                    (0..n.max(0)).map(|i| (Cow::Owned(Value::Int(i)), Cow::Owned(Value::Int(i))));
                self.iterate(b, ints)
            }
            Value::Nil => Ok(false),
            _ => Err(self.invalid(
                b.pipe.span,
                format!("range can't iterate over {}", sprint_one(v)),
            )),
        }
    }

    /// One pass of a range body: set `$i, $v`, walk with dot = the element.
    fn iteration(&mut self, b: &'a Branch, key: V<'a>, item: V<'a>) -> R<Flow> {
        self.iterations += 1;
        if self.iterations > self.limits.max_iterations {
            return Err(self.error(
                b.pipe.span,
                ExecErrorKind::IterationLimit(self.limits.max_iterations),
            ));
        }
        let decl = &b.pipe.decl;
        let values: [Option<V<'a>>; 2] = match decl.len() {
            1 => [Some(self.copy(&item, b.pipe.span)?), None],
            2 => [Some(key), Some(self.copy(&item, b.pipe.span)?)],
            _ => [None, None],
        };
        for (name, v) in decl.iter().zip(values) {
            if let Some(v) = v {
                self.set_var(name, v);
            }
        }
        let mark = self.vars.len();
        let flow = self.walk(&item, &b.list);
        self.vars.truncate(mark);
        match flow? {
            Flow::Break => Ok(Flow::Break),
            _ => Ok(Flow::Normal),
        }
    }

    fn walk_template(
        &mut self,
        dot: &V<'a>,
        name: &str,
        pipe: Option<&'a Pipe>,
        span: Span,
    ) -> R<()> {
        let Some(list) = self.tmpl.defs.get(name) else {
            return Err(self.error(span, ExecErrorKind::NoSuchTemplate(name.to_string())));
        };
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Cow::Borrowed(&NIL),
        };
        self.enter(span)?;
        let saved = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let result = self.walk(&new_dot, list);
        self.vars = saved;
        self.depth -= 1;
        result.map(|_| ())
    }

    fn recycle(&mut self, mut values: Vec<V<'a>>) {
        values.clear();
        self.arg_pool.push(values);
    }

    fn set_var(&mut self, name: &str, v: V<'a>) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = v;
        }
    }

    fn var(&mut self, name: &str, span: Span) -> R<V<'a>> {
        let found = self.vars.iter().rev().find(|(n, _)| *n == name);
        match found.map(|(_, v)| v.clone()) {
            Some(Cow::Borrowed(b)) => Ok(Cow::Borrowed(b)),
            Some(owned) => {
                self.charge(span, deep_weight(&owned))?;
                Ok(owned)
            }
            None => Err(self.invalid(span, format!("undefined variable: {name}"))),
        }
    }

    /// A pipeline, with its declarations (`:=` pushes, `=` assigns).
    fn eval_pipeline(&mut self, dot: &V<'a>, pipe: &'a Pipe) -> R<V<'a>> {
        let v = self.eval_pipeline_raw(dot, pipe)?;
        for name in &pipe.decl {
            let copy = self.copy(&v, pipe.span)?;
            if pipe.assign {
                self.set_var(name, copy);
            } else {
                self.vars.push((name, copy));
            }
        }
        Ok(v)
    }

    fn eval_pipeline_raw(&mut self, dot: &V<'a>, pipe: &'a Pipe) -> R<V<'a>> {
        let mut value: Option<V<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        Ok(value.unwrap_or(Cow::Borrowed(&NIL)))
    }

    fn eval_command(&mut self, dot: &V<'a>, cmd: &'a Cmd, last: Option<V<'a>>) -> R<V<'a>> {
        let first = &cmd.args[0];
        if let Arg::Func(idx, name) = first {
            return self.eval_function(dot, *idx, name, &cmd.args[1..], last, cmd.span);
        }
        if cmd.args.len() > 1 || last.is_some() {
            let msg = match first {
                Arg::Field(f) | Arg::Var(_, f) | Arg::Chain(_, f) if !f.is_empty() => {
                    format!("{} is not a method but has arguments", f[f.len() - 1].go)
                }
                _ => "can't give argument to non-function".to_string(),
            };
            return Err(self.invalid(cmd.span, msg));
        }
        if let Arg::Nil = first {
            return Err(self.invalid(cmd.span, "nil is not a command"));
        }
        self.eval_arg(dot, first, cmd.span)
    }

    fn eval_arg(&mut self, dot: &V<'a>, arg: &'a Arg, span: Span) -> R<V<'a>> {
        match arg {
            Arg::Dot => self.copy(dot, span),
            Arg::Nil => Ok(Cow::Borrowed(&NIL)),
            Arg::Lit(v) => Ok(Cow::Borrowed(v)),
            Arg::Field(fields) => self.fields(dot.clone(), fields, span),
            Arg::Var(name, fields) => {
                let v = self.var(name, span)?;
                self.fields(v, fields, span)
            }
            Arg::Func(idx, name) => self.eval_function(dot, *idx, name, &[], None, span),
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Chain(inner, fields) => {
                let v = self.eval_arg(dot, inner, span)?;
                self.fields(v, fields, span)
            }
        }
    }

    fn fields(&self, mut v: V<'a>, fields: &'a [FieldName], span: Span) -> R<V<'a>> {
        for f in fields {
            v = match v {
                Cow::Borrowed(r) => self.field_of_ref(r, f, span)?,
                Cow::Owned(o) => Cow::Owned(self.field_of_owned(o, f, span)?),
            };
        }
        Ok(v)
    }

    fn field_of_ref(&self, v: &'a Value, f: &'a FieldName, span: Span) -> R<V<'a>> {
        match v {
            Value::Map(m) => Ok(Cow::Borrowed(m.entries.get(&*f.go).unwrap_or(&NIL))),
            Value::Struct(s) => {
                if let Some(found) = s.get_hashed(&f.json, f.json_hash) {
                    return Ok(Cow::Borrowed(found));
                }
                if s.strict {
                    return Err(self.no_field(f, &s.type_name, span));
                }
                match &f.getter {
                    // A proto getter: the field, or its zero (nil) when unset.
                    Some((key, hash)) => {
                        Ok(Cow::Borrowed(s.get_hashed(key, *hash).unwrap_or(&NIL)))
                    }
                    None if &*f.go == "String" => Ok(Cow::Owned(Value::String(sprint_one(v)))),
                    None => Ok(Cow::Borrowed(&NIL)),
                }
            }
            // Fields of nil are nil: Go gives "no value" for missing map keys down a chain,
            // and proto getters are nil-safe.
            Value::Nil => Ok(Cow::Borrowed(&NIL)),
            scalar => self.scalar_method(scalar, f, span).map(Cow::Owned),
        }
    }

    fn field_of_owned(&self, v: Value, f: &FieldName, span: Span) -> R<Value> {
        match v {
            Value::Map(mut m) => Ok(m.entries.remove(&*f.go).unwrap_or(Value::Nil)),
            Value::Struct(s) if s.strict && s.get(&f.json).is_none() => {
                Err(self.no_field(f, &s.type_name, span))
            }
            Value::Struct(s) => {
                let key = match (&f.getter, s.get(&f.json)) {
                    (_, Some(_)) | (None, None) => &f.json,
                    (Some((k, _)), None) => k,
                };
                if s.get(key).is_none() && &*f.go == "String" {
                    return Ok(Value::String(sprint_one(&Value::Struct(s))));
                }
                Ok(s.fields
                    .into_iter()
                    .find(|fd| *fd.key == **key)
                    .map_or(Value::Nil, |fd| fd.value.into_value()))
            }
            Value::Nil => Ok(Value::Nil),
            scalar => self.scalar_method(&scalar, f, span),
        }
    }

    fn no_field(&self, f: &FieldName, type_name: &str, span: Span) -> ExecError {
        self.error(
            span,
            ExecErrorKind::Field {
                field: f.go.to_string(),
                type_name: type_name.to_string(),
            },
        )
    }

    /// Scalars have no fields; the methods Istio's templates call on them are `String`
    /// (an enum's name) and `GetValue` (a protobuf wrapper's value).
    fn scalar_method(&self, v: &Value, f: &FieldName, span: Span) -> R<Value> {
        match &*f.go {
            "String" => Ok(Value::String(sprint_one(v))),
            "GetValue" if !matches!(v, Value::List(_)) => Ok(v.clone()),
            _ => Err(self.error(
                span,
                ExecErrorKind::Field {
                    field: f.go.to_string(),
                    type_name: v.type_name().to_string(),
                },
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_function(
        &mut self,
        dot: &V<'a>,
        idx: usize,
        name: &str,
        args: &'a [Arg],
        last: Option<V<'a>>,
        span: Span,
    ) -> R<V<'a>> {
        let funcs = &self.tmpl.funcs;
        let func = funcs.get(idx);
        match func {
            Func::And | Func::Or => {
                return self.and_or(dot, matches!(func, Func::And), name, args, last, span)
            }
            Func::Builtin(_) | Func::User(_) => {}
        }
        // Argument vectors are reused: a render makes hundreds of calls.
        let mut values = self.arg_pool.pop().unwrap_or_default();
        for a in args {
            match self.eval_arg(dot, a, span) {
                Ok(v) => values.push(v),
                Err(e) => {
                    self.recycle(values);
                    return Err(e);
                }
            }
        }
        if let Some(l) = last {
            values.push(l);
        }
        let ctx = Ctx {
            funcs,
            max_string: self.limits.max_output,
        };
        let result = match func {
            Func::Builtin(f) => f(&ctx, &mut values),
            Func::User(f) => {
                let refs: Vec<&Value> = values.iter().map(|v| &**v).collect();
                f(&refs).map(Cow::Owned)
            }
            Func::And | Func::Or => unreachable_and_or(),
        };
        self.recycle(values);
        if let Ok(v) = &result {
            self.charge(span, shallow_weight(v))?;
            // Whatever the function, its result is no bigger than the output may be.
            if matches!(&**v, Value::String(s) if s.len() > self.limits.max_output) {
                return Err(self.error(span, ExecErrorKind::OutputLimit(self.limits.max_output)));
            }
        }
        result.map_err(|msg| {
            self.error(
                span,
                ExecErrorKind::Func {
                    func: name.to_string(),
                    msg,
                },
            )
        })
    }

    /// `and` / `or` evaluate their operands left to right and stop at the first that
    /// decides, returning that operand itself (Go 1.18+).
    #[allow(clippy::too_many_arguments)]
    fn and_or(
        &mut self,
        dot: &V<'a>,
        is_and: bool,
        name: &str,
        args: &'a [Arg],
        last: Option<V<'a>>,
        span: Span,
    ) -> R<V<'a>> {
        if args.is_empty() && last.is_none() {
            return Err(self.error(
                span,
                ExecErrorKind::Func {
                    func: name.to_string(),
                    msg: "wrong number of args: want at least 1 got 0".into(),
                },
            ));
        }
        let mut current: Option<V<'a>> = None;
        for a in args {
            let v = self.eval_arg(dot, a, span)?;
            if v.is_true() != is_and {
                return Ok(v);
            }
            current = Some(v);
        }
        match last {
            Some(l) => Ok(l),
            None => Ok(current.unwrap_or(Cow::Borrowed(&NIL))),
        }
    }
}

fn unreachable_and_or() -> Result<V<'static>, String> {
    Err("internal: and/or dispatched as a plain function".into())
}

pub(crate) static NIL: Value = Value::Nil;

/// The work a function result stands for: its elements, or its bytes / 16.
fn shallow_weight(v: &Value) -> u64 {
    1 + match v {
        Value::String(s) => s.len() as u64 / 16,
        Value::List(l) => l.len() as u64,
        Value::Map(m) => m.entries.len() as u64,
        Value::Struct(s) => s.fields.len() as u64,
        _ => 0,
    }
}

/// The work copying a value takes: every element at every level (values are at most
/// `funcs::MAX_VALUE_DEPTH` deep, so the recursion is bounded).
fn deep_weight(v: &Value) -> u64 {
    1 + match v {
        Value::String(s) => s.len() as u64 / 16,
        Value::List(l) => l.iter().map(deep_weight).sum(),
        Value::Map(m) => m.entries.values().map(deep_weight).sum(),
        Value::Struct(s) => s.fields.iter().map(|f| deep_weight(&f.value)).sum(),
        _ => 0,
    }
}
