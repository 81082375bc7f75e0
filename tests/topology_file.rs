//! `userpci topology FILE` on files that are not topology files: refused at once, naming the
//! file and why (before, `/dev/zero` was read until memory ran out).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn userpci_topology_refuses_dev_zero_at_once() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(["topology", "/dev/zero"])
        .output()
        .expect("the userpci binary runs");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "userpci: topology file /dev/zero: not a regular file (a character device), expected a \
         TOML topology file"
    );
}
