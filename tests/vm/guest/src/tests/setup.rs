//! `userpci setup` on the guest's real kernel (issue 11 item 2). As root, `/bin/userpci setup`
//! reserves 2 MiB hugepages and gives controller C's device nodes to `vmuser` (uid 1000, from
//! the initramfs's /etc/passwd); `userpci nvme perf` then runs as uid 1000 with no capability
//! and no supplementary group, with the memlock limit setup said it needs, and completes I/O.
//! `setup reset` takes the nodes and the pages back, and the same perf is refused.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{Ctx, Failure, Mode, TestResult, SLOT2_FN0};
use crate::{ensure, fail, note};

/// The CLI, copied into the initramfs by run.sh.
const USERPCI: &str = "/bin/userpci";
/// `vmuser` of the initramfs's /etc/passwd and /etc/group.
const VMUSER: u32 = 1000;
const PAGES: u64 = 32;
const POOL: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().replace('\n', " | ")
}

fn as_root(args: &[&str]) -> Result<Value, Failure> {
    let out = Command::new(USERPCI).args(args).output()?;
    json(args, &out)
}

fn json(args: &[&str], out: &Output) -> Result<Value, Failure> {
    ensure!(
        out.status.success(),
        "userpci {} ({}): {}",
        args.join(" "),
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Failure(format!(
            "userpci {}: {e}: {}",
            args.join(" "),
            text(&out.stdout)
        ))
    })
}

/// Runs the CLI as uid/gid 1000 through the helper `as_user` (what `setpriv --reuid=1000
/// --regid=1000 --clear-groups` does), with `RLIMIT_MEMLOCK` set to exactly `memlock_bytes`
/// first, as the memlock advice says (`ulimit -l` as root before dropping privileges): the
/// child inherits it, so the run shows that the amount setup reports is enough. Root's own
/// limit is put back.
fn as_vmuser(memlock_bytes: u64, args: &[&str]) -> Result<Output, Failure> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
        fail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let exact = libc::rlimit {
        rlim_cur: memlock_bytes,
        rlim_max: memlock_bytes,
    };
    // SAFETY: setrlimit reads one `rlimit` through a valid pointer to a local.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &exact) } != 0 {
        fail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    let vmuser = VMUSER.to_string();
    let out = Command::new(std::env::current_exe()?)
        .args(["--helper", "as_user", &vmuser, &vmuser, USERPCI])
        .args(args)
        .output();
    // SAFETY: as above; root (CAP_SYS_RESOURCE) may raise its hard limit back.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) } != 0 {
        fail!(
            "restoring root's memlock limit: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(out?)
}

fn owner(path: &str) -> Result<(u32, u32), Failure> {
    let metadata = std::fs::metadata(path).map_err(|e| Failure(format!("stat {path}: {e}")))?;
    Ok((metadata.uid(), metadata.mode() & 0o7777))
}

fn pool_pages() -> Result<u64, Failure> {
    let text = std::fs::read_to_string(POOL).map_err(|e| Failure(format!("{POOL}: {e}")))?;
    text.trim()
        .parse()
        .map_err(|e| Failure(format!("{POOL}: {text:?}: {e}")))
}

/// The nodes of controller C that setup gives away in the run's mode.
fn expected_nodes(ctx: &Ctx) -> Result<Vec<String>, Failure> {
    let info = ctx.sysfs.function(SLOT2_FN0)?;
    let Some(group) = info.iommu_group else {
        fail!("{SLOT2_FN0} has no IOMMU group");
    };
    let mut nodes = vec![format!("/dev/vfio/{group}")];
    if ctx.mode == Mode::Cdev {
        let Some(cdev) = info.vfio_dev else {
            fail!("{SLOT2_FN0} has no vfio-dev in cdev mode");
        };
        nodes.push(format!("/dev/vfio/devices/{cdev}"));
        // Given only when not open to everyone already (setup leaves world bits as they are).
        if owner("/dev/iommu")?.1 & 0o006 != 0o006 {
            nodes.push("/dev/iommu".into());
        }
    }
    Ok(nodes)
}

