"""Issue 22: what the engine's defaults leave open, closed by the project's own controls and proved from
inside the real sandbox (real Docker, the real image): the seccomp profile, IPC that dies with the
program, outputs cut to their RIFF chunk, strict JSON lines on the CLI."""

from __future__ import annotations

import json
import platform
import struct
import textwrap
import time
import tracemalloc

import pytest

from tests.test_sandbox import LIMITS, WAV, _cli, engine_and_image, run  # noqa: F401 - the fixture too

pytestmark = pytest.mark.docker
X86_64 = platform.machine() == "x86_64"

# x86_64 numbers: (name, number, args). Each must come back -1 with EPERM from the profile: the
# engine's default answers differently (io_uring_setup and ptrace succeed under Debian's 20.10).
REFUSED = [
    ("io_uring_setup", 425, "(8, ctypes.create_string_buffer(120))"),
    ("io_uring_enter", 426, "(0, 1, 0, 0, 0, 0)"),
    ("io_uring_register", 427, "(0, 0, 0, 0)"),
    ("io_setup", 206, "(8, ctypes.byref(ctypes.c_ulong(0)))"),
    ("ptrace", 101, "(0, 0, 0, 0)"),  # PTRACE_TRACEME
    ("process_vm_readv", 310, "(1, 0, 0, 0, 0, 0)"),
    ("kcmp", 312, "(1, 1, 0, 0, 0)"),
    ("userfaultfd", 323, "(0,)"),
    ("perf_event_open", 298, "(ctypes.create_string_buffer(128), 0, -1, -1, 0)"),
    ("bpf", 321, "(0, 0, 0)"),
    ("add_key", 248, "(b'user', b'k', b'v', 1, -2)"),
    ("keyctl", 250, "(0, -3, 0)"),
    ("unshare", 272, "(0x10000000,)"),  # CLONE_NEWUSER
    ("setns", 308, "(0, 0)"),
    ("mount", 165, "(b'none', b'/tmp', b'tmpfs', 0, 0)"),
    ("vmsplice", 278, "(0, 0, 0, 0)"),
    ("splice", 275, "(0, 0, 1, 0, 1, 0)"),
    ("name_to_handle_at", 303, "(-100, b'/', 0, 0, 0)"),
    ("personality", 135, "(0x0040000,)"),  # ADDR_NO_RANDOMIZE
    ("sched_setscheduler", 144, "(0, 3, ctypes.byref(ctypes.c_int(0)))"),
    ("mlock", 149, "(0, 4096)"),
    ("clone with CLONE_NEWNET", 56, "(0x40000000 | 17, 0, 0, 0, 0)"),
]

PROBE = """
import ctypes, json, os, socket, mmap, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def call(name, nr, args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *args)
    out[name] = [r, ctypes.get_errno()]
    if r >= 0 and name.startswith("clone") and r == 0:
        os._exit(0)
%s
families = {}
for fam in range(0, 46):
    if fam == socket.AF_UNIX:
        continue
    ctypes.set_errno(0)
    fd = libc.socket(fam, socket.SOCK_STREAM, 0)
    e1 = ctypes.get_errno()
    fd2 = libc.socket(fam, socket.SOCK_DGRAM, 0)
    e2 = ctypes.get_errno()
    families[fam] = [fd, e1, fd2, e2]
out["families"] = families
pair = (ctypes.c_int * 2)()
out["socketpair_inet"] = [libc.socketpair(socket.AF_INET, socket.SOCK_STREAM, 0, pair), ctypes.get_errno()]
out["clone3"] = [libc.syscall(435, 0, 0), ctypes.get_errno()]
# The 32-bit ABI on x86_64 (int 0x80, getpid = 20): refused outright, or the family filter and the
# syscall list could be walked around through socketcall().
code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # mov eax, 20; int 0x80; ret
pid = os.fork()
if pid == 0:
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(code)))
    os._exit(0 if fn() == os.getpid() else 3)
out["int80"] = os.waitpid(pid, 0)[1]
pid = os.fork()
if pid == 0:  # the x32 ABI (getpid | 0x40000000): refused too
    os._exit(0 if libc.syscall(0x40000000 + 39) == os.getpid() else 3)
out["x32"] = os.waitpid(pid, 0)[1]
# What a program that makes a WAV needs still works: AF_UNIX, threads, fork/exec, multiprocessing.
a, b = socket.socketpair(); a.send(b"x"); out["unix"] = b.recv(1).decode()
t = threading.Thread(target=lambda: None); t.start(); t.join(); out["thread"] = True
out["subprocess"] = subprocess.run(["true"]).returncode
import multiprocessing
with multiprocessing.Pool(2) as p:
    out["pool"] = sum(p.map(abs, [-1, -2]))
print(json.dumps(out))
"""


