//! `--source cluster`: revisions, tags and namespace labels followed live with kube-rs
//! watchers of Istio's own objects, so `istioctl tag set`, `helm upgrade` or
//! `az aks mesh upgrade` move revhook without a restart.
//!
//! In each Istio namespace, its injector and mesh ConfigMaps and its istiod Services (a
//! revision is installed when both its ConfigMap and its Service exist); cluster-wide, the
//! webhook configurations (tags, and the revisions' own injectors); and namespace labels.
//! Istio's namespaces are the ones given (`--istio-namespace`: one that cannot be read is a
//! failed sync), else the well-known ones ([`WELL_KNOWN_ISTIO_NAMESPACES`]), of which one
//! revhook may not read is skipped, logged and shown on `/readyz`: the shipped RBAC grants
//! only Istio's own namespace.
//!
//! Each revision watch keeps its objects in a map; any change wakes one task that rebuilds the
//! revision part of the snapshot (through the same pure mapping as `check`) and swaps it in.
//! Namespaces are followed apart (`namespaces`): a label change publishes in O(log n). The
//! hot path only ever loads the current snapshot. Readiness waits for the first full list of
//! every watch; a failing watch backs off and retries while the last good snapshot keeps
//! serving, and the time since the sources were last known good is exported as
//! `revhook_snapshot_staleness_seconds`.

mod namespaces;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::core::labels::{NamespaceLabels, ISTIO_REV};
use crate::core::lookup::{Lookup, LookupFuture, LookupGuard, LookupLimits, NamespaceLookup};
use crate::core::revisions::MeshSettings;
use crate::health::Health;
use crate::metrics::Metrics;

use super::SharedSnapshot;
use crate::core::mapping;

/// Where Istio is looked for when no `--istio-namespace` is given: the open-source and ASM
/// in-cluster default, the AKS add-on's, and managed ASM/CSM's.
pub const WELL_KNOWN_ISTIO_NAMESPACES: [&str; 3] =
    ["istio-system", "aks-istio-system", "asm-system"];

/// What the watches have seen, keyed by object.
#[derive(Debug, Default)]
struct Objects {
    configmaps: BTreeMap<(String, String), ConfigMap>,
    services: BTreeMap<(String, String), Service>,
    /// Namespaces whose Services have been listed: there a revision needs its istiod Service.
    services_read: BTreeSet<String>,
    webhooks: BTreeMap<String, MutatingWebhookConfiguration>,
}

/// One change a watch reports, already decoded from kube's events.
enum Change<K> {
    /// A complete list (after the first sync or a re-list): replaces what was known.
    Reset(Vec<K>),
    Upsert(K),
    Remove(K),
}

#[derive(Debug)]
struct Shared {
    objects: Mutex<Objects>,
    /// One flag per watch: configmaps and services (per Istio namespace), webhooks,
    /// namespaces.
    synced: Mutex<Vec<bool>>,
    failing: Mutex<Vec<bool>>,
    last_good: Mutex<Instant>,
    changed: Notify,
    /// Namespace names and labels, published apart from the revisions.
    namespaces: namespaces::NamespaceCache,
}

impl Shared {
    fn lock_objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters (each change is one insert/remove), so a poisoned lock is still usable.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_flag(flags: &Mutex<Vec<bool>>, index: usize, value: bool) {
        let mut flags = flags.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = flags.get_mut(index) {
            *f = value;
        }
    }

    fn all(flags: &Mutex<Vec<bool>>) -> bool {
        flags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .all(|f| *f)
    }

    fn any(flags: &Mutex<Vec<bool>>) -> bool {
        flags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|f| *f)
    }
}

