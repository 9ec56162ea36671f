//! Function tables: Go's builtins, the sprig functions Istio's templates call, Istio's own
//! injection functions, and caller-registered closures.

mod builtin;
mod istio;
mod sprig;

use crate::value::{GoMap, MapElem, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) type V<'a> = Cow<'a, Value>;

/// An engine function: takes its evaluated arguments (pipeline value last) and may hand one
/// of them back without copying.
pub(crate) type BuiltinFn = for<'a> fn(&Ctx, &mut Vec<V<'a>>) -> Result<V<'a>, String>;

/// A caller-supplied function: arguments in, a value or an error message out.
pub type UserFn = dyn Fn(&[&Value]) -> Result<Value, String> + Send + Sync;

pub(crate) enum Func {
    Builtin(BuiltinFn),
    User(Arc<UserFn>),
    /// Short-circuit operators, evaluated by the executor.
    And,
    Or,
}

/// What a function may consult besides its arguments.
pub(crate) struct Ctx<'c> {
    pub funcs: &'c FuncMap,
    /// No function builds a string longer than this (the output limit).
    pub max_string: usize,
}

/// The functions a template may call. Names are resolved when a template is parsed, so a
/// template naming an unknown function does not parse (as in Go).
pub struct FuncMap {
    index: HashMap<String, usize>,
    funcs: Vec<Func>,
    env: HashMap<String, String>,
    proxy_config_defaults: Option<Value>,
    legacy_multus: bool,
}

impl std::fmt::Debug for FuncMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.index.keys().collect();
        names.sort();
        f.debug_struct("FuncMap").field("names", &names).finish()
    }
}

impl FuncMap {
    /// Only Go's builtins (`and`, `or`, `not`, `len`, `index`, `slice`, `print`, `printf`,
    /// `println`, `html`, `js`, `urlquery`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`).
    pub fn builtins() -> Self {
        let mut m = FuncMap {
            index: HashMap::new(),
            funcs: Vec::new(),
            env: HashMap::new(),
            proxy_config_defaults: None,
            legacy_multus: false,
        };
        m.set("and", Func::And);
        m.set("or", Func::Or);
        for (name, f) in builtin::TABLE {
            m.set(name, Func::Builtin(*f));
        }
        m
    }

    /// Builtins, then the sprig functions (the subset listed in the README) over them, as
    /// `template.New(..).Funcs(sprig.TxtFuncMap())` has them.
    pub fn sprig() -> Self {
        let mut m = FuncMap::builtins();
        for (name, f) in sprig::TABLE {
            m.set(name, Func::Builtin(*f));
        }
        m
    }

    /// What istiod parses injection templates with: sprig's functions, then Istio's
    /// injection functions over them
    /// (`template.New("inject").Funcs(sprig.TxtFuncMap()).Funcs(InjectionFuncmap)`).
    pub fn istio() -> Self {
        let mut m = FuncMap::sprig();
        for (name, f) in istio::TABLE {
            m.set(name, Func::Builtin(*f));
        }
        m
    }

    fn set(&mut self, name: &str, f: Func) {
        match self.index.get(name) {
            Some(&i) => self.funcs[i] = f,
            None => {
                self.index.insert(name.to_string(), self.funcs.len());
                self.funcs.push(f);
            }
        }
    }

