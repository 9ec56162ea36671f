//! Tokens to events (libyaml's parser states, as go-yaml v2 ports them), and events to JSON
//! values the way go-yaml's decoder fills an `interface{}` and `sigs.k8s.io/yaml` converts
//! it: one pass, an explicit stack instead of recursion, no intermediate node tree.

use crate::error::{Error, ErrorKind};
use crate::gofloat;
use crate::resolve::{self, Resolved, TagError};
use crate::scan::{Mark, Scanner, Style, Tok, Token};
use crate::MAX_DEPTH;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

type Res<T> = Result<T, Error>;

fn syntax(mark: Mark, message: &str) -> Error {
    Error::new(ErrorKind::Syntax, mark, message)
}

fn conversion(mark: Mark, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Conversion, mark, message)
}

// ---- events ------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Props<'a> {
    anchor: Option<&'a str>,
    /// The resolved tag (handles expanded), if the node has one.
    tag: Option<String>,
}

#[derive(Debug)]
enum Event<'a> {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias(&'a str, Mark),
    Scalar {
        props: Props<'a>,
        value: Cow<'a, str>,
        /// go-yaml's `implicit`: a plain scalar without a tag (or with `!`).
        plain_implicit: bool,
        mark: Mark,
    },
    SequenceStart(Props<'a>, Mark),
    SequenceEnd,
    MappingStart(Props<'a>, Mark),
    MappingEnd,
}

/// What follows a node's properties.
enum Content {
    IndentlessSequence,
    /// A scalar token; whether it is plain.
    Scalar(bool),
    FlowSequence,
    FlowMapping,
    BlockSequence,
    BlockMapping,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    StreamStart,
    ImplicitDocumentStart,
    DocumentStart,
    DocumentContent,
    DocumentEnd,
    BlockNode,
    BlockSequenceFirstEntry,
    BlockSequenceEntry,
    IndentlessSequenceEntry,
    BlockMappingFirstKey,
    BlockMappingKey,
    BlockMappingValue,
    FlowSequenceFirstEntry,
    FlowSequenceEntry,
    FlowSequenceEntryMappingKey,
    FlowSequenceEntryMappingValue,
    FlowSequenceEntryMappingEnd,
    FlowMappingFirstKey,
    FlowMappingKey,
    FlowMappingValue,
    FlowMappingEmptyValue,
    End,
}

struct Parser<'a> {
    scanner: Scanner<'a>,
    state: State,
    states: Vec<State>,
    marks: Vec<Mark>,
    tag_directives: Vec<(String, String)>,
}

