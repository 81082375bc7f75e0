//! The 2 MiB hugepage pools and hugetlbfs mounts.
//!
//! The framework's DMA allocator maps anonymous `MAP_HUGETLB` memory, which needs pages in the
//! pool but no mount; DPDK-style tools expect a hugetlbfs mount as well, so setup makes one.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SystemRoot;
use crate::tools::error::{invalid, Result};

/// The size of the hugepages userpci uses (and the only one setup reserves).
pub const HUGEPAGE_BYTES: u64 = 2 << 20;
/// The sysfs directory name of the 2 MiB pool.
const POOL_DIR: &str = "hugepages-2048kB";
/// The machine-wide pool (the kernel spreads it over the nodes).
pub const GLOBAL_POOL: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";
/// Where NUMA nodes appear.
const NODE_ROOT: &str = "/sys/devices/system/node";
/// Where setup mounts hugetlbfs when nothing is mounted (as systemd's dev-hugepages.mount).
pub const DEFAULT_MOUNT: &str = "/dev/hugepages";

/// One pool of 2 MiB pages: a NUMA node's, or the machine's when there are no node dirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    /// The NUMA node, `None` for the machine-wide pool (a string in JSON, as every id).
    #[serde(serialize_with = "node_as_string")]
    pub node: Option<u32>,
    /// Its sysfs directory (`/sys/devices/system/node/node0/hugepages/hugepages-2048kB`).
    pub path: String,
    pub total_pages: u64,
    pub free_pages: u64,
    pub total_bytes: u64,
}

/// A NUMA node as JSON shows ids: `"1"`, or `null` for the machine-wide pool.
pub fn node_as_string<S: serde::Serializer>(
    node: &Option<u32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match node {
        Some(node) => serializer.serialize_str(&node.to_string()),
        None => serializer.serialize_none(),
    }
}

/// The `nr_hugepages` file of a pool directory.
pub fn count_file(pool_dir: &str) -> PathBuf {
    Path::new(pool_dir).join("nr_hugepages")
}

/// True for a 2 MiB pool's `nr_hugepages` (the machine's or a node's): the only files reset
/// writes a count to, whatever the state file says.
pub fn is_pool_count_file(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("/nr_hugepages") else {
        return false;
    };
    dir == GLOBAL_POOL
        || dir
            .strip_prefix(NODE_ROOT)
            .and_then(|rest| rest.strip_prefix("/node"))
            .and_then(|rest| rest.strip_suffix(&format!("/hugepages/{POOL_DIR}")))
            .is_some_and(|node| node.parse::<u32>().is_ok())
}

fn node_pool_dir(node: u32) -> String {
    format!("{NODE_ROOT}/node{node}/hugepages/{POOL_DIR}")
}

/// The NUMA nodes that have a 2 MiB pool, ascending.
pub fn nodes(root: &SystemRoot) -> Result<Vec<u32>> {
    let mut nodes: Vec<u32> = root
        .dir_names(NODE_ROOT)?
        .iter()
        .filter_map(|name| name.strip_prefix("node")?.parse().ok())
        .filter(|&node| root.exists(node_pool_dir(node)))
        .collect();
    nodes.sort_unstable();
    Ok(nodes)
}

/// The pools: one per NUMA node, or the machine-wide one when the kernel shows no nodes.
pub fn pools(root: &SystemRoot) -> Result<Vec<Pool>> {
    let nodes = nodes(root)?;
    let dirs: Vec<(Option<u32>, String)> = if nodes.is_empty() {
        if !root.exists(GLOBAL_POOL) {
            return Ok(Vec::new());
        }
        vec![(None, GLOBAL_POOL.to_string())]
    } else {
        nodes
            .into_iter()
            .map(|node| (Some(node), node_pool_dir(node)))
            .collect()
    };
    dirs.into_iter()
        .map(|(node, path)| {
            let total_pages = root.read_number(count_file(&path))?;
            let free_pages = root.read_number(Path::new(&path).join("free_hugepages"))?;
            Ok(Pool {
                node,
                path,
                total_pages,
                free_pages,
                total_bytes: total_pages * HUGEPAGE_BYTES,
            })
        })
        .collect()
}

