//! The error of a refused text: what is wrong and where.

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML as go-yaml v2 reads it (go-yaml refuses it too).
    Syntax,
    /// YAML, but with no JSON form: a mapping or sequence as a mapping key, a null or
    /// too-large key, `.inf`/`.nan` as a value, a tag whose value does not fit it, an
    /// unknown or self-containing alias, excessive aliasing (go-yaml refuses it too).
    Conversion,
    /// Valid for go-yaml, but not handled here (for instance `!!timestamp`); never
    /// answered with a different value.
    Unsupported,
    /// Nested deeper than [`crate::MAX_DEPTH`].
    TooDeep,
}

/// A refused text, with the 1-based line and column (in characters) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("yaml: line {line}, column {column}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        mark: crate::scan::Mark,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            line: mark.line + 1,
            column: mark.col + 1,
            message: message.into(),
        }
    }
}
