//! Control-plane revisions, revision tags, and the resolution of an `istio.io/rev` value.
//!
//! Pure: no I/O. "Stale" (the value names nothing installed) is a typed outcome, not an
//! error string, so callers decide whether it denies, warns or is reported by `check`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::injector::{self, Injector, InjectorProblem, InjectorSource, RevisionOverlay};

/// The tag that `istio-injection=enabled` (and `sidecar.istio.io/inject=true` alone) means.
pub const DEFAULT_TAG: &str = "default";

/// Mesh-wide settings a config file or the cluster options give (Istio's `meshConfig` and
/// `values.global`); a revision's injector is built with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    pub trust_domain: String,
    pub cluster_id: String,
    pub mesh_id: String,
    /// `values.global.network`: the proxies' network (none by default).
    pub network: String,
    pub istio_namespace: String,
    /// What `ENABLE_NATIVE_SIDECARS=auto` (or unset) means here: whether the cluster runs
    /// Kubernetes native sidecars (every node 1.33 or newer, as istiod checks).
    pub native_sidecars_auto: bool,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            trust_domain: "cluster.local".into(),
            cluster_id: "Kubernetes".into(),
            mesh_id: "cluster.local".into(),
            network: String::new(),
            istio_namespace: "istio-system".into(),
            native_sidecars_auto: false,
        }
    }
}

/// One installed control plane, with the injector its istiod runs.
#[derive(Debug, Clone)]
pub struct Revision {
    pub name: String,
    /// The proxy image a pod without image annotations gets (what `check` and `tags plan`
    /// compare running proxies with).
    pub proxy_image: String,
    /// `host:port` of the revision's istiod (XDS and CA).
    pub discovery_address: String,
    /// The namespace its injector ConfigMap lives in (Istio's namespace); empty for a
    /// revision from a config file.
    pub namespace: String,
    /// The revision's injector, or why it cannot inject.
    pub injector: Result<Arc<Injector>, InjectorProblem>,
}

impl PartialEq for Revision {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.proxy_image == other.proxy_image
            && self.discovery_address == other.discovery_address
            && self.namespace == other.namespace
            && match (&self.injector, &other.injector) {
                (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
                (Err(a), Err(b)) => a.to_string() == b.to_string(),
                _ => false,
            }
    }
}

impl Eq for Revision {}

impl Revision {
    /// A revision whose pods get revhook's own sidecar template with `proxy_image`, named and
    /// placed in the mesh as `mesh` says (istiod service `istiod` for `default`,
    /// `istiod-<rev>` otherwise).
    pub fn new(name: &str, proxy_image: &str, mesh: &MeshSettings) -> Self {
        let overlay = RevisionOverlay {
            image: Some(proxy_image.to_owned()),
            ..RevisionOverlay::default()
        };
        Revision::from_source(name, injector::embedded_source(name, mesh, &overlay))
    }

    /// A revision whose injector cannot be had at all, with the image its values name.
    pub fn unusable(name: &str, proxy_image: String, problem: InjectorProblem) -> Self {
        Revision {
            name: name.to_owned(),
            proxy_image,
            discovery_address: String::new(),
            namespace: String::new(),
            injector: Err(problem),
        }
    }

    /// A revision from what its injector is built from.
    pub fn from_source(name: &str, source: Result<InjectorSource, InjectorProblem>) -> Self {
        // What a revision that cannot inject would inject, as far as its values tell: `check`
        // still compares running proxies with it.
        let fallback_image = source
            .as_ref()
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s.values).ok())
            .map(|v| injector::values_proxy_image(&v))
            .unwrap_or_default();
        let injector = source.and_then(|s| Injector::build(&s)).map(Arc::new);
        let (proxy_image, discovery_address) = match &injector {
            Ok(inj) => (
                inj.default_proxy_image(),
                inj.discovery_address().to_owned(),
            ),
            Err(_) => (fallback_image, String::new()),
        };
        Revision {
            name: name.to_owned(),
            proxy_image,
            discovery_address,
            namespace: String::new(),
            injector,
        }
    }

    /// The same revision, found in Istio's namespace `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }
}

