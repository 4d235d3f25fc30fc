//! The state machine of one (rule, series), as Prometheus runs it: inactive → pending
//! (the condition holds, for less than `for`) → firing → resolved (inactive again),
//! with `keep_firing_for` holding a firing series after its condition clears, and
//! reminders every `repeat_interval` while it fires. Pure: the caller passes the time
//! and whether the series is silenced, and writes what [`step`] returns. It also owns
//! the series cap ([`admit`]). It never reads a clock, a database or the network.

use chrono::{DateTime, Duration, Utc};

/// A rule's timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long the condition must hold before the series fires (`for`).
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Zero: no reminders.
    pub repeat_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Firing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Firing => "firing",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        match text {
            "pending" => Some(Phase::Pending),
            "firing" => Some(Phase::Firing),
            _ => None,
        }
    }
}

/// A series that is pending or firing (an inactive one has no state).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub phase: Phase,
    /// When the condition started to hold.
    pub active_since: DateTime<Utc>,
    /// When it started firing.
    pub fired_at: Option<DateTime<Utc>>,
    /// The last evaluation at which the condition held.
    pub last_active_at: DateTime<Utc>,
    /// The last firing or reminder notification; `None`: the receivers have not been
    /// told it fires (pending, or firing under a silence).
    pub last_notified_at: Option<DateTime<Utc>>,
    pub value: f64,
}

/// What happened to a series at one evaluation, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pending,
    Firing,
    Reminder,
    Resolved,
    /// Pending, then the condition cleared before `for`: never fired.
    Inactive,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Pending => "pending",
            Transition::Firing => "firing",
            Transition::Reminder => "reminder",
            Transition::Resolved => "resolved",
            Transition::Inactive => "inactive",
        }
    }
}

/// The outcome of one evaluation of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state to keep; `None`: inactive (delete it).
    pub next: Option<Series>,
    pub transition: Option<Transition>,
    /// Whether the transition goes to the rule's channels (the outbox).
    pub notify: bool,
}

/// One evaluation at `now`: `measured` is the value when the condition holds and
/// `None` when it does not. Under a silence, firing and reminders are recorded but not
/// notified; the firing notification follows at the first evaluation after the silence
/// ends if the series still fires, and a resolve is notified exactly when its firing
/// was (a receiver is never left firing, nor told of a resolve it never saw fire).
pub fn step(
    previous: Option<&Series>,
    measured: Option<f64>,
    now: DateTime<Utc>,
    timing: Timing,
    silenced: bool,
) -> Step {
    let unchanged = |next: Option<Series>| Step {
        next,
        transition: None,
        notify: false,
    };
    match (previous, measured) {
        (None, None) => unchanged(None),
        (None, Some(value)) => {
            let pending = Series {
                phase: Phase::Pending,
                active_since: now,
                fired_at: None,
                last_active_at: now,
                last_notified_at: None,
                value,
            };
            if timing.hold <= Duration::zero() {
                fire(pending, now, silenced)
            } else {
                Step {
                    next: Some(pending),
                    transition: Some(Transition::Pending),
                    notify: false,
                }
            }
        }
        (Some(series), Some(value)) => {
            let mut series = series.clone();
            series.value = value;
            series.last_active_at = now;
            match series.phase {
                Phase::Pending if now - series.active_since >= timing.hold => {
                    fire(series, now, silenced)
                }
                Phase::Pending => unchanged(Some(series)),
                Phase::Firing => while_firing(series, now, timing, silenced),
            }
        }
        (Some(series), None) => match series.phase {
            Phase::Pending => Step {
                next: None,
                transition: Some(Transition::Inactive),
                notify: false,
            },
            Phase::Firing if now - series.last_active_at < timing.keep_firing_for => {
                while_firing(series.clone(), now, timing, silenced)
            }
            Phase::Firing => Step {
                next: None,
                transition: Some(Transition::Resolved),
                notify: series.last_notified_at.is_some(),
            },
        },
    }
}

fn fire(mut series: Series, now: DateTime<Utc>, silenced: bool) -> Step {
    series.phase = Phase::Firing;
    series.fired_at = Some(now);
    if !silenced {
        series.last_notified_at = Some(now);
    }
    Step {
        next: Some(series),
        transition: Some(Transition::Firing),
        notify: !silenced,
    }
}

/// A series that stays firing: its first notification if a silence held it back,
/// else a reminder when one is due.
fn while_firing(mut series: Series, now: DateTime<Utc>, timing: Timing, silenced: bool) -> Step {
    if silenced {
        return Step {
            next: Some(series),
            transition: None,
            notify: false,
        };
    }
    let transition = match series.last_notified_at {
        None => Some(Transition::Firing),
        Some(last)
            if timing.repeat_interval > Duration::zero()
                && now - last >= timing.repeat_interval =>
        {
            Some(Transition::Reminder)
        }
        Some(_) => None,
    };
    if transition.is_some() {
        series.last_notified_at = Some(now);
    }
    Step {
        next: Some(series),
        notify: transition.is_some(),
        transition,
    }
}

