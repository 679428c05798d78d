//! How many intra-op threads libtorch uses when the configuration leaves it open
//! (`run.threads = 0`, no `--threads`): the CPUs this process can actually get.
//!
//! Why: libtorch's CPU kernels run their parallel regions on an OpenMP team (the PyTorch wheel
//! links GNU `libgomp`), and every region ends at a barrier that waits for all of the team.
//! When the team has more threads than there are free cores, one of them is descheduled in
//! favour of the other process, and the whole region waits for it to get a time slice again;
//! the others spin, then sleep on a futex, meanwhile. A training step runs thousands of short
//! regions, so each pays a scheduler delay instead of microseconds of work: 5-50× slower on a
//! 2-core machine with one other CPU-bound process, while one thread there runs at almost
//! its quiet speed. `OMP_WAIT_POLICY=PASSIVE` (sleep at once instead of spinning) only
//! trims the spinning, not the wait, and libgomp reads it when it is loaded, before `main`,
//! so a process cannot set it for itself anyway. Fewer threads is the remedy.
//!
//! The choice ([`choose_threads`], a pure function of [`CpuBudget`]) takes the CPUs in the
//! affinity mask, capped by the cgroup's CPU quota and by libtorch's own default
//! (`OMP_NUM_THREADS` where set, else what libtorch picks, often the physical cores), minus
//! the CPUs other processes keep busy (`procs_running` of `/proc/stat` less this process's
//! own running threads, scaled to the share of online CPUs the mask covers), and never less
//! than one. The binary decides once
//! before any tensor work ([`apply_automatic`]) and again at every epoch boundary
//! ([`recheck`]), so a run adapts when a competing process starts or stops. A count given
//! by `run.threads` or `--threads` ([`pin`]) is never changed.
//!
//! libtorch's CPU results can depend on the thread count: runs that must reproduce bit for
//! bit (across machines, or a resume under different load) set `run.threads`.

use std::sync::Mutex;

use serde::Serialize;

/// What the machine offers this process, as read from `/proc` and the cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuBudget {
    /// CPUs in this process's affinity mask.
    pub affinity_cpus: usize,
    /// CPUs online on the machine.
    pub online_cpus: usize,
    /// The cgroup's CPU quota in CPUs (quota / period), where one is set.
    pub quota_cpus: Option<f64>,
    /// libtorch's default thread count (`OMP_NUM_THREADS`, else its own pick).
    pub libtorch_default: usize,
    /// Runnable threads of other processes, machine-wide.
    pub other_runnable: usize,
}

/// A thread count and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadChoice {
    pub threads: usize,
    /// `true` when chosen here; `false` when `run.threads` or `--threads` gave it.
    pub automatic: bool,
    pub reason: String,
}

/// The thread count for `budget`: see the module documentation.
pub fn choose_threads(budget: &CpuBudget) -> ThreadChoice {
    let affinity = budget.affinity_cpus.max(1);
    let online = budget.online_cpus.max(affinity);
    let mut limit = affinity;
    let mut limits = vec![format!("{affinity} CPUs in the affinity mask")];
    if let Some(quota) = budget.quota_cpus {
        let quota_threads = (quota.floor() as usize).max(1);
        limits.push(format!("a cgroup quota of {quota:.2} CPUs"));
        limit = limit.min(quota_threads);
    }
    if budget.libtorch_default > 0 && budget.libtorch_default < limit {
        limits.push(format!("libtorch's default of {}", budget.libtorch_default));
        limit = budget.libtorch_default;
    }
    // Other processes' runnable threads, the share of them that lands on our CPUs when the
    // scheduler spreads them evenly.
    let busy = (budget.other_runnable as f64 * affinity as f64 / online as f64).round() as usize;
    let free = affinity.saturating_sub(busy);
    let threads = limit.min(free).max(1);
    let reason = if busy == 0 {
        format!("{} (no other runnable process)", limits.join(", "))
    } else {
        format!("{}, {busy} of them busy with other processes ({} runnable)", limits.join(", "), budget.other_runnable)
    };
    ThreadChoice { threads, automatic: true, reason }
}

