//! What a rule decided for one request, typed: the outcome label for logs and metrics, and
//! what goes on the wire (allowed, status, patch, warnings).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// `response.status` of a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub code: u16,
    pub reason: Cow<'static, str>,
    pub message: String,
}

/// The most warning lines one response carries.
pub const MAX_WARNINGS: usize = 12;

/// What a rule decided for one request, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub status: Option<Status>,
    /// A JSON Patch document (a JSON array), not yet base64-encoded.
    pub patch: Option<String>,
    /// At most [`MAX_WARNINGS`] lines, a last one counting `warnings_left_out` included.
    pub warnings: Vec<String>,
    /// Warning lines beyond the cap, counted rather than sent.
    pub warnings_left_out: usize,
    pub decision: Decision,
}

/// Why a request was answered as it was. Its `Display` is the short label logs print
/// (`inject:asm-1-23`, `deny:stale`, `skip:pod-opt-out`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Patched with this revision's sidecar.
    Inject(String),
    /// Guard mode: this revision's own injector is trusted to inject.
    Guard(String),
    Skip(Skip),
    Allow(Allow),
    Deny(Deny),
    Fail(Failure),
}

/// Why a pod is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    HostNetwork,
    SystemNamespace,
    PodOptOut,
    NamespaceDisabled,
    NotSelected,
    AlreadyInjected,
    NotAPod,
    NotCreate,
    /// The revision's injector declines: its selectors or policy, or a word the pod's
    /// `sidecar.istio.io/inject` has that this Istio version does not read as yes.
    InjectorPolicy,
}

/// Why an object passed without a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Nothing to say.
    Clean,
    /// Allowed, with warnings.
    Warn,
    Delete,
    NotATag,
    /// A kind no rule covers.
    UnknownKind,
    /// `--on-stale allow-uninjected`: the pod starts without a sidecar, and is told so.
    StaleUninjected,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    Stale,
    Conflict,
    Tag,
    InvalidLabel,
    /// A pod annotation istiod refuses (`validateAnnotations`).
    InvalidAnnotation,
    /// The revision's templates cannot be run (for this pod, or at all).
    TemplateError,
    /// Guard mode: Istio should have injected the pod and it arrived without its sidecar.
    Uninjected,
}

/// A request revhook could not judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadPod,
    BadObject,
    NoObject,
    Patch,
    NoSidecar,
    /// Metadata larger than Kubernetes allows.
    Oversized,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::HostNetwork => "host-network",
            Skip::SystemNamespace => "system-namespace",
            Skip::PodOptOut => "pod-opt-out",
            Skip::NamespaceDisabled => "namespace-disabled",
            Skip::NotSelected => "not-selected",
            Skip::AlreadyInjected => "already-injected",
            Skip::NotAPod => "not-a-pod",
            Skip::NotCreate => "not-create",
            Skip::InjectorPolicy => "injector-policy",
        }
    }
}

impl Allow {
    /// The label after `allow`, if any.
    fn suffix(self) -> Option<&'static str> {
        match self {
            Allow::Clean => None,
            Allow::Warn => Some("warn"),
            Allow::Delete => Some("delete"),
            Allow::NotATag => Some("not-a-tag"),
            Allow::UnknownKind => Some("unknown-kind"),
            Allow::StaleUninjected => Some("stale-uninjected"),
        }
    }
}

impl Deny {
    pub fn as_str(self) -> &'static str {
        match self {
            Deny::Stale => "stale",
            Deny::Conflict => "conflict",
            Deny::Tag => "tag",
            Deny::InvalidLabel => "invalid-label",
            Deny::InvalidAnnotation => "invalid-annotation",
            Deny::TemplateError => "template-error",
            Deny::Uninjected => "uninjected",
        }
    }

    /// HTTP status code and reason of the denial.
    fn status(self) -> (u16, &'static str) {
        match self {
            Deny::InvalidLabel | Deny::InvalidAnnotation => (422, "Invalid"),
            Deny::TemplateError => (500, "InternalError"),
            Deny::Stale | Deny::Conflict | Deny::Tag | Deny::Uninjected => (403, "Forbidden"),
        }
    }
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::BadPod => "bad-pod",
            Failure::BadObject => "bad-object",
            Failure::NoObject => "no-object",
            Failure::Patch => "patch",
            Failure::NoSidecar => "no-sidecar",
            Failure::Oversized => "oversized",
        }
    }

    fn status(self) -> (u16, &'static str) {
        match self {
            Failure::NoSidecar => (500, "InternalError"),
            Failure::Oversized => (422, "Invalid"),
            Failure::BadPod | Failure::BadObject | Failure::NoObject | Failure::Patch => {
                (400, "BadRequest")
            }
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Inject(rev) => write!(f, "inject:{rev}"),
            Decision::Guard(rev) => write!(f, "guard:{rev}"),
            Decision::Skip(s) => write!(f, "skip:{}", s.as_str()),
            Decision::Allow(a) => match a.suffix() {
                Some(s) => write!(f, "allow:{s}"),
                None => f.write_str("allow"),
            },
            Decision::Deny(d) => write!(f, "deny:{}", d.as_str()),
            Decision::Fail(e) => write!(f, "error:{}", e.as_str()),
        }
    }
}

