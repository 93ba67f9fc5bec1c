"""The sandbox against a corpus of hostile programs, on the real Docker engine and the real image.

Each program must be contained (limits hold, nothing hangs, nothing reaches the host) and classified
with exactly the status a user would expect.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import soundfile as sf

from audioprobe.schema import ExecutionLimits

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
# Small limits keep the corpus quick on two cores; the defaults are exercised by the CLI test.
LIMITS = ExecutionLimits(timeout_s=4, memory_mb=256, workdir_mb=48, tmp_mb=16, max_output_mb=16)

WAV = """
import numpy as np, soundfile as sf
sr = 16000
t = np.arange(sr // 4) / sr
sf.write("note.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
"""


@pytest.fixture(scope="module", autouse=True)
def engine_and_image():
    from sandbox.client import LABEL, connect
    from sandbox.image import image_status

    client = connect()  # raises with the way out when no engine answers: a failure, not a skip
    status = image_status()
    assert status["exists"], "sandbox image missing: run `audioprobe sandbox build` (or `make setup`)"
    # Only this process's containers: another run or benchmark may share the engine.
    mine = {"label": f"{LABEL}.owner={socket.gethostname()}:{os.getpid()}"}
    before = {c["Id"] for c in client.api.containers(all=True, filters=mine)}
    yield client
    deadline = time.monotonic() + 10  # pool removals run in the background
    while (left := {c["Id"] for c in client.api.containers(all=True, filters=mine)} - before) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not left, f"sandbox containers left behind: {left}"


def run(code: str, expect=("note.wav",), limits: ExecutionLimits = LIMITS, out_dir=None, **kw):
    from sandbox.client import run_program

    t0 = time.monotonic()
    result = run_program(
        textwrap.dedent(code), expect=list(expect) if expect else None, limits=limits, out_dir=out_dir, **kw
    )
    elapsed = time.monotonic() - t0
    # Nothing hangs: every run ends within its timeout plus the sandbox's own margin.
    assert elapsed < limits.timeout_s + 10, f"run took {elapsed:.1f}s"
    return result


def host_still_forks() -> None:
    assert subprocess.run(["true"], timeout=10).returncode == 0


# --------------------------------------------------------------------------- well-behaved programs


def test_valid_wav_is_copied_out_with_its_hash(tmp_path):
    import soundfile as sf

    result = run(WAV + "\nprint('made it')", out_dir=tmp_path)
    assert result.status == "ok", result
    assert result.exit_code == 0 and "made it" in result.stdout_tail
    (f,) = result.files
    data = (tmp_path / "note.wav").read_bytes()
    assert f.name == "note.wav" and f.bytes == len(data) and f.sha256 == hashlib.sha256(data).hexdigest()
    audio, sr = sf.read(tmp_path / "note.wav")
    assert sr == 16000 and len(audio) == 4000


def test_default_expectation_is_any_wav(tmp_path):
    result = run(WAV.replace("note.wav", "whatever_name.wav"), expect=None, out_dir=tmp_path)
    assert result.status == "ok" and [f.name for f in result.files] == ["whatever_name.wav"]


def test_exit_zero_without_output():
    result = run("print('I forgot to write the file')")
    assert result.status == "no_output" and result.exit_code == 0 and not result.files


def test_wrong_name_is_no_output():
    result = run(WAV.replace("note.wav", "other.wav"))
    assert result.status == "no_output"


def test_missing_module_is_named():
    result = run("import numpy\nfrom midutil import MIDIFile\n")
    assert result.status == "error" and result.exit_code == 1
    assert result.error_type == "ModuleNotFoundError" and result.missing_module == "midutil"


def test_syntax_error():
    result = run("def f(:\n    pass\n")
    assert result.status == "error" and result.error_type == "SyntaxError" and result.missing_module is None


def test_runtime_error_type():
    result = run("import numpy as np\nnp.zeros(3) + np.zeros(4)\n")
    assert result.status == "error" and result.error_type == "ValueError"


def test_audio_stack_imports():
    code = """
    import numpy, scipy.signal, scipy.io.wavfile, soundfile, matplotlib.pyplot, pydub, midiutil, mido
    import pretty_midi, librosa, wave, audioop, struct
    import numpy as np
    y = librosa.tone(440, sr=8000, duration=0.1)
    scipy.io.wavfile.write("note.wav", 8000, (y * 32767).astype(np.int16))
    """
    result = run(code, limits=LIMITS.model_copy(update={"timeout_s": 30, "memory_mb": 1024}))
    assert result.status == "ok", result.stderr_tail
    assert "Warning" not in result.stderr_tail  # e.g. pydub's "Couldn't find ffmpeg"


def test_hardening_is_on_by_default(monkeypatch):
    from sandbox.client import Sandbox
    from sandbox.container import RUNNER_MARGIN_MB

    monkeypatch.setenv("AUDIOPROBE_TEST_SECRET", "must-not-leak")
    limits = ExecutionLimits()
    with Sandbox(limits) as box:
        info = box.client.api.inspect_container(box.id)
        host = info["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        # SETUID/SETGID: only the runner (root, nothing else) holds them, to start the program as 10001
        assert host["CapDrop"] == ["ALL"] and host["Privileged"] is False
        assert {c.removeprefix("CAP_") for c in host["CapAdd"]} == {"SETUID", "SETGID"}
        assert "no-new-privileges" in host["SecurityOpt"] and host["Init"] is True
        assert host["PidsLimit"] == limits.pids
        # the program's limit plus the runner's margin (sandbox/container.py RUNNER_MARGIN_MB)
        assert host["Memory"] == host["MemorySwap"] == (limits.memory_mb + RUNNER_MARGIN_MB) * 1024 * 1024
        assert host["NanoCpus"] == int(limits.cpus * 1e9)
        assert {u["Name"] for u in host["Ulimits"]} >= {"fsize", "nofile"}
        assert (
            set(host["Tmpfs"]) == {"/work", "/tmp"} and f"size={limits.workdir_mb}m" in host["Tmpfs"]["/work"]
        )
        assert not host.get("Binds") and not info["Mounts"]
        assert not any("must-not-leak" in e for e in info["Config"]["Env"])
        assert info["Config"]["User"] == "0:0"
        code, out, _, _ = box.exec(
            ["sh", "-c", "id -u; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'"]
        )
        assert code == 0 and out.split()[0] == b"10001"
        assert b"CapEff:\t0000000000000000" in out and b"NoNewPrivs:\t1" in out


def test_sandbox_write_exec_read():
    from sandbox.client import Sandbox, SandboxError

    with Sandbox(LIMITS) as box:
        box.write_file("in.bin", b"\x00\x01" * 50_000)  # two chunks
        code, out, _, _ = box.exec(["python3", "-c", "import os; print(os.path.getsize('in.bin'))"])
        assert code == 0 and out.strip() == b"100000"
        assert box.read_file("in.bin") == b"\x00\x01" * 50_000
        box.exec(["ln", "-s", "/etc/passwd", "link.wav"])
        with pytest.raises(SandboxError, match="symlink"):
            box.read_file("link.wav")
        with pytest.raises(FileNotFoundError):
            box.read_file("absent.wav")
        with pytest.raises(ValueError):
            box.read_file("../etc/passwd")
        code, out, _, problem = box.exec(["sleep", "30"], timeout=1)
        assert problem == "timeout" and code is None


def test_frames_that_arrived_with_the_headers_are_read():
    """The bytes after the response headers sit in the reader's buffer once the headers are parsed:
    docker-py read past them (the raw socket); exec_frames reads through the buffer."""
    import io
    import struct

    from sandbox.container import SandboxError, read_frames

    left, right = socket.socketpair()
    frames = [(1, b"report "), (2, b"warning\n"), (1, b""), (1, b"done\n")]
    left.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n" + b"".join(struct.pack(">BxxxL", k, len(d)) + d for k, d in frames))
    left.close()
    buffered = right.makefile("rb")
    assert buffered.readline() == b"HTTP/1.1 101 UPGRADED\r\n" and buffered.readline() == b"\r\n"
    assert list(read_frames(buffered)) == frames
    with pytest.raises(SandboxError, match="out of step: frame type 247"):
        list(read_frames(io.BytesIO(b"\xf7\x00\x00\x00\x00\x00\x00\x01x")))


def test_exec_output_is_whole_on_a_busy_client():
    """Threads holding the GIL delay the reading of each exec's response headers until the program's
    output has arrived with them: with docker-py's exec_start, 12 of 240 outputs came back short here."""
    import threading

    from sandbox.client import Sandbox

    stop = threading.Event()

    def busy():
        while not stop.is_set():
            sum(i * i for i in range(10_000))

    burners = [threading.Thread(target=busy, daemon=True) for _ in range(3)]
    want = "".join(f"line {i}\n" for i in range(50)).encode()
    script = "import sys; sys.stdout.write(''.join('line %d\\n' % i for i in range(50)))"
    try:
        for b in burners:
            b.start()
        with Sandbox(LIMITS) as box, ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda _: box.exec(["python3", "-I", "-S", "-c", script], timeout=30)[1], range(160)))
    finally:
        stop.set()
    assert [len(o) for o in outs if o != want] == []