/// The number of CPUs in a cpu list such as `Cpus_allowed_list` (`0-3,8,10-11`).
pub fn parse_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0;
    for part in list.trim().split(',').filter(|part| !part.is_empty()) {
        count += match part.split_once('-') {
            Some((first, last)) => last.trim().parse::<usize>().ok()?.checked_sub(first.trim().parse::<usize>().ok()?)? + 1,
            None => {
                part.trim().parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

/// CPUs a cgroup v2 `cpu.max` (`"200000 100000"`; `"max 100000"` is unlimited) allows.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// `procs_running` of `/proc/stat`: runnable threads, machine-wide (this process's included).
pub fn parse_procs_running(stat: &str) -> Option<usize> {
    stat.lines().find_map(|line| line.strip_prefix("procs_running")).and_then(|rest| rest.trim().parse().ok())
}

/// Online CPUs: the `cpuN` lines of `/proc/stat`.
pub fn parse_online_cpus(stat: &str) -> usize {
    stat.lines().filter(|line| line.strip_prefix("cpu").and_then(|rest| rest.chars().next()).is_some_and(|c| c.is_ascii_digit())).count()
}

fn affinity_cpus() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).and_then(parse_cpu_list)
}

/// The CPU quota of this process's cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` /
/// `cpu.cfs_period_us`), where one is set.
fn quota_cpus() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            if let Some(quota) =
                std::fs::read_to_string(std::path::Path::new("/sys/fs/cgroup").join(path).join("cpu.max")).ok().and_then(|t| parse_cpu_max(&t))
            {
                return Some(quota);
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for root in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
                let directory = std::path::Path::new(root).join(path);
                let read = |name: &str| std::fs::read_to_string(directory.join(name)).ok();
                if let (Some(quota), Some(period)) = (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")) {
                    return parse_cpu_max(&format!("{} {}", quota.trim(), period.trim()));
                }
            }
        }
    }
    None
}

/// This process's threads that are running or runnable now (state `R`).
fn own_running_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 1 };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                // The state follows the parenthesised name, which may itself hold spaces.
                .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('R')))
                .unwrap_or(false)
        })
        .count()
        .max(1)
}

