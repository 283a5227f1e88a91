//! HDF5's C library trusts the files it reads: some corrupted files make it loop forever or
//! crash the whole process (HDF5 1.10.8 did both on files with one flipped byte). So before
//! this process reads an HDF5 file from outside, a child process reads all of it; only
//! once the child has come back does this process read the same bytes. A child that
//! crashes or does not finish in time becomes a clear error, and R lives on.
//!
//! The child only calls HDF5 (no thread pool, no R) and leaves with `_exit`, which is what
//! makes a fork of a multi-threaded process safe here; it drops the signal handlers R
//! installed, so that a crash ends the child and nothing else.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{fail, h5, FResult};

/// How long the child may take: generous for slow disks, `RUSTKERAS_H5_TIMEOUT` (seconds)
/// overrides it.
fn time_limit(bytes: u64) -> Duration {
    if let Some(s) = std::env::var("RUSTKERAS_H5_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
    {
        return Duration::from_secs_f64(s);
    }
    // 30 s, plus 1 s for every 10 MB.
    Duration::from_secs(30 + bytes / 10_000_000)
}

/// Fails unless a child process can read the whole HDF5 file at `path` (every group,
/// attribute and dataset, checked against `budget` bytes) without hanging or crashing.
#[cfg(unix)]
pub fn check_in_child(path: &Path, budget: u64) -> FResult<()> {
    // SAFETY: the child runs only `h5::read_everything` (HDF5 calls and allocation, both
    // usable after fork with glibc) and then `_exit`, skipping destructors and atexit
    // handlers that belong to the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // No child to spare: read in this process, as without the guard.
        return Ok(());
    }
    if pid == 0 {
        // A crash must end the child alone. R's own handlers would report it as R's crash
        // and delete the session's temporary folder, which the parent still uses; Ctrl-C is
        // the parent's to handle.
        unsafe {
            for sig in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
                libc::SIGABRT,
                libc::SIGTRAP,
                libc::SIGSYS,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
        let ok = std::panic::catch_unwind(|| h5::read_everything(path, budget).is_ok());
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) }
    }
    let limit = time_limit(budget);
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    let mut status: libc::c_int = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 {
            // The child is gone without a status (someone else reaped it): read here.
            return Ok(());
        }
        if start.elapsed() > limit {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return fail(format!(
                "is corrupted: the HDF5 library did not finish reading it within {} s (set RUSTKERAS_H5_TIMEOUT for a slower disk)",
                limit.as_secs_f64().round()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    if libc::WIFSIGNALED(status) {
        return fail(format!(
            "is corrupted: reading it crashed the HDF5 library (signal {}) in a separate process",
            libc::WTERMSIG(status)
        ));
    }
    // Exit 0 or 1: the library came back; this process's own read names any problem.
    Ok(())
}

#[cfg(not(unix))]
pub fn check_in_child(_path: &Path, _budget: u64) -> FResult<()> {
    Ok(())
}
