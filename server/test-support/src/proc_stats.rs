//! What `/proc` says about processes and the machine, read through `procfs`: CPU
//! seconds (a process, a PostgreSQL cluster or a database's backends, the whole
//! machine), peak resident memory and its reset, the load average, and a process's
//! local TCP ports. Every reader answers `None` (or nothing) when the process is gone
//! or the kernel refuses, never panics: the figures are reported, the caller judges.

use std::path::Path;

use procfs::prelude::*;
use procfs::process::{ClearRefs, FDTarget, Process};
use procfs::{KernelStats, LoadAverage};

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

/// CPU clock ticks `pid` used (utime + stime), with its reaped children's when
/// `children` is set.
fn cpu_ticks(pid: u32, children: bool) -> Option<u64> {
    let stat = process(pid)?.stat().ok()?;
    let own = stat.utime + stat.stime;
    let reaped = if children {
        u64::try_from(stat.cutime + stat.cstime).unwrap_or(0)
    } else {
        0
    };
    Some(own + reaped)
}

/// CPU seconds `pid` used so far (utime + stime).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_ticks(pid, false).map(ticks_to_seconds)
}

/// CPU seconds this process (the test or load generator) used so far.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// CPU seconds of a PostgreSQL cluster whose data directory is `data_dir`: the
/// postmaster with its reaped children, plus its live children.
pub fn postgres_cluster_cpu_seconds(data_dir: &Path) -> Option<f64> {
    let postmaster: u32 = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let mut ticks = cpu_ticks(postmaster, true)?;
    for child in procfs::process::all_processes().ok()?.flatten() {
        let Ok(stat) = child.stat() else { continue };
        if u32::try_from(stat.ppid).ok() == Some(postmaster) {
            ticks += stat.utime + stat.stime;
        }
    }
    Some(ticks_to_seconds(ticks))
}

/// CPU seconds of the PostgreSQL backends serving `database` (their process title
/// names it: `postgres: user database host ...`).
pub fn postgres_backends_cpu_seconds(database: &str) -> Option<f64> {
    let mut ticks = 0;
    for backend in procfs::process::all_processes().ok()?.flatten() {
        let Ok(title) = backend.cmdline() else {
            continue;
        };
        let title = title.join(" ");
        if title.starts_with("postgres:") && title.split_whitespace().any(|word| word == database) {
            if let Ok(stat) = backend.stat() {
                ticks += stat.utime + stat.stime;
            }
        }
    }
    Some(ticks_to_seconds(ticks))
}

/// Busy CPU seconds of the whole machine (all cores: everything but idle and iowait).
pub fn machine_busy_seconds() -> Option<f64> {
    let total = KernelStats::current().ok()?.total;
    let busy = total.user
        + total.nice
        + total.system
        + total.irq.unwrap_or(0)
        + total.softirq.unwrap_or(0)
        + total.steal.unwrap_or(0);
    Some(ticks_to_seconds(busy))
}

/// The 1, 5 and 15-minute load averages as `/proc/loadavg` writes them, or `unknown`.
pub fn load_average() -> String {
    LoadAverage::current()
        .map(|load| format!("{:.2} {:.2} {:.2}", load.one, load.five, load.fifteen))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Peak resident memory of `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    process(pid)?.status().ok()?.vmhwm
}

/// Resets the kernel's peak-RSS mark of `pid` so the next [`peak_rss_kib`] covers what
/// follows; false when the kernel refuses (then readings are cumulative).
pub fn reset_peak_rss(pid: u32) -> bool {
    process(pid).is_some_and(|process| process.clear_refs(ClearRefs::PeakRSS).is_ok())
}

/// The local ports of `pid`'s IPv4 TCP sockets.
pub fn local_tcp_ports(pid: u32) -> Vec<u16> {
    let Some(process) = process(pid) else {
        return Vec::new();
    };
    let inodes: Vec<u64> = process
        .fd()
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| match fd.target {
                    FDTarget::Socket(inode) => Some(inode),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    procfs::net::tcp()
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| inodes.contains(&entry.inode))
        .map(|entry| entry.local_address.port())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        // Busy until the kernel has counted a tick of CPU (bounded: 10 s of wall time).
        let started = std::time::Instant::now();
        while own_cpu_seconds().is_some_and(|seconds| seconds == 0.0)
            && started.elapsed() < std::time::Duration::from_secs(10)
        {
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        assert!(own_cpu_seconds().is_some_and(|seconds| seconds > 0.0));
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
        assert!(machine_busy_seconds().is_some_and(|seconds| seconds > 0.0));
        assert_ne!(load_average(), "unknown");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(local_tcp_ports(std::process::id()).contains(&port));
    }
}