# --------------------------------------------------------------------------- resource attacks


def test_fork_bomb_is_held_by_the_pids_limit():
    code = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    result = run(code, limits=LIMITS.model_copy(update={"timeout_s": 3}))
    assert result.status == "timeout", result
    host_still_forks()


def test_memory_bomb_is_oom_killed():
    code = """
    hoard = []
    while True:
        hoard.append(b"x" * (32 * 1024 * 1024))
    """
    result = run(code)
    assert result.status == "memory", result
    assert result.error_type == "OOMKilled" and result.signal == "SIGKILL"


def test_huge_allocation_memory_error():
    result = run("import numpy as np\na = np.ones(10**12)\n")
    assert result.status == "memory" and result.error_type.endswith("MemoryError")  # numpy: _ArrayMemoryError


def test_busy_loop_times_out():
    result = run("while True:\n    pass\n", limits=LIMITS.model_copy(update={"timeout_s": 2}))
    assert result.status == "timeout" and result.wall_s >= 2 and result.total_s < 2 + 5


def test_sleep_forever_times_out():
    result = run(
        "import time\nprint('going to sleep', flush=True)\ntime.sleep(10**6)\n",
        limits=LIMITS.model_copy(update={"timeout_s": 2}),
    )
    assert result.status == "timeout" and "going to sleep" in result.stdout_tail