/// The pool directory a reservation writes: the node's with `--node`, else the machine's
/// (as `dpdk-hugepages.py` without `--node`). `--node 0` on a machine without NUMA dirs is
/// the machine's pool.
pub fn pool_dir_for(root: &SystemRoot, node: Option<u32>) -> Result<String> {
    let nodes = nodes(root)?;
    match node {
        Some(node) if nodes.contains(&node) => Ok(node_pool_dir(node)),
        Some(0) if nodes.is_empty() && root.exists(GLOBAL_POOL) => Ok(GLOBAL_POOL.to_string()),
        Some(node) => Err(invalid(
            "--node",
            node,
            if nodes.is_empty() {
                "0 (this machine shows no NUMA nodes in /sys/devices/system/node)".to_string()
            } else {
                format!(
                    "a NUMA node with 2 MiB hugepages: {}",
                    nodes
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        )),
        None if root.exists(GLOBAL_POOL) => Ok(GLOBAL_POOL.to_string()),
        None => Err(invalid(
            "--hugepages",
            "(any)",
            format!("a kernel with 2 MiB hugepages ({GLOBAL_POOL} is missing: CONFIG_HUGETLBFS)"),
        )),
    }
}

/// Parses a memory size: `512M`, `1G`, `1GiB`, `2048k`, or plain bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let expected = "a size such as 512M, 1G or 2097152 (bytes)";
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| invalid("--hugemem", text, expected))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(invalid("--hugemem", text, expected)),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| invalid("--hugemem", text, "a size below 16 EiB"))
}

/// The number of 2 MiB pages in `bytes`, which must be a whole number of them.
pub fn pages_in(text: &str, bytes: u64) -> Result<u64> {
    if bytes == 0 || !bytes.is_multiple_of(HUGEPAGE_BYTES) {
        return Err(invalid(
            "--hugemem",
            text,
            "a non-zero multiple of 2 MiB (2M, 512M, 1G)",
        ));
    }
    Ok(bytes / HUGEPAGE_BYTES)
}

/// A hugetlbfs mount from `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub target: String,
    /// The `pagesize=` option; `None` is the default hugepage size (2 MiB on x86).
    pub pagesize: Option<String>,
}

impl Mount {
    /// True when this mount serves 2 MiB pages.
    pub fn is_2mib(&self) -> bool {
        self.pagesize
            .as_deref()
            .is_none_or(|size| matches!(size, "2M" | "2m" | "2048k" | "2048K" | "2097152"))
    }
}

/// The hugetlbfs mounts of `/proc/mounts`.
pub fn mounts(root: &SystemRoot) -> Result<Vec<Mount>> {
    let text = root.read_optional("/proc/mounts")?.unwrap_or_default();
    Ok(parse_mounts(&text))
}

/// The hugetlbfs lines of a mounts table (`nodev /dev/hugepages hugetlbfs rw,pagesize=2M 0 0`).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(2) != Some(&"hugetlbfs") {
                return None;
            }
            let pagesize = fields
                .get(3)?
                .split(',')
                .find_map(|option| option.strip_prefix("pagesize="))
                .map(str::to_string);
            Some(Mount {
                target: unescape_mount_path(fields.get(1)?),
                pagesize,
            })
        })
        .collect()
}

/// `/proc/mounts` writes a space as `\040` (and tab, newline, backslash likewise).
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_must_be_whole_hugepages() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2048k").unwrap(), 2 << 20);
        assert_eq!(parse_size("4194304").unwrap(), 4 << 20);
        assert_eq!(pages_in("1G", 1 << 30).unwrap(), 512);
        let err = pages_in("3M", 3 << 20).unwrap_err().to_string();
        assert!(err.contains("--hugemem = 3M"), "{err}");
        assert!(err.contains("multiple of 2 MiB"), "{err}");
        let err = parse_size("lots").unwrap_err().to_string();
        assert!(err.contains("--hugemem = lots"), "{err}");
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn only_pool_count_files_are_pool_count_files() {
        assert!(is_pool_count_file(
            &count_file(GLOBAL_POOL).display().to_string()
        ));
        assert!(is_pool_count_file(
            "/sys/devices/system/node/node12/hugepages/hugepages-2048kB/nr_hugepages"
        ));
        assert!(!is_pool_count_file(
            "/sys/devices/system/node/nodeX/hugepages/hugepages-2048kB/nr_hugepages"
        ));
        assert!(!is_pool_count_file("/etc/passwd"));
        assert!(!is_pool_count_file(
            "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
        ));
    }

    #[test]
    fn hugetlbfs_mounts_are_found_with_their_page_size() {
        let table = "proc /proc proc rw 0 0\n\
                     hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
                     none /mnt/huge\\0401g hugetlbfs rw,pagesize=1024M 0 0\n\
                     nodev /mnt/plain hugetlbfs rw 0 0\n";
        let mounts = parse_mounts(table);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].target, "/dev/hugepages");
        assert!(mounts[0].is_2mib());
        assert_eq!(mounts[1].target, "/mnt/huge 1g");
        assert!(!mounts[1].is_2mib());
        assert_eq!(mounts[2].pagesize, None);
        assert!(mounts[2].is_2mib());
    }
}