/// Other processes' runnable threads: the median of a few samples of `procs_running` less
/// this process's own running threads (spinning OpenMP workers count as running).
fn other_runnable() -> usize {
    let mut samples: Vec<usize> = (0..3)
        .filter_map(|sample| {
            if sample > 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let stat = std::fs::read_to_string("/proc/stat").ok()?;
            Some(parse_procs_running(&stat)?.saturating_sub(own_running_threads()))
        })
        .collect();
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// What this machine offers now. `libtorch_default` is libtorch's count before this module
/// changed it.
pub fn read_budget(libtorch_default: usize) -> CpuBudget {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fallback = std::thread::available_parallelism().map_or(1, |n| n.get());
    let affinity_cpus = affinity_cpus().unwrap_or(fallback);
    CpuBudget {
        affinity_cpus,
        online_cpus: parse_online_cpus(&stat).max(affinity_cpus),
        quota_cpus: quota_cpus(),
        libtorch_default,
        other_runnable: other_runnable(),
    }
}

/// The choice in force, and libtorch's own default (read once, before the first change).
struct State {
    current: Option<ThreadChoice>,
    libtorch_default: usize,
}

static STATE: Mutex<State> = Mutex::new(State { current: None, libtorch_default: 0 });

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn libtorch_default(state: &mut State) -> usize {
    if state.libtorch_default == 0 {
        state.libtorch_default = tch::get_num_threads().max(1) as usize;
    }
    state.libtorch_default
}

/// Chooses the thread count from the CPUs available now and sets it, unless a count was
/// pinned. Call before any tensor work.
pub fn apply_automatic() -> ThreadChoice {
    let mut state = state();
    if let Some(current) = state.current.as_ref().filter(|choice| !choice.automatic) {
        return current.clone();
    }
    let choice = choose_threads(&read_budget(libtorch_default(&mut state)));
    tch::set_num_threads(choice.threads as i32);
    state.current = Some(choice.clone());
    choice
}

/// Sets `threads` as given by `source` (`run.threads`, `--threads`); never changed after.
pub fn pin(threads: usize, source: &str) -> ThreadChoice {
    let mut state = state();
    libtorch_default(&mut state);
    tch::set_num_threads(threads as i32);
    let choice = ThreadChoice { threads, automatic: false, reason: format!("set by {source}") };
    state.current = Some(choice.clone());
    choice
}

/// At an epoch boundary: chooses again when the count is automatic, and returns the new
/// choice when the count changed.
pub fn recheck() -> Option<ThreadChoice> {
    let previous = state().current.clone();
    match previous {
        Some(choice) if !choice.automatic => None,
        previous => {
            let choice = apply_automatic();
            (previous.map(|p| p.threads) != Some(choice.threads)).then_some(choice)
        }
    }
}

/// The choice in force: automatic or pinned, or libtorch's default where neither happened.
pub fn current() -> ThreadChoice {
    let mut state = state();
    match &state.current {
        Some(choice) => choice.clone(),
        None => {
            let threads = libtorch_default(&mut state);
            ThreadChoice { threads, automatic: false, reason: "libtorch's default".to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(affinity_cpus: usize, online_cpus: usize, quota_cpus: Option<f64>, libtorch_default: usize, other_runnable: usize) -> CpuBudget {
        CpuBudget { affinity_cpus, online_cpus, quota_cpus, libtorch_default, other_runnable }
    }

    #[test]
    fn a_quiet_machine_gets_libtorchs_default() {
        // A quiet 2-core machine.
        let choice = choose_threads(&budget(2, 2, None, 2, 0));
        assert_eq!(choice.threads, 2);
        assert!(choice.reason.contains("no other runnable process"), "{}", choice.reason);
        // 16 logical CPUs where libtorch defaults to 8 (its physical cores): the default caps it.
        let choice = choose_threads(&budget(16, 16, None, 8, 0));
        assert_eq!(choice.threads, 8);
        assert!(choice.reason.contains("libtorch's default of 8"), "{}", choice.reason);
    }

    #[test]
    fn other_runnable_processes_take_their_cores() {
        // 2 cores beside a 2-thread matmul loop (docs/BENCHMARKS.md's probe): one thread.
        assert_eq!(choose_threads(&budget(2, 2, None, 2, 2)).threads, 1);
        // One single-threaded busy loop on 2 cores: one thread.
        let choice = choose_threads(&budget(2, 2, None, 2, 1));
        assert_eq!(choice.threads, 1);
        assert!(choice.reason.contains("1 of them busy"), "{}", choice.reason);
        // Never fewer than one, however loaded (4 builders on 2 cores).
        assert_eq!(choose_threads(&budget(2, 2, None, 2, 7)).threads, 1);
        // 16 cores, 3 busy elsewhere: 13 free, capped by libtorch's 16.
        assert_eq!(choose_threads(&budget(16, 16, None, 16, 3)).threads, 13);
    }

    #[test]
    fn a_cgroup_quota_caps_the_count() {
        // A container limited to 2.5 CPUs on a quiet 64-CPU host: 2 threads.
        let choice = choose_threads(&budget(64, 64, Some(2.5), 32, 0));
        assert_eq!(choice.threads, 2);
        assert!(choice.reason.contains("quota of 2.50"), "{}", choice.reason);
        // Less than one CPU of quota still runs one thread.
        assert_eq!(choose_threads(&budget(8, 8, Some(0.5), 8, 0)).threads, 1);
        // A busy host: 40 runnable elsewhere on 64 CPUs leaves 24 free, the quota still binds.
        assert_eq!(choose_threads(&budget(64, 64, Some(4.0), 32, 40)).threads, 4);
    }

    #[test]
    fn an_affinity_mask_sees_its_share_of_the_load() {
        // taskset -c 0-3 on a 32-CPU host with 16 runnable elsewhere: about 2 of our 4 busy.
        assert_eq!(choose_threads(&budget(4, 32, None, 16, 16)).threads, 2);
        // The same load on the whole host does not touch a 4-CPU mask on a 32-CPU host much.
        assert_eq!(choose_threads(&budget(4, 32, None, 16, 4)).threads, 3);
    }

    #[test]
    fn proc_and_cgroup_files_parse() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("-1 100000"), None, "cgroup v1's unlimited quota");
        let stat = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1\nprocs_running 3\nprocs_blocked 0\n";
        assert_eq!(parse_procs_running(stat), Some(3));
        assert_eq!(parse_online_cpus(stat), 2);
    }
}
