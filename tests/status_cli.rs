//! `userpci status --json` on the committed fixture trees (framework/tests/fixtures/status).

use std::path::PathBuf;
use std::process::Command;

fn tree(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("framework/tests/fixtures/status")
        .join(name)
}

fn status(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_userpci"))
        .arg("status")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn status_json_on_held_fixture() {
    let t = tree("q35-held");
    let (sys, proc_root) = (t.join("sys"), t.join("proc"));
    let out = status(&[
        "--sysfs".as_ref(),
        sys.as_os_str(),
        "--proc".as_ref(),
        proc_root.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["iommu"]["present"], true);
    assert_eq!(v["holders"]["complete"], true);
    let groups = v["groups"].as_array().unwrap();
    let nvme = groups
        .iter()
        .find(|g| g["members"][0]["address"] == "0000:01:00.0")
        .unwrap();
    assert_eq!(nvme["scope"], "bus");
    assert_eq!(nvme["bridge"], "0000:00:02.0");
    assert_eq!(nvme["verdict"]["kind"], "held_by_one");
    assert_eq!(nvme["verdict"]["pid"], 4242);
    let m1 = &nvme["members"][1];
    assert_eq!(m1["address"], "0000:01:00.1");
    assert_eq!(m1["vendor_id"], "0x1b36");
    assert_eq!(m1["device_id"], "0x0010");
    assert_eq!(m1["class"], "0x010802");
    assert_eq!(m1["iommu_group"], 6);
    assert_eq!(m1["reset_method"], serde_json::json!(["flr"]));
    assert_eq!(
        m1["reaches"],
        serde_json::json!({"flr": true, "slot": false, "bus": true})
    );
    assert_eq!(m1["held_by"]["kind"], "processes");
    assert_eq!(m1["processes"][0]["pid"], 4242);
    assert_eq!(m1["processes"][0]["file"], "/dev/vfio/devices/vfio1");
    assert_eq!(
        nvme["legacy_group_files"],
        serde_json::json!(["/dev/vfio/6"])
    );
}

#[test]
fn status_table_and_errors() {
    let t = tree("q35-split");
    let (sys, proc_root) = (t.join("sys"), t.join("proc"));
    let out = status(&[
        "--sysfs".as_ref(),
        sys.as_os_str(),
        "--proc".as_ref(),
        proc_root.as_os_str(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("IOMMU: 9 groups"), "{text}");
    assert!(
        text.contains("blocked: 0000:01:00.1 is owned by pid 4244 (net-app)"),
        "{text}"
    );
    let out = status(&["--sysfs".as_ref(), "/nonexistent/sys".as_ref()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/sys/bus/pci/devices"), "{err}");
}