/// Settings of the cluster source.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Namespaces holding Istio's injector ConfigMaps and istiod Services (`istio-system`,
    /// `aks-istio-system`). Empty: not given, so Istio is looked for where it usually is
    /// (`serve`: [`WELL_KNOWN_ISTIO_NAMESPACES`]; `check`, `tags`: every namespace holding an
    /// injector ConfigMap).
    pub istio_namespaces: Vec<String>,
    pub mesh: MeshSettings,
    /// Talk to this API server URL without credentials (`kubectl proxy`, tests) instead of the
    /// in-cluster or kubeconfig settings.
    pub api_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--kube-api-url {url:?} is not a URL: {detail}")]
    BadUrl { url: String, detail: String },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// A client for the options: `api_url` when given, else in-cluster or kubeconfig.
pub async fn client(opts: &ClusterOptions) -> Result<Client, ClientError> {
    match &opts.api_url {
        Some(url) => {
            let uri: hyper::Uri =
                url.parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| ClientError::BadUrl {
                        url: url.clone(),
                        detail: e.to_string(),
                    })?;
            Ok(Client::try_from(kube::Config::new(uri))?)
        }
        None => Ok(Client::try_default().await?),
    }
}

/// Whether a watch that cannot read its objects fails the sync (a namespace that was asked
/// for) or is skipped (a well-known namespace Istio may not be in).
#[derive(Debug, Clone)]
enum Unreadable {
    FailsSync,
    /// Skipped, with the key and text of its `/readyz` note.
    Skipped {
        note: String,
        what: String,
    },
}

/// The Istio namespaces to watch, and whether one that cannot be read fails the sync.
fn istio_namespaces(opts: &ClusterOptions) -> (Vec<String>, bool) {
    if opts.istio_namespaces.is_empty() {
        let known = WELL_KNOWN_ISTIO_NAMESPACES.map(str::to_owned).to_vec();
        (known, false)
    } else {
        (opts.istio_namespaces.clone(), true)
    }
}

