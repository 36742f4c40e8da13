//! What holdfast tells and asks the host: systemd readiness (sd_notify), the process's huge-page
//! policy, and, at start, one warning per kernel or process limit that is below what the
//! configuration implies.

use crate::config::Config;

/// Tells systemd (Type=notify) that every listener is bound; a no-op outside systemd.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!("sd_notify READY: {e}");
    }
}

/// Tells systemd a reload is under way (READY=1 follows when it is done).
pub fn notify_reloading() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Reloading]) {
        tracing::debug!("sd_notify RELOADING: {e}");
    }
}

/// Tells systemd that shutdown has begun.
pub fn notify_stopping() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Stopping]) {
        tracing::debug!("sd_notify STOPPING: {e}");
    }
}

/// Turns transparent huge pages off for the whole process (PR_SET_THP_DISABLE) unless `allow`.
/// A connection holder's heap is many small objects that come and go with connections; with THP
/// on (mimalloc advises it for its segments) khugepaged fills the holes of a sparse 2 MiB range
/// to make it one huge page, so RSS rises while the process is idle and never returns to where
/// it was before a peak. The flag is the process's, not the system's.
pub fn set_huge_pages(allow: bool) -> std::io::Result<()> {
    if allow {
        return Ok(());
    }
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether transparent huge pages are off for this process (PR_GET_THP_DISABLE).
pub fn huge_pages_disabled() -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft open-files limit of this process.
fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

/// Limits found below what `config` implies, one message each.
pub fn limit_warnings(config: &Config, workers: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    let want = (config.server.connections_max_per_worker as u64).saturating_mul(workers as u64);
    if let Some(nofile) = nofile_limit().filter(|&n| n < want) {
        warnings.push(format!(
            "RLIMIT_NOFILE is {nofile}, below server.connections_max_per_worker x workers = {want}: \
             connections past ~{nofile} fail (raise LimitNOFILE, see systemd/holdfast.service)"
        ));
    }
    if let Some(nr_open) = read_number("/proc/sys/fs/nr_open").filter(|&n| n < want) {
        warnings.push(format!(
            "fs.nr_open is {nr_open}, below the {want} connections configured (see config/sysctl.d)"
        ));
    }
    let backlog = config.server.listen_backlog.max(0) as u64;
    if let Some(somaxconn) = read_number("/proc/sys/net/core/somaxconn").filter(|&n| n < backlog) {
        warnings.push(format!(
            "net.core.somaxconn is {somaxconn}, below server.listen_backlog = {backlog}: the kernel caps the accept queue"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_below_the_config_is_reported() {
        let mut c = Config::default();
        c.server.connections_max_per_worker = usize::MAX / 4;
        let w = limit_warnings(&c, 2);
        assert!(w.iter().any(|m| m.contains("RLIMIT_NOFILE")), "{w:?}");
        c.server.connections_max_per_worker = 1;
        c.server.listen_backlog = 1;
        assert!(limit_warnings(&c, 1).is_empty());
    }
}
