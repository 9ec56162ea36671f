//! The shapes of istiod's `SidecarTemplateData` (in `pkg/kube/inject/inject.go`) for
//! [`crate::from_json`]: which objects are Go structs (fields looked up by lower-camel
//! JSON key, absent fields zero) and which are Go maps (`Labels`, `Annotations`, `Values`,
//! `ProxyMetadata`).
//!
//! The data's JSON uses the JSON names of the Go fields: `{"objectMeta": {...}, "spec":
//! {...}, "proxyConfig": {...}, "meshConfig": {...}, "values": {...}, "revision": "...",
//! "proxyUID": 1337, ...}` with the pod parts as Kubernetes serializes them and the proxy
//! and mesh config as protobuf JSON.

use crate::value::Schema;

fn s() -> Schema {
    Schema::String
}

fn strings() -> Schema {
    Schema::list(Schema::String)
}

fn string_map() -> Schema {
    Schema::map(Schema::String)
}

/// `metav1.ObjectMeta`.
pub fn object_meta() -> Schema {
    Schema::structure(
        "v1.ObjectMeta",
        vec![
            ("Name", s()),
            ("GenerateName", s()),
            ("Namespace", s()),
            ("SelfLink", s()),
            ("UID", s()),
            ("ResourceVersion", s()),
            ("Generation", Schema::Int),
            ("CreationTimestamp", Schema::Object),
            ("DeletionTimestamp", Schema::Object),
            ("DeletionGracePeriodSeconds", Schema::ptr(Schema::Int)),
            ("Labels", string_map()),
            ("Annotations", string_map()),
            ("OwnerReferences", Schema::list(Schema::Object)),
            ("Finalizers", strings()),
            ("ManagedFields", Schema::list(Schema::Object)),
        ],
    )
}

fn container_port() -> Schema {
    Schema::structure(
        "v1.ContainerPort",
        vec![
            ("Name", s()),
            ("HostPort", Schema::Int),
            ("ContainerPort", Schema::Int),
            ("Protocol", s()),
            ("HostIP", s()),
        ],
    )
}

fn env_var() -> Schema {
    Schema::structure(
        "v1.EnvVar",
        vec![("Name", s()), ("Value", s()), ("ValueFrom", Schema::Object)],
    )
}

/// `corev1.Container`.
pub fn container() -> Schema {
    Schema::structure(
        "v1.Container",
        vec![
            ("Name", s()),
            ("Image", s()),
            ("Command", strings()),
            ("Args", strings()),
            ("WorkingDir", s()),
            ("Ports", Schema::list(container_port())),
            ("EnvFrom", Schema::list(Schema::Object)),
            ("Env", Schema::list(env_var())),
            ("Resources", Schema::Object),
            ("ResizePolicy", Schema::list(Schema::Object)),
            ("RestartPolicy", Schema::ptr(s())),
            ("VolumeMounts", Schema::list(Schema::Object)),
            ("VolumeDevices", Schema::list(Schema::Object)),
            ("LivenessProbe", Schema::Object),
            ("ReadinessProbe", Schema::Object),
            ("StartupProbe", Schema::Object),
            ("Lifecycle", Schema::Object),
            ("TerminationMessagePath", s()),
            ("TerminationMessagePolicy", s()),
            ("ImagePullPolicy", s()),
            ("SecurityContext", Schema::Object),
            ("Stdin", Schema::Bool),
            ("StdinOnce", Schema::Bool),
            ("TTY", Schema::Bool),
        ],
    )
}

/// `corev1.PodSpec`.
pub fn pod_spec() -> Schema {
    Schema::structure(
        "v1.PodSpec",
        vec![
            ("Volumes", Schema::list(Schema::Object)),
            ("InitContainers", Schema::list(container())),
            ("Containers", Schema::list(container())),
            ("EphemeralContainers", Schema::list(Schema::Object)),
            ("RestartPolicy", s()),
            ("TerminationGracePeriodSeconds", Schema::ptr(Schema::Int)),
            ("ActiveDeadlineSeconds", Schema::ptr(Schema::Int)),
            ("DNSPolicy", s()),
            ("NodeSelector", string_map()),
            ("ServiceAccountName", s()),
            ("DeprecatedServiceAccount", s()),
            ("AutomountServiceAccountToken", Schema::ptr(Schema::Bool)),
            ("NodeName", s()),
            ("HostNetwork", Schema::Bool),
            ("HostPID", Schema::Bool),
            ("HostIPC", Schema::Bool),
            ("ShareProcessNamespace", Schema::ptr(Schema::Bool)),
            ("SecurityContext", Schema::Object),
            ("ImagePullSecrets", Schema::list(Schema::Object)),
            ("Hostname", s()),
            ("Subdomain", s()),
            ("Affinity", Schema::Object),
            ("SchedulerName", s()),
            ("Tolerations", Schema::list(Schema::Object)),
            ("HostAliases", Schema::list(Schema::Object)),
            ("PriorityClassName", s()),
            ("Priority", Schema::ptr(Schema::Int)),
            ("DNSConfig", Schema::Object),
            ("ReadinessGates", Schema::list(Schema::Object)),
            ("RuntimeClassName", Schema::ptr(s())),
            ("EnableServiceLinks", Schema::ptr(Schema::Bool)),
            ("PreemptionPolicy", Schema::ptr(s())),
            ("Overhead", Schema::Object),
            ("TopologySpreadConstraints", Schema::list(Schema::Object)),
            ("SetHostnameAsFQDN", Schema::ptr(Schema::Bool)),
            ("OS", Schema::Object),
            ("HostUsers", Schema::ptr(Schema::Bool)),
            ("SchedulingGates", Schema::list(Schema::Object)),
            ("ResourceClaims", Schema::list(Schema::Object)),
        ],
    )
}

