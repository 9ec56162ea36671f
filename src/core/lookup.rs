//! The one question the hot path may ask outside the snapshot: the labels of a namespace the
//! snapshot does not know yet. The interface, and the guard that keeps anyone who can send a
//! review from turning it into load on the API server: lookups are coalesced per name, an
//! absent namespace is remembered briefly, names Kubernetes would refuse are never asked
//! for, and all lookups together stay under a rate. The cluster source implements it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{FutureExt, Shared};

use super::labels::NamespaceLabels;

/// What looking up one namespace came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The namespace exists; its labels.
    Found(NamespaceLabels),
    /// The API server has no such namespace (just now, or a moment ago: remembered briefly).
    Absent,
    /// The lookup failed or did not answer in time.
    Failed,
    /// Not asked: lookups are over their rate.
    Limited,
    /// Not asked: not a name a namespace can have.
    Invalid,
}

impl Lookup {
    /// The label of the outcome in metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Lookup::Found(_) => "found",
            Lookup::Absent => "absent",
            Lookup::Failed => "failed",
            Lookup::Limited => "limited",
            Lookup::Invalid => "invalid",
        }
    }
}

pub type LookupFuture = Pin<Box<dyn Future<Output = Lookup> + Send>>;

/// Looks up one namespace's labels when the cache does not know it yet (a pod created right
/// after its namespace, before the watch delivered it).
pub trait NamespaceLookup: Send + Sync + std::fmt::Debug {
    /// The labels, or `None` if the lookup failed. An absent namespace may be reported as
    /// found without labels (what a plain implementation knows); [`lookup`](Self::lookup)
    /// tells the cases apart.
    fn labels(&self, name: String)
        -> Pin<Box<dyn Future<Output = Option<NamespaceLabels>> + Send>>;

    /// The outcome, typed: what the server answers from. Guarded implementations give the
    /// reasons a lookup was not made.
    fn lookup(&self, name: String) -> LookupFuture {
        Box::pin(self.labels(name).map(|found| match found {
            Some(labels) => Lookup::Found(labels),
            None => Lookup::Failed,
        }))
    }
}

/// Bounds on the lookups a [`LookupGuard`] lets through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookupLimits {
    /// Lookups per second over all names, sustained; as many may go at once after a quiet
    /// second.
    pub per_second: f64,
    /// How long an absent namespace is answered from memory.
    pub absent_for: Duration,
    /// A lookup in flight longer than this is not joined: a new one replaces it.
    pub stale_after: Duration,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            per_second: 20.0,
            absent_for: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
        }
    }
}

type Pending = Shared<LookupFuture>;

