//! Policy knobs that change outcomes (not the facts in the snapshot). The CLI maps its flags
//! onto these at the edge.

/// Policy knobs that change outcomes (not the facts in the snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub on_stale: OnStale,
    pub on_conflict: OnConflict,
    pub pod_revision_wins: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Inject,
            on_stale: OnStale::Deny,
            on_conflict: OnConflict::Warn,
            pod_revision_wins: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// revhook is the injector for every revision.
    Inject,
    /// A managed istiod injects; revhook only refuses pods that would miss their sidecar.
    Guard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    Deny,
    AllowUninjected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Warn,
    Deny,
}
