//! A forked child (R's `parallel::mclapply()`) gets threads of its own: the parent's
//! workers do not exist in it. One test in this file, so the process forks with no other
//! test thread holding a lock.

use rayon::prelude::*;

fn sum_in_pool() -> u64 {
    engine::threads::install(|| (0..1000u64).into_par_iter().sum::<u64>())
}

#[test]
fn a_forked_child_runs_parallel_sections() {
    // The parent's pool exists before the fork, as after a first fit() in R.
    assert_eq!(sum_in_pool(), 499_500);
    // SAFETY: the child runs the engine's code under test and leaves with _exit; the
    // parent waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = sum_in_pool() == 499_500 && engine::threads::count() >= 1;
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    // A hang is a failure: the child has 10 s.
    let mut status = 0;
    for _ in 0..200 {
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            assert!(libc::WIFEXITED(status), "the child did not exit normally");
            assert_eq!(libc::WEXITSTATUS(status), 0, "the child's sum was wrong");
            // And the parent's pool still works.
            assert_eq!(sum_in_pool(), 499_500);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    panic!("the forked child hung on the engine's threads");
}
