//! The default seccomp filter of process tasks, built with `seccompiler`.
//!
//! Like Docker's and containerd's default profiles it refuses, with `EPERM`,
//! the calls an unprivileged process has no business making and that open the
//! kernel's rarely used, often attacked surface: mounts and namespaces
//! (`mount`, `umount2`, `pivot_root`, `unshare`, `setns`, new-namespace flags
//! of `clone`, the new mount API), kernel modules, kexec and reboot, keyrings,
//! `bpf`, `perf_event_open`, `userfaultfd`, cross-process memory access,
//! handles to files by inode, clock and swap changes, `acct`, `quotactl`,
//! `syslog`, and x86's port I/O and legacy calls. `clone3` answers `ENOSYS`,
//! so libc falls back to `clone`, whose flags the filter can see. Everything
//! else is allowed. The filter is built in the executor before it forks and
//! installed in the task's process just before `execve`.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;

/// The programs to install, in order.
#[derive(Clone)]
pub struct Filters {
    /// Refuses the listed calls with EPERM.
    pub deny: BpfProgram,
    /// `clone3` answers ENOSYS (libc then uses `clone`).
    pub clone3: BpfProgram,
    /// Refuses every x32 call (numbers with bit 30 set), which the others,
    /// matching exact numbers, would let through.
    pub x32: BpfProgram,
}

/// `nr >= 0x40000000` (the x32 ABI's calls): EPERM; anything else: allowed.
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JGE | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    vec![
        // seccomp_data.nr is at offset 0.
        sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: JGE_K,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        },
        sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ]
}

/// Calls refused outright.
fn denied() -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_acct,
        libc::SYS_add_key,
        libc::SYS_bpf,
        libc::SYS_clock_adjtime,
        libc::SYS_clock_settime,
        libc::SYS_delete_module,
        libc::SYS_finit_module,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fsopen,
        libc::SYS_fspick,
        libc::SYS_init_module,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_io_uring_setup,
        libc::SYS_kexec_file_load,
        libc::SYS_kexec_load,
        libc::SYS_keyctl,
        libc::SYS_lookup_dcookie,
        libc::SYS_mount,
        libc::SYS_mount_setattr,
        libc::SYS_move_mount,
        libc::SYS_name_to_handle_at,
        libc::SYS_open_by_handle_at,
        libc::SYS_open_tree,
        libc::SYS_perf_event_open,
        libc::SYS_pivot_root,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_quotactl,
        libc::SYS_reboot,
        libc::SYS_request_key,
        libc::SYS_setns,
        libc::SYS_settimeofday,
        libc::SYS_swapoff,
        libc::SYS_swapon,
        libc::SYS_syslog,
        libc::SYS_umount2,
        libc::SYS_unshare,
        libc::SYS_userfaultfd,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_ioperm,
        libc::SYS_iopl,
        libc::SYS_nfsservctl,
        libc::SYS__sysctl,
        libc::SYS_sysfs,
        libc::SYS_uselib,
        libc::SYS_ustat,
    ]);
    calls
}

/// Namespace flags `clone` may not carry.
const NEW_NAMESPACES: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

#[cfg(target_arch = "x86_64")]
const ARCH: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;

/// Builds the default filters.
pub fn default_filters() -> Result<Filters, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|c| (c, Vec::new())).collect();
    // clone(flags, ...): any namespace flag set is refused (each rule one flag; rules OR).
    let clone_rules = NEW_NAMESPACES
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )?;
    Ok(Filters {
        deny: deny.try_into()?,
        clone3: clone3.try_into()?,
        x32: no_x32(),
    })
}

impl Filters {
    /// Installs both filters on the calling thread (sets `no_new_privs` first).
    pub fn install(&self) -> std::io::Result<()> {
        rustix::thread::set_no_new_privs(true)?;
        for p in [&self.x32, &self.clone3, &self.deny] {
            seccompiler::apply_filter(p).map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs the filter in a forked child and reports what the calls return.
    #[test]
    fn a_filtered_process_cannot_mount_or_unshare_but_can_fork() {
        let filters = default_filters().unwrap();
        // SAFETY: the child only makes raw system calls and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    if filters.install().is_err() {
                        return 10;
                    }
                    // SAFETY: raw calls with constant arguments.
                    let unshare = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
                    if unshare != -1
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                    {
                        return 11;
                    }
                    let umount = unsafe { libc::umount2(c"/".as_ptr(), 0) };
                    if umount != -1
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                    {
                        return 12;
                    }
                    let clone3 = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
                    if clone3 != -1
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
                    {
                        return 13;
                    }
                    // unshare through the x32 ABI's number (bit 30): refused too.
                    let x32 = unsafe {
                        libc::syscall(libc::SYS_unshare | 0x4000_0000, libc::CLONE_NEWUSER)
                    };
                    if x32 != -1
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                    {
                        return 15;
                    }
                    // A plain fork (clone without namespace flags) still works.
                    match unsafe { libc::fork() } {
                        0 => unsafe { libc::_exit(0) },
                        -1 => 14,
                        _ => 0,
                    }
                })();
                // SAFETY: ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
