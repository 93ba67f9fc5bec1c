"""Build docker-compose.yml's images offline, from the Debian base sandbox/image.py makes for the sandbox.

Three images, each labelled with the hash of what it is built from and skipped when an image with that
hash exists: audioprobe-postgres (Debian's PostgreSQL), audioprobe-deps:<hash> (a venv with the
project's dependencies, CPU torch; rebuilt only when pyproject.toml or constraints.txt change) and
audioprobe (the code on top, for the Prefect server and the worker). Only PyPI and the Debian mirror
are needed, through the host's network during the build; never a registry.

    python -m deploy.build [--force]     (scripts/setup.sh compose)
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "deploy"
HASH_LABEL = "audioprobe.context-sha256"
POSTGRES_IMAGE = "audioprobe-postgres"
APP_IMAGE = "audioprobe"
DEPS_REPO = "audioprobe-deps"
# What the app image holds: the installable project and the prompt templates it reads at run time.
APP_PATHS = (
    "pyproject.toml",
    "README.md",
    "constraints.txt",
    "audioprobe",
    "flows",
    "tasks",
    "sandbox",
    "prompts",
)
TORCH_INDEX = os.environ.get("AUDIOPROBE_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")


def _log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def _files(paths: tuple[str, ...]) -> list[str]:
    """The paths' files that git would track: the working tree, less caches and build output."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "--", *paths],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(f for f in set(out.splitlines()) if (ROOT / f).is_file())


def _digest(files: list[str], *extra: str) -> str:
    h = hashlib.sha256("\0".join(extra).encode())
    for name in files:
        h.update(b"\0" + name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()


def _current(client, tag: str, digest: str) -> bool:
    import docker

    try:
        return (client.images.get(tag).labels or {}).get(HASH_LABEL) == digest
    except docker.errors.ImageNotFound:
        return False


def _build(client, context: Path, dockerfile: str, tag: str, digest: str, buildargs: dict) -> None:
    from sandbox.client import SandboxError

    stream = client.api.build(
        path=str(context),
        dockerfile=dockerfile,
        tag=tag,
        buildargs=buildargs,
        network_mode="host",
        labels={HASH_LABEL: digest},
        rm=True,
        forcerm=True,
        decode=True,
        pull=False,
    )
    for chunk in stream:
        text = chunk.get("stream") or ""
        if text.strip():
            print(text, end="" if text.endswith("\n") else "\n", file=sys.stderr, flush=True)
        if "error" in chunk:
            raise SandboxError(f"building {tag} failed: {chunk['error'].strip()}")


def _copy(files: list[str], dest: Path) -> None:
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def _wheelhouse(client, base: str, dest: Path, digest: str) -> None:
    """Every wheel the deps image installs, so that its build asks no index and a rebuild downloads
    nothing. pip resolves inside the base image (its Python's markers: Debian's 3.11.2 needs wheels a
    newer host Python does not) with the host's network and pip cache; CPU torch comes first from the
    host's pip (its configuration may know a local copy; the PyTorch CPU index is asked when it answers)."""
    from sandbox.client import SandboxError
    from sandbox.image import _host_ca_bundle

    stamp = dest / f".complete-{digest[:12]}"  # pip would still ask the index about each of ~170 wheels
    if stamp.exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    torch = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        *(
            line.strip()
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip().startswith("torch==")
        ),
    ]
    try:
        urllib.request.urlopen(TORCH_INDEX + "/", timeout=5).close()
        torch += ["--extra-index-url", TORCH_INDEX]
    except OSError:
        _log(f"{TORCH_INDEX} does not answer: torch comes from the host's pip configuration")
    subprocess.run(torch, check=True)
    with tempfile.TemporaryDirectory(prefix="audioprobe-deps-") as src:
        # A stand-in package: pip resolves the project's dependencies without its code.
        for name in ("pyproject.toml", "constraints.txt"):
            shutil.copy(ROOT / name, Path(src) / name)
        (Path(src) / "README.md").touch()
        (Path(src) / "audioprobe").mkdir()
        (Path(src) / "audioprobe" / "__init__.py").touch()
        ca = _host_ca_bundle()
        pip_cache = Path.home() / ".cache" / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        volumes = {
            src: {"bind": "/src", "mode": "rw"},
            str(dest): {"bind": "/wh", "mode": "rw"},
            str(pip_cache): {"bind": "/root/.cache/pip", "mode": "rw"},
        }
        if ca:
            volumes[str(ca)] = {"bind": "/ca.pem", "mode": "ro"}
        script = (
            "set -e; python3 -m venv /tmp/v; [ -s /ca.pem ] && export PIP_CERT=/ca.pem; "
            "/tmp/v/bin/pip download -q --disable-pip-version-check -d /wh --find-links /wh "
            "-c /src/constraints.txt '/src[judges,refs]' 'setuptools>=68' wheel"
        )
        _log(f"fetching the deps image's wheels into {dest} (pip in {base})")
        container = client.containers.run(
            base, ["sh", "-c", script], network_mode="host", volumes=volumes, detach=True
        )
        try:
            code = container.wait()["StatusCode"]
            if code:
                tail = container.logs().decode(errors="replace")[-3000:]
                raise SandboxError(f"fetching the wheels failed ({code}):\n{tail}")
        finally:
            container.remove(force=True)
    stamp.touch()