/// What is left of a revision that can no longer serve: its injector ConfigMap (and the
/// webhook configurations naming it) without its istiod Service, as the ASM guide's
/// `kubectl delete Service,Deployment,HorizontalPodAutoscaler,PodDisruptionBudget
/// istiod-<old>` leaves it. Such a revision is not installed: proxies injected for it would
/// name a Service that is gone and never get their configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfRemoved {
    pub revision: String,
    /// Istio's namespace, where its ConfigMaps are.
    pub namespace: String,
    /// The istiod Service that is gone (`istiod-<rev>`, `istiod` for the default revision).
    pub service: String,
    /// Its ConfigMaps left behind (the injector's first, then its mesh configs).
    pub configmaps: Vec<String>,
    /// Its injector MutatingWebhookConfigurations left behind, where they are known.
    pub webhooks: Vec<String>,
}

impl HalfRemoved {
    /// "its istiod Service ns/istiod-x is gone; left behind: ConfigMap ns/a, ...".
    pub fn what_is_left(&self) -> String {
        let ns = &self.namespace;
        let left: Vec<String> = self
            .configmaps
            .iter()
            .map(|c| format!("ConfigMap {ns}/{c}"))
            .chain(
                self.webhooks
                    .iter()
                    .map(|w| format!("MutatingWebhookConfiguration {w}")),
            )
            .collect();
        format!(
            "its istiod Service {ns}/{} is gone; left behind: {}",
            self.service,
            left.join(", ")
        )
    }

    /// The commands that finish removing it (`; `-separated), or istioctl's.
    pub fn removal(&self) -> String {
        let mut commands = Vec::new();
        if !self.configmaps.is_empty() {
            commands.push(format!(
                "kubectl delete configmap {} -n {}",
                self.configmaps.join(" "),
                self.namespace
            ));
        }
        if !self.webhooks.is_empty() {
            commands.push(format!(
                "kubectl delete mutatingwebhookconfiguration {}",
                self.webhooks.join(" ")
            ));
        }
        format!(
            "{} (or: istioctl uninstall --revision {})",
            commands.join("; "),
            self.revision
        )
    }
}

/// Istio's istiod service name for a revision: `istiod` for `default`/empty, else `istiod-<rev>`.
pub fn default_discovery_address(revision: &str, istio_namespace: &str) -> String {
    if revision.is_empty() || revision == "default" {
        format!("istiod.{istio_namespace}.svc:15012")
    } else {
        format!("istiod-{revision}.{istio_namespace}.svc:15012")
    }
}

/// What an `istio.io/rev` value (or the `default` tag) resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'t> {
    pub revision: &'t Arc<Revision>,
    /// The tag the value named, when it was a tag rather than a revision.
    pub via_tag: Option<&'t str>,
}

/// A value that names no installed revision nor tag, with what *is* installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub requested: String,
    /// Set when the value is a tag that exists but points at a missing revision.
    pub dangling_tag_target: Option<String>,
    /// What is left of the revision (the value's, or the tag's target) when it was removed
    /// only in part.
    pub half_removed: Option<Arc<HalfRemoved>>,
    inventory: Arc<Inventory>,
}

/// What every stale message says about a table. Computed once per table: a namespace left on a
/// removed revision has every one of its pods denied, and each denial would otherwise rebuild it.
#[derive(Debug, PartialEq, Eq)]
struct Inventory {
    installed: Vec<String>,
    /// Every installed revision and tag, for "did you mean".
    names: Vec<String>,
    /// "installed: a, b; tags: t -> a"
    text: String,
    suggestion: Option<String>,
}

impl Inventory {
    fn of(revisions: &BTreeMap<String, Arc<Revision>>, tags: &BTreeMap<String, String>) -> Self {
        let installed: Vec<String> = revisions.keys().cloned().collect();
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        let tag_list = tags.iter().map(|(t, r)| format!("{t} -> {r}")).collect();
        let text = format!(
            "installed: {}; tags: {}",
            list(installed.clone()),
            list(tag_list)
        );
        let names = revisions.keys().chain(tags.keys()).cloned().collect();
        Inventory {
            installed,
            names,
            text,
            suggestion: suggested_target(revisions, tags),
        }
    }
}

impl Stale {
    /// "installed: a, b; tags: t -> a" (the part every stale message shares).
    pub fn inventory(&self) -> &str {
        &self.inventory.text
    }