def test_sigterm_ignoring_loop_times_out():
    code = """
    import signal, time
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    while True:
        time.sleep(0.05)
    """
    result = run(code, limits=LIMITS.model_copy(update={"timeout_s": 2}))
    assert result.status == "timeout"


def test_disk_fill_is_capped():
    code = """
    with open("fill.bin", "wb") as f:
        while True:
            f.write(b"\\0" * (1 << 20))
    """
    result = run(code)
    assert result.status == "error", result
    assert result.error_type == "OSError" and not result.files, result


def test_tmp_fill_is_capped():
    code = """
    with open("/tmp/fill.bin", "wb") as f:
        while True:
            f.write(b"\\0" * (1 << 20))
    """
    result = run(code)
    assert result.status == "error" and "No space left" in result.stderr_tail


def test_hundred_megabytes_of_stdout_keep_only_a_tail(tmp_path):
    code = (
        textwrap.dedent("""
    import sys
    line = "x" * 1023 + "\\n"
    for _ in range(100 * 1024):
        sys.stdout.write(line)
    sys.stdout.write("THE END\\n")
    """)
        + WAV
    )
    result = run(code, out_dir=tmp_path, limits=LIMITS.model_copy(update={"timeout_s": 20}))
    assert result.status == "ok", result.stderr_tail
    assert len(result.stdout_tail.encode()) <= LIMITS.tail_bytes and result.stdout_tail.endswith("THE END\n")


def test_stdin_is_empty_not_a_hang():
    result = run("import sys\ndata = sys.stdin.read()\nprint('read', len(data))\n")
    assert result.status == "no_output" and "read 0" in result.stdout_tail
    result = run("name = input('note? ')\n")
    assert result.status == "error" and result.error_type == "EOFError"


