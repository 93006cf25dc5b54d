//! Resident memory of a process, read from `/proc/<pid>/status` (Linux): `VmHWM` is the peak
//! resident set size, `VmRSS` the current one. The peak can be reset to the current value by
//! writing `5` to `/proc/self/clear_refs` (Linux 4.0+), so each measured round starts fresh.

use std::path::Path;

/// A `kB` field of a `/proc/<pid>/status` file, in bytes; `None` when absent (not Linux, no access).
fn status_field(status: &Path, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Peak resident set size of this process since start or the last [`reset_peak`], in bytes.
pub fn own_peak() -> Option<u64> {
    status_field(Path::new("/proc/self/status"), "VmHWM")
}

/// Current resident set size of this process, in bytes.
pub fn own_current() -> Option<u64> {
    status_field(Path::new("/proc/self/status"), "VmRSS")
}

/// Peak resident set size of another process (the emulator child), in bytes.
pub fn peak_of(pid: u32) -> Option<u64> {
    status_field(&Path::new("/proc").join(pid.to_string()).join("status"), "VmHWM")
}

/// Resets this process's peak to its current resident size; false when the kernel refuses.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_on_linux() {
        if cfg!(target_os = "linux") {
            // Current first: other test threads may allocate between the two reads.
            let current = own_current().expect("VmRSS");
            let peak = own_peak().expect("VmHWM");
            assert!(peak >= current && current > 0);
        }
    }

    #[test]
    fn missing_field_is_none() {
        assert_eq!(status_field(Path::new("/proc/self/status"), "NoSuchField"), None);
    }
}
