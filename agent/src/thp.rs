//! Transparent huge pages for the executor and its task: the executor's
//! allocator runs without them, the task gets them back as the machine is
//! set. Beneath both the executor and the isolated launch.

/// The executor's own environment: its allocator (mimalloc, built into the
/// `mosaic` binary) without transparent huge pages. An executor is small and
/// there is one per task; with huge pages each one zeroed several 2 MiB pages
/// at start, which took half the CPU of a launch and doubled its latency
/// (docs/benchmarks.md). mimalloc turns THP off with `PR_SET_THP_DISABLE`,
/// which children inherit, so the task gets it back in [`restore_thp`],
/// unless the agent itself was started with THP off (`MOSAIC_TASK_THP=off`):
/// then the task keeps what the operator chose.
pub fn env() -> [(&'static str, &'static str); 2] {
    // SAFETY: prctl with integer arguments, reading this process's setting.
    let off_here = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
    [
        ("MIMALLOC_ALLOW_THP", "0"),
        (TASK_THP, if off_here { "off" } else { "on" }),
    ]
}

/// Says whether the task gets transparent huge pages back (see [`env`]).
const TASK_THP: &str = "MOSAIC_TASK_THP";

/// Whether the task should get THP back: read before the fork, used in it.
pub fn task_thp() -> bool {
    std::env::var(TASK_THP).as_deref() != Ok("off")
}

/// In the task's process before `execve`: transparent huge pages as the
/// machine is set, not as the executor's allocator left them (when `wanted`,
/// from [`task_thp`]). Async-signal-safe (one prctl).
pub fn restore_thp(wanted: bool) {
    if wanted {
        // SAFETY: prctl with integer arguments; a failure leaves the setting as it was.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_started_without_thp_keeps_its_tasks_without() {
        let get = || unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        let before = get();
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        assert!(env().contains(&(TASK_THP, "off")));
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
        assert!(env().contains(&(TASK_THP, "on")));
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, before as libc::c_ulong, 0, 0, 0) };
    }
}
