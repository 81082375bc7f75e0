//! `userpci setup`, `setup status`, `setup reset` as the binary runs them, on fake machines
//! (`--root`, hidden): the JSON shape, a user given the nodes and reset, and the messages.

mod fake_system;

use std::process::{Command, Output};

use fake_system::{alice_uid, as_the_kernel_makes, FakeSystem};

fn userpci(fake: &FakeSystem, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_userpci"))
        .arg("setup")
        .args(args)
        .arg("--root")
        .arg(&fake.dir)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| panic!("{err}: {}", stdout(out)))
}

/// One NUMA node with 4 pages, VFIO ready, one NVMe function on vfio-pci in group 7.
fn machine(name: &str) -> FakeSystem {
    let fake = FakeSystem::new(name);
    fake.numa_pools(&[4]);
    fake.vfio_ready();
    fake.function("0000:01:00.0", "vfio-pci", 7, Some("vfio0"));
    fake
}

#[test]
fn status_json_has_a_schema_units_in_names_and_strings_for_ids_and_paths() {
    let fake = machine("cli-status");
    let v = json(&userpci(&fake, &["status", "--json"]));
    assert_eq!(v["schema"], 1);
    let h = &v["hugepages"];
    assert_eq!(h["hugepage_bytes"], 2 << 20);
    assert_eq!(h["total_pages"], 4);
    assert_eq!(h["total_bytes"], 8 << 20);
    assert_eq!(h["pools"][0]["node"], "0");
    assert_eq!(
        h["pools"][0]["path"],
        "/sys/devices/system/node/node0/hugepages/hugepages-2048kB"
    );
    assert_eq!(h["mounts"][0]["target"], "/dev/hugepages");
    assert_eq!(h["mounts"][0]["pagesize"], "2M");
    assert_eq!(v["iommu"]["enabled"], true);
    assert_eq!(v["iommu"]["group_count"], 1);
    assert_eq!(
        v["iommu"]["cmdline_options"],
        serde_json::json!(["intel_iommu=on", "iommu=pt"])
    );
    assert_eq!(v["memlock"]["soft_bytes"], 8 << 20);
    assert_eq!(v["memlock"]["needed_bytes"], 8 << 20);
    assert_eq!(v["memlock"]["enough"], true);
    let function = &v["vfio_functions"][0];
    assert_eq!(function["address"], "0000:01:00.0");
    assert_eq!(function["iommu_group"], "7");
    assert_eq!(
        function["nodes"],
        serde_json::json!(["/dev/vfio/7", "/dev/vfio/devices/vfio0"])
    );
    let nodes = v["device_nodes"].as_array().unwrap();
    let iommu = nodes.iter().find(|n| n["path"] == "/dev/iommu").unwrap();
    assert_eq!(
        iommu["mode"],
        format!("{:04o}", as_the_kernel_makes(0o660)),
        "0660 when root"
    );
    assert!(iommu["uid"].is_u64());
    let modules = v["modules"].as_array().unwrap();
    assert!(modules.iter().all(|m| m["loaded"] == true), "{modules:?}");
    assert_eq!(v["state"]["present"], false);
    assert_eq!(v["state"]["path"], "/run/userpci/setup.json");
}

#[test]
fn setup_gives_the_user_the_nodes_status_shows_it_and_reset_undoes_it() {
    let fake = machine("cli-user");
    let v = json(&userpci(
        &fake,
        &[
            "--hugepages",
            "8",
            "--user",
            "alice",
            "--devices",
            "0000:01:00.0",
            "--json",
        ],
    ));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["dry_run"], false);
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["set_hugepages", "give_node", "give_node", "give_node"]
    );
    assert_eq!(v["changes"][1]["device"], "0000:01:00.0");
    assert_eq!(v["changes"][1]["to"]["mode"], "0600");
    assert_eq!(fake.owner("/dev/vfio/7").0, alice_uid());

    let status = json(&userpci(&fake, &["status", "--json"]));
    assert_eq!(status["state"]["present"], true);
    assert_eq!(status["state"]["change_count"], 4);
    let node = status["device_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "/dev/vfio/7")
        .unwrap()
        .clone();
    assert_eq!(node["user"], "alice");

    let out = userpci(&fake, &["reset"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("restored: /dev/vfio/7"), "{text}");
    assert!(text.contains("pages again"), "{text}");
    assert_eq!(
        fake.read("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")
            .trim(),
        "4"
    );
    let again = userpci(&fake, &["reset"]);
    assert!(again.status.success());
    assert!(stdout(&again).starts_with("nothing to reset: no /run/userpci/setup.json"));
    let again = json(&userpci(&fake, &["reset", "--json"]));
    assert_eq!(again["schema"], 1);
    assert_eq!(again["had_state"], false);
    assert_eq!(again["restored"], serde_json::json!([]));
}

#[test]
fn dry_run_works_without_root_and_a_change_without_root_is_refused() {
    let fake = machine("cli-nonroot");
    fake.not_root();
    let out = userpci(&fake, &["--hugemem", "64M", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("would: 2 MiB hugepages: 4 -> 32 (64 MiB)"),
        "{text}"
    );
    assert!(text.contains("memlock: soft 8 MiB"), "{text}");
    let out = userpci(&fake, &["--hugemem", "64M"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("userpci setup changes the system: run it as root (sudo)"));
    assert_eq!(
        fake.read("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")
            .trim(),
        "4"
    );
}

#[test]
fn bad_values_are_named_with_what_was_expected() {
    let fake = machine("cli-bad");
    for (args, message) in [
        (
            &["--hugemem", "3M", "--dry-run"][..],
            "invalid argument --hugemem = 3M: expected a non-zero multiple of 2 MiB",
        ),
        (
            &["--hugepages", "8", "--node", "3", "--dry-run"][..],
            "invalid argument --node = 3: expected a NUMA node with 2 MiB hugepages: 0",
        ),
        (
            &["--user", "nobody-here", "--dry-run"][..],
            "invalid argument --user = nobody-here: expected a user name of /etc/passwd",
        ),
        (
            &["--group", "wheel", "--dry-run"][..],
            "invalid argument --group = wheel: expected a group name of /etc/group",
        ),
        (
            &["--user", "alice", "--devices", "0000:09:00.0", "--dry-run"][..],
            "invalid argument --devices = 0000:09:00.0: expected a PCI function of this machine",
        ),
    ] {
        let out = userpci(&fake, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let out = userpci(&fake, &["--hugepages", "8", "--hugemem", "16M"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses both sizes");
}