impl Verdict {
    fn allowed(decision: Decision) -> Self {
        Verdict {
            allowed: true,
            status: None,
            patch: None,
            warnings: Vec::new(),
            warnings_left_out: 0,
            decision,
        }
    }

    pub fn allow(why: Allow) -> Self {
        Verdict::allowed(Decision::Allow(why))
    }

    pub fn skip(why: Skip) -> Self {
        Verdict::allowed(Decision::Skip(why))
    }

    /// Guard mode's pass for a pod the revision's own injector will inject.
    pub fn guard(revision: &str) -> Self {
        Verdict::allowed(Decision::Guard(revision.to_owned()))
    }

    /// Allowed with a JSON Patch that injects `revision`'s sidecar.
    pub fn inject(revision: &str, patch: String) -> Self {
        let mut v = Verdict::allowed(Decision::Inject(revision.to_owned()));
        v.patch = Some(patch);
        v
    }

    pub fn deny(why: Deny, message: String) -> Self {
        let (code, reason) = why.status();
        Verdict::refused(Decision::Deny(why), code, reason, message)
    }

    pub fn fail(why: Failure, message: String) -> Self {
        let (code, reason) = why.status();
        Verdict::refused(Decision::Fail(why), code, reason, message)
    }

    fn refused(decision: Decision, code: u16, reason: &'static str, message: String) -> Self {
        Verdict {
            allowed: false,
            status: Some(Status {
                code,
                reason: Cow::Borrowed(reason),
                message,
            }),
            patch: None,
            warnings: Vec::new(),
            warnings_left_out: 0,
            decision,
        }
    }

    /// Adds warnings, each split to fit the API server's 120 characters, at most
    /// [`MAX_WARNINGS`] lines in all: the API server shows few, and a hostile value must not
    /// turn into thousands. What is left out is counted in the last line.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        let had_summary = self.warnings_left_out > 0;
        if had_summary {
            self.warnings.pop();
        }
        for line in warnings.iter().flat_map(|w| fit_warning(w)) {
            if self.warnings.len() < MAX_WARNINGS - 1 {
                self.warnings.push(line);
            } else {
                self.warnings_left_out += 1;
            }
        }
        if self.warnings_left_out > 0 {
            self.warnings.push(format!(
                "{} more warning line(s) left out",
                self.warnings_left_out
            ));
        }
        self
    }

    /// Short outcome label for metrics: allowed, patched, denied.
    pub fn outcome(&self) -> &'static str {
        match (self.allowed, self.patch.is_some()) {
            (false, _) => "denied",
            (true, true) => "patched",
            (true, false) => "allowed",
        }
    }
}

