"""Runs inside the sandbox container (as the program's uid) and is passed there as `python3 -c`.

It runs the program with the work dir as cwd, keeps only the tails of its stdout and stderr (so 100 MB
of output costs nothing), enforces the timeout from inside, kills every process the program left
behind, then reports on stdout: one JSON line, followed by the raw bytes of each accepted output file.
The host enforces its own wall clock around this and trusts nothing here beyond the framing: it checks
names and sizes again and hashes the bytes itself. Standard library only; it runs with `-I -S`.
"""

import binascii
import fnmatch
import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time

WORK = "/work"
CHUNK = 1 << 20


def undumpable():
    # Other processes of the same uid can then neither ptrace us nor open /proc/<pid>/fd/1 to forge the report.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:
        pass


def oom_kills():
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key:
                        return int(v)
        except OSError:
            continue
    return 0


def others_alive():
    me, uid = os.getpid(), os.getuid()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            try:
                if os.stat("/proc/" + d).st_uid == uid:
                    with open("/proc/%s/stat" % d) as f:
                        if f.read().rpartition(")")[2].split()[0] != "Z":
                            return True
            except OSError:
                continue
    return False


def kill_leftovers():
    """SIGKILL every process of our uid but ourselves: grandchildren that daemonised included."""
    for _ in range(50):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        if not others_alive():
            return
        time.sleep(0.02)


def copy_tree(src, dst):
    """shutil.copytree without importing shutil (start-up time counts here); errors are ignored."""
    try:
        os.makedirs(dst, exist_ok=True)
        for name in os.listdir(src):
            s, d = os.path.join(src, name), os.path.join(dst, name)
            if os.path.isdir(s):
                copy_tree(s, d)
            else:
                with open(s, "rb") as fi, open(d, "wb") as fo:
                    fo.write(fi.read())
    except OSError:
        pass


def run(cfg):
    tail = cfg["tail_bytes"]
    copy_tree("/opt/mplconfig", "/tmp/matplotlib")  # the font cache built into the image
    env = {
        "PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "NUMBA_CACHE_DIR": "/tmp",
    }
    # BLAS and numba size their thread pools by the host's cores, which the pids limit would refuse.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(cfg.get("threads", 1))
    oom_before = oom_kills()
    t0 = time.monotonic()
    deadline = t0 + cfg["timeout_s"]
    proc = subprocess.Popen(
        [sys.executable, cfg["program"]],
        cwd=WORK,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    counts = dict.fromkeys(bufs, 0)
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)

    def pump(wait):
        for key, _ in sel.select(wait):
            try:
                data = os.read(key.fd, CHUNK)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fd)
                continue
            buf = bufs[key.fd]
            counts[key.fd] += len(data)
            buf += data
            if len(buf) > 2 * tail:
                del buf[: len(buf) - tail]

    timed_out = False
    while proc.poll() is None:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if sel.get_map():
            pump(min(0.05, deadline - now))
        else:
            time.sleep(min(0.02, deadline - now))
    wall = time.monotonic() - t0
    # A grandchild may hold the pipes open: take what is there now, then stop listening.
    drain_until = time.monotonic() + 0.2
    while sel.get_map() and time.monotonic() < drain_until:
        pump(0.02)
    kill_leftovers()
    code = proc.wait()
    oom = oom_kills() - oom_before
    out, err = (bytes(bufs[f.fileno()][-tail:]) for f in (proc.stdout, proc.stderr))
    report = {
        "exit_code": code if code >= 0 else 128 - code,
        "signal": signal.Signals(-code).name if code < 0 and -code in signal.valid_signals() else None,
        "timed_out": timed_out,
        "wall_s": round(wall, 4),
        "stdout_tail": out.decode("utf-8", "replace"),
        "stderr_tail": err.decode("utf-8", "replace"),
        "stdout_bytes": counts[proc.stdout.fileno()],
        "stderr_bytes": counts[proc.stderr.fileno()],
        "oom_kills": oom,
    }
    return report


MAX_FILES = 64


def collect(patterns, max_bytes, exclude):
    """Regular files in the work dir matching the patterns; everything else is refused with a reason.

    max_bytes bounds the files' total, not only each one.
    """
    accepted, rejected, total = [], [], 0
    try:
        names = sorted(os.listdir(WORK))
    except OSError as exc:
        return [], ["work dir unreadable: %s" % exc]
    for name in names:
        if name in exclude or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        path = os.path.join(WORK, name)
        try:
            st = os.lstat(path)
        except OSError as exc:
            rejected.append("%s: %s" % (name, exc.strerror))
            continue
        kind = (
            "symlink"
            if stat.S_ISLNK(st.st_mode)
            else "directory"
            if stat.S_ISDIR(st.st_mode)
            else "fifo"
            if stat.S_ISFIFO(st.st_mode)
            else None
            if stat.S_ISREG(st.st_mode)
            else "special file"
        )
        if kind:
            rejected.append("%s: is a %s, not a regular file" % (name, kind))
            continue
        if st.st_size > max_bytes - total:
            rejected.append("%s: %d bytes, over the %d-byte limit" % (name, st.st_size, max_bytes))
            continue
        if len(accepted) >= MAX_FILES:
            rejected.append("%s: more than %d outputs" % (name, MAX_FILES))
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            rejected.append("%s: %s" % (name, exc.strerror))
            continue
        fst = os.fstat(fd)
        if (
            not stat.S_ISREG(fst.st_mode)
            or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino)
            or fst.st_size > max_bytes - total
        ):
            os.close(fd)
            rejected.append("%s: changed while being read" % name)
            continue
        accepted.append((name, fd, fst.st_size))
        total += fst.st_size
    return accepted, rejected


def main():
    undumpable()
    cfg = json.loads(binascii.a2b_base64(sys.argv[1]))
    if cfg.get("code") is not None:
        with open(os.path.join(WORK, cfg["program"]), "wb") as f:
            f.write(binascii.a2b_base64(cfg["code"]))
    if cfg["mode"] == "run":
        report = run(cfg)
    else:  # "collect": only read files (Sandbox.read_file)
        report = {}
    files, rejected = [], []
    if cfg["mode"] == "collect" or (report["exit_code"] == 0 and not report["timed_out"]):
        # Outputs of a failed run are not worth sending: the run is an error whatever they hold.
        files, rejected = collect(cfg["expect"], cfg["max_bytes"], {cfg["program"]})
    report["files"] = [{"name": n, "bytes": size} for n, _, size in files]
    report["rejected"] = rejected
    out = sys.stdout.buffer
    out.write(json.dumps(report).encode() + b"\n")
    for _, fd, size in files:
        left = size
        while left > 0:
            data = os.read(fd, min(CHUNK, left))
            if not data:  # cannot shrink with nothing left running, but never send a short frame
                data = b"\0" * left
            out.write(data)
            left -= len(data)
        os.close(fd)
    out.flush()


if __name__ == "__main__":
    main()
