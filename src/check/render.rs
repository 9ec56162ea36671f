//! The report as a person or a program reads it.

use super::{CheckReport, GateKind, GateReport, NamespaceProgress, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

impl CheckReport {
    pub fn render(&self, output: Output) -> Result<String, serde_json::Error> {
        match output {
            Output::Json => serde_json::to_string_pretty(self).map(|s| s + "\n"),
            // As kubectl and istioctl write YAML (keys sorted, Go's quoting); a report has no
            // key or nesting Go's writer refuses.
            Output::Yaml => {
                Ok(crate::core::yaml::to_string(&serde_json::to_value(self)?).unwrap_or_default())
            }
            Output::Table => Ok(self.table()),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str("No findings.\n");
        } else {
            out.push_str(&format!(
                "{:<8} {:<30} {:<8} {:<40} MESSAGE\n",
                "SEVERITY", "CODE", "ISTIO", "OBJECT"
            ));
            for f in &self.findings {
                let severity = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                out.push_str(&format!(
                    "{:<8} {:<30} {:<8} {:<40} {}\n",
                    severity,
                    f.code,
                    f.istio_code.unwrap_or("-"),
                    f.object,
                    f.message
                ));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("{:>89} fix: {fix}\n", ""));
                }
            }
        }
        out.push_str(&self.revisions_table());
        out.push_str(&progress_table(&self.progress));
        if let Some(gate) = &self.gate {
            out.push_str(&gate_text(gate));
        }
        out
    }

    fn revisions_table(&self) -> String {
        let mut out = format!(
            "\n{:<14} {:<58} {:<24} {:<30} {:<5} {:<5} ISTIOD\n",
            "REVISION", "IMAGE", "TAGS", "NAMESPACES", "PODS", "LEFT"
        );
        for r in &self.revisions {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(",")
                }
            };
            let istiod = match (&r.service, &r.deployment, r.ready_endpoints) {
                (None, _, _) => "-".to_owned(),
                (Some(s), d, e) => {
                    let mut text = s.clone();
                    if let Some(d) = d {
                        text.push_str(&format!(" deployment {}/{} ready", d.ready, d.replicas));
                    }
                    if let Some(e) = e {
                        text.push_str(&format!(" endpoints {e}"));
                    }
                    text
                }
            };
            out.push_str(&format!(
                "{:<14} {:<58} {:<24} {:<30} {:<5} {:<5} {}\n",
                r.revision,
                r.image,
                list(&r.tags),
                list(&r.namespaces),
                r.pods,
                r.left,
                istiod
            ));
        }
        out
    }
}

fn progress_table(progress: &[NamespaceProgress]) -> String {
    if progress.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{:<24} {:<14} {:<5} {:<9} {:<5} RESTART\n",
        "NAMESPACE", "TARGET", "PODS", "ON-TARGET", "LEFT"
    );
    for n in progress {
        out.push_str(&format!(
            "{:<24} {:<14} {:<5} {:<9} {:<5} {}\n",
            n.namespace,
            n.revision,
            n.pods,
            n.on_target,
            n.left,
            n.restarts.first().map_or("-".to_owned(), |r| format!(
                "{}  # {} pod(s)",
                r.command, r.pods
            ))
        ));
        for r in n.restarts.iter().skip(1) {
            out.push_str(&format!("{:<61} {}  # {} pod(s)\n", "", r.command, r.pods));
        }
    }
    out
}

fn gate_text(gate: &GateReport) -> String {
    let what = match (gate.kind, &gate.tag) {
        (GateKind::BeforeTagMove, Some(tag)) => {
            format!("before moving tag {tag} to {}", gate.revision)
        }
        _ => format!("before removing revision {}", gate.revision),
    };
    let mut out = format!(
        "\nGATE {what}: {} left{}\n",
        gate.left,
        if gate.clear { " (clear)" } else { "" }
    );
    if !gate.progress.is_empty() {
        out.push_str(&progress_table(&gate.progress));
    }
    if !gate.removal.is_empty() {
        out.push_str(if gate.clear {
            "then remove the revision:\n"
        } else {
            "once nothing is left, remove the revision:\n"
        });
        for c in &gate.removal {
            out.push_str(&format!("  {c}\n"));
        }
    }
    out
}
