//! `userpci soak` from the command line: one JSON object with its schema version, exit
//! status 0 for a clean run, an argument out of range refused naming it.

use std::process::Command;

fn userpci(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("userpci runs")
}

#[test]
fn a_short_soak_prints_one_json_object_and_exits_zero() {
    let out = userpci(&["soak", "--faults", "13", "--seed", "5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["seed"], 5);
    assert_eq!(report["faults_injected_total"], 13);
    assert_eq!(report["writes_lost"], 0);
    assert_eq!(report["writes_duplicated"], 0);
    assert_eq!(report["passed"], true);
    assert!(report["worst_recovery"]["timeline"]["phases"].is_array());
}

#[test]
fn too_many_controllers_are_refused_naming_the_value() {
    let out = userpci(&["soak", "--controllers", "8", "--nic"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("controllers 8 (expected 1..=7 with --nic)"),
        "{err}"
    );
}