/// Coalesces, remembers and rate-limits namespace lookups. Pure bookkeeping: the caller
/// supplies the clock and the fetch.
#[derive(Debug)]
pub struct LookupGuard {
    limits: LookupLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Lookups in flight, by name, with when each began: every request for the name waits
    /// on the same one.
    pending: HashMap<String, (Instant, Pending)>,
    /// Names the API server said do not exist, until when that is believed.
    absent: HashMap<String, Instant>,
    /// The same, in the order they expire (every entry lives equally long).
    expiry: VecDeque<(Instant, String)>,
    /// Token bucket: lookups that may start now, and when it was last refilled.
    tokens: f64,
    refilled: Option<Instant>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("pending", &self.pending.len())
            .field("absent", &self.absent.len())
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl LookupGuard {
    pub fn new(limits: LookupLimits) -> Self {
        LookupGuard {
            limits,
            state: Mutex::new(State {
                tokens: limits.per_second.max(1.0),
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change under the lock is one insert or remove: a panic elsewhere cannot
        // leave it half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `name` up at `now`: from memory, by joining the lookup of the same name in
    /// flight, or with `fetch` if the rate allows one more.
    pub fn lookup<F>(self: &Arc<Self>, name: &str, now: Instant, fetch: F) -> LookupFuture
    where
        F: FnOnce(String) -> LookupFuture,
    {
        if !is_namespace_name(name) {
            return ready(Lookup::Invalid);
        }
        let mut state = self.lock();
        state.forget_expired(now);
        if state.absent.contains_key(name) {
            return ready(Lookup::Absent);
        }
        if let Some((began, pending)) = state.pending.get(name) {
            if now.saturating_duration_since(*began) < self.limits.stale_after {
                return Box::pin(pending.clone());
            }
        }
        if !state.take_token(now, self.limits.per_second) {
            return ready(Lookup::Limited);
        }
        let guard = Arc::clone(self);
        let key = name.to_owned();
        let fetched = fetch(name.to_owned());
        let pending: LookupFuture = Box::pin(async move {
            let found = fetched.await;
            guard.finished(&key, now, &found);
            found
        });
        let pending = pending.shared();
        state
            .pending
            .insert(name.to_owned(), (now, pending.clone()));
        Box::pin(pending)
    }

    /// Records the end of the lookup of `name` that began at `began`.
    fn finished(&self, name: &str, began: Instant, found: &Lookup) {
        let mut state = self.lock();
        // A stale lookup may have been replaced by a newer one: leave that one in place.
        if state.pending.get(name).is_some_and(|(at, _)| *at == began) {
            state.pending.remove(name);
        }
        if *found == Lookup::Absent {
            let until = began + self.limits.absent_for;
            state.absent.insert(name.to_owned(), until);
            state.expiry.push_back((until, name.to_owned()));
        }
    }

    /// Lookups in flight and names remembered absent.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let state = self.lock();
        (state.pending.len(), state.absent.len())
    }
}

impl State {
    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiry.front() {
            if *until > now {
                break;
            }
            if let Some((until, name)) = self.expiry.pop_front() {
                // The name may have been remembered again since, with a later time.
                if self.absent.get(&name).is_some_and(|u| *u <= until) {
                    self.absent.remove(&name);
                }
            }
        }
    }

    fn take_token(&mut self, now: Instant, per_second: f64) -> bool {
        let capacity = per_second.max(1.0);
        if let Some(last) = self.refilled {
            let earned = now.saturating_duration_since(last).as_secs_f64() * per_second;
            self.tokens = (self.tokens + earned).min(capacity);
        }
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn ready(found: Lookup) -> LookupFuture {
    Box::pin(std::future::ready(found))
}

/// A DNS label (RFC 1123), as Kubernetes requires of a namespace's name: at most 63
/// characters, lowercase letters, digits and '-', beginning and ending with a letter or digit.
pub fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fetch that counts its calls and answers `found` when released.
    fn counting(calls: &Arc<AtomicUsize>, found: Lookup) -> impl FnOnce(String) -> LookupFuture {
        let calls = calls.clone();
        move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(std::future::ready(found))
        }
    }

    fn guard(per_second: f64) -> Arc<LookupGuard> {
        Arc::new(LookupGuard::new(LookupLimits {
            per_second,
            ..LookupLimits::default()
        }))
    }

    /// Every future here is ready, or made ready by the test before it is polled.
    fn block_on(f: LookupFuture) -> Lookup {
        f.now_or_never().expect("ready")
    }

    #[test]
    fn names_kubernetes_refuses_are_never_looked_up() {
        let g = guard(10.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        for name in ["", "Upper", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            let found = block_on(g.lookup(name, now, counting(&calls, Lookup::Absent)));
            assert_eq!(found, Lookup::Invalid, "{name:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert!(
            is_namespace_name("a")
                && is_namespace_name("shop-2")
                && is_namespace_name(&"a".repeat(63))
        );
    }

    #[test]
    fn concurrent_lookups_of_one_name_share_one_fetch() {
        let g = guard(10.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = futures::channel::oneshot::channel::<Lookup>();
        let fetch_calls = calls.clone();
        let now = Instant::now();
        let first = g.lookup("shop", now, move |_| {
            fetch_calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(rx.map(|r| r.unwrap_or(Lookup::Failed)))
        });
        let others: Vec<_> = (0..49)
            .map(|_| g.lookup("shop", now, counting(&calls, Lookup::Failed)))
            .collect();
        assert_eq!(g.sizes().0, 1, "one lookup in flight");
        let labels = NamespaceLabels {
            rev: Some("canary".into()),
            ..NamespaceLabels::default()
        };
        tx.send(Lookup::Found(labels.clone())).expect("send");
        assert_eq!(block_on(first), Lookup::Found(labels.clone()));
        for other in others {
            assert_eq!(block_on(other), Lookup::Found(labels.clone()));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one fetch for fifty lookups"
        );
        assert_eq!(g.sizes(), (0, 0), "done, and nothing remembered when found");
        // Found namespaces are not remembered here: the snapshot will know them.
        block_on(g.lookup("shop", now, counting(&calls, Lookup::Failed)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_absent_namespace_is_remembered_for_a_while() {
        let g = guard(10.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        for at in [0, 1, 4_999] {
            let now = t0 + Duration::from_millis(at);
            assert_eq!(
                block_on(g.lookup("gone", now, counting(&calls, Lookup::Absent))),
                Lookup::Absent
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "asked once within 5 s");
        let later = t0 + Duration::from_secs(5);
        block_on(g.lookup(
            "other",
            later,
            counting(&calls, Lookup::Found(NamespaceLabels::default())),
        ));
        assert_eq!(g.sizes(), (0, 0), "forgotten once expired");
        block_on(g.lookup("gone", later, counting(&calls, Lookup::Absent)));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "asked again after 5 s");
    }

    #[test]
    fn failures_are_not_remembered() {
        let g = guard(10.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                block_on(g.lookup("flaky", now, counting(&calls, Lookup::Failed))),
                Lookup::Failed
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn lookups_beyond_the_rate_are_not_made() {
        let g = guard(20.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut limited = 0;
        // 500 distinct names within one second: a burst of 20, then 20 more over the second.
        for i in 0..500u64 {
            let now = t0 + Duration::from_millis(i * 2);
            let found =
                block_on(g.lookup(&format!("ns-{i}"), now, counting(&calls, Lookup::Absent)));
            if found == Lookup::Limited {
                limited += 1;
            }
        }
        let made = calls.load(Ordering::SeqCst);
        assert!((39..=41).contains(&made), "{made} lookups made");
        assert_eq!(made + limited, 500);
        // Remembered absences cost no token, and are bounded by the rate.
        assert!(g.sizes().1 <= made);
    }

    #[test]
    fn a_stale_lookup_in_flight_is_replaced() {
        let g = guard(10.0);
        let calls = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let (_never_tx, rx) = futures::channel::oneshot::channel::<Lookup>();
        let stuck = g.lookup("slow", t0, move |_| {
            Box::pin(rx.map(|r| r.unwrap_or(Lookup::Failed)))
        });
        drop(stuck);
        let later = t0 + LookupLimits::default().stale_after;
        let found = block_on(g.lookup("slow", later, counting(&calls, Lookup::Absent)));
        assert_eq!(found, Lookup::Absent);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            g.sizes(),
            (0, 1),
            "the new one replaced it, ended, and was removed"
        );
    }
}
