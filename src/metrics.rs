//! Prometheus metrics, served as text on `/metrics`.
//!
//! Two sets of names. Istio's own injector metrics (`sidecar_injection_*`), with the meaning
//! istiod gives them, so an operator's alerts and panels keep working when revhook takes over
//! injection; and revhook's (`revhook_*`), which say per revision and tag what was injected,
//! skipped or denied, so a canary upgrade can be watched in Prometheus.
//!
//! Label values are bounded: enums become `&'static str`, and a revision or tag label is only
//! ever a name from a snapshot of installed revisions and tags (or one that was installed
//! earlier in this process' life, kept for a few upgrades so a removed revision's stale
//! denials carry its name). Any other value a request names is reported as `unknown`.
//!
//! Every series that can be known in advance exists at zero from the start, so `increase()`
//! sees the first event and a dashboard has a line before anything happened.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::core::snapshot::Snapshot;

mod verdicts;

/// The `Content-Type` of [`Metrics::render`]: Prometheus' text format, which every scraper
/// and `promtool check metrics` read.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, seconds: 1-2.5-5 steps from 50 µs (the handler alone) to 1 s, then Istio's
/// own boundaries up to 60 s (the API server's longest webhook timeout is 30 s), so a query on
/// Istio's `le="0.1"` or `le="1"` still finds its bucket.
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The label value for a revision or tag that no snapshot named.
pub const UNKNOWN: &str = "unknown";

/// Former revisions (and tags) whose names stay usable as label values after they are removed.
const FORMER_KEPT: usize = 8;

/// Distinct `kind` values `revhook_validate_unknown_kind_total` keeps before it says `other`.
const KINDS_KEPT: usize = 16;

/// What happened to one pod sent to `/inject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectOutcome {
    Injected,
    Skipped(SkipReason),
    Denied(DenyReason),
}

/// Why a pod was admitted without a sidecar from revhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    HostNetwork,
    SystemNamespace,
    PodOptOut,
    NamespaceDisabled,
    NotSelected,
    AlreadyInjected,
    NotAPod,
    NotCreate,
    /// The revision's injector declines (its selectors or policy).
    InjectorPolicy,
    /// Guard mode: the managed istiod injects; revhook only checked the pod.
    Guard,
    /// The selected revision is stale and `--on-stale allow-uninjected` let the pod through.
    StaleAllowed,
    /// A verdict this table does not know (a new rule): counted, not lost.
    Other,
}

impl SkipReason {
    pub const ALL: [SkipReason; 12] = [
        SkipReason::HostNetwork,
        SkipReason::SystemNamespace,
        SkipReason::PodOptOut,
        SkipReason::NamespaceDisabled,
        SkipReason::NotSelected,
        SkipReason::AlreadyInjected,
        SkipReason::NotAPod,
        SkipReason::NotCreate,
        SkipReason::InjectorPolicy,
        SkipReason::Guard,
        SkipReason::StaleAllowed,
        SkipReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::HostNetwork => "host-network",
            SkipReason::SystemNamespace => "system-namespace",
            SkipReason::PodOptOut => "pod-opt-out",
            SkipReason::NamespaceDisabled => "namespace-disabled",
            SkipReason::NotSelected => "not-selected",
            SkipReason::AlreadyInjected => "already-injected",
            SkipReason::NotAPod => "not-a-pod",
            SkipReason::NotCreate => "not-create",
            SkipReason::InjectorPolicy => "injector-policy",
            SkipReason::Guard => "guard",
            SkipReason::StaleAllowed => "stale",
            SkipReason::Other => "other",
        }
    }

    /// Whether the series carries the pod's revision (the others have none to tell).
    fn has_revision(self) -> bool {
        matches!(self, SkipReason::Guard | SkipReason::StaleAllowed)
    }
}