/// Starts the watches and the rebuild task; returns their handles.
pub fn start(
    client: Client,
    opts: ClusterOptions,
    snapshot: Arc<SharedSnapshot>,
    health: Arc<Health>,
    metrics: Metrics,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (istio_namespaces, given) = istio_namespaces(&opts);
    let watches = 2 * istio_namespaces.len() + 2;
    let shared = Arc::new(Shared {
        objects: Mutex::new(Objects::default()),
        synced: Mutex::new(vec![false; watches]),
        failing: Mutex::new(vec![false; watches]),
        last_good: Mutex::new(Instant::now()),
        changed: Notify::new(),
        namespaces: namespaces::NamespaceCache::default(),
    });
    tracing::info!(namespaces = ?istio_namespaces, given, "looking for Istio's revisions");
    let mut tasks = Vec::new();
    for (i, ns) in istio_namespaces.iter().enumerate() {
        let unreadable = |kind: &str| {
            if given {
                Unreadable::FailsSync
            } else {
                Unreadable::Skipped {
                    note: format!("istio-namespace/{ns}/{kind}"),
                    what: format!("{kind} in {ns}"),
                }
            }
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let stream = watcher::watcher(api, watcher::Config::default().labels(ISTIO_REV));
        let namespace = ns.clone();
        let apply = move |o: &mut Objects, c: Change<ConfigMap>| apply_configmap(o, &namespace, c);
        tasks.push(tokio::spawn(follow(
            stream,
            Watch {
                shared: shared.clone(),
                index: 2 * i,
                metrics: metrics.clone(),
                unreadable: unreadable("configmaps"),
                health: health.clone(),
            },
            apply,
        )));
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        let stream = watcher::watcher(api, watcher::Config::default().labels(ISTIO_REV));
        let namespace = ns.clone();
        let apply = move |o: &mut Objects, c: Change<Service>| apply_service(o, &namespace, c);
        tasks.push(tokio::spawn(follow(
            stream,
            Watch {
                shared: shared.clone(),
                index: 2 * i + 1,
                metrics: metrics.clone(),
                unreadable: unreadable("services"),
                health: health.clone(),
            },
            apply,
        )));
    }
    // Every webhook configuration (a cluster has a few dozen): the tags, and the revisions'
    // own injectors, which a half-removed revision leaves behind.
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let stream = watcher::watcher(webhooks, watcher::Config::default());
    tasks.push(tokio::spawn(follow(
        stream,
        Watch {
            shared: shared.clone(),
            index: watches - 2,
            metrics: metrics.clone(),
            unreadable: Unreadable::FailsSync,
            health: health.clone(),
        },
        apply_webhook,
    )));
    // Metadata only, cut down further to name and injection labels as each object arrives.
    let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let stream = watcher::watcher(namespaces, watcher::Config::default());
    tasks.push(tokio::spawn(namespaces::follow(
        stream,
        shared.clone(),
        watches - 1,
        metrics.clone(),
        snapshot.clone(),
    )));
    tasks.push(tokio::spawn(rebuild(
        shared.clone(),
        opts.mesh,
        snapshot.clone(),
        health.clone(),
        metrics.clone(),
    )));
    let absent = Absent {
        namespaces: if given { Vec::new() } else { istio_namespaces },
        snapshot,
        health,
    };
    tasks.push(tokio::spawn(report_staleness(shared, metrics, absent)));
    tasks
}

/// Well-known Istio namespaces that may not exist, said on `/readyz` while they do not.
struct Absent {
    namespaces: Vec<String>,
    snapshot: Arc<SharedSnapshot>,
    health: Arc<Health>,
}

impl Absent {
    /// Notes each well-known namespace the synced snapshot does not have (it is watched all
    /// the same: a revision installed there later is found), and clears the note once it has.
    fn report(&self, said: &mut BTreeSet<String>) {
        let snapshot = self.snapshot.load();
        if snapshot.namespaces.is_empty() {
            return;
        }
        for ns in &self.namespaces {
            let key = format!("istio-namespace/{ns}/absent");
            let absent = snapshot.namespace(ns).is_none();
            if absent && said.insert(ns.clone()) {
                tracing::info!(namespace = %ns, "Istio namespace does not exist; watched, nothing there");
                self.health.set_note(
                    &key,
                    Some(format!(
                        "namespace {ns} does not exist: no revision there (watched)"
                    )),
                );
            } else if !absent && said.remove(ns) {
                self.health.set_note(&key, None);
            }
        }
    }
}

/// One watch's place in the shared state, and what to do when it cannot read.
struct Watch {
    shared: Arc<Shared>,
    index: usize,
    metrics: Metrics,
    unreadable: Unreadable,
    health: Arc<Health>,
}

/// The API server refused the list or watch (RBAC), or does not know the path.
fn refused(error: &watcher::Error) -> Option<String> {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s,
        watcher::Error::WatchError(s) => s,
        _ => return None,
    };
    matches!(status.code, 403 | 404).then(|| {
        let reason = if status.code == 403 {
            "forbidden"
        } else {
            "not found"
        };
        format!("{reason}: {}", status.message)
    })
}

