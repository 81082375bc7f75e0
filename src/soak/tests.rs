//! The bounded soak, its determinism, and that its zero figures are not vacuous.

use super::*;

/// A few hundred faults: every class several times over (about 10 s in a debug build).
fn bounded() -> SoakConfig {
    SoakConfig {
        seed: 12,
        faults: 300,
        ..SoakConfig::default()
    }
}

#[test]
fn a_bounded_soak_loses_and_duplicates_nothing_with_every_class_injected() {
    let report = run(bounded()).unwrap();
    assert!(report.passed, "{}", report.to_json());
    assert_eq!(report.faults_injected_total, 300);
    for (class, &n) in &report.faults_injected {
        assert!(n > 0, "{class} never injected");
    }
    assert!(
        report.faults_not_triggered.is_empty(),
        "{:?}",
        report.faults_not_triggered
    );
    assert_eq!(
        (report.writes_lost, report.writes_duplicated),
        (0, 0),
        "{}",
        report.to_text()
    );
    assert_eq!(report.failures_reported.unanswered, 0);
    assert_eq!(report.stalls, 0);
    // The faults had their effect: resets of both kinds, members failed and brought back,
    // errors reported to callers, and every slot of every controller read back.
    assert!(report.resets.flr > 0 && report.resets.bus > 0);
    assert!(report.recoveries.failed > 0 && report.recoveries.reattached > 0);
    assert!(report.failures_reported.total > 0);
    assert!(report.driver.timeouts > 0 && report.driver.reissued > 0);
    assert_eq!(
        report.slots_verified + report.writes_failed_but_landed,
        3 * workload::SLOTS
    );
    assert!(report.worst_recovery.is_some());
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let config = SoakConfig {
        seed: 99,
        faults: 40,
        ..SoakConfig::default()
    };
    let strip = |mut r: SoakReport| {
        r.wall_time_ns = 0;
        r.to_json()
    };
    let first = strip(run(config.clone()).unwrap());
    assert_eq!(first, strip(run(config.clone()).unwrap()));
    let other = strip(
        run(SoakConfig {
            seed: 100,
            ..config
        })
        .unwrap(),
    );
    assert_ne!(first, other, "the seed decides the run");
}

#[test]
fn a_write_changed_behind_the_ledger_is_reported_lost() {
    let mut soak = Soak::new(SoakConfig {
        faults: 13,
        ..SoakConfig::default()
    })
    .unwrap();
    soak.run_faults().unwrap();
    // As if an acknowledged write had been dropped and older data were on the media.
    let (workload, idle) = soak.workload_mut(1);
    let slot = workload
        .ledger
        .slots()
        .find(|(_, r)| r.acknowledged.is_some() && r.in_doubt.is_empty())
        .map(|(s, _)| s)
        .unwrap();
    workload
        .write_behind_the_ledger(slot, 0xdead, idle)
        .unwrap();
    let report = soak.finish().unwrap();
    assert_eq!(report.writes_lost, 1);
    assert!(!report.passed);
}

#[test]
fn a_second_answer_to_a_write_is_reported_duplicated() {
    let mut soak = Soak::new(SoakConfig {
        faults: 13,
        ..SoakConfig::default()
    })
    .unwrap();
    soak.run_faults().unwrap();
    let (workload, _) = soak.workload_mut(0);
    // Token 0 was answered long ago; a driver completing it again would do this.
    assert_eq!(workload.ledger.answer(0, true), ledger::Answer::Duplicate);
    let report = soak.finish().unwrap();
    assert_eq!((report.writes_duplicated, report.writes_lost), (1, 0));
    assert!(!report.passed);
}

#[test]
fn a_write_that_never_gets_its_answer_is_reported_unanswered() {
    let mut soak = Soak::new(SoakConfig {
        faults: 13,
        ..SoakConfig::default()
    })
    .unwrap();
    soak.run_faults().unwrap();
    let (workload, _) = soak.workload_mut(2);
    // As if the driver had dropped a request without calling back.
    workload.ledger.submit(u64::MAX - 1, 0, 1);
    let report = soak.finish().unwrap();
    assert_eq!(report.failures_reported.unanswered, 1);
    assert_eq!((report.writes_lost, report.writes_duplicated), (0, 0));
    assert!(!report.passed);
}
