//! The report as a person or a program reads it.

use super::{CheckReport, Severity};

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
            Output::Yaml => Ok(serde_yaml::to_string(self).unwrap_or_default()),
            Output::Table => Ok(self.table()),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str("No findings.\n");
        } else {
            out.push_str(&format!(
                "{:<8} {:<28} {:<8} {:<40} MESSAGE\n",
                "SEVERITY", "CODE", "ISTIO", "OBJECT"
            ));
            for f in &self.findings {
                let severity = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                out.push_str(&format!(
                    "{:<8} {:<28} {:<8} {:<40} {}\n",
                    severity,
                    f.code,
                    f.istio_code.unwrap_or("-"),
                    f.object,
                    f.message
                ));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("{:>87} fix: {fix}\n", ""));
                }
            }
        }
        out.push_str(&format!(
            "\n{:<14} {:<58} {:<24} {:<30} PODS\n",
            "REVISION", "IMAGE", "TAGS", "NAMESPACES"
        ));
        for r in &self.revisions {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(",")
                }
            };
            out.push_str(&format!(
                "{:<14} {:<58} {:<24} {:<30} {}\n",
                r.revision,
                r.image,
                list(&r.tags),
                list(&r.namespaces),
                r.pods
            ));
        }
        out
    }
}