/// Turns a watcher stream into changes applied to the shared objects.
async fn follow<K, S>(stream: S, watch: Watch, apply: impl Fn(&mut Objects, Change<K>) + Send)
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    K: Send,
{
    let Watch {
        shared,
        index,
        metrics,
        unreadable,
        health,
    } = watch;
    let stream = stream.default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: Vec<K> = Vec::new();
    let mut skipped = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                if let (Unreadable::Skipped { note, what }, Some(why)) =
                    (&unreadable, refused(&error))
                {
                    // Istio is not here for revhook: known, not a failure. Retried with
                    // backoff in case access is granted; said (and synced) once.
                    if !skipped {
                        tracing::warn!(%why, "cannot read {what}; skipped (Istio is not looked for there)");
                        health.set_note(note, Some(format!("skipped {what}: {why}")));
                        skipped = true;
                        Shared::set_flag(&shared.synced, index, true);
                        shared.changed.notify_one();
                    }
                    continue;
                }
                tracing::warn!(%error, watch = index, "watch failed; retrying with backoff, last snapshot keeps serving");
                Shared::set_flag(&shared.failing, index, true);
                metrics.snapshot_update("error");
                continue;
            }
        };
        Shared::set_flag(&shared.failing, index, false);
        let change = match event {
            Event::Init => {
                buffer.clear();
                continue;
            }
            Event::InitApply(obj) => {
                buffer.push(obj);
                continue;
            }
            Event::InitDone => {
                Shared::set_flag(&shared.synced, index, true);
                if let (true, Unreadable::Skipped { note, what }) = (skipped, &unreadable) {
                    tracing::info!("{what} can be read now");
                    health.set_note(note, None);
                    skipped = false;
                }
                Change::Reset(std::mem::take(&mut buffer))
            }
            Event::Apply(obj) => Change::Upsert(obj),
            Event::Delete(obj) => Change::Remove(obj),
        };
        apply(&mut shared.lock_objects(), change);
        if !Shared::any(&shared.failing) {
            *shared.last_good.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        shared.changed.notify_one();
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn apply_configmap(objects: &mut Objects, namespace: &str, change: Change<ConfigMap>) {
    match change {
        Change::Reset(all) => {
            // Only this watch's namespace is replaced; other Istio namespaces keep theirs.
            objects.configmaps.retain(|(n, _), _| n != namespace);
            for cm in all {
                objects.configmaps.insert(key_of(&cm.metadata), cm);
            }
        }
        Change::Upsert(cm) => {
            objects.configmaps.insert(key_of(&cm.metadata), cm);
        }
        Change::Remove(cm) => {
            objects.configmaps.remove(&key_of(&cm.metadata));
        }
    }
}

fn apply_service(objects: &mut Objects, namespace: &str, change: Change<Service>) {
    match change {
        Change::Reset(all) => {
            objects.services.retain(|(n, _), _| n != namespace);
            for svc in all {
                objects.services.insert(key_of(&svc.metadata), svc);
            }
            objects.services_read.insert(namespace.to_owned());
        }
        Change::Upsert(svc) => {
            objects.services.insert(key_of(&svc.metadata), svc);
        }
        Change::Remove(svc) => {
            objects.services.remove(&key_of(&svc.metadata));
        }
    }
}

fn apply_webhook(objects: &mut Objects, change: Change<MutatingWebhookConfiguration>) {
    match change {
        Change::Reset(all) => {
            objects.webhooks = all
                .into_iter()
                .map(|w| (w.metadata.name.clone().unwrap_or_default(), w))
                .collect();
        }
        Change::Upsert(w) => {
            objects
                .webhooks
                .insert(w.metadata.name.clone().unwrap_or_default(), w);
        }
        Change::Remove(w) => {
            objects
                .webhooks
                .remove(w.metadata.name.as_deref().unwrap_or_default());
        }
    }
}

/// Rebuilds the revision part and swaps the snapshot after changes, coalescing bursts (a
/// re-list is one rebuild, not one per object). Namespace changes publish themselves.
async fn rebuild(
    shared: Arc<Shared>,
    mesh: MeshSettings,
    snapshot: Arc<SharedSnapshot>,
    health: Arc<Health>,
    metrics: Metrics,
) {
    loop {
        shared.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !Shared::all(&shared.synced) {
            continue;
        }
        let (next, report) = {
            let objects = shared.lock_objects();
            let istio = mapping::IstioObjects {
                configmaps: objects.configmaps.values().collect(),
                webhooks: objects.webhooks.values().collect(),
                services: objects.services.values().collect(),
                services_read: objects.services_read.clone(),
            };
            // The namespaces are attached as they are when the snapshot is published.
            mapping::snapshot_from_istio(&istio, HashMap::new(), mesh.clone(), "cluster")
        };
        for error in &report.errors {
            tracing::warn!(%error, "cluster object left out of the snapshot");
        }
        let revisions = next.table.revisions().count();
        let tags = next.table.tags().count();
        for half in next.table.half_removed() {
            tracing::warn!(
                revision = %half.revision,
                "revision is half-removed, not installed (its pods and namespaces are stale): {}; finish removing it: {}",
                half.what_is_left(),
                half.removal()
            );
        }
        let namespaces = shared.namespaces.publish_revisions(next, &snapshot);
        tracing::info!(
            revisions,
            tags,
            namespaces,
            "snapshot rebuilt from the cluster"
        );
        metrics.snapshot_update("ok");
        health.set_synced(true);
    }
}

async fn report_staleness(shared: Arc<Shared>, metrics: Metrics, absent: Absent) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut said = BTreeSet::new();
    loop {
        tick.tick().await;
        if Shared::all(&shared.synced) {
            absent.report(&mut said);
        }
        let age = if Shared::any(&shared.failing) {
            shared
                .last_good
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
        } else {
            Duration::ZERO
        };
        metrics.set_snapshot_staleness(age);
    }
}