/// Why a pod sent to `/inject` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The selected `istio.io/rev` value names nothing installed.
    Stale,
    /// The namespace has both injection labels (`--on-conflict deny`).
    Conflict,
    /// A `sidecar.istio.io/*` or `proxy.istio.io/config` annotation could not be applied.
    InvalidAnnotation,
    /// The sidecar could not be built for this pod.
    TemplateError,
    /// No revision is known yet (the first sync has not completed).
    NotSynced,
    /// The request carried no Pod, or one that does not parse.
    InvalidPod,
    /// Guard mode: the pod should have been injected by Istio and arrived without its sidecar.
    Uninjected,
    Other,
}

impl DenyReason {
    pub const ALL: [DenyReason; 8] = [
        DenyReason::Stale,
        DenyReason::Conflict,
        DenyReason::InvalidAnnotation,
        DenyReason::TemplateError,
        DenyReason::NotSynced,
        DenyReason::InvalidPod,
        DenyReason::Uninjected,
        DenyReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Stale => "stale",
            DenyReason::Conflict => "conflict",
            DenyReason::InvalidAnnotation => "invalid-annotation",
            DenyReason::TemplateError => "template-error",
            DenyReason::NotSynced => "not-synced",
            DenyReason::InvalidPod => "invalid-pod",
            DenyReason::Uninjected => "uninjected",
            DenyReason::Other => "other",
        }
    }

    /// Istio's `sidecar_injection_failure_total` counts injections that went wrong, not pods
    /// refused by policy (Istio has no such policy: a stale pod is simply not injected).
    /// (An uninjected pod in guard mode is Istio's injection that failed, not revhook's.)
    fn is_failure(self) -> bool {
        !matches!(
            self,
            DenyReason::Stale | DenyReason::Conflict | DenyReason::Uninjected
        )
    }

    fn has_revision(self) -> bool {
        matches!(
            self,
            DenyReason::Stale
                | DenyReason::InvalidAnnotation
                | DenyReason::TemplateError
                | DenyReason::Uninjected
        )
    }
}

/// Why `/validate` refused an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationDenial {
    /// An `istio.io/rev` label naming nothing installed.
    Stale,
    /// An `istio-injection` value Istio does not read.
    InvalidLabel,
    /// A namespace with both injection labels.
    Conflict,
    /// A revision tag that shadows a revision or points nowhere.
    Tag,
    /// The request carried no object, or one that does not parse.
    InvalidObject,
    Other,
}