/// The API server truncates warnings past 120 characters: split a long message at `; ` or
/// `. ` boundaries (words as a last resort) into pieces that each fit.
fn fit_warning(message: &str) -> Vec<String> {
    const MAX: usize = 120;
    if message.chars().count() <= MAX {
        return vec![message.to_owned()];
    }
    let mut out = Vec::new();
    let mut current = String::new();
    for unit in units(message) {
        let len = unit.chars().count();
        let extra = usize::from(!current.is_empty());
        let boundary = current.ends_with(';') || current.ends_with('.');
        let too_long = current.chars().count() + extra + len > MAX;
        if !current.is_empty() && (too_long || (boundary && current.chars().count() > MAX / 2)) {
            out.push(std::mem::take(&mut current));
        }
        if len > MAX {
            // A command or word longer than a line: words, then characters, as a last resort.
            for word in unit.split(' ') {
                push_words(&mut out, &mut current, word, MAX);
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(unit);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The pieces a warning may be split between: words, except that a command (`kubectl ...`,
/// `istioctl ...`) stays whole up to the punctuation or `or`/`&&` that ends it, so that no
/// line holds half a command a person would copy.
fn units(message: &str) -> Vec<&str> {
    let words: Vec<(usize, &str)> = message
        .split(' ')
        .scan(0, |at, w| {
            let start = *at;
            *at += w.len() + 1;
            Some((start, w))
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (start, word) = words[i];
        let command = matches!(word.trim_start_matches('('), "kubectl" | "istioctl");
        let mut end = i;
        if command {
            while end + 1 < words.len()
                && !words[end].1.ends_with([';', ',', ')', '.'])
                && !matches!(words[end + 1].1, "or" | "&&")
            {
                end += 1;
            }
        }
        let (last_start, last) = words[end];
        out.push(&message[start..last_start + last.len()]);
        i = end + 1;
    }
    out
}

/// Appends one word to the line being built, cutting a word longer than a line.
fn push_words(out: &mut Vec<String>, current: &mut String, word: &str, max: usize) {
    let extra = usize::from(!current.is_empty());
    if !current.is_empty() && current.chars().count() + extra + word.chars().count() > max {
        out.push(std::mem::take(current));
    }
    if !current.is_empty() {
        current.push(' ');
    }
    let mut w = word;
    while w.chars().count() > max {
        let cut = w.char_indices().nth(max).map_or(w.len(), |(i, _)| i);
        out.push(w[..cut].to_owned());
        w = &w[cut..];
    }
    current.push_str(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_warnings_are_split_under_120_chars_without_losing_words() {
        let msg = "namespace \"shop\" selects revision \"asm-1-22\", which is not installed; installed: asm-1-23; tags: prod-stable -> asm-1-23. Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite";
        let parts = fit_warning(msg);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= 120), "{parts:?}");
        assert_eq!(parts.join(" "), msg);
        let long = "x".repeat(300);
        let parts = fit_warning(&long);
        assert_eq!(parts.concat(), long);
        assert!(parts.iter().all(|p| p.chars().count() <= 120));
    }

    #[test]
    fn decisions_print_the_labels_logs_have_always_shown() {
        assert_eq!(
            Decision::Inject("asm-1-23".into()).to_string(),
            "inject:asm-1-23"
        );
        assert_eq!(
            Decision::Skip(Skip::PodOptOut).to_string(),
            "skip:pod-opt-out"
        );
        assert_eq!(Decision::Allow(Allow::Clean).to_string(), "allow");
        assert_eq!(
            Decision::Allow(Allow::UnknownKind).to_string(),
            "allow:unknown-kind"
        );
        assert_eq!(Decision::Deny(Deny::Stale).to_string(), "deny:stale");
        assert_eq!(
            Decision::Fail(Failure::NoObject).to_string(),
            "error:no-object"
        );
    }

    #[test]
    fn denials_carry_their_status() {
        let v = Verdict::deny(Deny::InvalidLabel, "bad".into());
        let status = v.status.expect("status");
        assert_eq!((status.code, status.reason.as_ref()), (422, "Invalid"));
        let v = Verdict::fail(Failure::NoSidecar, "x".into());
        assert_eq!(v.status.map(|s| s.code), Some(500));
        assert!(!v.allowed);
    }

    #[test]
    fn warnings_are_capped_and_say_how_many_were_left_out() {
        let v = Verdict::allow(Allow::Warn).with_warnings(vec!["w ".repeat(60 * 30)]);
        assert_eq!(v.warnings.len(), MAX_WARNINGS);
        let last = v.warnings.last().expect("last");
        assert!(last.ends_with("more warning line(s) left out"), "{last}");
        // A second batch adds to the count instead of a second summary line.
        let first_count: usize = last
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        let v = v.with_warnings(vec!["one more".into()]);
        assert_eq!(v.warnings.len(), MAX_WARNINGS);
        assert_eq!(
            v.warnings.last().map(String::as_str),
            Some(format!("{} more warning line(s) left out", first_count + 1).as_str())
        );
        let few = Verdict::allow(Allow::Warn).with_warnings(vec!["a".into(), "b".into()]);
        assert_eq!(few.warnings, ["a", "b"]);
    }

    #[test]
    fn a_command_is_never_split_across_warning_lines() {
        // Packed by words alone, this line would break after "kubectl rollout".
        let msg = &("x ".repeat(52) + "kubectl rollout restart deployment -n shop");
        let parts = fit_warning(msg);
        assert!(parts.len() > 1, "{parts:?}");
        assert!(parts.iter().all(|p| p.chars().count() <= 120), "{parts:?}");
        assert!(
            parts.iter().any(
                |p| p.ends_with("kubectl rollout restart deployment -n shop")
                    && p.contains("kubectl rollout restart deployment -n shop")
            ),
            "{parts:?}"
        );
        assert!(
            parts.iter().all(|p| !p.ends_with("kubectl rollout")),
            "{parts:?}"
        );
        assert_eq!(parts.join(" "), *msg);
        let two = "x ".repeat(40)
            + "Point the default tag (istioctl tag set default --revision asm-1-23) or relabel with: kubectl label namespace shop istio-injection- istio.io/rev=asm-1-23";
        let parts = fit_warning(&two);
        assert!(
            parts.iter().any(|p| p
                .contains("kubectl label namespace shop istio-injection- istio.io/rev=asm-1-23")),
            "{parts:?}"
        );
        assert!(
            parts
                .iter()
                .any(|p| p.contains("(istioctl tag set default --revision asm-1-23)")),
            "{parts:?}"
        );
        assert_eq!(parts.join(" "), two);
    }
}
