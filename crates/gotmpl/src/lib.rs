//! A Go `text/template` engine with sprig's and Istio's injection functions, so that revhook
//! renders each Istio revision's injection templates exactly as that revision's istiod does.
//!
//! ```
//! use gotmpl::{FuncMap, Template, Value};
//! use std::sync::Arc;
//!
//! let funcs = Arc::new(FuncMap::istio());
//! let t = Template::parse("inject", "{{ .name | default \"x\" | quote }}", &funcs).unwrap();
//! let data = gotmpl::from_json(&serde_json::json!({"name": "app"}), &gotmpl::Schema::Any);
//! assert_eq!(t.render(&data).unwrap(), "\"app\"");
//! ```
//!
//! Parse once, render many times: a [`Template`] is immutable, `Send + Sync`, and rendering
//! borrows the data without copying it.

mod ast;
mod error;
mod exec;
mod funcs;
mod gofmt;
pub mod istio;
mod json;
mod lex;
mod parse;
mod value;
mod yaml;

pub use error::{ExecError, ExecErrorKind, ParseError};
pub use exec::Limits;
pub use funcs::{FuncMap, UserFn};
pub use json::{to_json, write_json_string};
pub use value::{
    any_from_json, from_json, lower_camel, Field, FieldValue, GoMap, GoStruct, MapElem, Schema,
    StructSchema, Value,
};
pub use yaml::to_yaml;

use std::collections::HashMap;
use std::sync::Arc;

/// A parsed template with its `define`d templates and the functions it was parsed with.
pub struct Template {
    name: String,
    src: String,
    main: ast::List,
    defs: HashMap<String, ast::List>,
    funcs: Arc<FuncMap>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut defs: Vec<&String> = self.defs.keys().collect();
        defs.sort();
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("defined", &defs)
            .finish()
    }
}

impl Template {
    /// Parses `src` as the template `name` (istiod names every injection template
    /// "inject"). Fails on syntax errors and on functions `funcs` does not have.
    pub fn parse(name: &str, src: &str, funcs: &Arc<FuncMap>) -> Result<Template, ParseError> {
        let parsed = parse::parse(name, src, funcs)?;
        Ok(Template {
            name: name.to_string(),
            src: src.to_string(),
            main: parsed.main,
            defs: parsed.defs,
            funcs: Arc::clone(funcs),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of the templates defined with `define` or `block`.
    pub fn defined(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// Renders with the default [`Limits`].
    pub fn render(&self, data: &Value) -> Result<String, ExecError> {
        self.render_with(data, Limits::default())
    }

    pub fn render_with(&self, data: &Value, limits: Limits) -> Result<String, ExecError> {
        let mut state = exec::State::new(self, data, limits);
        state.run(&self.main, data)?;
        Ok(state.out)
    }

    /// Renders one `define`d template (`{{template "name" .}}` from outside).
    pub fn render_named(
        &self,
        name: &str,
        data: &Value,
        limits: Limits,
    ) -> Result<String, ExecError> {
        let Some(list) = self.defs.get(name) else {
            return Err(ExecError {
                template: self.name.clone(),
                line: 0,
                col: 0,
                construct: String::new(),
                kind: ExecErrorKind::NoSuchTemplate(name.to_string()),
            });
        };
        let mut state = exec::State::new(self, data, limits);
        state.run(list, data)?;
        Ok(state.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn compiled_templates_are_send_and_sync() {
        assert_send_sync::<Template>();
        assert_send_sync::<FuncMap>();
    }
}
