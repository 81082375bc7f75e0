//! Every tool, its standard output a pipe whose reader has already gone (`userpci demo |
//! head -0`, deterministically): it exits with status 0 and says nothing, no panic and no
//! backtrace. Before the fix each one panicked in `println!` ("failed printing to stdout:
//! Broken pipe").

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `program args` with stdout a pipe whose read end is closed; returns (success, stderr).
fn run_with_closed_stdout(program: &PathBuf, args: &[&str]) -> (bool, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_BACKTRACE", "1")
        // Only errors: the hugepage warning of a machine without hugepages is not the point.
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(program: &PathBuf, args: &[&str]) {
    let (ok, stderr) = run_with_closed_stdout(program, args);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{} {args:?}: {stderr}",
        program.display()
    );
    assert!(ok, "{} {args:?} failed: {stderr}", program.display());
    assert!(
        stderr.is_empty(),
        "{} {args:?}: {stderr}",
        program.display()
    );
}

fn userpci() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_userpci"))
}

/// An example's binary, built next to this test by `cargo test` (target/<profile>/examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test closed_stdout` \
         alone does not (run `cargo build --examples` first)",
        path.display()
    );
    path
}

#[test]
fn userpci_demo_exits_quietly_when_stdout_is_closed() {
    assert_quiet(&userpci(), &["demo"]);
    assert_quiet(&userpci(), &["demo", "--json"]);
}

#[test]
fn userpci_copy_demo_and_topology_exit_quietly_when_stdout_is_closed() {
    assert_quiet(&userpci(), &["copy-demo", "--copies", "8"]);
    assert_quiet(&userpci(), &["topology", "topologies/demo.toml"]);
    assert_quiet(&userpci(), &["topology", "topologies/demo.toml", "--json"]);
}

#[test]
fn the_nvme_examples_exit_quietly_when_stdout_is_closed() {
    assert_quiet(&example("nvme_identify"), &[]);
    assert_quiet(&example("nvme_perf"), &["--seconds", "0.05", "--qd", "4"]);
}

#[test]
fn the_net_examples_exit_quietly_when_stdout_is_closed() {
    assert_quiet(&example("pktgen"), &["--seconds", "0.05", "--sink"]);
    assert_quiet(&example("fwd"), &["--seconds", "0.05", "--json"]);
}
