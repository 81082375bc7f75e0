//! CPU affinity: which cores this process may run on, and pinning the current thread to one.
//!
//! The masks are sized at run time (the kernel may have more than `CPU_SETSIZE` = 1024 CPUs),
//! so the libc `cpu_set_t` helpers are not used: a mask is a `Vec<u64>`, bit `n` for CPU `n`,
//! which is the layout the kernel reads and writes.

use std::io;

use crate::error::{Error, Result};

const BITS: usize = u64::BITS as usize;
/// Upper bound on the mask size we try: 1 << 20 CPUs.
const MAX_WORDS: usize = (1 << 20) / BITS;

/// The CPUs this thread is allowed to run on (`sched_getaffinity`), in increasing order.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let mut words = 1024 / BITS;
    loop {
        let mut mask = vec![0u64; words];
        let bytes = words * std::mem::size_of::<u64>();
        // SAFETY: the kernel writes at most `bytes` bytes into `mask`, which is a live buffer of
        // exactly that many bytes, aligned for `cpu_set_t` (an array of `unsigned long`).
        let rc = unsafe { libc::sched_getaffinity(0, bytes, mask.as_mut_ptr().cast()) };
        if rc == 0 {
            return Ok(cpus_in_mask(&mask));
        }
        let err = io::Error::last_os_error();
        // EINVAL: the kernel's mask is larger than ours; retry with a bigger one.
        if err.raw_os_error() == Some(libc::EINVAL) && words < MAX_WORDS {
            words *= 2;
            continue;
        }
        return Err(Error::Runtime {
            op: "sched_getaffinity",
            source: err,
        });
    }
}

/// Pins the calling thread to `core`.
///
/// Fails with [`Error::CoreUnavailable`], naming the core and the allowed CPU list, when the core
/// does not exist or is outside this process's affinity mask (cgroup cpuset, `taskset`).
pub fn pin_current_thread(core: usize) -> Result<()> {
    let allowed = allowed_cpus()?;
    if !allowed.contains(&core) {
        return Err(unavailable(core, &allowed));
    }
    let mut mask = vec![0u64; core / BITS + 1];
    mask[core / BITS] |= 1 << (core % BITS);
    let bytes = mask.len() * std::mem::size_of::<u64>();
    // SAFETY: the kernel reads `bytes` bytes from `mask`, a live buffer of exactly that size.
    let rc = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast()) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) {
        // The core went offline or the cpuset changed between the two calls.
        return Err(unavailable(core, &allowed_cpus().unwrap_or(allowed)));
    }
    Err(Error::Runtime {
        op: "sched_setaffinity",
        source: err,
    })
}

/// Checks that `core` is in this process's affinity mask, without pinning anything.
pub fn check_core(core: usize) -> Result<()> {
    let allowed = allowed_cpus()?;
    if allowed.contains(&core) {
        Ok(())
    } else {
        Err(unavailable(core, &allowed))
    }
}

/// The CPU the calling thread is running on right now (`sched_getcpu`).
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments; a negative return is an error.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

fn unavailable(core: usize, allowed: &[usize]) -> Error {
    Error::CoreUnavailable {
        core,
        allowed: format_cpu_list(allowed),
    }
}

fn cpus_in_mask(mask: &[u64]) -> Vec<usize> {
    let mut cpus = Vec::new();
    for (i, &word) in mask.iter().enumerate() {
        let mut w = word;
        while w != 0 {
            let bit = w.trailing_zeros() as usize;
            cpus.push(i * BITS + bit);
            w &= w - 1;
        }
    }
    cpus
}

/// Formats a sorted CPU list the way the kernel does (`Cpus_allowed_list`): `0-3,8,10-11`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "none".to_string();
    }
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ranges_like_the_kernel() {
        assert_eq!(format_cpu_list(&[]), "none");
        assert_eq!(format_cpu_list(&[0]), "0");
        assert_eq!(format_cpu_list(&[0, 1]), "0-1");
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
    }

    #[test]
    fn decodes_masks_across_words() {
        assert_eq!(cpus_in_mask(&[0b101, 1]), vec![0, 2, 64]);
        assert!(cpus_in_mask(&[0, 0]).is_empty());
    }

    #[test]
    fn a_core_outside_the_mask_is_named_in_the_error() {
        let err = check_core(4096).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("core 4096"), "{text}");
        let allowed = format_cpu_list(&allowed_cpus().unwrap());
        assert!(text.contains(&allowed), "{text}");
    }
}
