//! The `revhook` command line.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use revhook::cabundle::CaBundleOptions;
use revhook::check::{CheckOptions, ClusterObjects, Gate, Output, Platform, Severity};
use revhook::core::injector::IstioVersion;
use revhook::core::labels::NamespaceLabels;
use revhook::core::policy::{Mode, OnConflict, OnStale, Policy};
use revhook::core::revisions::MeshSettings;
use revhook::core::snapshot::Snapshot;
use revhook::handler::{self, Webhook};
use revhook::run::{self, ServeOptions};
use revhook::server::{parse_go_duration, Limits};
use revhook::sources::cluster::{self, ClusterOptions};
use revhook::sources::Source;
use revhook::sources::{config, listing};
use revhook::tls;

#[derive(Parser, Debug)]
#[command(
    name = "revhook",
    version,
    about = "Istio sidecar injection that is safe across control-plane revisions"
)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the mutating (/inject) and validating (/validate) webhooks over TLS.
    Serve(Box<ServeArgs>),
    /// Run AdmissionReview JSON fixtures through the same handler, in-process.
    Replay(ReplayArgs),
    /// Write a dev CA and a serving certificate, and print the base64 caBundle.
    Certs(CertsArgs),
    /// Find the canary-upgrade failure modes in a cluster (live, or a `kubectl get -o yaml` dump).
    Check(CheckArgs),
    /// Inject sidecars into manifests offline (like istioctl kube-inject), with the webhook's engine.
    Inject(InjectArgs),
    /// List, plan, set or remove revision tags (Istio's tag webhook configurations).
    #[command(subcommand)]
    Tags(TagsCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
enum TagsCommand {
    /// Tags, the revision each points at, and the namespaces that select it.
    List(ClusterArgs),
    /// What moving a tag would change (namespaces, pods to restart, images), changing nothing.
    Plan {
        tag: String,
        #[arg(long)]
        revision: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Point a tag at a revision. Guard mode writes what `istioctl tag set` writes (Istio's
    /// injector webhooks and the tag's istiod Service); inject mode a tag webhook
    /// configuration with `webhooks: []` (revhook injects).
    Set {
        tag: String,
        #[arg(long)]
        revision: String,
        /// Move a tag that already points elsewhere.
        #[arg(long)]
        overwrite: bool,
        /// Who injects; default: the mode of the revhook installed in the cluster (its
        /// webhook configurations' revhook.dev/mode label), else guard.
        #[arg(long, value_enum)]
        mode: Option<TagModeArg>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete a tag (its webhook configurations and istiod Service), after saying what it
    /// breaks and asking on a terminal.
    Remove {
        tag: String,
        /// Do not ask (for scripts; without a terminal and without --yes nothing is removed).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Args, Debug, Clone)]
struct ClusterArgs {
    /// Namespace(s) of Istio's injector ConfigMaps and istiod Services; repeat for several.
    /// Default: where Istio is (check, tags: every namespace holding an injector ConfigMap;
    /// serve: istio-system, aks-istio-system and asm-system, skipping those it may not read).
    #[arg(long = "istio-namespace")]
    istio_namespaces: Vec<String>,
    /// Use this API server URL without credentials (e.g. `kubectl proxy`'s
    /// http://127.0.0.1:8001) instead of in-cluster or kubeconfig settings.
    #[arg(long)]
    kube_api_url: Option<String>,
}

impl ClusterArgs {
    fn options(&self) -> ClusterOptions {
        let mesh = MeshSettings {
            istio_namespace: self
                .istio_namespaces
                .first()
                .cloned()
                .unwrap_or_else(|| "istio-system".into()),
            ..MeshSettings::default()
        };
        ClusterOptions {
            istio_namespaces: self.istio_namespaces.clone(),
            mesh,
            api_url: self.kube_api_url.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TagModeArg {
    Guard,
    Inject,
}

impl From<TagModeArg> for revhook::tags::TagMode {
    fn from(m: TagModeArg) -> Self {
        match m {
            TagModeArg::Guard => revhook::tags::TagMode::Guard,
            TagModeArg::Inject => revhook::tags::TagMode::Inject,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceArg {
    File,
    Cluster,
}

/// A CLI value enum that maps one to one onto a library enum: the library's types stay
/// free of clap, and the flag's spellings are clap's kebab-case of the variant names.
macro_rules! cli_enum {
    ($(#[$meta:meta])* $name:ident => $target:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$name> for $target {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => $target::$variant),+
                }
            }
        }
    };
}

cli_enum!(
    /// `--mode`.
    ModeArg => Mode {
        /// revhook is the injector for every revision.
        Inject,
        /// A managed istiod injects; revhook only refuses pods that would miss their sidecar.
        Guard,
    }
);
cli_enum!(
    /// `--on-stale`.
    OnStaleArg => OnStale { Deny, AllowUninjected }
);
cli_enum!(
    /// `--on-conflict`.
    OnConflictArg => OnConflict { Warn, Deny }
);
cli_enum!(
    /// `check --platform`.
    PlatformArg => Platform { Generic, Aks }
);
cli_enum!(
    /// `check --fail-on`.
    SeverityArg => Severity { Info, Warning, Error }
);
cli_enum!(
    /// `check -o`.
    OutputArg => Output { Table, Json, Yaml }
);

#[derive(Args, Debug, Clone)]
struct PolicyArgs {
    /// Revisions, tags and namespace labels (YAML); the embedded default when absent.
    #[arg(long, conflicts_with = "injector")]
    config: Option<PathBuf>,
    /// One revision's own injector ConfigMap (data.config and data.values, as `kubectl get
    /// configmap istio-sidecar-injector-<rev> -o yaml` prints it), like istioctl kube-inject's
    /// --injectConfigFile/--valuesFile: that revision is then the only one, and every pod is
    /// considered for it.
    #[arg(long)]
    injector: Option<PathBuf>,
    /// The mesh config for --injector: an `istio[-<rev>]` ConfigMap (data.mesh) or a MeshConfig
    /// YAML (istioctl's --meshConfigFile), over Istio's defaults.
    #[arg(long, requires = "injector")]
    mesh: Option<PathBuf>,
    /// With --injector: run the proxy as a native sidecar (default: the injector's
    /// ENABLE_NATIVE_SIDECARS, else false).
    #[arg(long, requires = "injector")]
    native_sidecars: Option<bool>,
    /// With --injector: the Istio version whose rules apply, e.g. 1.23 (default: the values'
    /// global.tag when it is a version, else the newest).
    #[arg(long, requires = "injector", value_parser = istio_version)]
    istio_version: Option<IstioVersion>,
    /// inject: revhook injects; guard: a managed istiod injects and revhook only refuses.
    #[arg(long, value_enum, default_value_t = ModeArg::Inject)]
    mode: ModeArg,
    /// What to do with a pod whose selected revision or tag is not installed.
    #[arg(long, value_enum, default_value_t = OnStaleArg::Deny)]
    on_stale: OnStaleArg,
    /// What to do with a namespace that has both istio-injection and istio.io/rev.
    #[arg(long, value_enum, default_value_t = OnConflictArg::Warn)]
    on_conflict: OnConflictArg,
    /// Let a pod's istio.io/rev label override its namespace's choice.
    #[arg(long)]
    pod_revision_wins: bool,
}

impl PolicyArgs {
    fn policy(&self) -> Policy {
        Policy {
            mode: self.mode.into(),
            on_stale: self.on_stale.into(),
            on_conflict: self.on_conflict.into(),
            pod_revision_wins: self.pod_revision_wins,
        }
    }

    fn snapshot(&self) -> anyhow::Result<Snapshot> {
        if let Some(path) = &self.injector {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mesh = match &self.mesh {
                Some(m) => Some(
                    std::fs::read_to_string(m)
                        .with_context(|| format!("cannot read {}", m.display()))?,
                ),
                None => None,
            };
            let snapshot = config::from_injector_files(
                &text,
                mesh.as_deref(),
                self.native_sidecars,
                self.istio_version,
                &path.display().to_string(),
            )?;
            for rev in snapshot.table.revisions() {
                if let Err(problem) = &rev.injector {
                    bail!(
                        "{}: revision {:?} cannot inject: {problem}",
                        path.display(),
                        rev.name
                    );
                }
            }
            return Ok(snapshot);
        }
        Ok(match &self.config {
            Some(path) => config::load(path)?,
            None => config::embedded()?,
        })
    }

    /// The namespace labels every review is judged with: with --injector, every pod is
    /// considered for that revision (as istiod's own webhook is called only for pods its
    /// selectors chose).
    fn selection(&self, snapshot: &Snapshot) -> Option<NamespaceLabels> {
        self.injector.as_ref()?;
        let rev = snapshot.table.revisions().next()?;
        Some(NamespaceLabels {
            injection: None,
            rev: Some(rev.name.clone()),
        })
    }
}

fn istio_version(s: &str) -> Result<IstioVersion, String> {
    IstioVersion::parse(s).ok_or_else(|| format!("{s:?} is not an Istio version such as 1.23"))
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 10s, 500ms or 1m30s"))
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address of the HTTPS webhook listener.
    #[arg(long, default_value = "127.0.0.1:15017")]
    listen: SocketAddr,
    /// Optional plain-HTTP listener for /healthz, /readyz and /metrics.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Serving certificate chain (PEM); reloaded when it changes.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where dev certificates are generated when no --tls-cert/--tls-key is given.
    #[arg(long, default_value = "certs")]
    certs_dir: PathBuf,
    /// Accept only clients presenting a certificate signed by a CA in this file (PEM): the
    /// API server, given a client certificate in its AdmissionConfiguration.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Where revisions and tags come from; default: cluster inside a pod, else file.
    #[arg(long, value_enum)]
    source: Option<SourceArg>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keep caBundle of revhook's webhook configurations equal to --ca-cert (cluster source).
    #[arg(long, requires = "ca_cert")]
    manage_ca_bundle: bool,
    /// The CA certificate (PEM) whose contents go into caBundle.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Name of revhook's MutatingWebhookConfiguration.
    #[arg(long, default_value = "revhook")]
    mutating_webhook_name: String,
    /// Name of revhook's ValidatingWebhookConfiguration.
    #[arg(long, default_value = "revhook")]
    validating_webhook_name: String,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 6 * 1024 * 1024)]
    body_limit: usize,
    /// Time allowed for in-flight requests after SIGTERM.
    #[arg(long, default_value = "25s", value_parser = duration)]
    drain_timeout: Duration,
    /// After SIGTERM, keep serving this long with /readyz false before closing the listener.
    #[arg(long, default_value = "0s", value_parser = duration)]
    shutdown_delay: Duration,
    /// TLS handshake and request-header deadline per connection.
    #[arg(long, default_value = "10s", value_parser = duration)]
    handshake_timeout: Duration,
    /// Admission requests handled at once; more are answered 503.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Close a connection with no request in progress for this long (longer than the API
    /// server's 90 s pool idle timeout).
    #[arg(long, default_value = "120s", value_parser = duration)]
    idle_timeout: Duration,
    /// Open connections at most; new ones beyond it are closed at once.
    #[arg(long, default_value_t = 8192)]
    max_connections: usize,
    /// Request body bytes buffered across all connections; beyond it, 503 at once.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_buffered_bytes: usize,
    /// How often certificate and config files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = duration)]
    reload_interval: Duration,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// AdmissionReview JSON files, or - for standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the object with the patch applied instead of the response.
    #[arg(long)]
    apply: bool,
    /// Which webhook to send them to; auto: Pods to /inject, everything else to /validate.
    #[arg(long, value_enum, default_value_t = ReplayWebhook::Auto)]
    webhook: ReplayWebhook,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReplayWebhook {
    Auto,
    Inject,
    Validate,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// A dump: `kubectl get namespaces,pods,configmaps,mutatingwebhookconfigurations,
    /// validatingwebhookconfigurations,services,deployments,statefulsets,replicasets,
    /// endpointslices,events -A -o yaml` (or - for stdin). Without it, the live cluster
    /// (kubeconfig or in-cluster).
    #[arg(long)]
    from_file: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Managed-mesh hints for this platform.
    #[arg(long, value_enum, default_value_t = PlatformArg::Generic)]
    platform: PlatformArg,
    /// Exit 1 when findings of this severity or worse exist.
    #[arg(long, value_enum, default_value_t = SeverityArg::Error)]
    fail_on: SeverityArg,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputArg::Table)]
    output: OutputArg,
    /// Gate: list everything still on this revision (exit 1 while anything is).
    #[arg(long, value_name = "REVISION", conflicts_with = "before_tag_move")]
    before_remove: Option<String>,
    /// Gate: what moving TAG to REVISION restarts, and the pods left on the old proxy until
    /// restarted (exit 1 while any are).
    #[arg(long, value_name = "TAG=REVISION", value_parser = parse_tag_move)]
    before_tag_move: Option<Gate>,
    /// The revision an upgrade is about to install (AKS: its istio-shared-configmap must exist).
    #[arg(long, value_name = "REVISION")]
    upgrade_to: Option<String>,
}

fn parse_tag_move(spec: &str) -> Result<Gate, String> {
    Gate::tag_move(spec).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
struct InjectArgs {
    /// Manifests (YAML or JSON; multi-document streams and Lists), or - for standard input.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Inject this revision (default: the revision the `default` tag points at).
    #[arg(long, conflicts_with = "tag")]
    revision: Option<String>,
    /// Inject the revision this tag points at.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Args, Debug)]
struct CertsArgs {
    /// Output directory (ca.crt, ca.key, tls.crt, tls.key).
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// DNS names for the serving certificate (localhost is always included).
    #[arg(long)]
    dns: Vec<String>,
    /// IP addresses for the serving certificate (127.0.0.1 is always included).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// Namespace whose revhook service names are added (revhook.<ns>.svc).
    #[arg(long, default_value = "revhook-system")]
    namespace: String,
    /// Validity of the serving certificate, in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Validity of the CA, in days.
    #[arg(long, default_value_t = 3650)]
    ca_days: u32,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; files and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The name kubectl runs a plugin by: `kubectl revhook ...` execs `kubectl-revhook`.
const KUBECTL_PLUGIN: &str = "kubectl-revhook";

/// The command line, named as it was invoked: as a kubectl plugin, usage and completions say
/// `kubectl revhook` / `kubectl-revhook` instead of `revhook`.
fn command() -> clap::Command {
    let invoked = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    let cmd = Cli::command();
    if invoked.as_deref() == Some(KUBECTL_PLUGIN) {
        cmd.name(KUBECTL_PLUGIN).bin_name("kubectl revhook")
    } else {
        cmd
    }
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Replay(args) => replay(&args),
        Command::Certs(args) => certs(&args),
        Command::Check(args) => check(&args),
        Command::Inject(args) => inject(&args),
        Command::Tags(command) => tags(command),
        Command::Completions { shell } => completions(shell),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("revhook: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = command();
    // The script completes the executable's own name (`kubectl-revhook` for the plugin).
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let source = match args.source {
        Some(SourceArg::Cluster) => Source::Cluster(args.cluster.options()),
        Some(SourceArg::File) => Source::File(args.policy.config.clone()),
        None if in_cluster && args.policy.config.is_none() => {
            Source::Cluster(args.cluster.options())
        }
        None => Source::File(args.policy.config.clone()),
    };
    if args.manage_ca_bundle && !matches!(source, Source::Cluster(_)) {
        bail!("--manage-ca-bundle needs --source cluster");
    }
    let ca_bundle = args.manage_ca_bundle.then(|| CaBundleOptions {
        ca_cert: args.ca_cert.clone().unwrap_or_default(),
        mutating: args.mutating_webhook_name.clone(),
        validating: args.validating_webhook_name.clone(),
        resync: args.reload_interval.max(Duration::from_secs(30)),
    });
    let opts = ServeOptions {
        listen: args.listen,
        admin_listen: args.admin_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        certs_dir: args.certs_dir,
        source,
        ca_bundle,
        policy: args.policy.policy(),
        limits: Limits {
            body_limit: args.body_limit,
            handshake_timeout: args.handshake_timeout,
            header_timeout: args.handshake_timeout,
            drain_timeout: args.drain_timeout,
            shutdown_delay: args.shutdown_delay,
            max_in_flight: args.max_in_flight,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections,
            max_buffered_bytes: args.max_buffered_bytes,
            ..Limits::default()
        },
        reload_interval: args.reload_interval,
        namespace_lookup: None,
        client_ca: args.client_ca,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let running = run::start(opts, revhook::server::shutdown_signal()).await?;
        running.wait().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let snapshot = args.policy.snapshot()?;
    let policy = args.policy.policy();
    let mut failed = false;
    for file in &args.files {
        let name = file.display().to_string();
        let body = read_input(file).with_context(|| format!("cannot read {name}"))?;
        match replay_one(&body, args, &snapshot, &policy) {
            Ok(out) => println!("{}", serde_json::to_string_pretty(&out)?),
            Err(e) => {
                eprintln!("revhook: {name}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read_input(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

fn replay_one(
    body: &[u8],
    args: &ReplayArgs,
    snapshot: &Snapshot,
    policy: &Policy,
) -> anyhow::Result<serde_json::Value> {
    let request = revhook::admission::decode(body)?;
    let webhook = match args.webhook {
        ReplayWebhook::Inject => Webhook::Inject,
        ReplayWebhook::Validate => Webhook::Validate,
        ReplayWebhook::Auto if request.kind.kind == "Pod" && request.operation == "CREATE" => {
            Webhook::Inject
        }
        ReplayWebhook::Auto => Webhook::Validate,
    };
    let object = request
        .object()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()?;
    let decoded = handler::decode(webhook, body)?;
    let selection = args.policy.selection(snapshot);
    let context = handler::Context {
        namespace: selection.as_ref(),
        ..handler::Context::new(snapshot, policy)
    };
    let handled = handler::judge(webhook, &decoded, body, &context);
    if !args.apply {
        return Ok(serde_json::from_slice(&handled.body)?);
    }
    let mut object = object.unwrap_or(serde_json::Value::Null);
    if let Some(patch) = &handled.verdict.patch {
        let patch: json_patch::Patch = serde_json::from_str(patch)?;
        json_patch::patch(&mut object, &patch).context("the patch does not apply")?;
    } else if !handled.verdict.allowed {
        let message = handled
            .verdict
            .status
            .map(|s| s.message)
            .unwrap_or_default();
        bail!("denied: {message}");
    }
    Ok(object)
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let objects = match &args.from_file {
        Some(path) => {
            let bytes =
                read_input(path).with_context(|| format!("cannot read {}", path.display()))?;
            let text = String::from_utf8(bytes).context("the dump is not UTF-8")?;
            ClusterObjects::from_dump(&text)?
        }
        None => live_objects(&args.cluster)?,
    };
    let gate = match (&args.before_remove, &args.before_tag_move) {
        (Some(rev), _) => Some(Gate::BeforeRemove(rev.clone())),
        (None, gate) => gate.clone(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let opts = CheckOptions {
        istio_namespaces: args.cluster.istio_namespaces.clone(),
        platform: args.platform.into(),
        now,
        gate,
        upgrade_to: args.upgrade_to.clone(),
    };
    let report = revhook::check::run(&objects, &opts);
    print!("{}", report.render(args.output.into())?);
    Ok(ExitCode::from(report.exit_code(args.fail_on.into())))
}

/// A runtime for the one-shot commands that talk to the cluster.
fn cluster_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

async fn kube_client(cluster: &ClusterArgs) -> anyhow::Result<kube::Client> {
    cluster::client(&cluster.options())
        .await
        .context("cannot reach the Kubernetes API (kubeconfig, in-cluster or --kube-api-url)")
}

/// Lists what `check` reads from the live cluster.
fn live_objects(cluster: &ClusterArgs) -> anyhow::Result<ClusterObjects> {
    cluster_runtime()?.block_on(async {
        let client = kube_client(cluster).await?;
        Ok(listing::list_objects(&client, &cluster.istio_namespaces).await?)
    })
}

fn inject(args: &InjectArgs) -> anyhow::Result<ExitCode> {
    let snapshot = args.policy.snapshot()?;
    let input =
        read_input(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8(input).context("the manifests are not UTF-8")?;
    let selection = match args.policy.selection(&snapshot) {
        Some(from_injector) if args.revision.is_none() && args.tag.is_none() => from_injector,
        _ => revhook::offline::selection(args.revision.as_deref(), args.tag.as_deref()),
    };
    let out =
        revhook::offline::inject_manifests(&text, &snapshot, &args.policy.policy(), &selection)?;
    for warning in &out.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", out.text);
    Ok(ExitCode::SUCCESS)
}

fn certs(args: &CertsArgs) -> anyhow::Result<ExitCode> {
    let mut dns = args.dns.clone();
    dns.extend(tls::service_names(&args.namespace));
    let dev = tls::generate_dev(&dns, &args.ip, args.days, args.ca_days)?;
    dev.write(&args.out)?;
    eprintln!(
        "wrote {0}/ca.crt {0}/ca.key {0}/tls.crt {0}/tls.key; caBundle:",
        args.out.display()
    );
    println!("{}", dev.ca_bundle());
    Ok(ExitCode::SUCCESS)
}

/// `tags set` in the mode that keeps injection working: `--mode`, else the installed
/// revhook's, else guard.
async fn set_tag(
    client: &kube::Client,
    snapshot: &Snapshot,
    cluster: &ClusterArgs,
    tag: &str,
    revision: &str,
    overwrite: bool,
    flag: Option<TagModeArg>,
) -> anyhow::Result<()> {
    use revhook::tags::{self, TagMode};
    let installed = tags::read_installed_mode(client).await?;
    let mode = tags::choose_mode(flag.map(Into::into), installed);
    let replaced = match mode {
        TagMode::Inject => {
            let mwc = tags::plan_set(snapshot, tag, revision, overwrite)?;
            tags::write(client, mwc).await?
        }
        TagMode::Guard => {
            let webhooks = tags::revision_webhooks(client, revision).await?;
            // Where the revision was found, else where Istio was said to be.
            let namespace = snapshot
                .table
                .revision(revision)
                .map(|r| r.namespace.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| cluster.options().mesh.istio_namespace);
            let planned =
                tags::plan_guard_set(snapshot, tag, revision, overwrite, &webhooks, &namespace)?;
            eprintln!(
                "guard mode: Istio's injector webhooks copied from {}, and Service {}/{}",
                planned.copied_from,
                planned
                    .service
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or_default(),
                planned.service.metadata.name.as_deref().unwrap_or_default()
            );
            tags::write_istio_tag(client, &planned).await?
        }
    };
    for name in replaced {
        eprintln!("replaced MutatingWebhookConfiguration {name} (the same tag under another name)");
    }
    println!(
        "tag {tag} -> {revision} ({} mode); restart workloads to move running pods (revhook tags plan shows which)",
        mode.as_str()
    );
    Ok(())
}

/// Asks `question` on the terminal; without one (a script, CI) the answer is no, and the
/// error says to pass --yes.
fn confirm_on_terminal(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{question} needs a yes: standard input is not a terminal; pass --yes to do it without asking");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(revhook::tags::confirmed(&answer))
}

fn tags(command: TagsCommand) -> anyhow::Result<ExitCode> {
    let cluster_args = match &command {
        TagsCommand::List(cluster)
        | TagsCommand::Plan { cluster, .. }
        | TagsCommand::Set { cluster, .. }
        | TagsCommand::Remove { cluster, .. } => cluster.clone(),
    };
    cluster_runtime()?.block_on(async {
        let client = kube_client(&cluster_args).await?;
        let read = |args: &ClusterArgs| {
            let opts = args.options();
            let client = client.clone();
            async move {
                let (snapshot, report) = listing::read_snapshot(&client, &opts).await?;
                for error in report.errors {
                    eprintln!("revhook: warning: {error}");
                }
                anyhow::Ok(snapshot)
            }
        };
        match command {
            TagsCommand::List(args) => {
                let snapshot = read(&args).await?;
                print!(
                    "{}",
                    revhook::tags::render_list(&revhook::tags::list(&snapshot))
                );
            }
            TagsCommand::Plan {
                tag,
                revision,
                cluster,
            } => {
                let snapshot = read(&cluster).await?;
                let pods = listing::list_pods(&client).await?;
                let plan = revhook::tags::plan_move(&snapshot, &pods, &tag, &revision)?;
                print!("{}", revhook::tags::render_plan(&plan));
            }
            TagsCommand::Set {
                tag,
                revision,
                overwrite,
                mode,
                cluster,
            } => {
                let snapshot = read(&cluster).await?;
                set_tag(
                    &client, &snapshot, &cluster, &tag, &revision, overwrite, mode,
                )
                .await?;
            }
            TagsCommand::Remove { tag, yes, cluster } => {
                let snapshot = read(&cluster).await?;
                let objects = revhook::tags::find_tag_objects(&client, &tag).await?;
                if objects.is_empty() {
                    bail!("tag {tag} does not exist (no object labelled istio.io/tag={tag})");
                }
                let pods = listing::list_pods(&client).await?;
                let impact =
                    revhook::tags::removal_impact(&snapshot, &pods, &tag, objects.describe());
                eprint!("{}", revhook::tags::render_removal(&impact));
                if !yes && !confirm_on_terminal(&format!("remove tag {tag}?"))? {
                    eprintln!("nothing was changed");
                    return Ok(ExitCode::from(1));
                }
                revhook::tags::remove(&client, &objects).await?;
                println!("tag {tag} removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