    /// The installed revisions' names, sorted.
    pub fn installed(&self) -> &[String] {
        &self.inventory.installed
    }

    /// The revision a fix should point at, when there is an obvious one.
    pub fn suggestion(&self) -> Option<&str> {
        self.inventory.suggestion.as_deref()
    }

    /// An installed revision or tag one or two edits away from the value (a typo such as
    /// `prod-stabel`), when there is exactly one closest.
    pub fn did_you_mean(&self) -> Option<&str> {
        if self.dangling_tag_target.is_some()
            || self.half_removed.is_some()
            || self.requested.len() > 63
        {
            return None;
        }
        let mut best: Option<(usize, &str)> = None;
        let mut tie = false;
        for name in &self.inventory.names {
            let d = edit_distance(&self.requested, name);
            if d == 0 || d > 2 || d * 2 >= name.len() {
                continue;
            }
            match best {
                Some((b, _)) if d > b => {}
                Some((b, _)) if d == b => tie = true,
                _ => {
                    best = Some((d, name));
                    tie = false;
                }
            }
        }
        best.filter(|_| !tie).map(|(_, n)| n)
    }

    /// Where the fix should point: the name the value was probably meant to be, else the
    /// table's suggestion.
    pub fn fix_target(&self) -> Option<&str> {
        self.did_you_mean().or_else(|| self.suggestion())
    }

    /// Why the value is stale, without the subject ("revision \"x\", which is not installed").
    pub fn what(&self) -> String {
        if let Some(half) = &self.half_removed {
            let left = half.what_is_left();
            return match &self.dangling_tag_target {
                Some(target) => format!(
                    "tag \"{}\", which points at revision \"{target}\" that is half-removed ({left})",
                    self.requested
                ),
                None => format!(
                    "revision \"{}\", which is half-removed ({left})",
                    self.requested
                ),
            };
        }
        match (&self.dangling_tag_target, self.did_you_mean()) {
            (Some(target), _) => format!(
                "tag \"{}\", which points at revision \"{target}\" that is not installed",
                self.requested
            ),
            (None, Some(close)) => format!(
                "revision \"{}\", which is not installed (did you mean \"{close}\"?)",
                self.requested
            ),
            (None, None) => format!("revision \"{}\", which is not installed", self.requested),
        }
    }
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.what(), self.inventory())
    }
}

/// A table that cannot be built because names collide or a tag points nowhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("duplicate revision {0:?}")]
    DuplicateRevision(String),
    #[error("tag {0:?} has the name of a revision; tags and revisions share one namespace of `istio.io/rev` values")]
    TagNamedLikeRevision(String),
    #[error("invalid name {0:?}: must be a non-empty Kubernetes label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)")]
    InvalidName(String),
}

/// The revisions and tags known at one moment. Immutable once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionTable {
    revisions: BTreeMap<String, Arc<Revision>>,
    tags: BTreeMap<String, String>,
    /// Revisions removed in part (never also in `revisions`).
    half_removed: BTreeMap<String, Arc<HalfRemoved>>,
    /// Derived from the two maps whenever they are set (so equal tables stay equal).
    inventory: Arc<Inventory>,
}

impl Default for RevisionTable {
    fn default() -> Self {
        RevisionTable::from_maps(BTreeMap::new(), BTreeMap::new())
    }
}

