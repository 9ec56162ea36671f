//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), as the injector config's
//! `neverInjectSelector` and `alwaysInjectSelector` hold them.
//!
//! Matching follows `metav1.LabelSelectorAsSelector`: every `matchLabels` pair and every
//! expression must hold; an empty selector selects nothing here, because istiod skips empty
//! selectors (`!selector.Empty() && selector.Matches(...)`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Why a selector cannot be used (Kubernetes refuses it the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{key}: operator {operator:?} needs at least one value")]
    NoValues { key: String, operator: Operator },
    #[error("{key}: operator {operator:?} takes no values")]
    UnexpectedValues { key: String, operator: Operator },
}

impl LabelSelector {
    /// Whether the selector has no requirement at all.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// The same checks `LabelSelectorAsSelector` makes.
    pub fn validate(&self) -> Result<(), SelectorError> {
        for r in &self.match_expressions {
            let needs_values = matches!(r.operator, Operator::In | Operator::NotIn);
            if needs_values && r.values.is_empty() {
                return Err(SelectorError::NoValues {
                    key: r.key.clone(),
                    operator: r.operator,
                });
            }
            if !needs_values && !r.values.is_empty() {
                return Err(SelectorError::UnexpectedValues {
                    key: r.key.clone(),
                    operator: r.operator,
                });
            }
        }
        Ok(())
    }

    /// Whether a non-empty selector selects an object with these labels.
    pub fn selects<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        if self.is_empty() {
            return false;
        }
        let pairs = self
            .match_labels
            .iter()
            .all(|(k, v)| label(k) == Some(v.as_str()));
        pairs && self.match_expressions.iter().all(|r| r.holds(&label))
    }
}

impl Requirement {
    fn holds<'a>(&self, label: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = label(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(yaml: &str) -> LabelSelector {
        serde_json::from_str(yaml).expect("selector")
    }

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    #[test]
    fn match_labels_must_all_hold() {
        let s = sel(r#"{"matchLabels": {"app": "db", "tier": "data"}}"#);
        assert!(s.selects(labels(&[("app", "db"), ("tier", "data"), ("x", "y")])));
        assert!(!s.selects(labels(&[("app", "db")])));
        assert!(!s.selects(labels(&[("app", "web"), ("tier", "data")])));
    }

    #[test]
    fn expressions_follow_kubernetes_operators() {
        let s = sel(r#"{"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["a", "b"]},
                {"key": "tier", "operator": "NotIn", "values": ["x"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}]}"#);
        assert!(s.selects(labels(&[("app", "b"), ("owner", "me")])));
        assert!(s.selects(labels(&[("app", "a"), ("owner", ""), ("tier", "y")])));
        assert!(!s.selects(labels(&[("app", "c"), ("owner", "me")])));
        assert!(!s.selects(labels(&[("app", "a"), ("owner", "me"), ("tier", "x")])));
        assert!(!s.selects(labels(&[("app", "a")])));
        assert!(!s.selects(labels(&[("app", "a"), ("owner", "me"), ("legacy", "1")])));
    }

    #[test]
    fn an_empty_selector_selects_nothing() {
        assert!(!LabelSelector::default().selects(labels(&[("a", "b")])));
    }

    #[test]
    fn invalid_value_counts_are_refused() {
        let s = sel(r#"{"matchExpressions": [{"key": "a", "operator": "In"}]}"#);
        assert!(matches!(s.validate(), Err(SelectorError::NoValues { .. })));
        let s =
            sel(r#"{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}"#);
        assert!(matches!(
            s.validate(),
            Err(SelectorError::UnexpectedValues { .. })
        ));
    }
}