@pytest.mark.skipif(not X86_64, reason="syscall numbers are x86_64's")
def test_seccomp_profile_refuses_what_a_wav_never_needs():
    calls = "\n".join(f"call({name!r}, {nr}, {args})" for name, nr, args in REFUSED)
    code = PROBE % calls + WAV
    result = run(code, limits=LIMITS.model_copy(update={"timeout_s": 20}))
    assert result.status == "ok", result
    seen = json.loads(result.stdout_tail.strip().splitlines()[-1])
    for name, _, _ in REFUSED:
        assert seen[name] == [-1, 1], (name, seen[name])  # EPERM from the profile
    for fam, (fd, e1, fd2, e2) in seen["families"].items():
        # AF_VSOCK (40), AF_INET, AF_NETLINK, AF_PACKET, AF_ALG, ...: refused, whatever the kernel has
        assert (fd, e1, fd2, e2) == (-1, 1, -1, 1), (fam, fd, e1, fd2, e2)
    assert seen["socketpair_inet"] == [-1, 1]
    assert seen["clone3"] == [-1, 38]  # ENOSYS, so glibc falls back to clone (checked flags)
    assert seen["int80"] != 0, "the 32-bit syscall ABI answered"
    assert seen["x32"] != 0, "the x32 syscall ABI answered"
    assert seen["unix"] == "x" and seen["thread"] and seen["subprocess"] == 0 and seen["pool"] == 3


