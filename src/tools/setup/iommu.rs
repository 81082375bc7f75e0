//! The IOMMU: on or off (IOMMU groups in sysfs), what the kernel command line asked for, and
//! when it is off, why and what to do about it. VFIO takes no function without an IOMMU group.

use serde::Serialize;

use super::SystemRoot;
use crate::tools::error::Result;

const GROUPS: &str = "/sys/kernel/iommu_groups";

/// The IOMMU as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IommuState {
    /// True when the kernel made IOMMU groups.
    pub enabled: bool,
    pub group_count: usize,
    /// The IOMMU options of `/proc/cmdline` (`intel_iommu=on`, `amd_iommu=off`, `iommu=pt`).
    pub cmdline_options: Vec<String>,
    /// `GenuineIntel` or `AuthenticAMD` from `/proc/cpuinfo`, when known.
    pub cpu_vendor: Option<String>,
    /// What this means and what to do, one sentence each.
    pub explanation: Vec<String>,
}

/// Reads the IOMMU state from the groups, `/proc/cmdline` and `/proc/cpuinfo`.
pub fn read(root: &SystemRoot) -> Result<IommuState> {
    let group_count = root
        .dir_names(GROUPS)?
        .iter()
        .filter(|name| name.parse::<u32>().is_ok())
        .count();
    let cmdline = root.read_optional("/proc/cmdline")?.unwrap_or_default();
    let cmdline_options = iommu_options(&cmdline);
    let cpu_vendor = root
        .read_optional("/proc/cpuinfo")?
        .and_then(|text| cpu_vendor(&text));
    let explanation = explain(group_count, &cmdline_options, cpu_vendor.as_deref());
    Ok(IommuState {
        enabled: group_count > 0,
        group_count,
        cmdline_options,
        cpu_vendor,
        explanation,
    })
}

/// The one-line warning of an IOMMU that is off (the explanation says what to do).
pub fn off_warning(state: &IommuState) -> Option<String> {
    (!state.enabled).then(|| {
        "the IOMMU is off: VFIO can take no function (the IOMMU explanation says why)".to_string()
    })
}

/// The words of a kernel command line that configure the IOMMU.
pub fn iommu_options(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter(|word| {
            ["intel_iommu=", "amd_iommu=", "iommu=", "iommu.passthrough="]
                .iter()
                .any(|prefix| word.starts_with(prefix))
        })
        .map(str::to_string)
        .collect()
}

fn cpu_vendor(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("vendor_id"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(|vendor| vendor.trim().to_string())
}

fn has(options: &[String], word: &str) -> bool {
    options.iter().any(|option| option == word)
}

/// The sentences of the report.
pub fn explain(group_count: usize, options: &[String], cpu_vendor: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    let passthrough = has(options, "iommu=pt") || has(options, "iommu.passthrough=1");
    if group_count > 0 {
        lines.push(format!(
            "the IOMMU is on: {group_count} group{} in {GROUPS}; VFIO can take functions",
            if group_count == 1 { "" } else { "s" }
        ));
        if passthrough {
            lines.push(
                "iommu=pt: kernel drivers' devices bypass translation (faster for them); \
                 functions given to VFIO are still translated and isolated"
                    .into(),
            );
        }
        return lines;
    }
    lines.push(format!(
        "the IOMMU is off: {GROUPS} is empty, so vfio-pci can take no function and userpci \
         cannot open any device"
    ));
    let intel_off = has(options, "intel_iommu=off");
    let amd_off = has(options, "amd_iommu=off");
    let intel_on = has(options, "intel_iommu=on");
    if intel_off || amd_off {
        lines.push(format!(
            "the kernel command line turns it off ({}): remove that word",
            if intel_off {
                "intel_iommu=off"
            } else {
                "amd_iommu=off"
            }
        ));
    } else if intel_on || cpu_vendor == Some("AuthenticAMD") {
        lines.push(
            "the kernel looked for an IOMMU and found none: enable VT-d (Intel) or AMD-Vi / \
             IOMMU in the firmware setup; in a virtual machine the hypervisor must give one \
             (QEMU: -device intel-iommu with -machine q35)"
                .into(),
        );
    } else {
        lines.push(
            "the kernel command line has no intel_iommu=on, and most kernels leave the Intel \
             IOMMU off without it: add intel_iommu=on (and iommu=pt, for the speed of kernel \
             drivers) to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub, reboot"
                .into(),
        );
        lines.push("and enable VT-d in the firmware setup if it is off".into());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iommu_options_are_picked_from_the_command_line() {
        let options =
            iommu_options("BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt quiet");
        assert_eq!(options, ["intel_iommu=on", "iommu=pt"]);
    }

    #[test]
    fn an_iommu_turned_off_on_the_command_line_is_named() {
        let lines = explain(0, &["intel_iommu=off".to_string()], Some("GenuineIntel"));
        assert!(lines[0].contains("off"), "{lines:?}");
        assert!(lines[1].contains("remove"), "{lines:?}");
        assert!(lines[1].contains("intel_iommu=off"), "{lines:?}");
    }

    #[test]
    fn asked_for_but_absent_points_at_the_firmware() {
        let lines = explain(0, &["intel_iommu=on".to_string()], Some("GenuineIntel"));
        assert!(lines[1].contains("firmware"), "{lines:?}");
        let on = explain(3, &["iommu=pt".to_string()], None);
        assert!(on[0].contains("3 groups"), "{on:?}");
        assert!(on[1].starts_with("iommu=pt"), "{on:?}");
    }
}
