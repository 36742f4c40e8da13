//! Proxy memory: sums VmRSS of a set of processes read from /proc.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

#[derive(Serialize, Clone, Debug)]
pub struct ProcRss {
    pub pid: u32,
    pub name: String,
    pub rss_kib: u64,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct RssSample {
    pub total_kib: u64,
    pub procs: Vec<ProcRss>,
    /// CPU time (user + system) the processes have used so far, summed, in ms.
    pub cpu_ms: u64,
    /// System-wide, taken at the same moment: kernel memory is not charged to a process's RSS.
    pub kernel: KernelMem,
}

/// The kernel's memory, system-wide: what sockets cost outside user space. On loopback it covers
/// both ends of every connection (the client's socket and the proxy's).
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct KernelMem {
    /// `Slab` of /proc/meminfo: socket, file, inode, dentry and epoll structures among the rest.
    pub slab_kib: u64,
    /// TCP buffer memory in use (`TCP: ... mem` of /proc/net/sockstat, pages).
    pub tcp_buf_kib: u64,
}

impl KernelMem {
    pub fn sample() -> KernelMem {
        let slab_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("Slab:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let page_kib = page_size() / 1024;
        let tcp_buf_kib = std::fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|m| {
                let tcp = m.lines().find(|l| l.starts_with("TCP:"))?;
                let mut it = tcp.split_whitespace();
                it.find(|w| *w == "mem")?;
                it.next()?.parse::<u64>().ok()
            })
            .map_or(0, |pages| pages * page_kib);
        KernelMem {
            slab_kib,
            tcp_buf_kib,
        }
    }
}

/// utime + stime of /proc/PID/stat, in ms (0 when the process is gone).
fn cpu_ms(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// Which processes to measure: explicit pids, and/or processes whose comm or command line
/// (program or script name) contains one of the names, plus all their descendants (so
/// "pushpin" also catches condure, zurl, pushpin-proxy and pushpin-handler under the runner).
#[derive(Clone, Debug, Default)]
pub struct ProcSel {
    pub pids: Vec<u32>,
    /// Pids taken with all their descendants.
    pub trees: Vec<u32>,
    pub names: Vec<String>,
}

impl ProcSel {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.trees.is_empty() && self.names.is_empty()
    }

    pub fn resolve(&self) -> Vec<u32> {
        let me = std::process::id();
        let mut procs: HashMap<u32, (u32, String, Vec<String>)> = HashMap::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                // pid (comm) state ppid ...; comm may contain spaces and parentheses.
                let Some(close) = stat.rfind(')') else {
                    continue;
                };
                let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
                let ppid = stat[close + 1..]
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                procs.insert(pid, (ppid, comm, args));
            }
        }
        // Our own process tree is never the proxy.
        let mine = descendants(&procs, &[me]);
        let mut chosen: BTreeSet<u32> = self.trees.iter().copied().collect();
        for (&pid, (_, comm, args)) in &procs {
            if mine.contains(&pid) || comm.starts_with("holdfast-load") {
                continue;
            }
            let base = |a: &String| a.rsplit('/').next().unwrap_or(a).to_string();
            // The program, or the script an interpreter runs.
            let progs: Vec<String> = args.iter().take(2).map(base).collect();
            if self.names.iter().any(|n| {
                comm.contains(n.as_str())
                    || progs.first().is_some_and(|p| p.contains(n.as_str()))
                    || (progs.len() > 1
                        && is_interpreter(&progs[0])
                        && progs[1].contains(n.as_str()))
            }) {
                chosen.insert(pid);
            }
        }
        let roots: Vec<u32> = chosen.iter().copied().collect();
        let mut all: BTreeSet<u32> = descendants(&procs, &roots)
            .into_iter()
            .filter(|p| !mine.contains(p) && procs.contains_key(p))
            .collect();
        // Explicit pids are taken as they are.
        all.extend(self.pids.iter().copied());
        all.into_iter().collect()
    }

    pub fn sample(&self) -> RssSample {
        let mut s = RssSample {
            kernel: KernelMem::sample(),
            ..RssSample::default()
        };
        for pid in self.resolve() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let mut name = String::new();
            let mut rss = 0;
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("Name:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("VmRSS:") {
                    rss = v
                        .split_whitespace()
                        .next()
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0);
                }
            }
            s.total_kib += rss;
            s.cpu_ms += cpu_ms(pid);
            s.procs.push(ProcRss {
                pid,
                name,
                rss_kib: rss,
            });
        }
        s
    }
}

fn is_interpreter(p: &str) -> bool {
    ["python", "sh", "bash", "node", "perl"]
        .iter()
        .any(|i| p.starts_with(i))
}

fn descendants(procs: &HashMap<u32, (u32, String, Vec<String>)>, roots: &[u32]) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, (ppid, _, _)) in procs {
        children.entry(*ppid).or_default().push(pid);
    }
    let mut out: BTreeSet<u32> = BTreeSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(p) = stack.pop() {
        if out.insert(p)
            && let Some(c) = children.get(&p)
        {
            stack.extend(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_by_name() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Our own descendants are excluded on purpose.
        let sel = ProcSel {
            pids: vec![],
            trees: vec![],
            names: vec!["sleep".into()],
        };
        assert!(!sel.resolve().contains(&child.id()));
        let me = std::process::id();
        let sel = ProcSel {
            pids: vec![me],
            trees: vec![],
            names: vec![],
        };
        let s = sel.sample();
        assert_eq!(s.procs.len(), 1);
        assert!(s.total_kib > 0);
        let _ = child.kill();
        let _ = child.wait();
    }
}