def test_seccomp_profile_is_the_projects_and_in_the_cache_key():
    from sandbox import container, seccomp
    from sandbox.client import Sandbox

    with Sandbox(LIMITS) as box:
        info = box.client.api.inspect_container(box.id)
        opts = info["HostConfig"]["SecurityOpt"]
        profiles = [o.split("=", 1)[1] for o in opts if o.startswith("seccomp=")]
        assert profiles and json.loads(profiles[0]) == seccomp.profile()
        assert info["Config"]["Labels"][container.SECCOMP_LABEL] == seccomp.PROFILE_SHA256
        assert info["HostConfig"]["IpcMode"] == "private"
        assert info["HostConfig"]["Sysctls"] == container.ipc_sysctls(LIMITS)
    from sandbox.image import image_status

    assert image_status()["seccomp_sha256"] == seccomp.PROFILE_SHA256  # `audioprobe sandbox status` says it
    names = {n for rule in seccomp.profile()["syscalls"] for n in rule["names"] if rule["action"] == "SCMP_ACT_ALLOW"}
    assert not names & {"io_uring_setup", "io_uring_enter", "ptrace", "socketcall", "bpf", "userfaultfd"}
    import hashlib

    runner = container.RUNNER_SRC + container.NORMALISE_SRC
    assert container.PROTOCOL == hashlib.sha256((runner + seccomp.PROFILE_JSON).encode()).hexdigest()[:12]
    assert container.PROTOCOL != hashlib.sha256(runner.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- IPC dies with the program

FILL_IPC = """
import ctypes, json, os, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
left = {"shm_mb": 0, "msg": 0, "sem": 0, "mq": 0, "devshm_mb": 0, "tmp_mb": 0}
# Objects handed to another owner (root) with mode 0: still removed, as their creator.
buf = ctypes.create_string_buffer(512)
for make, ctl in ((lambda: libc.shmget(0, 4096, 0o1600), libc.shmctl), (lambda: libc.msgget(0, 0o1600), libc.msgctl)):
    ident = make()
    if ident >= 0 and ctl(ident, 2, buf) == 0:  # IPC_STAT
        ctypes.memmove(ctypes.addressof(buf) + 4, ctypes.byref(ctypes.c_uint(0)), 4)  # perm.uid = 0
        ctypes.memmove(ctypes.addressof(buf) + 20, ctypes.byref(ctypes.c_ushort(0)), 2)  # perm.mode = 0
        left["given_away"] = left.get("given_away", 0) + (ctl(ident, 1, buf) == 0)  # IPC_SET
# A directory tree 1,500 deep in /tmp (past Python's recursion limit and PATH_MAX), locked at the top.
try:
    os.chdir("/tmp")
    for _ in range(1500):
        os.mkdir("d"); os.chdir("d")
    left["depth"] = 1500
finally:
    os.chdir("/work")
os.chmod("/tmp/d", 0)
for where, key in (("/dev/shm", "devshm_mb"), ("/tmp", "tmp_mb")):
    try:
        with open(where + "/fill", "wb") as f:
            while True:
                f.write(b"\\1" * (1 << 20)); f.flush(); left[key] += 1
    except OSError:
        pass
class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 8192)]
m = Msg(1, b"x" * 8192)
while left["msg"] < 1024:  # at most 8 MiB queued
    q = libc.msgget(0, 0o1600)
    if q < 0:
        break
    while libc.msgsnd(q, ctypes.byref(m), 8192, 0o4000) == 0:  # IPC_NOWAIT
        left["msg"] += 1
while left["sem"] < 64 and libc.semget(0, 32, 0o1600) >= 0:
    left["sem"] += 1
rt = ctypes.CDLL("librt.so.1", use_errno=True)
while left["mq"] < 8 and rt.mq_open(b"/q%d" % left["mq"], os.O_CREAT | os.O_RDWR, 0o600, None) >= 0:
    left["mq"] += 1
# System V shared memory: 4 MiB segments, touched, detached, never removed, until refused or until
# only 12 MiB will be free once this process's own memory goes at its exit (the red team's case: the
# segments stay, and the runner and the decoder after it have too little left).
cg = "/sys/fs/cgroup/memory/memory."
def room_after_exit_mb():
    rss = int([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")][0]) >> 10
    return ((int(open(cg + "limit_in_bytes").read()) - int(open(cg + "usage_in_bytes").read())) >> 20) + rss
while room_after_exit_mb() > 12 + 4:
    sid = libc.shmget(0, 4 << 20, 0o1600)  # IPC_PRIVATE | IPC_CREAT | 0600
    if sid < 0:
        break
    addr = libc.shmat(sid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        break
    ctypes.memset(addr, 1, 4 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    left["shm_mb"] += 4
print(json.dumps(left))
"""


DOUBLE_WAV = WAV.replace('sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)',
                         'sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr, subtype="DOUBLE")')


def test_a_valid_note_then_exhausted_ipc_is_ok():
    """The red team's case: a note, then System V shm (and msg, sem, mqueues, /dev/shm, /tmp) filled
    as far as the sandbox lets it, exit 0. Before: the runner was OOM-killed after the program,
    `error`/`SandboxKilled`. Now the IPC limits cap it and the runner removes it after the kill."""
    assert DOUBLE_WAV != WAV  # a float64 note: the decoder has to start after the program
    result = run(DOUBLE_WAV + FILL_IPC, limits=LIMITS.model_copy(update={"timeout_s": 20}))
    assert result.status == "ok", result
    left = json.loads(result.stdout_tail.strip().splitlines()[-1])
    assert left["shm_mb"] >= 4 and left["msg"] >= 1 and left["sem"] >= 1, left  # it did fill them
    assert left["given_away"] == 2 and left["depth"] == 1500
    assert left["shm_mb"] <= LIMITS.tmp_mb  # kernel.shmall: SysV shm is capped like /dev/shm
    (f,) = result.files
    assert f.name == "note.wav" and f.bytes > 1000


def test_nothing_of_a_program_is_left_for_the_next_one():
    """A reused container (pool reuse) is clean after IPC of every kind was left behind: before,
    System V objects made the reset 'dirty' and the container was thrown away."""
    from sandbox.client import SandboxPool, run_program

    second = """
    import os, json
    ipc = {k: len(open("/proc/sysvipc/" + k).read().splitlines()) - 1 for k in ("shm", "msg", "sem")}
    print(json.dumps({"ipc": ipc, "mq": os.listdir("/dev/mqueue"), "shm": os.listdir("/dev/shm"),
                      "tmp": os.listdir("/tmp")}))
    """
    limits = LIMITS.model_copy(update={"timeout_s": 20})
    with SandboxPool(size=1, limits=limits, reuse=3) as pool:
        pool.wait_ready()
        assert run_program(WAV + FILL_IPC, expect=["note.wav"], pool=pool).status == "ok"
        deadline = time.monotonic() + 15
        while pool.reused < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.reused == 1 and pool.reset_failures == 0
        result = run_program(textwrap.dedent(second) + WAV, expect=["note.wav"], pool=pool)
    seen = json.loads(result.stdout_tail.strip().splitlines()[-1])
    assert seen == {"ipc": {"shm": 0, "msg": 0, "sem": 0}, "mq": [], "shm": [], "tmp": ["matplotlib"]}, seen


def test_runner_keeps_its_margin_when_the_program_takes_all_it_can():
    """The program holds every byte it can get (resident memory up to the OOM killer, plus all of
    /tmp, /dev/shm and SysV shm) and exits 0 after writing its note: it is the OOM killer's choice
    (oom_score_adj 1000), and the runner has its margin left for the clean-up and the report."""
    code = WAV + FILL_IPC + """
import numpy as np
hold = []
try:
    while True:
        hold.append(np.ones(4 << 20))  # 32 MiB each, resident
except MemoryError:
    pass
print("held", len(hold) * 32)
"""
    result = run(code, limits=LIMITS.model_copy(update={"timeout_s": 20}))
    # Killed by the OOM killer (memory) or stopped by its own MemoryError and ok: never the runner.
    assert result.status in ("memory", "ok"), result
    assert result.error_type != "SandboxKilled"


# --------------------------------------------------------------------------- outputs = their RIFF chunk


def test_bytes_after_the_riff_chunk_never_reach_the_host(tmp_path):
    import soundfile as sf

    code = """
    import numpy as np, soundfile as sf
    sr = 16000
    sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * sr) / sr), sr, subtype="PCM_16")
    with open("note.wav", "ab") as f:
        for _ in range(90):
            f.write(b"\\x7f" * (1 << 20))
    """
    big = LIMITS.model_copy(update={"timeout_s": 20, "memory_mb": 512, "workdir_mb": 128, "max_output_mb": 128})
    result = run(code, limits=big, out_dir=tmp_path)
    assert result.status == "ok", result
    data = (tmp_path / "note.wav").read_bytes()
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data) == result.files[0].bytes < 200_000
    assert any("94371840 bytes after the RIFF chunk dropped" in n for n in result.normalised), result.normalised
    audio, sr = sf.read(tmp_path / "note.wav")
    assert sr == 16000 and len(audio) == 4 * 16000


