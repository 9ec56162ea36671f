//! The parsed form of a template.

use crate::value::Value;

/// A byte range of the template source, for error messages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Default)]
pub(crate) struct List(pub Vec<Node>);

#[derive(Debug)]
pub(crate) enum Node {
    Text(Box<str>),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        name: Box<str>,
        pipe: Option<Pipe>,
        span: Span,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    /// Declared or assigned variables (`$x :=`, `$i, $v :=`, `$x =`).
    pub decl: Vec<Box<str>>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    pub span: Span,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
    pub span: Span,
}

/// A Go field name with its JSON key worked out once, at parse time.
#[derive(Debug)]
pub(crate) struct FieldName {
    pub go: Box<str>,
    pub json: Box<str>,
    pub json_hash: u32,
    /// For `GetX` (a proto getter): the JSON key of `X` and its hash.
    pub getter: Option<(Box<str>, u32)>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Dot,
    Nil,
    /// A constant (bool, number, string), built once so evaluation borrows it.
    Lit(Value),
    /// `.A.B`: fields of dot.
    Field(Vec<FieldName>),
    /// `$x.A.B` (`$` alone is the root).
    Var(Box<str>, Vec<FieldName>),
    /// A function, by index into the template's function table.
    Func(usize, Box<str>),
    /// `(pipeline)`.
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B` or `func.A`.
    Chain(Box<Arg>, Vec<FieldName>),
}

impl Arg {
    /// Literals cannot start a later stage of a pipeline (Go: "non executable command").
    pub fn is_literal(&self) -> bool {
        matches!(self, Arg::Dot | Arg::Nil | Arg::Lit(_))
    }
}
