//! CPU time of the whole machine and of the platform's processes, read from `/proc`
//! before and after a run, to report what one message costs beside how fast they went.
//!
//! Processes are grouped by their command name (`comm`): `postgres` (every backend and
//! helper), `redis-server`, `chat-gateway`, `chat-worker`, `chat-api` and this tool. A
//! process that exits during the run loses its share; the pools here keep their
//! connections, so that is rare. Whole-machine time is every CPU's non-idle time
//! (`/proc/stat`), which also counts whatever else the box was doing.

use std::collections::BTreeMap;
use std::time::Instant;

/// The groups reported, in order, with the command names that belong to each.
const ROLES: &[(&str, &[&str])] = &[
    ("postgres", &["postgres"]),
    ("redis", &["redis-server"]),
    ("gateways", &["chat-gateway"]),
    ("worker", &["chat-worker"]),
    ("api", &["chat-api"]),
    ("load tool", &["chat-load"]),
];

/// CPU counters at one moment, in clock ticks.
pub struct CpuSample {
    at: Instant,
    machine_busy: u64,
    cores: usize,
    by_role: BTreeMap<&'static str, u64>,
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Busy ticks of all CPUs (everything but idle and iowait) and the number of CPUs.
fn machine() -> (u64, usize) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let mut busy = 0;
    let mut cores = 0;
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let v: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                busy = total.saturating_sub(idle);
            }
            Some(name) if name.starts_with("cpu") => cores += 1,
            _ => {}
        }
    }
    (busy, cores)
}

/// `(comm, utime + stime)` of a process from its `/proc/<pid>/stat`.
fn process(stat: &str) -> Option<(&str, u64)> {
    // The name is in parentheses and may hold spaces: split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state(0) … utime(11) stime(12).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

impl CpuSample {
    pub fn take() -> Self {
        let (machine_busy, cores) = machine();
        let mut by_role: BTreeMap<&'static str, u64> = ROLES.iter().map(|(r, _)| (*r, 0)).collect();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let Some((comm, ticks)) = process(&stat) else {
                    continue;
                };
                if let Some((role, _)) = ROLES.iter().find(|(_, names)| names.contains(&comm)) {
                    *by_role.entry(role).or_default() += ticks;
                }
            }
        }
        Self {
            at: Instant::now(),
            machine_busy,
            cores,
            by_role,
        }
    }

    /// Report lines for `messages` handled between `self` and `later`.
    pub fn report(&self, later: &CpuSample, messages: u64) -> Vec<String> {
        let tick_ms = 1000.0 / clock_ticks_per_second();
        let per_message = |ticks: u64| ticks as f64 * tick_ms / messages.max(1) as f64;
        let wall = later.at.duration_since(self.at).as_secs_f64();
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let busy_share =
            busy as f64 * tick_ms / 1000.0 / (wall * later.cores.max(1) as f64) * 100.0;
        let roles: Vec<String> = ROLES
            .iter()
            .map(|(role, _)| {
                let ticks = later.by_role[role].saturating_sub(self.by_role[role]);
                format!("{role} {:.3}", per_message(ticks))
            })
            .collect();
        vec![
            format!(
                "CPU per message: whole machine {:.3} ms ({:.0}% of {} cores busy over {wall:.1} s, {messages} messages)",
                per_message(busy),
                busy_share,
                later.cores
            ),
            format!("CPU per message by process, ms: {}", roles.join(", ")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_with_spaces_and_parentheses() {
        let stat = "4242 (chat gateway) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(process(stat), Some(("chat gateway", 300)));
        let stat = "7 (a)b) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0";
        assert_eq!(process(stat), Some(("a)b", 3)));
    }

    #[test]
    fn samples_this_machine() {
        let a = CpuSample::take();
        let b = CpuSample::take();
        assert!(b.cores >= 1);
        assert!(b.machine_busy >= a.machine_busy);
        assert_eq!(a.report(&b, 10).len(), 2);
    }
}