/// A direct GET of a namespace's metadata, behind the core's [`LookupGuard`]: anyone who can
/// reach the webhook port can send reviews naming any namespace, so GETs are coalesced per
/// name, an absent name is remembered for a while, names Kubernetes would refuse are never
/// asked for, and all GETs together stay under a rate.
#[derive(Clone)]
pub struct ApiNamespaceLookup {
    api: Api<Namespace>,
    guard: Arc<LookupGuard>,
}

impl std::fmt::Debug for ApiNamespaceLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiNamespaceLookup")
            .field("guard", &self.guard)
            .finish()
    }
}

/// One GET gives up after this, so the lookup every waiting request shares always ends.
const GET_TIMEOUT: Duration = Duration::from_secs(10);

impl ApiNamespaceLookup {
    pub fn new(client: Client) -> Self {
        ApiNamespaceLookup {
            api: Api::all(client),
            guard: Arc::new(LookupGuard::new(LookupLimits::default())),
        }
    }
}

impl NamespaceLookup for ApiNamespaceLookup {
    fn labels(
        &self,
        name: String,
    ) -> Pin<Box<dyn Future<Output = Option<NamespaceLabels>> + Send>> {
        Box::pin(self.lookup(name).map(|found| match found {
            Lookup::Found(labels) => Some(labels),
            _ => None,
        }))
    }

    fn lookup(&self, name: String) -> LookupFuture {
        let api = self.api.clone();
        self.guard.lookup(&name, Instant::now(), move |name| {
            // Spawned: the GET runs to its end, and the guard learns what it found, even if
            // every request waiting on it gives up first.
            let get = tokio::spawn(get_namespace(api, name));
            Box::pin(async move { get.await.unwrap_or(Lookup::Failed) })
        })
    }
}

async fn get_namespace(api: Api<Namespace>, name: String) -> Lookup {
    match tokio::time::timeout(GET_TIMEOUT, api.get_metadata_opt(&name)).await {
        Ok(Ok(Some(meta))) => Lookup::Found(mapping::namespace_labels(&meta.metadata)),
        Ok(Ok(None)) => Lookup::Absent,
        Ok(Err(error)) => {
            tracing::warn!(%error, namespace = %name, "namespace lookup failed");
            Lookup::Failed
        }
        Err(_) => {
            tracing::warn!(namespace = %name, timeout = ?GET_TIMEOUT, "namespace lookup timed out");
            Lookup::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn configmap_reset_replaces_only_its_namespace() {
        let cm = |ns: &str, name: &str| ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let mut objects = Objects::default();
        apply_configmap(
            &mut objects,
            "istio-system",
            Change::Upsert(cm("istio-system", "istio-sidecar-injector-a")),
        );
        apply_configmap(
            &mut objects,
            "aks-istio-system",
            Change::Upsert(cm("aks-istio-system", "istio-sidecar-injector-b")),
        );
        apply_configmap(
            &mut objects,
            "istio-system",
            Change::Reset(vec![cm("istio-system", "istio-sidecar-injector-c")]),
        );
        let names: Vec<_> = objects.configmaps.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["istio-sidecar-injector-b", "istio-sidecar-injector-c"]
        );
        // A re-list that finds nothing removes the namespace's revisions.
        apply_configmap(&mut objects, "istio-system", Change::Reset(vec![]));
        let names: Vec<_> = objects.configmaps.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, vec!["istio-sidecar-injector-b"]);
    }
}