fn empty_scalar<'a>(mark: Mark) -> Event<'a> {
    Event::Scalar {
        props: Props::default(),
        value: Cow::Borrowed(""),
        plain_implicit: true,
        mark,
    }
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Res<Self> {
        Ok(Parser {
            scanner: Scanner::new(text)?,
            state: State::StreamStart,
            states: Vec::new(),
            marks: Vec::new(),
            tag_directives: Vec::new(),
        })
    }

    fn peek(&mut self) -> Res<(&Tok<'a>, Mark, Mark)> {
        let t = self.scanner.peek()?;
        Ok((&t.tok, t.start, t.end))
    }

    fn skip(&mut self) {
        self.scanner.skip_token();
    }

    fn pop_state(&mut self) {
        self.state = self.states.pop().unwrap_or(State::End);
    }

    fn next(&mut self) -> Res<Event<'a>> {
        if self.scanner.stream_ended() || self.state == State::End {
            return Err(syntax(
                Mark::default(),
                "attempted to go past the end of stream",
            ));
        }
        match self.state {
            State::StreamStart => {
                let (tok, start, _) = self.peek()?;
                if !matches!(tok, Tok::StreamStart) {
                    return Err(syntax(start, "did not find expected <stream-start>"));
                }
                self.state = State::ImplicitDocumentStart;
                self.skip();
                Ok(Event::StreamStart)
            }
            State::ImplicitDocumentStart => self.document_start(true),
            State::DocumentStart => self.document_start(false),
            State::DocumentContent => {
                let (tok, start, _) = self.peek()?;
                if matches!(
                    tok,
                    Tok::VersionDirective(..)
                        | Tok::TagDirective { .. }
                        | Tok::DocumentStart
                        | Tok::DocumentEnd
                        | Tok::StreamEnd
                ) {
                    self.pop_state();
                    return Ok(empty_scalar(start));
                }
                self.node(true, false)
            }
            State::DocumentEnd => {
                let (tok, _, _) = self.peek()?;
                if matches!(tok, Tok::DocumentEnd) {
                    self.skip();
                }
                self.tag_directives.clear();
                self.state = State::DocumentStart;
                Ok(Event::DocumentEnd)
            }
            State::BlockNode => self.node(true, false),
            State::BlockSequenceFirstEntry => self.block_sequence_entry(true),
            State::BlockSequenceEntry => self.block_sequence_entry(false),
            State::IndentlessSequenceEntry => self.indentless_sequence_entry(),
            State::BlockMappingFirstKey => self.block_mapping_key(true),
            State::BlockMappingKey => self.block_mapping_key(false),
            State::BlockMappingValue => self.block_mapping_value(),
            State::FlowSequenceFirstEntry => self.flow_sequence_entry(true),
            State::FlowSequenceEntry => self.flow_sequence_entry(false),
            State::FlowSequenceEntryMappingKey => self.flow_sequence_entry_mapping_key(),
            State::FlowSequenceEntryMappingValue => self.flow_sequence_entry_mapping_value(),
            State::FlowSequenceEntryMappingEnd => {
                self.state = State::FlowSequenceEntry;
                Ok(Event::MappingEnd)
            }
            State::FlowMappingFirstKey => self.flow_mapping_key(true),
            State::FlowMappingKey => self.flow_mapping_key(false),
            State::FlowMappingValue => self.flow_mapping_value(false),
            State::FlowMappingEmptyValue => self.flow_mapping_value(true),
            State::End => Err(syntax(
                Mark::default(),
                "attempted to go past the end of stream",
            )),
        }
    }

    fn document_start(&mut self, implicit: bool) -> Res<Event<'a>> {
        if !implicit {
            while matches!(self.peek()?.0, Tok::DocumentEnd) {
                self.skip();
            }
        }
        let (tok, start, _) = self.peek()?;
        let is_start_or_directive = matches!(
            tok,
            Tok::VersionDirective(..) | Tok::TagDirective { .. } | Tok::DocumentStart
        );
        if implicit && !is_start_or_directive && !matches!(tok, Tok::StreamEnd) {
            self.process_directives()?;
            self.states.push(State::DocumentEnd);
            self.state = State::BlockNode;
            Ok(Event::DocumentStart)
        } else if !matches!(tok, Tok::StreamEnd) {
            self.process_directives()?;
            let (tok, start2, _) = self.peek()?;
            if !matches!(tok, Tok::DocumentStart) {
                let _ = start;
                return Err(syntax(start2, "did not find expected <document start>"));
            }
            self.states.push(State::DocumentEnd);
            self.state = State::DocumentContent;
            self.skip();
            Ok(Event::DocumentStart)
        } else {
            self.state = State::End;
            self.skip();
            Ok(Event::StreamEnd)
        }
    }

    fn process_directives(&mut self) -> Res<()> {
        let mut version_seen = false;
        loop {
            let (tok, start, _) = self.peek()?;
            match tok {
                Tok::VersionDirective(major, minor) => {
                    if version_seen {
                        return Err(syntax(start, "found duplicate %YAML directive"));
                    }
                    if (*major, *minor) != (1, 1) {
                        return Err(syntax(start, "found incompatible YAML document"));
                    }
                    version_seen = true;
                }
                Tok::TagDirective { handle, prefix } => {
                    let d = (handle.clone(), prefix.clone());
                    if self.tag_directives.iter().any(|(h, _)| *h == d.0) {
                        return Err(syntax(start, "found duplicate %TAG directive"));
                    }
                    self.tag_directives.push(d);
                }
                _ => break,
            }
            self.skip();
        }
        for (h, p) in [("!", "!"), ("!!", "tag:yaml.org,2002:")] {
            if !self.tag_directives.iter().any(|(dh, _)| dh == h) {
                self.tag_directives.push((h.to_owned(), p.to_owned()));
            }
        }
        Ok(())
    }

    fn node(&mut self, block: bool, indentless_sequence: bool) -> Res<Event<'a>> {
        let (tok, start, _) = self.peek()?;
        if let Tok::Alias(name) = tok {
            let name = *name;
            self.pop_state();
            self.skip();
            return Ok(Event::Alias(name, start));
        }
        let mut anchor = None;
        let mut tag_parts: Option<(String, String, Mark)> = None;
        for _ in 0..2 {
            let (tok, mark, _) = self.peek()?;
            match tok {
                Tok::Anchor(name) if anchor.is_none() => anchor = Some(*name),
                Tok::Tag { handle, suffix } if tag_parts.is_none() => {
                    tag_parts = Some((handle.clone(), suffix.clone(), mark));
                }
                _ => break,
            }
            self.skip();
        }
        let tag = match tag_parts {
            None => None,
            Some((handle, suffix, tag_mark)) if handle.is_empty() => {
                let _ = tag_mark;
                Some(suffix)
            }
            Some((handle, suffix, tag_mark)) => {
                match self.tag_directives.iter().find(|(h, _)| *h == handle) {
                    Some((_, prefix)) => Some(format!("{prefix}{suffix}")),
                    None => return Err(syntax(tag_mark, "found undefined tag handle")),
                }
            }
        };
        let props = Props { anchor, tag };
        let (tok, tok_start, _) = self.peek()?;
        let next = match tok {
            Tok::BlockEntry if indentless_sequence => Content::IndentlessSequence,
            Tok::Scalar { style, .. } => Content::Scalar(*style == Style::Plain),
            Tok::FlowSequenceStart => Content::FlowSequence,
            Tok::FlowMappingStart => Content::FlowMapping,
            Tok::BlockSequenceStart if block => Content::BlockSequence,
            Tok::BlockMappingStart if block => Content::BlockMapping,
            _ => Content::None,
        };
        match next {
            Content::IndentlessSequence => {
                self.state = State::IndentlessSequenceEntry;
                Ok(Event::SequenceStart(props, start))
            }
            Content::Scalar(plain) => {
                let plain_implicit =
                    (props.tag.is_none() && plain) || props.tag.as_deref() == Some("!");
                self.pop_state();
                match self.scanner.skip_token() {
                    Some(Token {
                        tok: Tok::Scalar { value, .. },
                        ..
                    }) => Ok(Event::Scalar {
                        props,
                        value,
                        plain_implicit,
                        mark: start,
                    }),
                    _ => Err(syntax(tok_start, "lost token")),
                }
            }
            Content::FlowSequence => {
                self.state = State::FlowSequenceFirstEntry;
                Ok(Event::SequenceStart(props, start))
            }
            Content::FlowMapping => {
                self.state = State::FlowMappingFirstKey;
                Ok(Event::MappingStart(props, start))
            }
            Content::BlockSequence => {
                self.state = State::BlockSequenceFirstEntry;
                Ok(Event::SequenceStart(props, start))
            }
            Content::BlockMapping => {
                self.state = State::BlockMappingFirstKey;
                Ok(Event::MappingStart(props, start))
            }
            Content::None if props.anchor.is_some() || props.tag.is_some() => {
                self.pop_state();
                let plain_implicit = props.tag.is_none();
                Ok(Event::Scalar {
                    props,
                    value: Cow::Borrowed(""),
                    plain_implicit,
                    mark: start,
                })
            }
            Content::None => Err(syntax(tok_start, "did not find expected node content")),
        }
    }

    fn first_mark(&mut self, first: bool) -> Res<()> {
        if first {
            let (_, start, _) = self.peek()?;
            self.marks.push(start);
            self.skip();
        }
        Ok(())
    }

    fn block_sequence_entry(&mut self, first: bool) -> Res<Event<'a>> {
        self.first_mark(first)?;
        let (tok, start, end) = self.peek()?;
        match tok {
            Tok::BlockEntry => {
                self.skip();
                let (tok, _, _) = self.peek()?;
                if !matches!(tok, Tok::BlockEntry | Tok::BlockEnd) {
                    self.states.push(State::BlockSequenceEntry);
                    self.node(true, false)
                } else {
                    self.state = State::BlockSequenceEntry;
                    Ok(empty_scalar(end))
                }
            }
            Tok::BlockEnd => {
                self.pop_state();
                self.marks.pop();
                self.skip();
                Ok(Event::SequenceEnd)
            }
            _ => {
                self.marks.pop();
                Err(syntax(start, "did not find expected '-' indicator"))
            }
        }
    }

    fn indentless_sequence_entry(&mut self) -> Res<Event<'a>> {
        let (tok, _, end) = self.peek()?;
        if matches!(tok, Tok::BlockEntry) {
            self.skip();
            let (tok, _, _) = self.peek()?;
            if !matches!(tok, Tok::BlockEntry | Tok::Key | Tok::Value | Tok::BlockEnd) {
                self.states.push(State::IndentlessSequenceEntry);
                return self.node(true, false);
            }
            self.state = State::IndentlessSequenceEntry;
            return Ok(empty_scalar(end));
        }
        self.pop_state();
        Ok(Event::SequenceEnd)
    }

    fn block_mapping_key(&mut self, first: bool) -> Res<Event<'a>> {
        self.first_mark(first)?;
        let (tok, start, end) = self.peek()?;
        match tok {
            Tok::Key => {
                self.skip();
                let (tok, _, _) = self.peek()?;
                if !matches!(tok, Tok::Key | Tok::Value | Tok::BlockEnd) {
                    self.states.push(State::BlockMappingValue);
                    self.node(true, true)
                } else {
                    self.state = State::BlockMappingValue;
                    Ok(empty_scalar(end))
                }
            }
            Tok::BlockEnd => {
                self.pop_state();
                self.marks.pop();
                self.skip();
                Ok(Event::MappingEnd)
            }
            _ => {
                self.marks.pop();
                Err(syntax(start, "did not find expected key"))
            }
        }
    }

    fn block_mapping_value(&mut self) -> Res<Event<'a>> {
        let (tok, start, end) = self.peek()?;
        if matches!(tok, Tok::Value) {
            self.skip();
            let (tok, _, _) = self.peek()?;
            if !matches!(tok, Tok::Key | Tok::Value | Tok::BlockEnd) {
                self.states.push(State::BlockMappingKey);
                return self.node(true, true);
            }
            self.state = State::BlockMappingKey;
            return Ok(empty_scalar(end));
        }
        self.state = State::BlockMappingKey;
        Ok(empty_scalar(start))
    }

    fn flow_sequence_entry(&mut self, first: bool) -> Res<Event<'a>> {
        self.first_mark(first)?;
        let (mut tok, mut start, _) = self.peek()?;
        if !matches!(tok, Tok::FlowSequenceEnd) {
            if !first {
                if matches!(tok, Tok::FlowEntry) {
                    self.skip();
                    (tok, start, _) = self.peek()?;
                } else {
                    self.marks.pop();
                    return Err(syntax(start, "did not find expected ',' or ']'"));
                }
            }
            if matches!(tok, Tok::Key) {
                self.state = State::FlowSequenceEntryMappingKey;
                self.skip();
                return Ok(Event::MappingStart(Props::default(), start));
            }
            if !matches!(tok, Tok::FlowSequenceEnd) {
                self.states.push(State::FlowSequenceEntry);
                return self.node(false, false);
            }
        }
        self.pop_state();
        self.marks.pop();
        self.skip();
        Ok(Event::SequenceEnd)
    }

    fn flow_sequence_entry_mapping_key(&mut self) -> Res<Event<'a>> {
        let (tok, _, end) = self.peek()?;
        if !matches!(tok, Tok::Value | Tok::FlowEntry | Tok::FlowSequenceEnd) {
            self.states.push(State::FlowSequenceEntryMappingValue);
            return self.node(false, false);
        }
        self.skip();
        self.state = State::FlowSequenceEntryMappingValue;
        Ok(empty_scalar(end))
    }

    fn flow_sequence_entry_mapping_value(&mut self) -> Res<Event<'a>> {
        let (tok, start, _) = self.peek()?;
        if matches!(tok, Tok::Value) {
            self.skip();
            let (tok, start, _) = self.peek()?;
            if !matches!(tok, Tok::FlowEntry | Tok::FlowSequenceEnd) {
                self.states.push(State::FlowSequenceEntryMappingEnd);
                return self.node(false, false);
            }
            self.state = State::FlowSequenceEntryMappingEnd;
            return Ok(empty_scalar(start));
        }
        self.state = State::FlowSequenceEntryMappingEnd;
        Ok(empty_scalar(start))
    }

    fn flow_mapping_key(&mut self, first: bool) -> Res<Event<'a>> {
        self.first_mark(first)?;
        let (mut tok, mut start, _) = self.peek()?;
        if !matches!(tok, Tok::FlowMappingEnd) {
            if !first {
                if matches!(tok, Tok::FlowEntry) {
                    self.skip();
                    (tok, start, _) = self.peek()?;
                } else {
                    self.marks.pop();
                    return Err(syntax(start, "did not find expected ',' or '}'"));
                }
            }
            if matches!(tok, Tok::Key) {
                self.skip();
                let (tok, start, _) = self.peek()?;
                if !matches!(tok, Tok::Value | Tok::FlowEntry | Tok::FlowMappingEnd) {
                    self.states.push(State::FlowMappingValue);
                    return self.node(false, false);
                }
                self.state = State::FlowMappingValue;
                return Ok(empty_scalar(start));
            }
            if !matches!(tok, Tok::FlowMappingEnd) {
                self.states.push(State::FlowMappingEmptyValue);
                return self.node(false, false);
            }
        }
        let _ = start;
        self.pop_state();
        self.marks.pop();
        self.skip();
        Ok(Event::MappingEnd)
    }

    fn flow_mapping_value(&mut self, empty: bool) -> Res<Event<'a>> {
        let (tok, start, _) = self.peek()?;
        if empty {
            self.state = State::FlowMappingKey;
            return Ok(empty_scalar(start));
        }
        if matches!(tok, Tok::Value) {
            self.skip();
            let (tok, start, _) = self.peek()?;
            if !matches!(tok, Tok::FlowEntry | Tok::FlowMappingEnd) {
                self.states.push(State::FlowMappingKey);
                return self.node(false, false);
            }
            self.state = State::FlowMappingKey;
            return Ok(empty_scalar(start));
        }
        self.state = State::FlowMappingKey;
        Ok(empty_scalar(start))
    }
}