# --------------------------------------------------------------------------- escape attempts


def test_no_network_not_even_the_hosts_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    code = f"""
    import socket, json
    out = {{}}
    for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("pypi.org", 443)):
        try:
            socket.create_connection((host, port), timeout=2).close()
            out[host] = "CONNECTED"
        except OSError as exc:
            out[host] = type(exc).__name__
    print(json.dumps(out))
    """
    result = run(code)
    with pytest.raises(OSError):  # nothing reached the host's listener
        listener.accept()
    listener.close()
    seen = json.loads(result.stdout_tail.strip().splitlines()[-1])
    assert "CONNECTED" not in seen.values(), seen
    assert seen["127.0.0.1"] == "PermissionError"  # socket(AF_INET) itself: the seccomp profile


def test_host_environment_is_invisible(monkeypatch):
    secret = "sk-audioprobe-test-" + os.urandom(8).hex()
    monkeypatch.setenv("AUDIOPROBE_TEST_SECRET", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    code = """
    import os
    print(dict(os.environ))
    for pid in ("1", "self", str(os.getppid())):
        try:
            print(pid, open(f"/proc/{pid}/environ", "rb").read())
        except OSError as exc:
            print(pid, type(exc).__name__)
    """
    result = run(code)
    assert result.status == "no_output"
    assert "HOME" in result.stdout_tail  # it did print the environment
    assert secret not in result.stdout_tail + result.stderr_tail


def test_writes_outside_the_work_dir_fail():
    code = """
    import json, os
    out = {}
    for path in ("/etc/passwd", "/opt/venv/evil.py", "/usr/bin/evil", "/evil", "/proc/sys/kernel/evil",
                 "/work/../etc/evil", "/tmp/ok.txt"):
        try:
            with open(path, "w") as f:
                f.write("x")
            out[path] = "WROTE"
        except OSError as exc:
            out[path] = type(exc).__name__
    print(json.dumps(out))
    """
    result = run(code)
    seen = json.loads(result.stdout_tail.strip().splitlines()[-1])
    assert seen.pop("/tmp/ok.txt") == "WROTE"
    assert "WROTE" not in seen.values(), seen
    assert "evil" not in "".join(os.listdir("/")) and not Path("/etc/evil").exists()


def test_output_symlink_to_host_file_is_rejected(tmp_path):
    result = run("import os\nos.symlink('/etc/passwd', 'note.wav')\n", out_dir=tmp_path)
    assert result.status == "output_rejected" and "symlink" in result.rejected[0]
    assert not list(tmp_path.iterdir())


def test_output_directory_is_rejected(tmp_path):
    result = run("import os\nos.mkdir('note.wav')\nopen('note.wav/x', 'w').write('x')\n", out_dir=tmp_path)
    assert result.status == "output_rejected" and "directory" in result.rejected[0]
    assert not list(tmp_path.iterdir())


def test_output_fifo_is_rejected_without_hanging(tmp_path):
    result = run("import os\nos.mkfifo('note.wav')\n", out_dir=tmp_path)
    assert result.status == "output_rejected" and "fifo" in result.rejected[0]
    assert result.total_s < 5


def test_two_gigabyte_output_is_refused(tmp_path):
    code = """
    with open("note.wav", "wb") as f:
        f.seek(2 * 1024**3)
        f.write(b"RIFF")
    """
    result = run(code, out_dir=tmp_path)
    # Python ignores SIGXFSZ, so the file-size ulimit shows as EFBIG ("File too large").
    assert result.status == "error" and result.error_type == "OSError", result
    assert "File too large" in result.stderr_tail
    assert not list(tmp_path.iterdir()) and not result.files


def test_output_over_the_size_cap_is_rejected(tmp_path):
    code = "open('note.wav', 'wb').write(b'\\0' * (20 * 1024 * 1024))\n"  # under the tmpfs, over max_output
    result = run(code, out_dir=tmp_path)
    assert result.status == "output_rejected" and "limit" in result.rejected[0]
    assert not list(tmp_path.iterdir())


def test_killing_pid_1_is_refused():
    code = (
        textwrap.dedent("""
    import os, signal
    try:
        os.kill(1, signal.SIGKILL)
        print("KILLED")
    except OSError as exc:
        print(type(exc).__name__)
    """)
        + WAV
    )
    result = run(code)
    assert result.status == "ok" and "PermissionError" in result.stdout_tail


def test_kill_everything_it_can_reaches_only_its_own_uid(tmp_path):
    code = (
        textwrap.dedent("""
    import os, signal, time
    os.kill(-1, signal.SIGKILL)  # every process it may signal: none but its own uid's
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except PermissionError:
        print("runner out of reach")
    time.sleep(0.5)
    """)
        + WAV
    )
    result = run(code, out_dir=tmp_path)
    assert result.status == "ok" and "runner out of reach" in result.stdout_tail


def test_double_forked_child_does_not_hold_the_run(tmp_path):
    code = (
        textwrap.dedent("""
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(1000)  # keeps stdout and stderr open
        os._exit(0)
    os.wait()
    """)
        + WAV
    )
    t0 = time.monotonic()
    result = run(code, out_dir=tmp_path)
    assert result.status == "ok" and time.monotonic() - t0 < 4


def test_big_program_goes_in_by_chunks():
    code = "# " + "padding " * 40_000 + "\n" + WAV  # 320 KB, above one exec argument
    result = run(code)
    assert result.status == "ok", result


# --------------------------------------------------------------------------- many at once


def test_concurrent_runs_are_isolated_and_classified(tmp_path):
    from sandbox.client import SandboxPool

    programs = {
        "ok": WAV,
        "memory": "hoard = []\nwhile True:\n    hoard.append(b'x' * (32 << 20))\n",
        "timeout": "while True:\n    pass\n",
        "error": "import midutil\n",
        "no_output": "print('hi')\n",
    }
    limits = LIMITS.model_copy(update={"timeout_s": 3})
    with SandboxPool(size=2, limits=limits) as pool, ThreadPoolExecutor(4) as ex:
        jobs = {
            want: ex.submit(run, code, limits=limits, out_dir=tmp_path / want, pool=pool)
            for want, code in programs.items()
        }
        jobs.update(
            {
                f"ok{i}": ex.submit(run, WAV, limits=limits, out_dir=tmp_path / f"ok{i}", pool=pool)
                for i in range(3)
            }
        )
        got = {want: job.result().status for want, job in jobs.items()}
    assert all(status == want.rstrip("0123456789") for want, status in got.items()), got


# --------------------------------------------------------------------------- no engine, no image, CLI


def _cli(args, env=None, timeout=120):
    full = {**os.environ, **(env or {})}
    # Not `python -m audioprobe.cli`: as __main__ its UserError would be another class than the one raised.
    main = "import sys; from audioprobe.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", main, *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=REPO,
    )


