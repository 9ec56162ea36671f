//! Istio's label and annotation names, and the namespace labels revhook keeps.

pub const ISTIO_INJECTION: &str = "istio-injection";
pub const ISTIO_REV: &str = "istio.io/rev";
pub const ISTIO_TAG: &str = "istio.io/tag";
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
pub const SIDECAR_STATUS: &str = "sidecar.istio.io/status";
pub const TLS_MODE: &str = "security.istio.io/tlsMode";
pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
pub const DEFAULT_LOGS_CONTAINER: &str = "kubectl.kubernetes.io/default-logs-container";

/// The containers Istio injects, by name.
pub const PROXY_NAME: &str = "istio-proxy";
pub const INIT_NAME: &str = "istio-init";
pub const VALIDATION_NAME: &str = "istio-validation";
pub const CORE_DUMP_NAME: &str = "enable-core-dump";

/// Namespaces Istio never injects into (its webhook excludes them by selector).
pub const IGNORED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// The two namespace labels that select injection; nothing else of a namespace is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceLabels {
    pub injection: Option<String>,
    pub rev: Option<String>,
}

impl NamespaceLabels {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut labels = NamespaceLabels::default();
        for (k, v) in pairs {
            match k {
                ISTIO_INJECTION => labels.injection = Some(v.to_owned()),
                ISTIO_REV => labels.rev = Some(v.to_owned()),
                _ => {}
            }
        }
        labels
    }

    /// The value the namespace selects injection with, or `None` if it selects nothing.
    pub fn selected_value(&self) -> Option<&str> {
        match (&self.injection, &self.rev) {
            (Some(v), _) if v == "enabled" => Some(crate::core::revisions::DEFAULT_TAG),
            (Some(_), _) => None,
            (None, Some(rev)) => Some(rev),
            (None, None) => None,
        }
    }

    pub fn has_conflict(&self) -> bool {
        self.injection.is_some() && self.rev.is_some()
    }
}

/// Istio's truthy/falsy spellings of `sidecar.istio.io/inject` (`y`, `yes`, `true`, `on`...).
pub fn parse_inject_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "on" => Some(true),
        "n" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_selection_follows_istio() {
        let ns = |inj: Option<&str>, rev: Option<&str>| NamespaceLabels {
            injection: inj.map(Into::into),
            rev: rev.map(Into::into),
        };
        assert_eq!(ns(Some("enabled"), None).selected_value(), Some("default"));
        assert_eq!(
            ns(Some("disabled"), Some("asm-1-22")).selected_value(),
            None
        );
        assert_eq!(
            ns(Some("enabled"), Some("asm-1-22")).selected_value(),
            Some("default")
        );
        assert_eq!(
            ns(None, Some("asm-1-22")).selected_value(),
            Some("asm-1-22")
        );
        assert!(ns(Some("enabled"), Some("x")).has_conflict());
        assert_eq!(ns(None, None).selected_value(), None);
    }

    #[test]
    fn inject_flag_spellings() {
        assert_eq!(parse_inject_flag("Yes"), Some(true));
        assert_eq!(parse_inject_flag("off"), Some(false));
        assert_eq!(parse_inject_flag("maybe"), None);
    }
}