// ---- building values -----------------------------------------------------------------

/// A value that `encoding/json` would refuse if it reached the output (`.inf`, a nil key):
/// go-yaml v2 lets a later duplicate key replace it, so the refusal waits until the node
/// is known to stay.
#[derive(Clone, Debug, Default)]
pub(crate) struct Poison {
    /// The node itself cannot be converted (a seq holding a refused value, a map with a
    /// refused key).
    whole: Option<Error>,
    /// For a mapping: keys whose current value is refused (a later duplicate may replace it);
    /// ordered, so that the error reported is always the same one.
    keys: BTreeMap<String, Error>,
}

impl Poison {
    fn first(&self) -> Option<&Error> {
        self.whole.as_ref().or_else(|| self.keys.values().next())
    }
}

/// The Go value a mapping key had before `sigs.k8s.io/yaml` made it a string. Two keys that
/// are different Go values but the same string (`0.0` and `"0"`) collide in an order Go
/// leaves to chance.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GoKey {
    Str,
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl GoKey {
    pub(crate) fn of(r: Resolved) -> GoKey {
        match r {
            Resolved::Int(i) => GoKey::Int(i),
            Resolved::Float(f) => GoKey::Float(f),
            Resolved::Bool(b) => GoKey::Bool(b),
            _ => GoKey::Str,
        }
    }

    /// Equal as Go map keys (floats by `==`: NaN never, -0 and 0 are one key).
    fn same(self, other: GoKey) -> bool {
        match (self, other) {
            (GoKey::Str, GoKey::Str) => true,
            (GoKey::Int(a), GoKey::Int(b)) => a == b,
            (GoKey::Float(a), GoKey::Float(b)) => a == b,
            (GoKey::Bool(a), GoKey::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// A mapping being built: the JSON object, what would make `encoding/json` refuse it, and
/// the Go values of its keys that were not strings.
#[derive(Clone, Debug, Default)]
pub(crate) struct MapState {
    pub(crate) map: Map<String, Value>,
    poison: Option<Box<Poison>>,
    go_keys: Option<HashMap<String, GoKey>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    Sequence,
    Mapping,
}

/// A finished node: what the decoder stored, as a JSON value.
#[derive(Clone, Debug)]
struct Node<'a> {
    kind: Kind,
    value: Value,
    /// For a scalar, how it resolved and its text (for use as a mapping key).
    resolved: Resolved,
    text: Cow<'a, str>,
    poison: Option<Box<Poison>>,
    /// go-yaml's decode operations for this node (aliases expanded), for the alias limit.
    decodes: u64,
    /// For a sequence: the poison of each element that has one (merges need them).
    element_poisons: Vec<(usize, Box<Poison>)>,
    /// Whether it came from an alias (a merge takes only an alias of a mapping).
    aliased: bool,
    /// For a mapping: the Go values of its keys that were not strings.
    go_keys: Option<HashMap<String, GoKey>>,
    /// For a sequence: those of each element mapping that has some (merges need them).
    element_go_keys: Vec<(usize, HashMap<String, GoKey>)>,
    mark: Mark,
}

enum PendingKey {
    None,
    /// A key, as `sigs.k8s.io/yaml` writes it, or `Err` when it refuses the key type.
    Key(Result<(String, GoKey), Error>),
    Merge(Mark),
}

enum Frame<'a> {
    Sequence {
        items: Vec<Value>,
        anchor: Option<&'a str>,
        poisoned: Option<Error>,
        element_poisons: Vec<(usize, Box<Poison>)>,
        element_go_keys: Vec<(usize, HashMap<String, GoKey>)>,
        decodes: u64,
        mark: Mark,
    },
    Mapping {
        state: MapState,
        key: PendingKey,
        anchor: Option<&'a str>,
        decodes: u64,
        mark: Mark,
    },
}

enum Anchored<'a> {
    InProgress,
    Done(Box<Node<'a>>),
}

struct Builder<'a> {
    anchors: HashMap<&'a str, Anchored<'a>>,
    decode_count: u64,
    alias_count: u64,
    stack: Vec<Frame<'a>>,
}

/// go-yaml v2's `allowedAliasRatio`.
fn allowed_alias_ratio(decode_count: u64) -> f64 {
    const LOW: u64 = 400_000;
    const HIGH: u64 = 4_000_000;
    if decode_count <= LOW {
        0.99
    } else if decode_count >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decode_count - LOW) as f64 / (HIGH - LOW) as f64)
    }
}