class _Serve:
    """Serve a folder on 127.0.0.1 for the length of a build (which runs with the host network)."""

    def __init__(self, folder: Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _drop_stale(client, repo: str, keep: str) -> None:
    """Earlier dependency images (2.5 GB each); one still used by a container stays."""
    import docker

    for image in client.images.list(name=repo):
        for tag in image.tags:
            if tag != keep:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError:
                    pass


def build(force: bool = False) -> dict:
    """Build what is missing or stale; returns each image's tag, whether it was built, and seconds."""
    from audioprobe.settings import get_settings
    from sandbox.client import connect
    from sandbox.image import _ensure_base

    client = connect()
    base = _ensure_base(client, "debootstrap", get_settings().cache_dir)
    done: dict[str, dict] = {}

    def step(tag: str, digest: str, make) -> None:
        if not force and _current(client, tag, digest):
            done[tag] = {"built": False}
            return
        _log(f"building {tag}")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="audioprobe-compose-") as ctx:
            make(Path(ctx))
        done[tag] = {"built": True, "seconds": round(time.monotonic() - start, 1)}

    pg_files = ["deploy/postgres.Dockerfile", "deploy/postgres-entrypoint.sh"]
    pg_tag = f"{POSTGRES_IMAGE}:latest"
    pg_digest = _digest(pg_files, base)

    def make_postgres(ctx: Path) -> None:
        _copy(pg_files, ctx)
        _build(client, ctx / "deploy", "postgres.Dockerfile", pg_tag, pg_digest, {"BASE": base})

    step(pg_tag, pg_digest, make_postgres)

    deps_files = ["deploy/deps.Dockerfile", "pyproject.toml", "constraints.txt"]
    deps_digest = _digest(deps_files, base)
    deps_tag = f"{DEPS_REPO}:{deps_digest[:12]}"

    def make_deps(ctx: Path) -> None:
        _copy(deps_files, ctx)
        wheels = get_settings().cache_dir / "wheels" / "compose"  # outside the context: not sent twice
        _wheelhouse(client, base, wheels, deps_digest)
        with _Serve(wheels) as served:
            _build(
                client,
                ctx,
                "deploy/deps.Dockerfile",
                deps_tag,
                deps_digest,
                {"BASE": base, "WHEELS": served.url},
            )

    step(deps_tag, deps_digest, make_deps)
    _drop_stale(client, DEPS_REPO, deps_tag)

    app_files = _files(APP_PATHS)
    app_tag = f"{APP_IMAGE}:latest"
    app_digest = _digest([*app_files, "deploy/audioprobe.Dockerfile"], deps_tag)

    def make_app(ctx: Path) -> None:
        _copy(app_files, ctx)
        shutil.copy(HERE / "audioprobe.Dockerfile", ctx / "Dockerfile")
        _build(client, ctx, "Dockerfile", app_tag, app_digest, {"DEPS": deps_tag})

    step(app_tag, app_digest, make_app)
    for tag, entry in done.items():
        entry["size_mb"] = round(client.images.get(tag).attrs["Size"] / 1e6)
    return {"base": base, "images": done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the images are current")
    args = parser.parse_args(argv)
    print(json.dumps(build(force=args.force)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
