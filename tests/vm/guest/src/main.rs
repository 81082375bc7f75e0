//! `userpci-vmtest`: the VM test tier's guest binary.
//!
//! Runs inside the QEMU guest that `tests/vm/run.sh` boots (statically linked, started by the
//! initramfs's /init after it bound the NVMe functions to vfio-pci):
//!
//! ```text
//! userpci-vmtest <cdev|group> [name-filter ...]
//! userpci-vmtest --list
//! userpci-vmtest --helper <name> [args ...]      (a second process, started by a test)
//! userpci-vmtest --bench <group|cdev> [seconds]  (userpci vs the kernel: tests/vm/bench.sh)
//! ```
//!
//! Prints one line per test and a summary (format in [`harness`]); exits 0 only when every test
//! that ran passed. Tests live in [`tests`]: one function plus one line in `tests::TESTS`.

mod bench;
mod harness;
mod raw_vfio;
mod tests;

use std::process::ExitCode;

use userpci_framework::pci::SysfsPci;

use harness::{Ctx, Mode};

fn usage() -> ExitCode {
    eprintln!(
        "usage: userpci-vmtest <cdev|group> [name-filter ...] | --list | --helper <name> [args] \
         | --bench <group|cdev> [seconds]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        return usage();
    };
    if first == "--helper" {
        let Some(name) = args.get(1) else {
            return usage();
        };
        let Some(helper) = tests::HELPERS.iter().find(|h| h.name == name.as_str()) else {
            eprintln!("userpci-vmtest: no helper {name:?}");
            return ExitCode::from(2);
        };
        return ExitCode::from((helper.run)(&args[2..]));
    }
    if first == "--bench" {
        return ExitCode::from(bench::main(&args[1..]));
    }
    if first == "--list" {
        for t in tests::TESTS {
            println!("{} ({:?})", t.name, t.modes);
        }
        return ExitCode::SUCCESS;
    }
    let Some(mode) = Mode::parse(first) else {
        return usage();
    };
    let ctx = Ctx {
        mode,
        sysfs: SysfsPci::system(),
    };
    println!(
        "userpci-vmtest: mode {mode}, {} tests in the table",
        tests::TESTS.len()
    );
    let summary = harness::run_all(&ctx, tests::TESTS, &args[1..]);
    if summary.failed == 0 && summary.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