impl ValidationDenial {
    pub const ALL: [ValidationDenial; 6] = [
        ValidationDenial::Stale,
        ValidationDenial::InvalidLabel,
        ValidationDenial::Conflict,
        ValidationDenial::Tag,
        ValidationDenial::InvalidObject,
        ValidationDenial::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ValidationDenial::Stale => "stale",
            ValidationDenial::InvalidLabel => "invalid-label",
            ValidationDenial::Conflict => "conflict",
            ValidationDenial::Tag => "tag",
            ValidationDenial::InvalidObject => "invalid-object",
            ValidationDenial::Other => "other",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `inject`, `validate`, or the HTTP path class for errors.
    path: &'static str,
    /// `allowed`, `patched`, `denied`, or `error`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
    tag: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsableLabels {
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
    revision: String,
    tag: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValidationLabels {
    reason: &'static str,
    revision: String,
}

/// Istio's injector metrics, under Istio's names.
#[derive(Clone)]
struct IstioSeries {
    /// Every request to `/inject`.
    requests: Counter,
    /// Requests answered with an AdmissionReview (as in Istio, also one that carries an error).
    success: Counter,
    /// Requests that failed: unreadable or refused at the HTTP level, or an injection error.
    failure: Counter,
    /// Pods left without injection by policy.
    skip: Counter,
    time: Histogram,
}

/// Revision and tag names that may appear as label values.
#[derive(Debug, Default)]
struct Names {
    revisions: BTreeSet<String>,
    /// Tag → revision it points at.
    tags: BTreeMap<String, String>,
    former_revisions: VecDeque<String>,
    former_tags: VecDeque<String>,
    /// The snapshot these names were read from. Weak, so a dropped snapshot's address cannot
    /// be reused while we compare against it.
    seen: Weak<Snapshot>,
    /// `revhook_injections_total` of every installed (revision, tag) pair, resolved when the
    /// names change: an injection then costs no label allocation nor family lookup.
    injected: Vec<(String, String, Counter)>,
}

impl Names {
    fn injected(&self, revision: &str, tag: &str) -> Option<&Counter> {
        self.injected
            .iter()
            .find(|(r, t, _)| r == revision && t == tag)
            .map(|(_, _, counter)| counter)
    }

    fn is_revision(&self, name: &str) -> bool {
        self.revisions.contains(name) || self.former_revisions.iter().any(|r| r == name)
    }

    fn is_tag(&self, name: &str) -> bool {
        self.tags.contains_key(name) || self.former_tags.iter().any(|t| t == name)
    }

    fn revision_label(&self, revision: Option<&str>) -> String {
        match revision {
            None => String::new(),
            Some(r) if self.is_revision(r) => r.to_owned(),
            Some(_) => UNKNOWN.to_owned(),
        }
    }

    /// An `istio.io/rev` value as a label: a known revision or tag, else `unknown`.
    fn value_label(&self, value: Option<&str>) -> String {
        match value {
            None => String::new(),
            Some(v) if self.is_revision(v) || self.is_tag(v) => v.to_owned(),
            Some(_) => UNKNOWN.to_owned(),
        }
    }

    fn tag_label(&self, tag: Option<&str>) -> String {
        match tag {
            None => String::new(),
            Some(t) if self.is_tag(t) => t.to_owned(),
            Some(_) => UNKNOWN.to_owned(),
        }
    }

    /// Replaces the installed names; those that disappeared become former names.
    fn replace(&mut self, revisions: BTreeSet<String>, tags: BTreeMap<String, String>) {
        let gone_revisions: Vec<String> = self.revisions.difference(&revisions).cloned().collect();
        let gone_tags: Vec<String> = self
            .tags
            .keys()
            .filter(|t| !tags.contains_key(*t))
            .cloned()
            .collect();
        remember(&mut self.former_revisions, gone_revisions, &revisions);
        let tag_names: BTreeSet<String> = tags.keys().cloned().collect();
        remember(&mut self.former_tags, gone_tags, &tag_names);
        self.revisions = revisions;
        self.tags = tags;
    }

    /// (revision, tag) pairs an injection can be labeled with now.
    fn installed_pairs(&self) -> Vec<(String, String)> {
        let revisions = self.revisions.iter().map(|r| (r.clone(), String::new()));
        let tags = self
            .tags
            .iter()
            .filter(|(_, target)| self.revisions.contains(*target))
            .map(|(t, target)| (target.clone(), t.clone()));
        revisions.chain(tags).collect()
    }

    /// (revision, tag) pairs a stale value can be labeled with now.
    fn stale_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![(UNKNOWN.to_owned(), String::new())];
        pairs.extend(
            self.former_revisions
                .iter()
                .map(|r| (r.clone(), String::new())),
        );
        pairs.extend(
            self.former_tags
                .iter()
                .map(|t| (UNKNOWN.to_owned(), t.clone())),
        );
        pairs.extend(
            self.tags
                .iter()
                .filter(|(_, target)| !self.revisions.contains(*target))
                .map(|(t, target)| (self.revision_label(Some(target)), t.clone())),
        );
        pairs
    }
}

/// Adds `gone` to the front of `former` (keeping at most [`FORMER_KEPT`]) and drops from it
/// any name that is installed again.
fn remember(former: &mut VecDeque<String>, gone: Vec<String>, installed: &BTreeSet<String>) {
    former.retain(|name| !installed.contains(name) && !gone.contains(name));
    for name in gone {
        former.push_front(name);
    }
    former.truncate(FORMER_KEPT);
}

/// Cheap to clone: every field is a handle to shared atomics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<PathLabels, Histogram>,
    cert_reloads: Family<ResultLabels, Counter>,
    unknown_kinds: Family<KindLabels, Counter>,
    kinds_seen: Arc<RwLock<BTreeSet<String>>>,
    snapshot_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    snapshot_updates: Family<ResultLabels, Counter>,
    ca_bundle_writes: Counter,
    namespace_lookups: Family<ResultLabels, Counter>,
    judging_timeouts: Counter,
    cert_not_after: Gauge,
    injections: Family<RevisionLabels, Counter>,
    revisions_usable: Family<UsableLabels, Gauge>,
    skips: Family<ReasonLabels, Counter>,
    denials: Family<ReasonLabels, Counter>,
    validation_denials: Family<ValidationLabels, Counter>,
    istio: IstioSeries,
    /// The series of reasons without a revision, by `reason as usize`, resolved once.
    fixed_skips: Arc<[Option<Counter>]>,
    fixed_denials: Arc<[Option<Counter>]>,
    names: Arc<RwLock<Names>>,
    /// The webhooks' series, looked up once: every admission request updates them, and a
    /// family lookup hashes the labels under a lock.
    webhooks: Arc<[WebhookSeries]>,
}

/// One webhook path's request counters (by outcome) and latency histogram.
struct WebhookSeries {
    path: &'static str,
    outcomes: Vec<(&'static str, Counter)>,
    latency: Histogram,
}

const WEBHOOK_PATHS: [&str; 2] = ["inject", "validate"];
const OUTCOMES: [&str; 4] = ["patched", "allowed", "denied", "error"];
const RESULTS: [&str; 2] = ["ok", "error"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let istio = register_istio(&mut root);
        let registry = root.sub_registry_with_prefix("revhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission and HTTP requests by path and outcome",
            requests.clone(),
        );
        let latency =
            Family::<PathLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "Time from request headers to response, by path",
            latency.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cert_reloads",
            "Serving certificate reloads by result",
            cert_reloads.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register(
            "serving_certificate_expiration_timestamp_seconds",
            "Unix time at which the serving certificate now in use expires (0 until one is loaded)",
            cert_not_after.clone(),
        );
        let unknown_kinds = Family::<KindLabels, Counter>::default();
        registry.register(
            "validate_unknown_kind",
            "Objects of kinds /validate has no rules for (kind=other past the first 16 kinds)",
            unknown_kinds.clone(),
        );
        let snapshot_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "snapshot_staleness_seconds",
            "Seconds since the revisions snapshot was last confirmed current by its source",
            snapshot_age.clone(),
        );
        let snapshot_updates = Family::<ResultLabels, Counter>::default();
        registry.register(
            "snapshot_updates",
            "Snapshot rebuilds by result (ok, error)",
            snapshot_updates.clone(),
        );
        let ca_bundle_writes = Counter::default();
        registry.register(
            "ca_bundle_writes",
            "Webhook caBundle fields revhook rewrote (--manage-ca-bundle)",
            ca_bundle_writes.clone(),
        );
        let namespace_lookups = Family::<ResultLabels, Counter>::default();
        registry.register(
            "namespace_lookups",
            "Reviews whose namespace the snapshot did not know, by what looking it up came to (found, absent, failed, limited: over the lookup rate, invalid: not a namespace name)",
            namespace_lookups.clone(),
        );
        let judging_timeouts = Counter::default();
        registry.register(
            "judging_timeouts",
            "Admission requests answered 504 because their ?timeout= passed before a verdict",
            judging_timeouts.clone(),
        );
        let injections = Family::<RevisionLabels, Counter>::default();
        registry.register(
            "injections",
            "Pods given a sidecar, by revision and the tag that selected it (empty: none)",
            injections.clone(),
        );
        let revisions_usable = Family::<UsableLabels, Gauge>::default();
        registry.register(
            "revision_usable",
            "1 for each installed revision whose injector (templates, values, mesh config) revhook can run, 0 for one it cannot: its pods are refused (see /readyz and `revhook check`)",
            revisions_usable.clone(),
        );
        let skips = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "injection_skips",
            "Pods admitted without a sidecar from revhook, by reason (and revision, where one was selected)",
            skips.clone(),
        );
        let denials = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "injection_denials",
            "Pods refused by /inject, by reason and the revision and tag they selected",
            denials.clone(),
        );
        let validation_denials = Family::<ValidationLabels, Counter>::default();
        registry.register(
            "validation_denials",
            "Objects refused by /validate, by reason and the revision they named",
            validation_denials.clone(),
        );
        let webhooks = webhook_series(&requests, &latency);
        let fixed_skips = SkipReason::ALL
            .iter()
            .map(|r| (!r.has_revision()).then(|| fixed_series(&skips, r.as_str(), false)))
            .collect();
        let fixed_denials = DenyReason::ALL
            .iter()
            .map(|r| {
                let unknown = *r == DenyReason::NotSynced;
                (!r.has_revision()).then(|| fixed_series(&denials, r.as_str(), unknown))
            })
            .collect();
        let metrics = Metrics {
            registry: Arc::new(root),
            webhooks,
            ca_bundle_writes,
            namespace_lookups,
            judging_timeouts,
            requests,
            latency,
            cert_reloads,
            cert_not_after,
            unknown_kinds,
            kinds_seen: Arc::default(),
            snapshot_age,
            snapshot_updates,
            injections,
            revisions_usable,
            skips,
            denials,
            validation_denials,
            istio,
            fixed_skips,
            fixed_denials,
            names: Arc::default(),
        };
        metrics.create_fixed_series();
        metrics
    }

    /// Series whose labels do not depend on the installed revisions, at zero.
    fn create_fixed_series(&self) {
        for result in RESULTS {
            self.cert_reloads
                .get_or_create_owned(&ResultLabels { result });
            self.snapshot_updates
                .get_or_create_owned(&ResultLabels { result });
        }
        self.unknown_kinds.get_or_create_owned(&KindLabels {
            kind: "other".into(),
        });
        for reason in ValidationDenial::ALL {
            let revision = if reason == ValidationDenial::Stale {
                UNKNOWN
            } else {
                ""
            };
            self.validation_denials
                .get_or_create_owned(&ValidationLabels {
                    reason: reason.as_str(),
                    revision: revision.to_owned(),
                });
        }
        self.names_changed(&Names::default());
    }

    /// Series labeled with the revisions and tags in `names`, at zero; returns the injection
    /// counters of the installed pairs.
    fn names_changed(&self, names: &Names) -> Vec<(String, String, Counter)> {
        let mut injected = Vec::new();
        for (revision, tag) in names.installed_pairs() {
            let counter = self.injections.get_or_create_owned(&RevisionLabels {
                revision: revision.clone(),
                tag: tag.clone(),
            });
            injected.push((revision.clone(), tag.clone(), counter));
            self.skips.get_or_create_owned(&reason_labels(
                SkipReason::Guard.as_str(),
                (revision.clone(), tag.clone()),
            ));
            for reason in [DenyReason::InvalidAnnotation, DenyReason::TemplateError] {
                self.denials.get_or_create_owned(&reason_labels(
                    reason.as_str(),
                    (revision.clone(), tag.clone()),
                ));
            }
        }
        for pair in names.stale_pairs() {
            self.denials
                .get_or_create_owned(&reason_labels(DenyReason::Stale.as_str(), pair.clone()));
            self.skips.get_or_create_owned(&reason_labels(
                SkipReason::StaleAllowed.as_str(),
                pair.clone(),
            ));
            self.validation_denials
                .get_or_create_owned(&ValidationLabels {
                    reason: ValidationDenial::Stale.as_str(),
                    revision: if pair.1.is_empty() { pair.0 } else { pair.1 },
                });
        }
        injected
    }

    /// Takes the installed revisions and tags as the names label values may use.
    pub fn installed<'a>(
        &self,
        revisions: impl IntoIterator<Item = &'a str>,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let revisions = revisions.into_iter().map(str::to_owned).collect();
        let tags = tags
            .into_iter()
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect();
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        names.replace(revisions, tags);
        names.injected = self.names_changed(&names);
    }

    /// [`Metrics::installed`] with a snapshot's revisions and tags, when it is not the
    /// snapshot last seen (cheap: one pointer comparison under a read lock).
    pub fn observe_snapshot(&self, snapshot: &Arc<Snapshot>) {
        let seen = |names: &Names| std::ptr::eq(names.seen.as_ptr(), Arc::as_ptr(snapshot));
        if seen(&self.names.read().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        self.installed(
            snapshot.table.revisions().map(|r| r.name.as_str()),
            snapshot.table.tags(),
        );
        self.revisions_usable.clear();
        for rev in snapshot.table.revisions() {
            self.revisions_usable
                .get_or_create_owned(&UsableLabels {
                    revision: rev.name.clone(),
                })
                .set(i64::from(rev.injector.is_ok()));
        }
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        names.seen = Arc::downgrade(snapshot);
    }

    /// One pod's outcome at `/inject`: the revision and tag it selected, where known.
    pub fn injection(&self, revision: Option<&str>, tag: Option<&str>, outcome: InjectOutcome) {
        self.count_istio(outcome);
        if self.count_resolved(revision, tag, outcome) {
            return;
        }
        let (revision, tag) = {
            let names = self.names.read().unwrap_or_else(|p| p.into_inner());
            (names.revision_label(revision), names.tag_label(tag))
        };
        match outcome {
            InjectOutcome::Injected => {
                self.injections
                    .get_or_create(&RevisionLabels { revision, tag })
                    .inc();
            }
            InjectOutcome::Skipped(reason) => {
                self.skips
                    .get_or_create(&reason_labels(reason.as_str(), (revision, tag)))
                    .inc();
            }
            InjectOutcome::Denied(reason) => {
                self.denials
                    .get_or_create(&reason_labels(reason.as_str(), (revision, tag)))
                    .inc();
            }
        }
    }

    fn count_istio(&self, outcome: InjectOutcome) {
        match outcome {
            InjectOutcome::Skipped(_) => {
                self.istio.skip.inc();
            }
            InjectOutcome::Denied(reason) if reason.is_failure() => {
                self.istio.failure.inc();
            }
            _ => {}
        }
    }

    /// Counts `outcome` on a series resolved in advance, if it has one: the reasons without a
    /// revision, and injections by an installed pair (the usual request, kept off the family
    /// lookup and label allocations).
    fn count_resolved(
        &self,
        revision: Option<&str>,
        tag: Option<&str>,
        outcome: InjectOutcome,
    ) -> bool {
        let fixed = match outcome {
            InjectOutcome::Injected => {
                let names = self.names.read().unwrap_or_else(|p| p.into_inner());
                let counter = names.injected(revision.unwrap_or(""), tag.unwrap_or(""));
                return counter.map(Counter::inc).is_some();
            }
            InjectOutcome::Skipped(reason) => self.fixed_skips.get(reason as usize),
            InjectOutcome::Denied(reason) => self.fixed_denials.get(reason as usize),
        };
        fixed.and_then(Option::as_ref).map(Counter::inc).is_some()
    }

    /// One object refused by `/validate`; `revision` is the `istio.io/rev` value it named.
    pub fn validation_denied(&self, reason: ValidationDenial, revision: Option<&str>) {
        let revision = self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .value_label(revision);
        self.validation_denials
            .get_or_create(&ValidationLabels {
                reason: reason.as_str(),
                revision,
            })
            .inc();
    }

    /// The serving certificate now in use expires at `unix_secs`.
    pub fn cert_not_after(&self, unix_secs: i64) {
        self.cert_not_after.set(unix_secs);
    }

    /// [`Metrics::cert_not_after`] read from the leaf of a loaded pair. A certificate whose
    /// validity cannot be read leaves the gauge as it was (rustls accepted it; a parse gap
    /// here must not stop serving).
    pub fn serving_cert(&self, pair: &rustls::sign::CertifiedKey) {
        let Ok(leaf) = pair.end_entity_cert() else {
            return;
        };
        match not_after_unix(leaf) {
            Some(t) => self.cert_not_after(t),
            None => tracing::warn!("cannot read the serving certificate's notAfter"),
        }
    }

    pub fn request(&self, path: &'static str, outcome: &'static str, elapsed: Duration) {
        if path == "inject" {
            self.istio_request(outcome, elapsed);
        }
        if let Some(series) = self.webhooks.iter().find(|s| s.path == path) {
            if let Some((_, counter)) = series.outcomes.iter().find(|(o, _)| *o == outcome) {
                counter.inc();
                series.latency.observe(elapsed.as_secs_f64());
                return;
            }
        }
        self.requests
            .get_or_create(&RequestLabels { path, outcome })
            .inc();
        self.latency
            .get_or_create(&PathLabels { path })
            .observe(elapsed.as_secs_f64());
    }

    /// Istio counts every `/inject` request and its time; an HTTP-level error is a failure,
    /// anything answered with a review a success (injection errors add a failure on top, in
    /// [`Metrics::injection`], as istiod does).
    fn istio_request(&self, outcome: &'static str, elapsed: Duration) {
        self.istio.requests.inc();
        self.istio.time.observe(elapsed.as_secs_f64());
        if outcome == "error" {
            self.istio.failure.inc();
        } else {
            self.istio.success.inc();
        }
    }

    pub fn cert_reload(&self, result: &'static str) {
        self.cert_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// An object of a kind `/validate` has no rules for. Kinds come from requests: past
    /// [`KINDS_KEPT`] distinct ones they are counted as `other`.
    pub fn unknown_kind(&self, kind: &str) {
        let kind = {
            let seen = self.kinds_seen.read().unwrap_or_else(|p| p.into_inner());
            if seen.contains(kind) {
                Some(kind.to_owned())
            } else {
                None
            }
        }
        .unwrap_or_else(|| self.admit_kind(kind));
        self.unknown_kinds.get_or_create(&KindLabels { kind }).inc();
    }

    fn admit_kind(&self, kind: &str) -> String {
        let mut seen = self.kinds_seen.write().unwrap_or_else(|p| p.into_inner());
        if seen.len() < KINDS_KEPT && kind != "other" {
            seen.insert(kind.to_owned());
            kind.to_owned()
        } else if seen.contains(kind) {
            kind.to_owned()
        } else {
            "other".to_owned()
        }
    }

    pub fn snapshot_update(&self, result: &'static str) {
        self.snapshot_updates
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A review's namespace was looked up outside the snapshot; `result` is what came of it.
    pub fn namespace_lookup(&self, result: &'static str) {
        self.namespace_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn judging_timeout(&self) {
        self.judging_timeouts.inc();
    }

    pub fn ca_bundle_written(&self, webhooks: u64) {
        self.ca_bundle_writes.inc_by(webhooks);
    }

    pub fn set_snapshot_staleness(&self, age: Duration) {
        self.snapshot_age.set(age.as_secs_f64());
    }

    /// The exposition text, in Prometheus' text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        openmetrics_to_text(&out)
    }
}

/// A reason's series without a revision (`revision="unknown"` for `not-synced`), at zero.
fn fixed_series(
    family: &Family<ReasonLabels, Counter>,
    reason: &'static str,
    unknown: bool,
) -> Counter {
    let revision = if unknown { UNKNOWN } else { "" };
    family.get_or_create_owned(&reason_labels(reason, (revision.to_owned(), String::new())))
}

fn reason_labels(reason: &'static str, (revision, tag): (String, String)) -> ReasonLabels {
    ReasonLabels {
        reason,
        revision,
        tag,
    }
}

fn register_istio(root: &mut Registry) -> IstioSeries {
    let series = IstioSeries {
        requests: Counter::default(),
        success: Counter::default(),
        failure: Counter::default(),
        skip: Counter::default(),
        time: latency_histogram(),
    };
    root.register(
        "sidecar_injection_requests",
        "Total number of sidecar injection requests (Istio's name; all requests to /inject)",
        series.requests.clone(),
    );
    root.register(
        "sidecar_injection_success",
        "Sidecar injection requests answered with an AdmissionReview (Istio's name and meaning)",
        series.success.clone(),
    );
    root.register(
        "sidecar_injection_failure",
        "Failed sidecar injection requests: unreadable requests and injection errors (Istio's name)",
        series.failure.clone(),
    );
    root.register(
        "sidecar_injection_skip",
        "Sidecar injection requests skipped by policy (Istio's name and meaning)",
        series.skip.clone(),
    );
    root.register(
        "sidecar_injection_time_seconds",
        "Time taken by sidecar injection requests in seconds (Istio's name)",
        series.time.clone(),
    );
    series
}

fn webhook_series(
    requests: &Family<RequestLabels, Counter>,
    latency: &Family<PathLabels, Histogram, fn() -> Histogram>,
) -> Arc<[WebhookSeries]> {
    // Created up front, so each series exists (at zero) from the first scrape on.
    WEBHOOK_PATHS
        .iter()
        .map(|&path| WebhookSeries {
            path,
            outcomes: OUTCOMES
                .iter()
                .map(|&outcome| {
                    let counter = requests.get_or_create(&RequestLabels { path, outcome });
                    (outcome, counter.clone())
                })
                .collect(),
            latency: latency.get_or_create(&PathLabels { path }).clone(),
        })
        .collect()
}

/// OpenMetrics text (what prometheus-client writes) as Prometheus' text format: a counter's
/// HELP and TYPE lines name the sample (`x_total`), and there is no `# EOF`. Prometheus reads
/// both, but `promtool check metrics` and most other tools read only the latter.
fn openmetrics_to_text(open: &str) -> String {
    let counters: BTreeSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 16 * counters.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        match counter_meta(line, &counters) {
            Some((kind, name, rest)) => {
                out.push_str(&format!("# {kind} {name}_total{rest}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A `# HELP` or `# TYPE` line of a counter: (HELP|TYPE, name, the rest of the line).
fn counter_meta<'l>(
    line: &'l str,
    counters: &BTreeSet<&str>,
) -> Option<(&'l str, &'l str, &'l str)> {
    let rest = line.strip_prefix("# ")?;
    let (kind, rest) = rest.split_once(' ')?;
    if kind != "HELP" && kind != "TYPE" {
        return None;
    }
    let end = rest.find(' ').unwrap_or(rest.len());
    let name = &rest[..end];
    counters
        .contains(name)
        .then_some((kind, name, &rest[end..]))
}

/// The `notAfter` of a DER X.509 certificate, as Unix seconds.
///
/// Walks only the fixed prefix of `TBSCertificate` (version, serial, signature algorithm,
/// issuer, validity); the crates that parse all of X.509 are far more than this needs.
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (cert, _) = der_item(der, SEQUENCE)?;
    let (tbs, _) = der_item(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_item(rest, 0xa0)?.1;
    }
    rest = der_item(rest, 0x02)?.1; // serialNumber
    rest = der_item(rest, SEQUENCE)?.1; // signature
    rest = der_item(rest, SEQUENCE)?.1; // issuer
    let (validity, _) = der_item(rest, SEQUENCE)?;
    let not_before_tag = *validity.first()?;
    let (_, after) = der_item(validity, not_before_tag)?;
    let tag = *after.first()?;
    let (time, _) = der_item(after, tag)?;
    der_time(tag, std::str::from_utf8(time).ok()?)
}

/// One DER item with tag `tag`: (its contents, what follows it).
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, rest) = rest.split_first()?;
    let (len, rest) = if len_byte < 0x80 {
        (usize::from(len_byte), rest)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn der_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        // RFC 5280: two-digit years 50..99 are 19xx.
        0x17 => {
            let yy: i32 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).ok()?;
    let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests;