impl RevisionTable {
    /// Builds a table. A tag may point at a missing revision (that is a finding, not a build
    /// error: the cluster can be in that state), but names may not collide.
    pub fn new(
        revisions: impl IntoIterator<Item = Revision>,
        tags: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, TableError> {
        let mut by_name = BTreeMap::new();
        for rev in revisions {
            check_label_value(&rev.name)?;
            if by_name.contains_key(&rev.name) {
                return Err(TableError::DuplicateRevision(rev.name));
            }
            by_name.insert(rev.name.clone(), Arc::new(rev));
        }
        let mut by_tag = BTreeMap::new();
        for (tag, target) in tags {
            check_label_value(&tag)?;
            if by_name.contains_key(&tag) {
                return Err(TableError::TagNamedLikeRevision(tag));
            }
            by_tag.insert(tag, target);
        }
        Ok(RevisionTable::from_maps(by_name, by_tag))
    }

    fn from_maps(
        revisions: BTreeMap<String, Arc<Revision>>,
        tags: BTreeMap<String, String>,
    ) -> Self {
        let inventory = Arc::new(Inventory::of(&revisions, &tags));
        RevisionTable {
            revisions,
            tags,
            half_removed: BTreeMap::new(),
            inventory,
        }
    }

    /// The same table, knowing what is left of revisions removed in part (one whose name is
    /// an installed revision is ignored: it serves).
    pub fn with_half_removed(mut self, leftovers: impl IntoIterator<Item = HalfRemoved>) -> Self {
        for half in leftovers {
            if !self.revisions.contains_key(&half.revision) {
                self.half_removed
                    .insert(half.revision.clone(), Arc::new(half));
            }
        }
        self
    }

    /// Revisions removed in part, sorted by name.
    pub fn half_removed(&self) -> impl Iterator<Item = &Arc<HalfRemoved>> {
        self.half_removed.values()
    }

    pub fn revisions(&self) -> impl Iterator<Item = &Arc<Revision>> {
        self.revisions.values()
    }

    pub fn revision(&self, name: &str) -> Option<&Arc<Revision>> {
        self.revisions.get(name)
    }

    /// Tags as (tag, target revision), sorted by tag.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(t, r)| (t.as_str(), r.as_str()))
    }

    pub fn tag_target(&self, tag: &str) -> Option<&str> {
        self.tags.get(tag).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    /// Resolves an `istio.io/rev` value: a revision name, else a tag pointing at one.
    pub fn resolve(&self, value: &str) -> Result<Resolved<'_>, Stale> {
        if let Some(revision) = self.revisions.get(value) {
            return Ok(Resolved {
                revision,
                via_tag: None,
            });
        }
        if let Some((tag, target)) = self.tags.get_key_value(value) {
            if let Some(revision) = self.revisions.get(target) {
                return Ok(Resolved {
                    revision,
                    via_tag: Some(tag.as_str()),
                });
            }
            return Err(self.stale(value, Some(target.clone())));
        }
        Err(self.stale(value, None))
    }

    fn stale(&self, requested: &str, dangling_tag_target: Option<String>) -> Stale {
        let revision = dangling_tag_target.as_deref().unwrap_or(requested);
        Stale {
            requested: requested.to_owned(),
            half_removed: self.half_removed.get(revision).cloned(),
            dangling_tag_target,
            inventory: self.inventory.clone(),
        }
    }

    /// Where a stale label should point: the `default` tag's revision if it is installed,
    /// else the newest installed revision.
    pub fn suggested_target(&self) -> Option<String> {
        self.inventory.suggestion.clone()
    }

    /// Tags whose target revision is not installed.
    pub fn dangling_tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags()
            .filter(|(_, target)| !self.revisions.contains_key(*target))
    }
}

fn suggested_target(
    revisions: &BTreeMap<String, Arc<Revision>>,
    tags: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(target) = tags.get(DEFAULT_TAG) {
        if revisions.contains_key(target) {
            return Some(target.clone());
        }
    }
    revisions
        .keys()
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .cloned()
}

/// Orders revision names like `asm-1-9` < `asm-1-10` by comparing digit runs as numbers.
fn version_key(name: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                key.push((0, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        key.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        key.push((0, text));
    }
    key
}

/// `(major, minor)` parsed from a revision name or image tag such as `asm-1-22`, `1-23-1`,
/// `proxyv2:1.22.3-distroless`; `None` when the name carries no version.
pub fn minor_version(name: &str) -> Option<(u64, u64)> {
    let bytes: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let (major, next) = read_number(&bytes, i);
            if next + 1 < bytes.len()
                && (bytes[next] == '.' || bytes[next] == '-')
                && bytes[next + 1].is_ascii_digit()
            {
                let (minor, _) = read_number(&bytes, next + 1);
                return Some((major, minor));
            }
            i = next;
        } else {
            i += 1;
        }
    }
    None
}

fn read_number(chars: &[char], start: usize) -> (u64, usize) {
    let mut end = start;
    let mut value: u64 = 0;
    while end < chars.len() && chars[end].is_ascii_digit() {
        value = value
            .saturating_mul(10)
            .saturating_add(u64::from(chars[end] as u8 - b'0'));
        end += 1;
    }
    (value, end)
}

