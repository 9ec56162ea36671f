//! Typed errors. Both name the template, line and column, as Go's do
//! (`template: inject:12:5: ...`).

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {template}:{line}:{col}: {msg}")]
pub struct ParseError {
    pub template: String,
    pub line: usize,
    pub col: usize,
    /// What was wrong, e.g. `function "foo" not defined`, `unexpected "}}" in operand`.
    pub msg: String,
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let mut cut = pos;
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &src[..cut];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl ParseError {
    pub(crate) fn at(template: &str, src: &str, pos: usize, msg: String) -> Self {
        let (line, col) = line_col(src, pos);
        ParseError {
            template: template.to_string(),
            line,
            col,
            msg,
        }
    }
}

/// What went wrong while executing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecErrorKind {
    #[error("error calling {func}: {msg}")]
    Func { func: String, msg: String },
    #[error("can't evaluate field {field} in type {type_name}")]
    Field { field: String, type_name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("template {0:?} not defined")]
    NoSuchTemplate(String),
    #[error("output exceeds the limit of {0} bytes")]
    OutputLimit(usize),
    #[error("more than {0} range iterations")]
    IterationLimit(u64),
    #[error("template calls nested deeper than {0}")]
    DepthLimit(usize),
    #[error("more than {0} units of work (values built or copied)")]
    WorkLimit(u64),
}

/// A failed execution: where, in which construct, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template: {template}:{line}:{col}: executing {template:?} at <{construct}>: {kind}")]
pub struct ExecError {
    pub template: String,
    pub line: usize,
    pub col: usize,
    /// The source text of the command or action that failed.
    pub construct: String,
    pub kind: ExecErrorKind,
}