impl<'a> Builder<'a> {
    fn new() -> Self {
        Builder {
            anchors: HashMap::new(),
            // The document node is one decode operation.
            decode_count: 1,
            alias_count: 0,
            stack: Vec::new(),
        }
    }

    fn count(&mut self, decodes: u64, aliased: bool, mark: Mark) -> Res<()> {
        self.decode_count = self.decode_count.saturating_add(decodes);
        if aliased {
            self.alias_count = self.alias_count.saturating_add(decodes);
        }
        if self.alias_count > 100
            && self.decode_count > 1000
            && self.alias_count as f64 / self.decode_count as f64
                > allowed_alias_ratio(self.decode_count)
        {
            return Err(conversion(mark, "document contains excessive aliasing"));
        }
        Ok(())
    }

    /// Whether the next node is the value of a merge key (`<<`).
    fn under_merge(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                key: PendingKey::Merge(_),
                ..
            })
        )
    }

    fn awaiting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                key: PendingKey::None,
                ..
            })
        )
    }

    fn begin_anchor(&mut self, anchor: Option<&'a str>) {
        if let Some(a) = anchor {
            self.anchors.insert(a, Anchored::InProgress);
        }
    }

    fn check_depth(&self, mark: Mark) -> Res<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::TooDeep,
                mark,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Handles one event; returns the document's root node when it is complete.
    fn event(&mut self, ev: Event<'a>) -> Res<Option<Node<'a>>> {
        let node = match ev {
            Event::Scalar {
                props,
                value,
                plain_implicit,
                mark,
            } => {
                let is_merge = value == "<<"
                    && (plain_implicit || props.tag.as_deref() == Some(resolve::MERGE))
                    && self.awaiting_key();
                if is_merge {
                    self.begin_anchor(props.anchor);
                    if let Some(Frame::Mapping { key, .. }) = self.stack.last_mut() {
                        *key = PendingKey::Merge(mark);
                    }
                    if let Some(a) = props.anchor {
                        let node = scalar_node(Resolved::Str, value, mark, 1);
                        self.anchors.insert(a, Anchored::Done(Box::new(node)));
                    }
                    return Ok(None);
                }
                self.count(1, false, mark)?;
                let (resolved, text) =
                    resolve_scalar(props.tag.as_deref(), value, plain_implicit, mark)?;
                let node = scalar_node(resolved, text, mark, 1);
                if let Some(a) = props.anchor {
                    self.anchors
                        .insert(a, Anchored::Done(Box::new(node.clone())));
                }
                node
            }
            Event::Alias(name, mark) => {
                let target = match self.anchors.get(name) {
                    None => {
                        return Err(conversion(
                            mark,
                            format!("unknown anchor '{name}' referenced"),
                        ))
                    }
                    Some(Anchored::InProgress) => {
                        return Err(conversion(
                            mark,
                            format!("anchor '{name}' value contains itself"),
                        ))
                    }
                    Some(Anchored::Done(node)) => node,
                };
                let decodes = target.decodes;
                let mut node = (**target).clone();
                node.mark = mark;
                node.aliased = true;
                node.decodes = decodes.saturating_add(1);
                self.count(1, false, mark)?;
                self.count(decodes, true, mark)?;
                node
            }
            Event::SequenceStart(props, mark) => {
                self.check_depth(mark)?;
                let counted = !self.under_merge();
                if counted {
                    self.count(1, false, mark)?;
                }
                self.begin_anchor(props.anchor);
                self.stack.push(Frame::Sequence {
                    items: Vec::new(),
                    anchor: props.anchor,
                    poisoned: None,
                    element_poisons: Vec::new(),
                    element_go_keys: Vec::new(),
                    decodes: u64::from(counted),
                    mark,
                });
                return Ok(None);
            }
            Event::MappingStart(props, mark) => {
                self.check_depth(mark)?;
                self.count(1, false, mark)?;
                self.begin_anchor(props.anchor);
                self.stack.push(Frame::Mapping {
                    state: MapState::default(),
                    key: PendingKey::None,
                    anchor: props.anchor,
                    decodes: 1,
                    mark,
                });
                return Ok(None);
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Sequence {
                    items,
                    anchor,
                    poisoned,
                    element_poisons,
                    element_go_keys,
                    decodes,
                    mark,
                    ..
                }) => {
                    let node = Node {
                        kind: Kind::Sequence,
                        value: Value::Array(items),
                        resolved: Resolved::Str,
                        text: Cow::Borrowed(""),
                        poison: poisoned.map(|e| {
                            Box::new(Poison {
                                whole: Some(e),
                                keys: BTreeMap::new(),
                            })
                        }),
                        decodes,
                        element_poisons,
                        aliased: false,
                        go_keys: None,
                        element_go_keys,
                        mark,
                    };
                    self.finish_anchor(anchor, &node);
                    node
                }
                _ => return Err(syntax(Mark::default(), "unbalanced sequence end")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Mapping {
                    state,
                    anchor,
                    decodes,
                    mark,
                    ..
                }) => {
                    let node = Node {
                        kind: Kind::Mapping,
                        value: Value::Object(state.map),
                        resolved: Resolved::Str,
                        text: Cow::Borrowed(""),
                        poison: state.poison.filter(|p| p.first().is_some()),
                        decodes,
                        element_poisons: Vec::new(),
                        aliased: false,
                        go_keys: state.go_keys,
                        element_go_keys: Vec::new(),
                        mark,
                    };
                    self.finish_anchor(anchor, &node);
                    node
                }
                _ => return Err(syntax(Mark::default(), "unbalanced mapping end")),
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {
                return Err(syntax(
                    Mark::default(),
                    "unexpected document event inside a node",
                ))
            }
        };
        self.deliver(node)
    }

    fn finish_anchor(&mut self, anchor: Option<&'a str>, node: &Node<'a>) {
        if let Some(a) = anchor {
            self.anchors
                .insert(a, Anchored::Done(Box::new(node.clone())));
        }
    }

    /// Puts a finished node into its parent, or returns it as the root.
    fn deliver(&mut self, node: Node<'a>) -> Res<Option<Node<'a>>> {
        let Some(parent) = self.stack.last_mut() else {
            return Ok(Some(node));
        };
        match parent {
            Frame::Sequence {
                items,
                poisoned,
                element_poisons,
                element_go_keys,
                decodes,
                ..
            } => {
                *decodes = decodes.saturating_add(node.decodes);
                if let Some(g) = node.go_keys.clone() {
                    element_go_keys.push((items.len(), g));
                }
                let (value, poison) = into_value(node)?;
                if let Some(p) = poison {
                    if poisoned.is_none() {
                        *poisoned = p.first().cloned();
                    }
                    element_poisons.push((items.len(), p));
                }
                items.push(value);
            }
            Frame::Mapping {
                state,
                key,
                decodes,
                ..
            } => match std::mem::replace(key, PendingKey::None) {
                PendingKey::None => {
                    *decodes = decodes.saturating_add(node.decodes);
                    *key = PendingKey::Key(key_of(&node)?);
                }
                PendingKey::Key(k) => {
                    *decodes = decodes.saturating_add(node.decodes);
                    let mark = node.mark;
                    let (value, value_poison) = into_value(node)?;
                    match k {
                        Ok((k, go_key)) => insert(state, k, go_key, value, value_poison, mark)?,
                        Err(e) => poison_whole(&mut state.poison, e),
                    }
                }
                PendingKey::Merge(mark) => {
                    // A sequence under `<<` was not counted itself (go-yaml merges its
                    // elements one by one).
                    *decodes = decodes.saturating_add(node.decodes);
                    merge(state, node, mark)?;
                }
            },
        }
        Ok(None)
    }
}

fn scalar_node<'a>(resolved: Resolved, text: Cow<'a, str>, mark: Mark, decodes: u64) -> Node<'a> {
    Node {
        kind: Kind::Scalar,
        value: Value::Null,
        resolved,
        text,
        poison: None,
        decodes,
        element_poisons: Vec::new(),
        aliased: false,
        go_keys: None,
        element_go_keys: Vec::new(),
        mark,
    }
}

