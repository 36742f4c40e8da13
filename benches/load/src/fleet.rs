//! Parent side of the worker processes: spawns `holdfast-load worker` children (the same
//! executable), reads their JSON lines, sends them `go` / `stop`, kills them when dropped.

use std::cell::RefCell;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::client::{Progress, WorkerMsg, WorkerResult, WorkerSpec};

#[derive(Default)]
pub struct FleetState {
    pub progress: Vec<Progress>,
    pub results: Vec<Option<WorkerResult>>,
    pub exited: Vec<bool>,
}

pub struct Fleet {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    pub st: Rc<RefCell<FleetState>>,
}

impl Fleet {
    /// Must run inside a LocalSet.
    pub fn spawn(specs: &[WorkerSpec]) -> Result<Fleet, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let st = Rc::new(RefCell::new(FleetState {
            progress: vec![Progress::default(); specs.len()],
            results: vec![None; specs.len()],
            exited: vec![false; specs.len()],
        }));
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
            let mut child = Command::new(&exe)
                .arg("worker")
                .arg("--spec")
                .arg(json)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("spawn worker: {e}"))?;
            let out = child.stdout.take().ok_or("no worker stdout")?;
            stdins.push(child.stdin.take());
            children.push(child);
            let st = st.clone();
            tokio::task::spawn_local(async move {
                let mut lines = BufReader::with_capacity(1 << 20, out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<WorkerMsg>(&line) {
                        Ok(WorkerMsg::Progress(p)) => st.borrow_mut().progress[i] = p,
                        Ok(WorkerMsg::Result(r)) => {
                            let mut s = st.borrow_mut();
                            s.progress[i] = r.progress.clone();
                            s.results[i] = Some(r);
                        }
                        Err(e) => eprintln!("worker {i}: bad line ({e}): {:.200}", line),
                    }
                }
                st.borrow_mut().exited[i] = true;
            });
        }
        Ok(Fleet {
            children,
            stdins,
            st,
        })
    }

    pub fn totals(&self) -> Progress {
        let mut t = Progress::default();
        for p in &self.st.borrow().progress {
            t.add(p);
        }
        t
    }

    /// Workers that exited before handing in a result.
    pub fn dead(&self) -> usize {
        let s = self.st.borrow();
        s.exited
            .iter()
            .zip(&s.results)
            .filter(|(e, r)| **e && r.is_none())
            .count()
    }

    pub async fn broadcast(&mut self, line: &str) {
        for s in self.stdins.iter_mut().flatten() {
            let _ = s.write_all(line.as_bytes()).await;
            let _ = s.write_all(b"\n").await;
            let _ = s.flush().await;
        }
    }

    /// Ask every worker for its result and wait (bounded) for them.
    pub async fn collect(&mut self, wait: Duration) -> Vec<WorkerResult> {
        self.broadcast("stop").await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let s = self.st.borrow();
                let pending = s
                    .results
                    .iter()
                    .zip(&s.exited)
                    .filter(|(r, e)| r.is_none() && !**e)
                    .count();
                if pending == 0 {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!("holdfast-load: some workers did not report in time");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let results = self
            .st
            .borrow_mut()
            .results
            .iter_mut()
            .filter_map(|r| r.take())
            .collect();
        self.shutdown().await;
        results
    }

    pub async fn shutdown(&mut self) {
        self.stdins.clear();
        for c in &mut self.children {
            let _ = c.start_kill();
        }
        for c in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
    }
}