def test_cli_run_prints_one_json_object(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(WAV)
    proc = _cli(
        [
            "sandbox",
            "run",
            str(program),
            "--expect",
            "note.wav",
            "--timeout",
            "20",
            "--memory",
            "512",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    result = json.loads(line)
    assert result["status"] == "ok" and result["files"][0]["name"] == "note.wav"
    assert (tmp_path / "out" / "note.wav").stat().st_size == result["files"][0]["bytes"]


def test_no_engine_is_a_clear_error(tmp_path, monkeypatch):
    from sandbox.client import EngineUnavailable, run_program

    dead = f"unix://{tmp_path}/nothing-here.sock"
    monkeypatch.setenv("DOCKER_HOST", dead)
    with pytest.raises(EngineUnavailable, match="no Docker engine answers"):
        run_program(WAV)
    program = tmp_path / "prog.py"
    program.write_text(WAV)
    proc = _cli(["sandbox", "run", str(program)], env={"DOCKER_HOST": dead})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no Docker engine answers" in proc.stderr and "Traceback" not in proc.stderr


def test_no_image_is_a_clear_error(tmp_path):
    from sandbox.client import ImageMissing, run_program

    with pytest.raises(ImageMissing, match="audioprobe sandbox build"):
        run_program(WAV, image="audioprobe-sandbox-missing:nope")
    program = tmp_path / "prog.py"
    program.write_text(WAV)
    proc = _cli(
        ["sandbox", "run", str(program)], env={"AUDIOPROBE_SANDBOX_IMAGE": "audioprobe-sandbox-missing:nope"}
    )
    assert (
        proc.returncode == 2 and "audioprobe sandbox build" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_shared_pool_is_reused_and_runs_warm():
    from sandbox.client import run_program, shared_pool

    pool = shared_pool(LIMITS, size=1)
    assert shared_pool(LIMITS) is pool
    pool.wait_ready()
    result = run_program(WAV, expect=["note.wav"], pool=pool)
    assert result.status == "ok"
    pool.close()


def test_pool_reuse_leaves_nothing_for_the_next_program():
    from sandbox.client import SandboxPool, run_program

    first = (
        textwrap.dedent("""
    import os, time
    open("secret.txt", "w").write("run 1")
    open("/tmp/secret.txt", "w").write("run 1")
    os.makedirs("locked/deeper"); os.chmod("locked", 0)
    from multiprocessing import shared_memory
    shared_memory.SharedMemory(name="leak", create=True, size=4096)
    if os.fork() == 0:
        os.setsid()
        time.sleep(1000)  # a daemon that outlives the run
    """)
        + WAV
    )
    second = (
        textwrap.dedent("""
    import os, json
    mine = [p for p in os.listdir("/proc") if p.isdigit() and os.stat("/proc/" + p).st_uid == os.getuid()]
    print(json.dumps({"work": os.listdir("."), "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"),
                      "procs": len(mine)}))
    """)
        + WAV
    )
    with SandboxPool(size=1, limits=LIMITS, reuse=5) as pool:
        pool.wait_ready()
        assert run_program(first, expect=["note.wav"], pool=pool).status == "ok"
        deadline = time.monotonic() + 10
        while pool.reused < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.reused == 1
        result = run_program(second, expect=["note.wav"], pool=pool)
        assert result.status == "ok" and pool.warm_takes == 2 and pool.cold_takes == 0
    seen = json.loads(result.stdout_tail.strip().splitlines()[-1])
    assert seen["work"] == ["program.py"] and seen["tmp"] == ["matplotlib"] and seen["shm"] == []
    assert seen["procs"] <= 2  # the runner and the program itself: the daemon is gone


# --------------------------------------------------------------------------- issue 14: untrusted output


def test_compressed_bomb_under_a_wav_name_is_normalised_inside(tmp_path):
    from tests.hostile_audio import gate_in_fresh_process

    # 70 s of 5-channel FLAC at 96 kHz (a few kB: silence and one tone), saved as note.wav.
    code = """
    import numpy as np, soundfile as sf
    with sf.SoundFile("note.wav", "w", 96000, 5, format="FLAC", subtype="PCM_24") as f:
        block = np.zeros((96000, 5), np.float32)
        block[:, 0] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(96000) / 96000)
        for _ in range(70):
            f.write(block)
    """
    # The re-encoded file (60 s x 5 x float32: 58 MB) must fit in the work dir next to the FLAC.
    limits = LIMITS.model_copy(update={"timeout_s": 20, "memory_mb": 1024, "workdir_mb": 128, "max_output_mb": 100})
    result = run(code, limits=limits, out_dir=tmp_path)
    assert result.status == "ok", (result.rejected, result.stderr_tail)
    note = tmp_path / "note.wav"
    assert note.read_bytes()[:4] == b"RIFF"
    changed = " ".join(result.normalised)
    assert "FLAC" in changed and "96000 -> 48000" in changed and "-> 60 s" in changed
    gated, rss = gate_in_fresh_process([note])
    assert gated[str(note)]["ok"] and gated[str(note)]["seconds"] < 10


def test_undecodable_output_is_rejected_with_the_reason(tmp_path):
    code = """
    open("note.wav", "wb").write(b"RIFF" + bytes(range(256)) * 64)
    """
    result = run(code, out_dir=tmp_path)
    assert result.status == "output_rejected" and "not decodable as audio" in result.rejected[0]
    assert not list(tmp_path.iterdir())


def test_absurd_rate_and_too_many_channels_are_refused_or_cut(tmp_path):
    code = """
    import numpy as np, soundfile as sf
    sf.write("fast.wav", np.zeros((100, 1)), 1_000_000)           # 1 MHz: refused, not resampled
    sf.write("wide.wav", np.full((16000, 12), 0.1), 16000, subtype="FLOAT")  # 12 channels: first 8
    """
    result = run(code, expect=["*.wav"], out_dir=tmp_path)
    assert result.status == "output_rejected"
    assert any(r.startswith("fast.wav:") and "1000000 Hz" in r for r in result.rejected), result.rejected
    assert "wide.wav: channels 12 -> first 8" in result.normalised


def test_plain_wav_passes_untouched_and_others_are_rewritten(tmp_path):
    code = """
    import hashlib, numpy as np, soundfile as sf
    x = 0.25 * np.sin(2 * np.pi * 440 * np.arange(9600) / 96000)
    sf.write("hi.wav", x, 96000, subtype="PCM_24")
    sf.write("plain.wav", x, 48000, subtype="FLOAT")
    print(hashlib.sha256(open("plain.wav", "rb").read()).hexdigest())
    """
    result = run(code, expect=["*.wav"], out_dir=tmp_path)
    assert result.status == "ok", result.rejected
    assert result.normalised == ["hi.wav: WAV/PCM_24 -> WAV/FLOAT; rate 96000 -> 48000 Hz"]
    plain = next(f for f in result.files if f.name == "plain.wav")
    assert plain.sha256 == result.stdout_tail.split()[-1]  # not re-encoded: byte for byte the program's
    x, sr = sf.read(tmp_path / "hi.wav")
    assert sr == 48000 and len(x) == 4800


def test_caught_memory_error_with_valid_output_is_ok():
    code = (
        textwrap.dedent("""
    import traceback, numpy as np
    try:
        np.ones(10**12)
    except MemoryError:
        traceback.print_exc()
    """)
        + WAV
    )
    result = run(code)
    assert "MemoryError" in result.stderr_tail
    assert result.status == "ok" and result.error_type is None


def test_memory_error_with_nonzero_exit_is_memory():
    result = run("import numpy as np\nx = np.ones(10**12)\n")
    assert result.status == "memory" and result.exit_code == 1


def test_stopping_the_runner_does_not_stop_the_clock():
    code = """
    import os, signal, time
    for target in (os.getppid(), 1, -1):
        try:
            os.kill(target, signal.SIGSTOP)
        except OSError as exc:
            print(target, type(exc).__name__)
    while True:
        time.sleep(0.1)
    """
    limits = LIMITS.model_copy(update={"timeout_s": 3})
    result = run(code, limits=limits)
    assert result.status == "timeout"
    assert result.wall_s < limits.timeout_s + 2 and result.total_s < limits.timeout_s + 2 + 3  # + start/remove


def test_a_hundred_busy_children_do_not_delay_the_deadline():
    code = """
    import os
    for _ in range(100):
        try:
            if os.fork() == 0:
                while True:
                    pass
        except OSError:
            break
    while True:
        pass
    """
    limits = LIMITS.model_copy(update={"timeout_s": 3})
    result = run(code, limits=limits)
    assert result.status == "timeout" and result.wall_s < limits.timeout_s + 2


def test_a_flood_of_names_is_capped(tmp_path):
    code = (
        textwrap.dedent("""
    import os
    made = 0
    try:
        for i in range(100_000):
            open("x%05d.wav" % i, "wb").close()
            made += 1
    except OSError as exc:
        print("stopped at", made, exc.strerror)
    for i in range(3000, made):  # room for the note
        os.unlink("x%05d.wav" % i)
    """)
        + WAV
    )
    result = run(code, expect=["*.wav"], out_dir=tmp_path)
    assert "stopped at" in result.stdout_tail  # the inode limit of the tmpfs
    made = int(result.stdout_tail.split()[2])
    assert made < 5000
    assert result.status == "output_rejected" and len(result.rejected) <= 51
    assert result.rejected[50].startswith("... and ")
    assert len(result.model_dump_json()) < 64 * 1024


def test_non_utf8_names_are_rejected_and_records_serialise(tmp_path):
    from audioprobe.schema import ExecutionResult

    code = (
        textwrap.dedent("""
    open(b"\\xff\\xfeowl.wav", "wb").write(b"RIFF")
    """)
        + WAV
    )
    result = run(code, expect=["*.wav"], out_dir=tmp_path)
    assert result.status == "output_rejected"
    assert any("not UTF-8" in r and "\\xff\\xfeowl.wav" in r for r in result.rejected), result.rejected
    again = ExecutionResult.model_validate_json(result.model_dump_json())
    assert again.rejected == result.rejected


def test_isolation_the_sandbox_assumes():
    code = (
        textwrap.dedent("""
    import ctypes, os
    status = open("/proc/self/status").read()
    print("seccomp", [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")][0])
    libc = ctypes.CDLL(None, use_errno=True)
    print("unshare", libc.unshare(0x10000000), ctypes.get_errno())  # CLONE_NEWUSER
    sockets = open("/proc/net/unix").read()
    print("engine", "docker.sock" in sockets or "containerd" in sockets)
    """)
        + WAV
    )
    result = run(code)
    lines = result.stdout_tail.splitlines()
    assert "seccomp 2" in lines
    unshare = next(line for line in lines if line.startswith("unshare")).split()
    assert unshare[1] == "-1" and unshare[2] in ("1", "22")  # EPERM (seccomp) or EINVAL
    assert "engine False" in lines


def test_sandbox_runtime_setting_is_used(monkeypatch):
    from audioprobe.settings import get_settings
    from sandbox.client import Sandbox, connect

    runtimes = connect().info().get("Runtimes", {})
    wanted = os.environ.get("AUDIOPROBE_TEST_RUNTIME", "runsc")
    if wanted not in runtimes:
        pytest.skip(f"the engine has no {wanted} runtime ({sorted(runtimes)})")
    monkeypatch.setenv("AUDIOPROBE_SANDBOX_RUNTIME", wanted)
    get_settings.cache_clear()
    try:
        with Sandbox(LIMITS) as box:
            assert box.client.api.inspect_container(box.id)["HostConfig"]["Runtime"] == wanted
        assert run(WAV).status == "ok"
    finally:
        monkeypatch.delenv("AUDIOPROBE_SANDBOX_RUNTIME")
        get_settings.cache_clear()


def test_leftovers_of_a_killed_client_are_removed(tmp_path):
    from sandbox.client import LABEL, connect
    from sandbox.engine import EXPIRES_LABEL, OWNER_LABEL

    client = connect()
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from audioprobe.schema import ExecutionLimits
        from sandbox.client import run_program
        print("started", flush=True)
        run_program("import time\\ntime.sleep(60)\\n", limits=ExecutionLimits(timeout_s=60, memory_mb=128))
        """ % str(REPO))
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline().strip() == b"started"
    owner = f"{socket.gethostname()}:{proc.pid}"
    deadline = time.monotonic() + 30
    while not client.api.containers(filters={"label": f"{OWNER_LABEL}={owner}"}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.api.containers(filters={"label": f"{OWNER_LABEL}={owner}"}), "the client never started one"
    proc.kill()
    proc.wait()
    out = _cli(["sandbox", "gc"])
    assert out.returncode == 0 and json.loads(out.stdout)["containers_removed"] >= 1
    assert not client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    # A live owner's container whose time is up goes too (a restarted worker, a reused pid).
    from sandbox.client import Sandbox, remove_stale

    box = Sandbox(LIMITS, expires_in_s=-1)
    labels = client.api.inspect_container(box.id)["Config"]["Labels"]
    assert labels[LABEL] == "1" and int(labels[EXPIRES_LABEL]) < time.time()
    assert remove_stale() >= 1
    assert not client.api.containers(all=True, filters={"id": box.id})
