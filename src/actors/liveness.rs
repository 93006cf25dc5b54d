//! Liveness of the long-lived parts of `serve`: the coordinator, the history recorder, the consume loops
//! and the change-event relay beat a [`Heart`] whenever their loop turns (a tick, a flush, a wait for a
//! delivery, a relay batch or lock attempt), whether the work succeeded or not: a Postgres or RabbitMQ outage is `/readyz`'s business, a part that stopped
//! turning is `/healthz`'s. The watchdog ([`super::service`]) restarts a part that stopped beating or
//! died, and `/healthz` names every part silent beyond its deadline.
//!
//! [`Faults`] lets tests wedge or panic a part the way a bug would (code only; no setting reaches it).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::ActorKind;

/// What the watchdog restarts when one of its parts is wedged or dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Coordinator,
    HistoryRecorder,
    /// The sync worker at this position of the service's worker list (its consume loops).
    Worker(usize),
    /// The change-event relay (`actors::relay`), on its own Arbiter.
    Relay,
    /// The watchdog itself: reported, never restarted.
    Watchdog,
}

impl Unit {
    pub fn actor(self) -> ActorKind {
        match self {
            Unit::Coordinator => ActorKind::Coordinator,
            Unit::HistoryRecorder => ActorKind::HistoryRecorder,
            Unit::Worker(_) => ActorKind::Consumer,
            Unit::Relay => ActorKind::Relay,
            Unit::Watchdog => ActorKind::Watchdog,
        }
    }
}

/// Why a part stopped without being told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    Panicked,
    Ended,
}

struct Part {
    unit: Unit,
    deadline: Duration,
    /// The last beat of any incarnation: a restarted part that never beats stays wedged.
    last_beat: Instant,
    /// Beats from hearts of older incarnations are ignored.
    generation: u64,
    /// When the current incarnation registered.
    since: Instant,
    down: Option<Down>,
}

/// A part silent beyond its deadline, or down, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wedged {
    pub part: String,
    pub unit: Unit,
    pub silent_for: Duration,
    pub deadline: Duration,
    pub down: Option<Down>,
}

/// The registry of parts and their last beats; cheap to clone (clones share it).
#[derive(Clone, Default)]
pub struct Liveness {
    parts: Arc<Mutex<BTreeMap<String, Part>>>,
    next_generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Liveness {
    fn parts(&self) -> MutexGuard<'_, BTreeMap<String, Part>> {
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// A new incarnation of `name` (a part of `unit`) that promises to beat at least every `deadline`.
    /// The previous incarnation's last beat is kept, so a part restarted while wedged is healthy only
    /// once it beats.
    pub fn register(&self, name: impl Into<String>, unit: Unit, deadline: Duration) -> Heart {
        let (name, generation, now) = (name.into(), self.generation(), Instant::now());
        let mut parts = self.parts();
        let part = parts.entry(name.clone()).or_insert(Part {
            unit,
            deadline,
            last_beat: now,
            generation,
            since: now,
            down: None,
        });
        *part = Part { unit, deadline, generation, since: now, down: None, last_beat: part.last_beat };
        Heart { liveness: self.clone(), name: Arc::from(name), generation, retired: false }
    }

    /// The watchdog restarted `unit`: older hearts of its parts no longer count, and the new incarnation
    /// gets its deadline from now before it is judged again.
    pub fn restarted(&self, unit: Unit) {
        let (generation, now) = (self.generation(), Instant::now());
        for part in self.parts().values_mut().filter(|part| part.unit == unit) {
            part.generation = generation;
            part.since = now;
            part.down = None;
        }
    }

    /// Parts silent beyond their deadline (since their last beat), or down: what `/healthz` reports.
    pub fn wedged(&self) -> Vec<Wedged> {
        let now = Instant::now();
        self.parts()
            .iter()
            .filter_map(|(name, part)| {
                let silent_for = now.saturating_duration_since(part.last_beat);
                (silent_for > part.deadline || part.down.is_some()).then(|| Wedged {
                    part: name.clone(),
                    unit: part.unit,
                    silent_for,
                    deadline: part.deadline,
                    down: part.down,
                })
            })
            .collect()
    }

    /// Units the watchdog should restart now: a part down, or silent beyond its deadline both since its
    /// last beat and since its incarnation started (a fresh incarnation gets a full deadline).
    pub fn to_restart(&self) -> Vec<(Unit, Option<Down>)> {
        let now = Instant::now();
        let mut units: Vec<(Unit, Option<Down>)> = Vec::new();
        for part in self.parts().values() {
            let silent = now.saturating_duration_since(part.last_beat.max(part.since));
            if part.down.is_some() || silent > part.deadline {
                match units.iter_mut().find(|(unit, _)| *unit == part.unit) {
                    Some((_, down)) => *down = down.or(part.down),
                    None => units.push((part.unit, part.down)),
                }
            }
        }
        units
    }

    /// Forgets every part (the service stopped as told).
    pub fn clear(&self) {
        self.parts().clear();
    }

    /// Whether `unit` beat since its current incarnation started.
    pub fn beat_since_restart(&self, unit: Unit) -> bool {
        self.parts().values().filter(|part| part.unit == unit).all(|part| part.last_beat >= part.since)
    }

    fn beat(&self, name: &str, generation: u64) {
        if let Some(part) = self.parts().get_mut(name).filter(|part| part.generation == generation) {
            part.last_beat = Instant::now();
        }
    }

    fn dropped(&self, name: &str, generation: u64, down: Option<Down>) {
        let mut parts = self.parts();
        match down {
            Some(down) => {
                if let Some(part) = parts.get_mut(name).filter(|part| part.generation == generation) {
                    part.down = Some(down);
                }
            }
            None => {
                if parts.get(name).is_some_and(|part| part.generation == generation) {
                    parts.remove(name);
                }
            }
        }
    }
}

/// One incarnation of a part. Beat it each time the part's loop turns; [`Heart::retire`] it when the
/// part stops as told. Dropped without retiring (a panic unwinding, a loop that ended), it marks the
/// part down.
pub struct Heart {
    liveness: Liveness,
    name: Arc<str>,
    generation: u64,
    retired: bool,
}

impl Heart {
    pub fn beat(&self) {
        self.liveness.beat(&self.name, self.generation);
    }