pub fn setup_then_unprivileged_perf(ctx: &Ctx) -> TestResult {
    ensure!(
        Path::new(USERPCI).exists(),
        "no {USERPCI} in the initramfs (run.sh copies the static CLI there)"
    );
    let pages_before = pool_pages()?;
    let device = SLOT2_FN0.to_string();
    let pages = PAGES.to_string();
    let report = as_root(&[
        "setup",
        "--hugepages",
        &pages,
        "--user",
        "vmuser",
        "--devices",
        &device,
        "--json",
    ]);
    // Whatever fails from here on (setup too: it may fail half way), reset runs, so that the
    // tests after this one find the nodes root's and the pool as it was.
    let checked = match &report {
        Ok(report) => given_and_used(ctx, report, &device),
        Err(failure) => Err(Failure(failure.0.clone())),
    };
    let reset = as_root(&["setup", "reset", "--json"]);
    checked?;
    let reset = reset?;
    ensure!(reset["had_state"] == true, "reset found no state: {reset}");
    for node in expected_nodes(ctx)? {
        let (uid, _) = owner(&node)?;
        ensure!(
            uid == 0,
            "{node} still owned by uid {uid} after reset: {reset}"
        );
    }
    ensure!(
        pool_pages()? == pages_before,
        "{POOL}: {} after reset, {pages_before} before setup",
        pool_pages()?
    );
    let refused = as_vmuser(PAGES << 21, &perf_args(&device))?;
    ensure!(
        !refused.status.success(),
        "perf as uid {VMUSER} still worked after reset"
    );
    let stderr = text(&refused.stderr);
    ensure!(
        stderr.contains("give this user the device nodes"),
        "perf refused, but not for permission: {stderr}"
    );
    note!("after reset, uid {VMUSER} is refused: {stderr}");
    Ok(())
}

fn perf_args(device: &str) -> [&str; 7] {
    [
        "nvme",
        "perf",
        "--device",
        device,
        "--seconds",
        "0.2",
        "--json",
    ]
}

fn given_and_used(ctx: &Ctx, report: &Value, device: &str) -> TestResult {
    let given: Vec<&str> = report["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .filter(|c| c["kind"] == "give_node")
                .filter_map(|c| c["path"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for node in expected_nodes(ctx)? {
        ensure!(
            given.contains(&node.as_str()),
            "setup did not give {node}: {report}"
        );
        let (uid, mode) = owner(&node)?;
        ensure!(
            uid == VMUSER && mode & 0o600 == 0o600,
            "{node}: uid {uid} mode {mode:04o} after setup"
        );
    }
    let granted = pool_pages()?;
    let short = report["warnings"].to_string().contains("reserved only");
    ensure!(
        granted == PAGES || (short && granted > 0),
        "{POOL}: {granted} after setup --hugepages {PAGES}: {report}"
    );
    let needed = report["memlock"]["needed_bytes"].as_u64().unwrap_or(0);
    ensure!(
        needed == granted << 21,
        "memlock need {needed} for {granted} pages"
    );
    note!(
        "setup gave {} to uid {VMUSER}, {granted} hugepages, memlock {needed}",
        given.join(" ")
    );

    let status = as_vmuser(needed, &["setup", "status", "--json"])?;
    let status = json(&["setup", "status"], &status)?;
    ensure!(
        status["state"]["present"] == true,
        "status sees no state: {status}"
    );
    ensure!(
        status["hugepages"]["total_pages"] == granted,
        "status pages: {status}"
    );

    let args = perf_args(device);
    let perf = json(&args, &as_vmuser(needed, &args)?)?;
    let ios = perf["ios"].as_u64().unwrap_or(0);
    ensure!(ios > 0, "perf as uid {VMUSER} completed no I/O: {perf}");
    ensure!(
        perf["errors"] == 0,
        "perf as uid {VMUSER} had errors: {perf}"
    );
    ensure!(
        perf["backend"] == "vfio",
        "perf ran on {}, not VFIO",
        perf["backend"]
    );
    note!(
        "perf as uid {VMUSER} (only the device nodes): {ios} I/Os, backend {}",
        perf["backend"]
    );
    Ok(())
}

/// Helper `as_user UID GID PROGRAM ARGS...`: drops to UID and GID with no supplementary group
/// (std's `Command::uid` calls `setgroups(0)` when root drops privileges) and executes
/// PROGRAM in place. A helper rather than `Command::uid` in the test: std spawns a command
/// with a uid through fork and a socketpair, and the cdev guest kernel has no `CONFIG_NET`
/// (socketpair fails with ENOSYS); `exec` needs neither, and the helper itself starts through
/// posix_spawn.
pub fn helper_as_user(args: &[String]) -> u8 {
    let (Some(uid), Some(gid), Some(program)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("as_user: expected UID GID PROGRAM [ARGS...]");
        return 2;
    };
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
        eprintln!("as_user: UID {uid:?} and GID {gid:?} must be numbers");
        return 2;
    };
    let err = Command::new(program)
        .args(&args[3..])
        .uid(uid)
        .gid(gid)
        .exec();
    eprintln!("as_user: exec {program} as {uid}:{gid}: {err}");
    127
}