/// Checks that a name can be the value of the `istio.io/rev` label.
pub fn check_label_value(name: &str) -> Result<(), TableError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(TableError::InvalidName(name.to_owned()))
    }
}

/// Levenshtein distance over bytes (label values are ASCII), in one row of memory.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RevisionTable {
        let mesh = MeshSettings::default();
        RevisionTable::new(
            [
                Revision::new("asm-1-22", "img:1.22", &mesh),
                Revision::new("asm-1-23", "img:1.23", &mesh),
            ],
            [
                ("prod-stable".to_owned(), "asm-1-22".to_owned()),
                ("prod-canary".to_owned(), "asm-1-23".to_owned()),
                ("old".to_owned(), "asm-1-20".to_owned()),
            ],
        )
        .expect("valid table")
    }

    #[test]
    fn resolves_revision_names_directly() {
        let t = table();
        let r = t.resolve("asm-1-23").expect("installed");
        assert_eq!(r.revision.name, "asm-1-23");
        assert_eq!(r.via_tag, None);
    }

    #[test]
    fn resolves_tags_to_their_revision() {
        let t = table();
        let r = t.resolve("prod-stable").expect("tag");
        assert_eq!(r.revision.proxy_image, "img:1.22");
        assert_eq!(r.via_tag, Some("prod-stable"));
    }

    #[test]
    fn unknown_value_is_stale_with_inventory() {
        let stale = table().resolve("asm-1-21").expect_err("stale");
        assert_eq!(stale.requested, "asm-1-21");
        assert_eq!(stale.installed(), ["asm-1-22", "asm-1-23"]);
        assert_eq!(
            stale.to_string(),
            "revision \"asm-1-21\", which is not installed; installed: asm-1-22, asm-1-23; \
             tags: old -> asm-1-20, prod-canary -> asm-1-23, prod-stable -> asm-1-22"
        );
    }

    #[test]
    fn tag_to_missing_revision_is_stale_and_named_as_such() {
        let stale = table().resolve("old").expect_err("dangling");
        assert_eq!(stale.dangling_tag_target.as_deref(), Some("asm-1-20"));
        assert!(stale
            .what()
            .contains("tag \"old\", which points at revision \"asm-1-20\""));
        assert_eq!(
            table().dangling_tags().collect::<Vec<_>>(),
            vec![("old", "asm-1-20")]
        );
    }

    #[test]
    fn suggestion_prefers_default_tag_then_newest_revision() {
        assert_eq!(table().suggested_target().as_deref(), Some("asm-1-23"));
        let mesh = MeshSettings::default();
        let t = RevisionTable::new(
            [
                Revision::new("asm-1-9", "a", &mesh),
                Revision::new("asm-1-10", "b", &mesh),
            ],
            [("default".to_owned(), "asm-1-9".to_owned())],
        )
        .expect("valid");
        assert_eq!(t.suggested_target().as_deref(), Some("asm-1-9"));
        let t = RevisionTable::new(
            [
                Revision::new("asm-1-9", "a", &mesh),
                Revision::new("asm-1-10", "b", &mesh),
            ],
            [],
        )
        .expect("valid");
        assert_eq!(t.suggested_target().as_deref(), Some("asm-1-10"));
    }

    #[test]
    fn tag_and_revision_names_may_not_collide() {
        let mesh = MeshSettings::default();
        let err = RevisionTable::new(
            [Revision::new("asm-1-22", "a", &mesh)],
            [("asm-1-22".to_owned(), "asm-1-22".to_owned())],
        )
        .expect_err("collision");
        assert_eq!(err, TableError::TagNamedLikeRevision("asm-1-22".into()));
    }

    #[test]
    fn duplicate_and_invalid_names_are_rejected() {
        let mesh = MeshSettings::default();
        assert!(matches!(
            RevisionTable::new(
                [
                    Revision::new("a", "x", &mesh),
                    Revision::new("a", "y", &mesh)
                ],
                []
            ),
            Err(TableError::DuplicateRevision(_))
        ));
        assert!(matches!(
            RevisionTable::new([Revision::new("-bad", "x", &mesh)], []),
            Err(TableError::InvalidName(_))
        ));
    }

    #[test]
    fn discovery_address_follows_istio_service_names() {
        assert_eq!(
            default_discovery_address("default", "istio-system"),
            "istiod.istio-system.svc:15012"
        );
        assert_eq!(
            default_discovery_address("asm-1-23", "aks-istio-system"),
            "istiod-asm-1-23.aks-istio-system.svc:15012"
        );
    }

    #[test]
    fn minor_versions_are_read_from_names_and_images() {
        assert_eq!(minor_version("asm-1-22"), Some((1, 22)));
        assert_eq!(minor_version("1-23-1"), Some((1, 23)));
        assert_eq!(
            minor_version("docker.io/istio/proxyv2:1.22.3-distroless"),
            Some((1, 22))
        );
        assert_eq!(minor_version("default"), None);
        assert_eq!(minor_version("canary"), None);
    }

    fn half(rev: &str) -> HalfRemoved {
        HalfRemoved {
            revision: rev.to_owned(),
            namespace: "istio-system".to_owned(),
            service: format!("istiod-{rev}"),
            configmaps: vec![
                format!("istio-sidecar-injector-{rev}"),
                format!("istio-{rev}"),
            ],
            webhooks: vec![format!("istio-sidecar-injector-{rev}")],
        }
    }

    #[test]
    fn a_half_removed_revision_is_stale_and_says_what_is_left() {
        let t = table().with_half_removed([half("asm-1-20"), half("asm-1-22")]);
        assert_eq!(
            t.half_removed()
                .map(|h| h.revision.as_str())
                .collect::<Vec<_>>(),
            ["asm-1-20"],
            "an installed revision is never half-removed"
        );
        let stale = t.resolve("asm-1-20").expect_err("half-removed");
        assert_eq!(
            stale.what(),
            "revision \"asm-1-20\", which is half-removed (its istiod Service \
             istio-system/istiod-asm-1-20 is gone; left behind: ConfigMap \
             istio-system/istio-sidecar-injector-asm-1-20, ConfigMap istio-system/istio-asm-1-20, \
             MutatingWebhookConfiguration istio-sidecar-injector-asm-1-20)"
        );
        assert_eq!(
            stale.did_you_mean(),
            None,
            "no guess for a revision that was there"
        );
        let half = stale.half_removed.as_ref().expect("what is left");
        assert_eq!(
            half.removal(),
            "kubectl delete configmap istio-sidecar-injector-asm-1-20 istio-asm-1-20 -n istio-system; \
             kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-20 \
             (or: istioctl uninstall --revision asm-1-20)"
        );
        // A tag pointing at it says so too.
        let dangling = t
            .resolve("old")
            .expect_err("tag to a half-removed revision");
        assert!(
            dangling.what().starts_with(
                "tag \"old\", which points at revision \"asm-1-20\" that is half-removed (its istiod Service"
            ),
            "{}",
            dangling.what()
        );
        // A revision that is simply gone is not.
        assert_eq!(t.resolve("asm-1-21").expect_err("gone").half_removed, None);
    }

    #[test]
    fn a_removal_without_known_webhooks_names_only_the_configmaps() {
        let mut h = half("asm-1-20");
        h.webhooks.clear();
        h.configmaps.truncate(1);
        assert_eq!(
            h.removal(),
            "kubectl delete configmap istio-sidecar-injector-asm-1-20 -n istio-system \
             (or: istioctl uninstall --revision asm-1-20)"
        );
        assert!(!h.what_is_left().contains("MutatingWebhookConfiguration"));
    }

    #[test]
    fn a_typo_of_a_tag_or_revision_is_named() {
        let t = table();
        let stale = t.resolve("prod-stabel").expect_err("stale");
        assert_eq!(stale.did_you_mean(), Some("prod-stable"));
        assert_eq!(stale.fix_target(), Some("prod-stable"));
        assert!(
            stale.what().contains("(did you mean \"prod-stable\"?)"),
            "{}",
            stale.what()
        );
        // Two edits from both asm-1-22 and asm-1-23: no single guess.
        let tie = t.resolve("asm-1-19").expect_err("stale");
        assert_eq!(tie.did_you_mean(), None);
        let none = t.resolve("retired-long-ago").expect_err("stale");
        assert_eq!(none.did_you_mean(), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
