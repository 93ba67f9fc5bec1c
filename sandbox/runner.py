"""Runs inside the sandbox container and is passed there as `python3 -I -S -c` (standard library only).

It starts as root with only CAP_SETUID and CAP_SETGID, and is the one program of the container:
- run: write the program, run it as PROGRAM_UID with the work dir as cwd, keep only the tails of its
  stdout and stderr, stop it at the timeout, kill every process of PROGRAM_UID, remove what it could
  leave behind outside the work dir (/tmp, /dev/shm, /dev/mqueue, System V IPC), then (exit 0 only)
  cut each `.wav` output to its RIFF chunk and normalise those that are not plain PCM16/float32 WAV
  already (sandbox/normalise.py, also as PROGRAM_UID, under its own time limit),
  kill again, and report: one JSON line, then the raw bytes of each accepted output file;
- collect: only report and send files (Sandbox.read_file);
- reset: kill every process of PROGRAM_UID, empty the writable dirs, remove IPC (a pool's reuse).
The program cannot signal the runner (none of the runner's uids is its own), so the deadline holds
whatever it does. File access goes through seteuid(PROGRAM_UID): root here has no DAC override.
The host trusts nothing beyond the framing: it checks names and sizes again and hashes the bytes.
"""

import binascii
import json
import os
import selectors
import signal
import subprocess
import sys
import time

CHUNK = 1 << 20
PROGRAM_UID = 10001
NOBODY = 65534  # no process of the container runs as nobody: kill_uid's real uid
MAX_REJECTED = 50
KILL_ROUNDS = 50
VENV_PYTHON = "/opt/venv/bin/python"
SCRATCH = ("/tmp", "/dev/shm", "/dev/mqueue")  # what the program may fill besides the work dir
IPC_RMID = 0

if __name__ != "__main__":  # imported on the host; in the sandbox runner_files.py's source precedes this
    from sandbox.runner_files import MAX_FILES, WORK, already_normal, collect, trim_to_riff, wanted


class RunnerError(Exception):
    """The runner could not do its job: reported to the host, which raises SandboxError."""


def undumpable():
    # Nobody can then ptrace us or open /proc/<pid>/fd/1 to forge the report.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE, 0
        raise RunnerError("prctl(PR_SET_DUMPABLE, 0) failed: errno %d" % ctypes.get_errno())


def as_program():
    """File access as the program (setegid first: it needs the capability seteuid gives up)."""
    os.setegid(PROGRAM_UID)
    os.seteuid(PROGRAM_UID)


def as_root():
    os.seteuid(0)
    os.setegid(0)


def oom_kills():
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except OSError:
            continue
    return 0