/// go-yaml's decoding of a scalar into `interface{}`.
fn resolve_scalar<'a>(
    tag: Option<&str>,
    text: Cow<'a, str>,
    plain_implicit: bool,
    mark: Mark,
) -> Res<(Resolved, Cow<'a, str>)> {
    match tag {
        None if !plain_implicit => Ok((Resolved::Str, text)),
        None => Ok((resolve::plain(&text), text)),
        Some(resolve::BINARY) => match resolve::binary(&text) {
            Some(decoded) => Ok((Resolved::Str, Cow::Owned(decoded))),
            None => Err(conversion(
                mark,
                "!!binary value contains invalid base64 data",
            )),
        },
        Some(tag) => match resolve::tagged(tag, &text) {
            Ok(r) => Ok((r, text)),
            Err(TagError::Mismatch) => Err(conversion(
                mark,
                format!("cannot decode `{text}` as a {tag}"),
            )),
            Err(TagError::Timestamp) => Err(Error::new(
                ErrorKind::Unsupported,
                mark,
                "!!timestamp tags are not supported",
            )),
        },
    }
}

/// The JSON value of a finished node, with what would make `encoding/json` refuse it.
fn into_value(node: Node<'_>) -> Res<(Value, Option<Box<Poison>>)> {
    if node.kind != Kind::Scalar {
        return Ok((node.value, node.poison));
    }
    let value = match node.resolved {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::from(i),
        Resolved::Uint(u) => Value::from(u),
        Resolved::Float(f) => match gofloat::json_number(f) {
            Some(n) => Value::Number(n),
            None => {
                let e = conversion(
                    node.mark,
                    format!("json: unsupported value: {}", gofloat::format_g(f, false)),
                );
                return Ok((
                    Value::Null,
                    Some(Box::new(Poison {
                        whole: Some(e),
                        keys: BTreeMap::new(),
                    })),
                ));
            }
        },
        Resolved::Str => Value::String(node.text.into_owned()),
    };
    Ok((value, None))
}