@pytest.mark.parametrize("where", ["after data", "before fmt"])
def test_megabytes_of_other_chunks_inside_the_riff_are_not_passed(tmp_path, where):
    """Inside the RIFF chunk but no audio: a 60 MiB 'junk' chunk is dropped by re-encoding."""
    code = """
    import numpy as np, soundfile as sf, struct
    sr = 16000
    sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * sr) / sr), sr, subtype="PCM_16")
    data = open("note.wav", "rb").read()
    junk = b"junk" + struct.pack("<I", 60 << 20) + bytes(60 << 20)
    body = data[12:] + junk if WHERE == "after data" else junk + data[12:]
    open("note.wav", "wb").write(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    """.replace("WHERE", repr(where))
    big = LIMITS.model_copy(update={"timeout_s": 20, "memory_mb": 512, "workdir_mb": 128, "max_output_mb": 128})
    result = run(code, limits=big, out_dir=tmp_path)
    assert result.status == "ok", result
    data = (tmp_path / "note.wav").read_bytes()
    assert result.files[0].bytes == len(data) < 200_000 and b"junk" not in data
    assert "re-encoded" in result.normalised[0], result.normalised


def test_a_riff_size_of_zero_is_re_encoded_not_cut_to_nothing(tmp_path):
    code = """
    import numpy as np, soundfile as sf
    sr = 16000
    sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr), sr, subtype="PCM_16")
    data = bytearray(open("note.wav", "rb").read())
    data[4:8] = bytes(4)  # what a streaming writer leaves when it cannot seek back
    open("note.wav", "wb").write(data)
    """
    result = run(code, out_dir=tmp_path)
    assert result.status == "ok", result
    data = (tmp_path / "note.wav").read_bytes()
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data) == 32044 and "re-encoded" in result.normalised[0]


def test_a_riff_chunk_longer_than_the_file_is_re_encoded_not_passed(tmp_path):
    code = """
    import numpy as np, soundfile as sf, struct
    sr = 16000
    sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr), sr, subtype="PCM_16")
    data = bytearray(open("note.wav", "rb").read())
    data[4:8] = struct.pack("<I", len(data) + 1000)   # claims more than there is
    open("note.wav", "wb").write(data)
    """
    result = run(code, out_dir=tmp_path)
    data = (tmp_path / "note.wav").read_bytes() if result.status == "ok" else b""
    assert result.status == "output_rejected" or (
        struct.unpack("<I", data[4:8])[0] + 8 == len(data) and "re-encoded" in result.normalised[0]
    ), result


def test_the_host_holds_at_most_twice_an_output():
    """parse_report works on views: the exec's output plus one copy of each file, nothing more."""
    from sandbox.container import parse_report

    size = 48 << 20
    out = json.dumps({"files": [{"name": "note.wav", "bytes": size}]}).encode() + b"\n" + b"\1" * size
    tracemalloc.start()
    report, blobs = parse_report(out, b"", None, size)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(blobs["note.wav"]) == size
    assert peak < 1.1 * size, f"{peak / size:.2f}x an output allocated on top of the exec's output"


# --------------------------------------------------------------------------- strict JSON lines


def test_cli_json_is_ascii_whatever_the_program_prints(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(
        "import sys\nprint('a\\u2028b\\u2029c\\u0085d\\x1b[2J\\ud800?'.encode('utf-8', 'surrogatepass')"
        ".decode('utf-8', 'replace'))\nsys.stderr.write('\\u2028' * 50)\n" + textwrap.dedent(WAV)
    )
    proc = _cli(["sandbox", "run", str(program), "--timeout", "20"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii()
    (line,) = proc.stdout.splitlines()  # str.splitlines splits at U+2028, U+2029 and U+0085 too
    result = json.loads(line)
    assert "\u2028" in result["stdout_tail"] and "\u0085" in result["stdout_tail"]