def alive_of(uid, exclude=()):
    """Pids of live (not zombie) processes whose real, effective or saved uid is uid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uids = fields.get("Uid", "").split()[:3]
        if str(uid) in uids and not fields.get("State", "").strip().startswith(("Z", "X")):
            found.append(int(d))
    return found


def kill_uid(uid):
    """SIGKILL every process of uid, by uid, without forking (a fork bomb leaves no pid to fork with).

    For the kill(-1) rounds the runner takes real uid nobody (no process here has it), effective uid
    `uid` (so it may signal uid's processes) and keeps saved uid 0: the program still cannot signal
    it (neither its real nor its saved uid is the program's), and root comes back afterwards.
    """
    os.setresuid(NOBODY, uid, 0)
    try:
        for _ in range(KILL_ROUNDS):
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            if not alive_of(uid, exclude=(os.getpid(),)):
                return
            time.sleep(0.02)
    finally:
        os.setresuid(0, 0, 0)
    raise RunnerError("processes of uid %d survived %d kill rounds" % (uid, KILL_ROUNDS))


def set_oom_score_adj(value):
    """The program starts with 1000, so the OOM killer takes it before the runner. Raising needs no
    capability; the runner then comes back down to 0, the floor an unprivileged process may reach."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError:
        pass  # a runtime without it (gVisor): the memory margin still holds


def sysv_objects():
    """[(kind, id, owner uids)] of every System V IPC object in the container's IPC namespace."""
    found = []
    for kind, id_col in (("shm", "shmid"), ("msg", "msqid"), ("sem", "semid")):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:  # a runtime without System V IPC (or without its /proc view)
            continue
        cols = lines[0].split() if lines else []
        if not {id_col, "cuid", "uid"} <= set(cols):
            raise RunnerError("/proc/sysvipc/%s: unexpected columns %s" % (kind, cols[:12]))
        for line in lines[1:]:
            row = dict(zip(cols, line.split()))
            found.append((kind, int(row[id_col]), (int(row["cuid"]), int(row["uid"]))))
    return found


def release_ipc():
    """Remove every System V IPC object: they outlive their processes and hold memory the container is
    charged for. IPC_RMID needs the owner's or creator's euid (the runner has no CAP_IPC_OWNER), so
    each is removed as its creator, which only the program can be. Returns how many were left."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ctl = {"shm": lambda i: libc.shmctl(i, IPC_RMID, None), "msg": lambda i: libc.msgctl(i, IPC_RMID, None),
           "sem": lambda i: libc.semctl(i, 0, IPC_RMID, 0)}
    for kind, ident, uids in sysv_objects():
        for uid in uids:
            os.seteuid(uid)
            try:
                if ctl[kind](ident) == 0:
                    break
            finally:
                os.seteuid(0)
    return len(sysv_objects())


def wipe(top):
    """Empty a directory the program filled, however deep: by chdir, not recursion or paths (a tree
    1,500 levels deep passes Python's recursion limit and PATH_MAX) and without holding descriptors."""
    back = os.open(".", os.O_PATH)  # the normaliser after this runs in the caller's cwd, the work dir
    names = []
    try:
        os.chdir(top)
        while True:
            sub = None
            for name in os.listdir("."):
                if os.path.isdir(name) and not os.path.islink(name):
                    sub = name
                    break
                os.unlink(name)
            if sub is not None:
                os.chmod(sub, 0o700)
                os.chdir(sub)
                names.append(sub)
            elif names:
                os.chdir("..")
                os.rmdir(names.pop())
            else:
                return
    finally:
        os.fchdir(back)
        os.close(back)


def release_scratch():
    """Empty /tmp, /dev/shm and /dev/mqueue (as the program: root here has no DAC override) and remove
    the System V IPC objects: nothing the program made outlives it but its work dir. Returns what is
    left, as a text ("" when nothing): a program that can make this fail must not make its run fail."""
    left = []
    as_program()
    try:
        for d in SCRATCH:
            try:
                if os.path.isdir(d):
                    wipe(d)
            except OSError as exc:
                left.append("%s not emptied: %s" % (d, exc.strerror))
    finally:
        as_root()
    try:
        ipc = release_ipc()
        if ipc:
            left.append("%d System V IPC objects" % ipc)
    except (RunnerError, OSError, ValueError) as exc:
        left.append("System V IPC not released: %s" % exc)
    return "; ".join(left)


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


def program_env(cfg):
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
    return env


def supervise(argv, env, timeout_s, tail):
    """Run argv as PROGRAM_UID (cwd: the work dir, inherited); stop it at the timeout, then kill its uid."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    set_oom_score_adj(1000)
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        user=PROGRAM_UID,
        group=PROGRAM_UID,
        extra_groups=[],
    )
    set_oom_score_adj(0)
    fds = (proc.stdout.fileno(), proc.stderr.fileno())
    bufs = {fd: bytearray() for fd in fds}
    counts = dict.fromkeys(fds, 0)
    sel = selectors.DefaultSelector()
    for fd in fds:
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
    kill_uid(PROGRAM_UID)
    code = proc.wait()
    out, err = (bytes(bufs[fd][-tail:]) for fd in fds)
    return {
        "exit_code": code if code >= 0 else 128 - code,
        "signal": signal.Signals(-code).name if code < 0 and -code in signal.valid_signals() else None,
        "timed_out": timed_out,
        "wall_s": round(wall, 4),
        "stdout": out,
        "stderr": err,
        "stdout_bytes": counts[fds[0]],
        "stderr_bytes": counts[fds[1]],
    }


def run(cfg):
    tail = cfg["tail_bytes"]
    as_program()
    try:
        os.chdir(WORK)  # the children inherit it; root here could not enter a 0700 dir of 10001
        if cfg.get("code") is not None:
            with open(cfg["program"], "wb") as f:
                f.write(binascii.a2b_base64(cfg["code"]))
        copy_tree("/opt/mplconfig", "/tmp/matplotlib")  # the font cache built into the image
    finally:
        as_root()
    oom_before = oom_kills()
    got = supervise([sys.executable, cfg["program"]], program_env(cfg), cfg["timeout_s"], tail)
    left_behind = release_scratch()
    return {
        "exit_code": got["exit_code"],
        "signal": got["signal"],
        "timed_out": got["timed_out"],
        "wall_s": got["wall_s"],
        "stdout_tail": got["stdout"].decode("utf-8", "replace"),
        "stderr_tail": got["stderr"].decode("utf-8", "replace"),
        "stdout_bytes": got["stdout_bytes"],
        "stderr_bytes": got["stderr_bytes"],
        "oom_kills": oom_kills() - oom_before,
        "left_behind": left_behind,
    }


def normalise(cfg, names):
    """{name: {"changes": [...]} or {"error": reason}} from sandbox/normalise.py, run as the program."""
    if not names:
        return {}
    src = binascii.a2b_base64(cfg["normaliser"]).decode()
    env = program_env({"threads": 1})
    limit = cfg["normalise_timeout_s"]
    got = supervise([VENV_PYTHON, "-I", "-c", src, json.dumps(names)], env, limit, 1 << 16)
    if got["timed_out"]:
        return {n: {"error": "not decoded within %g s" % limit} for n in names}
    try:
        result = json.loads(got["stdout"]) if got["exit_code"] == 0 and got["stdout_bytes"] <= 1 << 16 else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        if got["signal"] == "SIGKILL":
            why = "the decoder was killed (the memory limit?)"
        else:
            last = got["stderr"].decode("utf-8", "replace").strip().splitlines()[-1:] or ["no report"]
            why = "the decoder failed (exit %s: %s)" % (got["exit_code"], last[0][:200])
        return {n: {"error": why} for n in names}
    return {n: result.get(n) if isinstance(result.get(n), dict) else {"error": "not decoded"} for n in names}


def collect_outputs(cfg, report):
    """Collect, normalise the .wav outputs, kill what the decoder left, collect again."""
    exclude = {cfg["program"]}
    as_program()
    try:
        trimmed = {}
        for name in wanted(cfg["expect"], exclude):
            if name.lower().endswith(".wav"):
                trimmed[name] = trim_to_riff(os.path.join(WORK, name))
        files, rejected = collect(cfg["expect"], cfg["max_bytes"], exclude)
    finally:
        as_root()
    for _, fd, _ in files:
        os.close(fd)
    as_program()
    try:
        audio = [n for n, _, _ in files if n.lower().endswith(".wav") and not already_normal(os.path.join(WORK, n))]
    finally:
        as_root()
    verdicts = normalise(cfg, audio)
    failed = {n: v["error"] for n, v in verdicts.items() if "error" in v}
    report["normalised"] = [
        "%s: %d bytes after the RIFF chunk dropped" % (n, dropped) for n, dropped in sorted(trimmed.items()) if dropped
    ] + [
        "%s: %s" % (n, "; ".join(str(c) for c in v["changes"][:8]) or "re-encoded to its audio alone: the file held more or less than its header says")
        for n, v in verdicts.items()
        if "changes" in v
    ]
    as_program()
    try:
        files, again = collect(cfg["expect"], cfg["max_bytes"], exclude | set(failed))
    finally:
        as_root()
    rejected += again + ["%s: not decodable as audio: %s" % (n, why) for n, why in sorted(failed.items())]
    return files, rejected


def reset():
    """Kill every process of the program's uid and empty what it could write; reports what IPC is left."""
    kill_uid(PROGRAM_UID)
    as_program()
    try:
        os.chmod(WORK, 0o700)
        wipe(WORK)
    finally:
        as_root()
    left = release_scratch()
    return {"reset": "dirty: %s left" % left if left else "clean"}


def main():
    out = sys.stdout.buffer
    cfg = json.loads(binascii.a2b_base64(sys.argv[1]))
    files, rejected = [], []
    try:
        undumpable()
        os.setgroups([])
        if cfg["mode"] == "run":
            report = run(cfg)
            if report["exit_code"] == 0 and not report["timed_out"]:
                # Outputs of a failed run are not worth sending: the run is an error whatever they hold.
                files, rejected = collect_outputs(cfg, report)
        elif cfg["mode"] == "reset":
            report = reset()
        else:  # "collect": only read files (Sandbox.read_file)
            report = {}
            as_program()
            try:
                files, rejected = collect(cfg["expect"], cfg["max_bytes"], set())
            finally:
                as_root()
    except (RunnerError, OSError) as exc:
        for _, fd, _ in files:
            os.close(fd)
        tb = exc.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        where = "%s line %d" % (tb.tb_frame.f_code.co_name, tb.tb_lineno)
        out.write(json.dumps({"runner_error": "%s: %s (%s)" % (type(exc).__name__, exc, where)}).encode() + b"\n")
        out.flush()
        return
    if len(rejected) > MAX_REJECTED:
        rejected = rejected[:MAX_REJECTED] + ["... and %d more refused" % (len(rejected) - MAX_REJECTED)]
    report["files"] = [{"name": n, "bytes": size} for n, _, size in files]
    report["rejected"] = rejected
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