/// The mapping key `sigs.k8s.io/yaml` makes of a node; a collection is refused at once (as
/// go-yaml does), a nil or uint64 key only if its mapping reaches the output.
fn key_of(node: &Node<'_>) -> Res<Result<(String, GoKey), Error>> {
    if node.kind != Kind::Scalar {
        return Err(conversion(
            node.mark,
            "invalid map key: a mapping or sequence",
        ));
    }
    Ok(resolve::key_string(node.resolved, &node.text)
        .map(|k| (k, GoKey::of(node.resolved)))
        .ok_or_else(|| {
            conversion(
                node.mark,
                format!("unsupported map key: {:?}", node.text.as_ref()),
            )
        }))
}

fn poison_whole(poison: &mut Option<Box<Poison>>, e: Error) {
    let p = poison.get_or_insert_with(Box::default);
    if p.whole.is_none() {
        p.whole = Some(e);
    }
}

/// Sets a key as go-yaml does: a later duplicate replaces the earlier one. Keys that are
/// different Go values but one JSON string are refused: which one Go keeps is left to
/// chance.
pub(crate) fn insert(
    state: &mut MapState,
    key: String,
    go_key: GoKey,
    value: Value,
    value_poison: Option<Box<Poison>>,
    mark: Mark,
) -> Res<()> {
    if !matches!(go_key, GoKey::Str) || state.go_keys.is_some() {
        if state.map.contains_key(&key) {
            let previous = state
                .go_keys
                .as_ref()
                .and_then(|g| g.get(&key).copied())
                .unwrap_or(GoKey::Str);
            if !previous.same(go_key) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    mark,
                    format!(
                        "two different keys both become {key:?} in JSON; Go keeps either one at random"
                    ),
                ));
            }
        }
        let go_keys = state.go_keys.get_or_insert_with(HashMap::new);
        match go_key {
            GoKey::Str => go_keys.remove(&key),
            other => go_keys.insert(key.clone(), other),
        };
    }
    if let Some(p) = state.poison.as_mut() {
        p.keys.remove(&key);
    }
    if let Some(e) = value_poison.as_ref().and_then(|vp| vp.first()) {
        state
            .poison
            .get_or_insert_with(Box::default)
            .keys
            .insert(key.clone(), e.clone());
    }
    state.map.insert(key, value);
    Ok(())
}

