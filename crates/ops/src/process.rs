//! Process metrics read from `/proc/self` (Linux); zeros elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// A snapshot of this process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads the current values.
    pub fn read() -> ProcessStats {
        let mut s = ProcessStats::default();
        let ticks = 100.0; // USER_HZ is 100 on every Linux platform pier targets.
        let page = 4096;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut it = statm
                .split_whitespace()
                .map(|v| v.parse::<u64>().unwrap_or(0));
            s.virtual_bytes = it.next().unwrap_or(0) * page;
            s.resident_bytes = it.next().unwrap_or(0) * page;
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may contain spaces.
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                // utime and stime are fields 14 and 15 (1-based), starttime is 22.
                s.cpu_seconds = (num(11) + num(12)) / ticks;
                let start_ticks = num(19);
                if let Some(boot) = boot_time() {
                    s.start_time_seconds = boot + start_ticks / ticks;
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            s.open_fds = dir.count() as u64;
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            s.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        if s.start_time_seconds == 0.0 {
            s.start_time_seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
        }
        s
    }
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plausible_values_on_linux() {
        let s = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(s.resident_bytes > 0);
            assert!(s.open_fds >= 3);
            assert!(s.max_fds >= s.open_fds);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0
            );
        }
    }
}
