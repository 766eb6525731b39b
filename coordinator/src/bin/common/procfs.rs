//! Process measurements from `/proc` for the benchmark binaries: CPU time
//! and memory lines. Linux only; a missing field reads as 0.

use std::time::Duration;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub const CLK_TCK: f64 = 100.0;

/// User + system CPU time of `/proc/<what>` (`self`, or `self/task/<tid>`).
pub fn cpu_time(what: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): utime is
    // field 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / CLK_TCK)
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// KiB as MiB for people.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