/// `networking.ClientTLSSettings` (the tracer's `tlsSettings`): its strings are declared, so
/// `GetCaCertificates` of a message without one is `""` as in Go.
fn client_tls_settings() -> Schema {
    Schema::structure(
        "*v1alpha3.ClientTLSSettings",
        vec![
            ("Mode", Schema::Enum("DISABLE".into())),
            ("ClientCertificate", s()),
            ("PrivateKey", s()),
            ("CaCertificates", s()),
            ("CredentialName", s()),
            ("SubjectAltNames", strings()),
            ("Sni", s()),
            ("InsecureSkipVerify", Schema::Object),
            ("CaCrl", s()),
        ],
    )
}

/// `meshconfig.Tracing`.
fn tracing() -> Schema {
    Schema::structure(
        "*v1alpha1.Tracing",
        vec![
            ("Zipkin", Schema::Object),
            ("Lightstep", Schema::Object),
            ("Datadog", Schema::Object),
            ("Stackdriver", Schema::Object),
            ("OpenCensusAgent", Schema::Object),
            ("CustomTags", Schema::Object),
            ("MaxPathTagLength", Schema::Object),
            ("Sampling", Schema::Float),
            ("TlsSettings", Schema::ptr(client_tls_settings())),
        ],
    )
}

/// `meshconfig.ProxyConfig` (a pointer in the template data), in protobuf declaration
/// order so that `protoToJSON` writes fields in the order istiod's does.
pub fn proxy_config() -> Schema {
    let fields = vec![
        ("ConfigPath", s()),
        ("BinaryPath", s()),
        ("ServiceCluster", s()),
        ("DrainDuration", Schema::Object),
        ("DiscoveryAddress", s()),
        ("ProxyAdminPort", Schema::Int),
        ("ControlPlaneAuthPolicy", Schema::Enum("NONE".into())),
        ("CustomConfigFile", s()),
        ("StatNameLength", Schema::Int),
        ("Concurrency", Schema::Object),
        ("ProxyBootstrapTemplatePath", s()),
        // An enum: protobuf JSON gives its name; the zero value is REDIRECT.
        ("InterceptionMode", Schema::Enum("REDIRECT".into())),
        ("Tracing", Schema::ptr(tracing())),
        ("EnvoyAccessLogService", Schema::Object),
        ("EnvoyMetricsService", Schema::Object),
        ("ProxyMetadata", string_map()),
        ("RuntimeValues", string_map()),
        ("StatusPort", Schema::Int),
        ("ExtraStatTags", strings()),
        ("GatewayTopology", Schema::Object),
        ("TerminationDrainDuration", Schema::Object),
        ("MeshId", s()),
        ("ReadinessProbe", Schema::Object),
        ("ProxyStatsMatcher", Schema::Object),
        ("HoldApplicationUntilProxyStarts", Schema::Object),
        ("CaCertificatesPem", strings()),
        ("Image", Schema::Object),
        ("PrivateKeyProvider", Schema::Object),
        ("ProxyHeaders", Schema::Object),
    ];
    Schema::ptr(Schema::structure("*v1alpha1.ProxyConfig", fields))
}

/// `meshconfig.MeshConfig` (a pointer): the fields templates read are declared, the rest
/// are read as they come.
pub fn mesh_config() -> Schema {
    Schema::ptr(Schema::structure(
        "*v1alpha1.MeshConfig",
        vec![
            ("ProxyListenPort", Schema::Int),
            ("ProxyInboundListenPort", Schema::Int),
            ("ProxyHttpPort", Schema::Int),
            ("TrustDomain", s()),
            ("TrustDomainAliases", strings()),
            ("RootNamespace", s()),
            ("DefaultConfig", proxy_config()),
            ("ExtensionProviders", Schema::list(Schema::Object)),
            ("EnablePrometheusMerge", Schema::Object),
            ("DefaultProviders", Schema::Object),
        ],
    ))
}

/// istiod's `SidecarTemplateData`, newest form (master).
pub fn sidecar_template_data() -> Schema {
    sidecar_template_data_for(u32::MAX)
}

/// `SidecarTemplateData` as Istio 1.`minor` has it (`u32::MAX` for master): `NativeSidecars`
/// exists from 1.27 and `ProxyInitImage` only after 1.30, and a template naming a field its
/// revision lacks fails as it does in that istiod.
pub fn sidecar_template_data_for(minor: u32) -> Schema {
    let mut fields = vec![
        ("TypeMeta", type_meta()),
        ("DeploymentMeta", namespaced_name()),
        ("ObjectMeta", object_meta()),
        ("Spec", pod_spec()),
        ("ProxyConfig", proxy_config()),
        ("MeshConfig", mesh_config()),
        ("Values", Schema::map(Schema::Any)),
        ("Revision", s()),
    ];
    if minor >= 27 {
        fields.push(("NativeSidecars", Schema::Bool));
    }
    fields.push(("ProxyImage", s()));
    if minor > 30 {
        fields.push(("ProxyInitImage", s()));
    }
    fields.extend([
        ("ProxyUID", Schema::Int),
        ("ProxyGID", Schema::Int),
        ("InboundTrafficPolicyMode", s()),
        ("CompliancePolicy", s()),
    ]);
    Schema::strict_structure("*inject.SidecarTemplateData", fields)
}

fn type_meta() -> Schema {
    Schema::strict_structure("v1.TypeMeta", vec![("Kind", s()), ("APIVersion", s())])
}

fn namespaced_name() -> Schema {
    Schema::strict_structure(
        "types.NamespacedName",
        vec![("Namespace", s()), ("Name", s())],
    )
}