/// The series cap: every tracked series (pending or firing) stays; of the new
/// `candidates` (in the order given), only as many as fit under `cap` in all are
/// admitted. Returns the admitted candidates and how many were left out.
pub fn admit<T>(tracked: usize, candidates: Vec<T>, cap: usize) -> (Vec<T>, usize) {
    let room = cap.saturating_sub(tracked);
    let left_out = candidates.len().saturating_sub(room);
    let admitted = candidates.into_iter().take(room).collect();
    (admitted, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An injectable clock: seconds after a fixed start.
    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::seconds(seconds)
    }

    fn timing(hold: i64, keep: i64, repeat: i64) -> Timing {
        Timing {
            hold: Duration::seconds(hold),
            keep_firing_for: Duration::seconds(keep),
            repeat_interval: Duration::seconds(repeat),
        }
    }

    /// Runs a series through `(time, measured, silenced)` evaluations; returns the
    /// transitions with their times and whether each was notified.
    fn run(
        timing: Timing,
        evaluations: &[(i64, Option<f64>, bool)],
    ) -> Vec<(i64, Transition, bool)> {
        let mut state: Option<Series> = None;
        let mut seen = Vec::new();
        for (time, measured, silenced) in evaluations {
            let step = step(state.as_ref(), *measured, at(*time), timing, *silenced);
            if let Some(transition) = step.transition {
                seen.push((*time, transition, step.notify));
            }
            state = step.next;
        }
        seen
    }

    fn holds(times: impl IntoIterator<Item = (i64, bool)>) -> Vec<(i64, Option<f64>, bool)> {
        times
            .into_iter()
            .map(|(t, active)| (t, active.then_some(12.0), false))
            .collect()
    }

    #[test]
    fn fires_once_after_for_and_resolves_once() {
        let evaluations = holds((0..10).map(|i| (i * 60, (1..6).contains(&i))));
        assert_eq!(
            run(timing(120, 0, 0), &evaluations),
            vec![
                (60, Transition::Pending, false),
                (180, Transition::Firing, true),
                (360, Transition::Resolved, true),
            ]
        );
    }

    #[test]
    fn a_condition_shorter_than_for_never_fires() {
        let evaluations = holds([(0, true), (60, true), (120, false), (180, false)]);
        assert_eq!(
            run(timing(120, 0, 0), &evaluations),
            vec![
                (0, Transition::Pending, false),
                (120, Transition::Inactive, false)
            ]
        );
    }

    #[test]
    fn for_zero_fires_at_the_first_evaluation() {
        let evaluations = holds([(0, true), (60, false)]);
        assert_eq!(
            run(timing(0, 0, 0), &evaluations),
            vec![
                (0, Transition::Firing, true),
                (60, Transition::Resolved, true)
            ]
        );
    }

    #[test]
    fn keep_firing_for_rides_out_a_flap_and_resolves_after_it() {
        // Holds, clears for one evaluation, holds again, then clears for good.
        let evaluations = holds([
            (0, true),
            (60, false),
            (120, true),
            (180, false),
            (240, false),
            (300, false),
        ]);
        assert_eq!(
            run(timing(0, 150, 0), &evaluations),
            vec![
                (0, Transition::Firing, true),
                (300, Transition::Resolved, true)
            ]
        );
        // Without it the flap is two firings.
        assert_eq!(run(timing(0, 0, 0), &evaluations).len(), 4);
    }

    #[test]
    fn reminders_come_every_repeat_interval_while_firing() {
        let evaluations = holds((0..=8).map(|i| (i * 60, i < 8)));
        let seen = run(timing(0, 0, 180), &evaluations);
        assert_eq!(
            seen,
            vec![
                (0, Transition::Firing, true),
                (180, Transition::Reminder, true),
                (360, Transition::Reminder, true),
                (480, Transition::Resolved, true),
            ]
        );
    }

    #[test]
    fn a_silence_holds_back_firing_until_it_ends_and_the_resolve_follows_the_firing() {
        let silenced = |t: i64| t < 120;
        let evaluations: Vec<_> = (0..5)
            .map(|i| (i * 60, (i < 4).then_some(1.0), silenced(i * 60)))
            .collect();
        assert_eq!(
            run(timing(0, 0, 0), &evaluations),
            vec![
                (0, Transition::Firing, false),
                (120, Transition::Firing, true),
                (240, Transition::Resolved, true),
            ]
        );
        // Silenced throughout: the receivers hear nothing, resolve included.
        let evaluations = [(0, Some(1.0), true), (60, None, true)];
        assert_eq!(
            run(timing(0, 0, 0), &evaluations),
            vec![
                (0, Transition::Firing, false),
                (60, Transition::Resolved, false)
            ]
        );
    }

    #[test]
    fn the_series_cap_keeps_tracked_series_and_admits_new_ones_up_to_it() {
        assert_eq!(admit(2, vec!["a", "b", "c"], 3), (vec!["a"], 2));
        assert_eq!(admit(5, vec!["a"], 3), (vec![], 1));
        assert_eq!(admit(0, vec!["a", "b"], 3), (vec!["a", "b"], 0));
    }
}