    /// The part stopped as told (shutdown): it leaves the registry.
    pub fn retire(mut self) {
        self.retired = true;
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        let down = match (self.retired, std::thread::panicking()) {
            (true, _) => None,
            (false, true) => Some(Down::Panicked),
            (false, false) => Some(Down::Ended),
        };
        self.liveness.dropped(&self.name, self.generation, down);
    }
}

/// Where a test may inject a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultPoint {
    /// The start of every coordinator tick.
    CoordinatorTick,
    /// Every flush of the history recorder (once a second).
    RecorderFlush,
    /// Every turn of every consume loop.
    ConsumeLoop,
    /// Every turn of the change-event relay: its restart loop, each lock attempt, each batch and settle.
    RelayLoop,
}

/// What an armed fault point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Blocks the thread (as a blocking call in async code would) until the fault is cleared.
    Wedge,
    Panic,
}

/// Faults tests arm through `startup::Application::faults`; nothing in configuration reaches them.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<(Mutex<BTreeMap<FaultPoint, Fault>>, Condvar)>,
}

/// A wedge never outlasts this, so a forgotten test fault does not hold a thread forever.
const LONGEST_WEDGE: Duration = Duration::from_secs(300);

impl Faults {
    fn armed(&self) -> MutexGuard<'_, BTreeMap<FaultPoint, Fault>> {
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn arm(&self, point: FaultPoint, fault: Fault) {
        self.armed().insert(point, fault);
    }

    pub fn clear(&self, point: FaultPoint) {
        self.armed().remove(&point);
        self.inner.1.notify_all();
    }

    /// Runs the fault armed at `point`, if any.
    #[expect(clippy::panic, reason = "an injected panic stands for a bug; tests arm it to prove containment")]
    pub fn hit(&self, point: FaultPoint) {
        let mut armed = self.armed();
        match armed.get(&point) {
            None => {}
            Some(Fault::Panic) => {
                drop(armed);
                panic!("injected fault: {point:?} panics");
            }
            Some(Fault::Wedge) => {
                tracing::warn!(?point, "injected fault: wedging this thread");
                let started = Instant::now();
                while armed.get(&point) == Some(&Fault::Wedge) && started.elapsed() < LONGEST_WEDGE {
                    armed = self
                        .inner
                        .1
                        .wait_timeout(armed, Duration::from_millis(100))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_part_is_wedged_until_its_next_incarnation_beats() {
        let liveness = Liveness::default();
        let heart = liveness.register("coordinator", Unit::Coordinator, Duration::from_millis(20));
        assert!(liveness.wedged().is_empty());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(liveness.wedged().len(), 1);
        assert_eq!(liveness.to_restart(), vec![(Unit::Coordinator, None)]);
        liveness.restarted(Unit::Coordinator);
        assert!(liveness.to_restart().is_empty(), "a fresh incarnation gets a full deadline");
        assert_eq!(liveness.wedged().len(), 1, "still wedged: nothing beat since");
        heart.beat();
        assert_eq!(liveness.wedged().len(), 1, "beats of an older incarnation do not count");
        let heart = liveness.register("coordinator", Unit::Coordinator, Duration::from_millis(20));
        heart.beat();
        assert!(liveness.wedged().is_empty());
        heart.retire();
        assert!(liveness.wedged().is_empty() && liveness.parts().is_empty(), "a retired part leaves");
    }

    #[test]
    fn a_heart_dropped_while_panicking_marks_its_part_down() {
        let liveness = Liveness::default();
        let registry = liveness.clone();
        let outcome = std::thread::spawn(move || {
            let _heart = registry.register("consumer user #0", Unit::Worker(0), Duration::from_secs(60));
            let faults = Faults::default();
            faults.arm(FaultPoint::ConsumeLoop, Fault::Panic);
            faults.hit(FaultPoint::ConsumeLoop);
        })
        .join();
        assert!(outcome.is_err(), "the injected fault panics");
        assert_eq!(liveness.to_restart(), vec![(Unit::Worker(0), Some(Down::Panicked))]);
        assert_eq!(liveness.wedged()[0].down, Some(Down::Panicked));
    }
}