/// go-yaml v2's merge (`<<`): the keys of a mapping, or of each mapping of a sequence (the
/// last first, so earlier ones win), are set into the mapping being built, replacing keys
/// set before the merge.
fn merge(state: &mut MapState, node: Node<'_>, mark: Mark) -> Res<()> {
    let want_map = || {
        conversion(
            mark,
            "map merge requires map or sequence of maps as the value",
        )
    };
    match (node.kind, node.value) {
        (Kind::Mapping, Value::Object(source)) => {
            merge_one(state, source, node.poison, node.go_keys.as_ref(), mark)
        }
        _ if node.aliased => Err(want_map()),
        (Kind::Sequence, Value::Array(items)) => {
            if !items.iter().all(Value::is_object) {
                return Err(want_map());
            }
            // Element records are in index order; the merge goes from the last element.
            let mut poisons = node.element_poisons;
            let mut go_keys = node.element_go_keys;
            for (i, item) in items.into_iter().enumerate().rev() {
                let Value::Object(source) = item else {
                    return Err(want_map());
                };
                let p = match poisons.last() {
                    Some((at, _)) if *at == i => poisons.pop().map(|(_, p)| p),
                    _ => None,
                };
                let g = match go_keys.last() {
                    Some((at, _)) if *at == i => go_keys.pop().map(|(_, g)| g),
                    _ => None,
                };
                merge_one(state, source, p, g.as_ref(), mark)?;
            }
            Ok(())
        }
        _ => Err(want_map()),
    }
}