    /// Adds (or replaces) a function, e.g. Helm's `include` or `required`.
    pub fn insert<F>(&mut self, name: &str, f: F)
    where
        F: Fn(&[&Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.set(name, Func::User(Arc::new(f)));
    }

    /// The variables `env "KEY" "default"` sees (istiod reads its process environment;
    /// the engine reads only what the caller gives it).
    pub fn set_env(&mut self, env: HashMap<String, String>) {
        self.env = env;
    }

    /// The default ProxyConfig (as from JSON) that `protoToJSON` leaves out fields equal to,
    /// as istiod's `cleanProxyConfig` does with `mesh.DefaultProxyConfig()`.
    pub fn set_proxy_config_defaults(&mut self, defaults: Value) {
        self.proxy_config_defaults = Some(defaults);
    }

    /// `appendMultusNetwork` as Istio 1.25 and before wrote it: a `namespace/name` network is
    /// appended to a JSON list as `{"name": "namespace/name"}` (1.26 split it into `name` and
    /// `namespace`).
    pub fn set_legacy_multus(&mut self, legacy: bool) {
        self.legacy_multus = legacy;
    }

    pub(crate) fn legacy_multus(&self) -> bool {
        self.legacy_multus
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(crate) fn get(&self, idx: usize) -> &Func {
        &self.funcs[idx]
    }

    pub(crate) fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    pub(crate) fn proxy_config_defaults(&self) -> Option<&Value> {
        self.proxy_config_defaults.as_ref()
    }
}

// ---- argument helpers: Go's conversions of operands to parameter types, and its errors ----

pub(crate) fn want_args(args: &[V], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

pub(crate) fn want_at_least(args: &[V], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn wrong_type(want: &str, v: &Value) -> String {
    match v {
        Value::Nil => format!("invalid value; expected {want}"),
        other => format!(
            "wrong type for value; expected {want}; got {}",
            other.type_name()
        ),
    }
}

/// A `string` parameter.
pub(crate) fn str_arg(v: &Value) -> Result<&str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type("string", other)),
    }
}

/// An `int` parameter: integer values only, as Go's reflection demands.
pub(crate) fn int_arg(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(wrong_type("int", other)),
    }
}

/// A `map[string]string` parameter; nil is an empty map.
pub(crate) fn str_map_arg(v: &Value) -> Result<Option<&GoMap>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::Map(m) if m.elem == MapElem::String => Ok(Some(m)),
        other => Err(wrong_type("map[string]string", other)),
    }
}

pub(crate) fn owned(v: Value) -> Result<V<'static>, String> {
    Ok(Cow::Owned(v))
}

pub(crate) fn string(s: String) -> Result<V<'static>, String> {
    Ok(Cow::Owned(Value::String(s)))
}

/// Lists and maps built by functions may nest at most this deep, so that copying, printing
/// and dropping them cannot exhaust the stack (JSON input is at most 128 deep).
pub(crate) const MAX_VALUE_DEPTH: usize = 256;

/// Whether `v` nests deeper than `limit` (looks no deeper than that).
pub(crate) fn deeper_than(v: &Value, limit: usize) -> bool {
    if limit == 0 {
        return matches!(v, Value::List(_) | Value::Map(_) | Value::Struct(_));
    }
    match v {
        Value::List(l) => l.iter().any(|i| deeper_than(i, limit - 1)),
        Value::Map(m) => m.entries.values().any(|i| deeper_than(i, limit - 1)),
        Value::Struct(s) => s.fields.iter().any(|f| deeper_than(&f.value, limit - 1)),
        _ => false,
    }
}

/// Refuses a collection built from `items` if it would nest too deep.
pub(crate) fn check_depth<'v>(items: impl IntoIterator<Item = &'v Value>) -> Result<(), String> {
    for i in items {
        if deeper_than(i, MAX_VALUE_DEPTH - 1) {
            return Err(format!("value nested deeper than {MAX_VALUE_DEPTH}"));
        }
    }
    Ok(())
}

/// No function builds a list longer than this (a list costs far more memory per element
/// than a string does per byte).
pub(crate) const MAX_LIST_LEN: usize = 1_000_000;

pub(crate) fn check_list_len(len: usize) -> Result<(), String> {
    if len > MAX_LIST_LEN {
        return Err(format!(
            "list of {len} elements exceeds the limit of {MAX_LIST_LEN}"
        ));
    }
    Ok(())
}

pub(crate) fn check_len(ctx: &Ctx, len: usize) -> Result<(), String> {
    if len > ctx.max_string {
        return Err(format!(
            "result of {len} bytes exceeds the limit of {}",
            ctx.max_string
        ));
    }
    Ok(())
}

/// Sprig's `strval`: strings as they are, everything else as `%v`.
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::gofmt::sprint_one(other),
    }
}

/// Sprig's `empty`: the zero value of its type, or nil.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Struct(_) => false,
        other => !other.is_true(),
    }
}
