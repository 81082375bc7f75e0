//! `RLIMIT_MEMLOCK`: VFIO pins every DMA buffer it maps, and the kernel charges the pinned
//! memory against this limit for any process without `CAP_IPC_LOCK` (root has it). Read from
//! `/proc/self/limits` (no libc call, and a fake tree can stand for it).

use serde::Serialize;

use super::SystemRoot;
use crate::tools::error::{Result, ToolError};

const LIMITS: &str = "/proc/self/limits";

/// The memlock limit of this process and what the hugepages need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Memlock {
    /// The soft limit in bytes; `None` is unlimited.
    pub soft_bytes: Option<u64>,
    /// The hard limit in bytes; `None` is unlimited.
    pub hard_bytes: Option<u64>,
    /// What a process mapping all of the hugepages for DMA pins.
    pub needed_bytes: u64,
    /// True when the soft limit covers `needed_bytes`.
    pub enough: bool,
    /// How to raise it for an unprivileged user, and how it is charged.
    pub advice: Vec<String>,
}

/// The limit of this process, judged against `needed_bytes`; the advice names `user` (the
/// `--user` of setup) where it can, else says `USER`.
pub fn read(root: &SystemRoot, needed_bytes: u64, user: Option<&str>) -> Result<Memlock> {
    let text = root.read(LIMITS)?;
    let (soft_bytes, hard_bytes) = parse_limits(&text).ok_or_else(|| ToolError::Malformed {
        path: LIMITS.into(),
        message: "no 'Max locked memory' line with a soft and a hard limit".into(),
    })?;
    let enough = soft_bytes.is_none_or(|soft| soft >= needed_bytes);
    Ok(Memlock {
        soft_bytes,
        hard_bytes,
        needed_bytes,
        enough,
        advice: advice(needed_bytes, user.unwrap_or("USER")),
    })
}

/// The soft and hard limits of the `Max locked memory` line (`None`: unlimited).
pub fn parse_limits(text: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max locked memory"))?;
    let mut fields = line.split_whitespace();
    let limit = |field: Option<&str>| -> Option<Option<u64>> {
        match field? {
            "unlimited" => Some(None),
            number => number.parse().ok().map(Some),
        }
    };
    Some((limit(fields.next())?, limit(fields.next())?))
}

/// A size for people: `8 MiB`, `1 GiB`, `unlimited`.
pub fn human(bytes: Option<u64>) -> String {
    match bytes {
        None => "unlimited".into(),
        Some(bytes) if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) => {
            format!("{} GiB", bytes >> 30)
        }
        Some(bytes) if bytes >= 1 << 20 => format!("{} MiB", bytes >> 20),
        Some(bytes) => format!("{} KiB", bytes >> 10),
    }
}

/// How to give the unprivileged `user` a limit of `needed_bytes`.
pub fn advice(needed_bytes: u64, user: &str) -> Vec<String> {
    // limits.conf counts in KiB; round up so the line covers the need.
    let kib = needed_bytes.div_ceil(1024).max(1);
    vec![
        format!(
            "an unprivileged user needs a memlock limit of at least {} ({needed_bytes} bytes) \
             to map all of the hugepages for DMA; root is not limited (CAP_IPC_LOCK)",
            human(Some(needed_bytes))
        ),
        format!(
            "for login sessions: a file /etc/security/limits.d/userpci.conf with the lines \
             '{user} soft memlock {kib}' and '{user} hard memlock {kib}' (KiB; or 'unlimited'), \
             then log in again"
        ),
        format!(
            "for a systemd service: LimitMEMLOCK={needed_bytes} (or infinity) in its [Service] \
             section; in a shell that is root: ulimit -l {kib} before dropping privileges"
        ),
        "with iommufd (/dev/iommu) the pinned memory is charged to the user, all of that \
         user's processes together; with the VFIO container (vfio_iommu_type1) to each process"
            .into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memlock_line_of_proc_limits_parses() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max open files            1024                 524288               files     \n\
                    Max locked memory         8388608              unlimited            bytes     \n";
        assert_eq!(parse_limits(text), Some((Some(8 << 20), None)));
        assert_eq!(parse_limits("Max open files 1 2 files\n"), None);
        assert_eq!(human(Some(8 << 20)), "8 MiB");
        assert_eq!(human(Some(1 << 30)), "1 GiB");
        assert_eq!(human(None), "unlimited");
    }

    #[test]
    fn the_advice_names_the_amount_in_the_units_of_each_place() {
        let lines = advice(1 << 30, "alice");
        assert!(lines[0].contains("1 GiB"), "{lines:?}");
        assert!(
            lines[1].contains("'alice soft memlock 1048576'"),
            "{lines:?}"
        );
        assert!(lines[2].contains("LimitMEMLOCK=1073741824"), "{lines:?}");
        assert!(lines[3].contains("charged to the user"), "{lines:?}");
    }
}
