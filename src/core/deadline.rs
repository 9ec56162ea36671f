//! When a request must be answered by: the API server gives up on a webhook after its
//! `?timeout=` (10 s by default), and work past that point only holds resources nobody waits
//! for. The server sets a `Deadline`; the pipeline polls it between its stages and hands it
//! down as a budget (the template engine checks it every so much work), so a slow request
//! stops soon after its time is up instead of running to the end.

use std::time::Instant;

/// The instant by which a request must be answered, or none (offline commands, benches).
/// Copy and cheap to poll: one clock read (vDSO, tens of ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

/// The request's time ran out before its judging finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request's time ran out before it was judged")]
pub struct Expired;

impl Deadline {
    /// No deadline: the work runs to its end.
    pub const NONE: Deadline = Deadline(None);

    pub fn at(when: Instant) -> Self {
        Deadline(Some(when))
    }

    /// The instant, for engines that take one as their budget.
    pub fn instant(self) -> Option<Instant> {
        self.0
    }

    pub fn expired(self) -> bool {
        self.expired_at(Instant::now())
    }

    /// Whether the deadline has passed at `now`.
    fn expired_at(self, now: Instant) -> bool {
        self.0.is_some_and(|at| now >= at)
    }

    /// `Err(Expired)` once the deadline has passed: `deadline.check()?` between stages.
    pub fn check(self) -> Result<(), Expired> {
        if self.expired() {
            Err(Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn none_never_expires() {
        assert!(!Deadline::NONE.expired());
        assert_eq!(Deadline::NONE.check(), Ok(()));
    }

    #[test]
    fn a_past_instant_has_expired_and_a_future_one_has_not() {
        let now = Instant::now();
        let soon = Deadline::at(now + Duration::from_secs(60));
        assert!(!soon.expired_at(now));
        assert!(soon.expired_at(now + Duration::from_secs(60)));
        let past = Deadline::at(now);
        assert_eq!(past.check(), Err(Expired));
    }
}
