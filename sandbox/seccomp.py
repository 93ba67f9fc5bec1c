"""The project's own seccomp profile, applied to every sandbox container (`container.create_kwargs`).

An allowlist: what CPython, numpy/scipy/numba, libsndfile, ffmpeg (pydub) and the runner need, and
nothing else. The engine's default is not trusted as hardening: Debian's docker.io 20.10 allows
io_uring and socket(AF_VSOCK), and network=none does not cover vsock. Left out on purpose, so they
fail with EPERM (the profile's default action):
- io_uring_* (a second syscall path with a history of kernel bugs) and Linux AIO (io_setup, ...);
- every socket family but AF_UNIX (vsock, netlink, packet, AF_ALG, ..., and AF_INET/AF_INET6, which
  network=none makes useless anyway); `socketcall` and the 32-bit ABIs, through which the family
  filter could be bypassed;
- ptrace, process_vm_readv/writev, kcmp, userfaultfd, perf_event_open, bpf, keyrings, mount and
  namespace calls (unshare, setns; clone with namespace flags), splice/vmsplice/tee,
  name_to_handle_at, scheduler-policy and mlock calls, personality except the harmless values.
clone3 answers ENOSYS, so glibc falls back to clone, whose flags can be checked.

The profile's JSON text is part of `container.PROTOCOL` (the execution cache key) and each container
carries its hash as a label: a change here reruns programs rather than reusing results made under
another profile. It is applied at container creation, not built into the image, so changing it needs
no image rebuild.
"""

from __future__ import annotations

import hashlib
import json

EPERM, ENOSYS = 1, 38
AF_UNIX = 1
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: clone with any of them is refused.
CLONE_NAMESPACE_FLAGS = 0x7E020000

ALLOWED = {
    "process and threads": """
        arch_prctl brk clone exit exit_group execve execveat fork vfork getpid getppid gettid
        getpgid getpgrp getsid setpgid setsid set_tid_address set_robust_list get_robust_list rseq
        wait4 waitid prctl prlimit64 getrlimit setrlimit getrusage getpriority setpriority
        sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_getscheduler
        sched_getattr sched_get_priority_max sched_get_priority_min sched_rr_get_interval
        getcpu getrandom membarrier seccomp capget capset uname sysinfo times restart_syscall
        pidfd_open pidfd_send_signal get_thread_area set_thread_area
    """,
    "identity (the runner starts the program as its own uid)": """
        getuid geteuid getgid getegid getresuid getresgid getgroups setuid setgid setreuid
        setregid setresuid setresgid setgroups setfsuid setfsgid
    """,
    "memory": """
        mmap munmap mprotect mremap madvise mincore msync
    """,
    "signals and time": """
        rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait
        rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack kill tkill tgkill pause alarm
        signalfd signalfd4 getitimer setitimer timer_create timer_delete timer_getoverrun
        timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime
        clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time
        futex futex_waitv
    """,
    "files": """
        read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek
        open openat openat2 creat close close_range dup dup2 dup3 fcntl flock ioctl
        stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
        readlink readlinkat getcwd chdir fchdir getdents getdents64 mkdir mkdirat rmdir
        rename renameat renameat2 unlink unlinkat link linkat symlink symlinkat mknod mknodat
        chmod fchmod fchmodat chown fchown lchown fchownat umask truncate ftruncate fallocate
        fsync fdatasync sync syncfs sync_file_range fadvise64 readahead sendfile copy_file_range
        utime utimes utimensat futimesat getxattr lgetxattr fgetxattr listxattr llistxattr
        flistxattr setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr
        memfd_create inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
    """,
    "waiting on descriptors": """
        pipe pipe2 poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait
        epoll_pwait epoll_pwait2 eventfd eventfd2
    """,
    "AF_UNIX sockets (socket and socketpair are allowed for AF_UNIX only, below)": """
        bind listen accept accept4 connect getsockname getpeername getsockopt setsockopt
        sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown
    """,
    # Allowed, and removed after every run by the runner (runner.py release_ipc), size-capped by
    # sysctls in create_kwargs: multiprocessing and a few audio libraries use them.
    "System V and POSIX IPC": """
        shmget shmat shmdt shmctl msgget msgsnd msgrcv msgctl semget semop semtimedop semctl
        mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    """,
    "aarch64 only": """
        set_tls cacheflush
    """,
}


def _rule(names, action="SCMP_ACT_ALLOW", args=None, errno=None):
    rule = {"names": sorted(names), "action": action}
    if args:
        rule["args"] = args
    if errno is not None:
        rule["errnoRet"] = errno
    return rule


def profile() -> dict:
    names = {n for group in ALLOWED.values() for n in group.split()}
    family = [{"index": 0, "value": AF_UNIX, "op": "SCMP_CMP_EQ"}]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        # No sub-architectures: no 32-bit or x32 syscall table, so no socketcall() around the filter.
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
        ],
        "syscalls": [
            _rule(names - {"clone"}),
            _rule(["socket", "socketpair"], args=family),
            _rule(["clone"], args=[{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                    "op": "SCMP_CMP_MASKED_EQ"}]),
            _rule(["clone3"], "SCMP_ACT_ERRNO", errno=ENOSYS),
            # personality(): query (0xffffffff), PER_LINUX, and the flags a program's own exec may use.
            *(_rule(["personality"], args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
              for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
        ],
    }


PROFILE_JSON = json.dumps(profile(), sort_keys=True, separators=(",", ":"))
PROFILE_SHA256 = hashlib.sha256(PROFILE_JSON.encode()).hexdigest()