fn merge_one(
    state: &mut MapState,
    source: Map<String, Value>,
    source_poison: Option<Box<Poison>>,
    source_keys: Option<&HashMap<String, GoKey>>,
    mark: Mark,
) -> Res<()> {
    for (k, v) in source {
        let kp = source_poison.as_ref().and_then(|p| {
            p.keys.get(&k).map(|e| {
                Box::new(Poison {
                    whole: Some(e.clone()),
                    keys: BTreeMap::new(),
                })
            })
        });
        let go_key = source_keys
            .and_then(|g| g.get(&k).copied())
            .unwrap_or(GoKey::Str);
        insert(state, k, go_key, v, kp, mark)?;
    }
    if let Some(e) = source_poison.and_then(|p| p.whole) {
        poison_whole(&mut state.poison, e);
    }
    Ok(())
}

// ---- documents -----------------------------------------------------------------------

/// Reads one document's node after its `DocumentStart` event, through its `DocumentEnd`.
fn read_document<'a>(parser: &mut Parser<'a>) -> Res<Value> {
    let mut builder = Builder::new();
    let root = loop {
        let ev = parser.next()?;
        if let Some(root) = builder.event(ev)? {
            break root;
        }
    };
    match parser.next()? {
        Event::DocumentEnd => {}
        _ => return Err(syntax(root.mark, "did not find expected <document end>")),
    }
    let (value, poison) = into_value(root)?;
    if let Some(e) = poison.as_ref().and_then(|p| p.first()) {
        return Err(e.clone());
    }
    Ok(value)
}

/// The next document of the stream, or `None` at its end.
fn next_document(parser: &mut Parser<'_>) -> Res<Option<Value>> {
    loop {
        match parser.next()? {
            Event::StreamStart => continue,
            Event::StreamEnd => return Ok(None),
            Event::DocumentStart => return read_document(parser).map(Some),
            _ => {
                return Err(syntax(
                    Mark::default(),
                    "did not find expected <document start>",
                ))
            }
        }
    }
}

pub fn first_document(text: &str) -> Res<Value> {
    if let Some(doc) = crate::fast::only_document(Scanner::new(text)?) {
        return Ok(doc.unwrap_or(Value::Null));
    }
    full_first_document(text)
}

/// [`first_document`] by the full reader only (the fast reader's tests compare the two).
pub fn full_first_document(text: &str) -> Res<Value> {
    let mut parser = Parser::new(text)?;
    Ok(next_document(&mut parser)?.unwrap_or(Value::Null))
}

pub fn all_documents(text: &str) -> Res<Vec<Value>> {
    if let Some(doc) = crate::fast::only_document(Scanner::new(text)?) {
        return Ok(doc.into_iter().collect());
    }
    let mut parser = Parser::new(text)?;
    let mut docs = Vec::new();
    while let Some(doc) = next_document(&mut parser)? {
        docs.push(doc);
    }
    Ok(docs)
}
