"""Build the sandbox image, also where Docker Hub cannot be reached.

The base is `settings.sandbox_base_image` (python:3.11-slim) when it is present or can be pulled;
otherwise a minimal Debian bookworm rootfs made with debootstrap (python3, python3-venv, libsndfile1)
is cached as a tarball under cache_dir/rootfs and imported as the base. Set the base image to
"debootstrap" to skip the pull. The image carries a label with the hash of the Dockerfile and
requirements.txt; a build is skipped when an image with the same hash exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sandbox.client import EngineUnavailable, SandboxError, connect

HERE = Path(__file__).resolve().parent
HASH_LABEL = "audioprobe.context-sha256"
SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "python3-venv", "libsndfile1")
DEBIAN_MIRROR = os.environ.get("AUDIOPROBE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PULL_TIMEOUT_S = 120


def context_hash() -> str:
    h = hashlib.sha256()
    for name in ("Dockerfile", "requirements.txt"):
        h.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return h.hexdigest()


def _log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def image_status(image: str | None = None) -> dict:
    """Whether the sandbox image exists and matches the current Dockerfile and requirements."""
    import docker

    from sandbox.client import image_name

    from sandbox.seccomp import PROFILE_SHA256

    name = image_name(image)
    client = connect()
    want = context_hash()
    # The seccomp profile goes with the image's code, not into it: applied to each container, in
    # every execution's cache key (container.PROTOCOL); a change needs no rebuild.
    common = {"image": name, "context_sha256": want, "seccomp_sha256": PROFILE_SHA256}
    try:
        labels = client.images.get(name).labels or {}
    except docker.errors.ImageNotFound:
        return {**common, "exists": False, "current": False}
    return {**common, "exists": True, "current": labels.get(HASH_LABEL) == want}


def build_image(force: bool = False, image: str | None = None, base: str | None = None) -> dict:
    """Build the sandbox image unless a current one exists; returns what was done."""
    from audioprobe.settings import get_settings

    settings = get_settings()
    status = image_status(image)
    if status["current"] and not force:
        return {**status, "built": False}
    client = connect()
    base = base or settings.sandbox_base_image
    base_used = _ensure_base(client, base, settings.cache_dir)
    _log(f"building {status['image']} from {base_used} (pip installs sandbox/requirements.txt from PyPI)")
    with tempfile.TemporaryDirectory(prefix="audioprobe-build-") as ctx:
        for name in ("Dockerfile", "requirements.txt"):
            shutil.copy(HERE / name, Path(ctx) / name)
        # The host's CA bundle goes along, for pip behind a TLS-inspecting proxy (a public file).
        ca = _host_ca_bundle()
        (Path(ctx) / "host-ca.pem").write_bytes(ca.read_bytes() if ca else b"")
        # The host network only for the build: pip must reach PyPI; the engine runs with no bridge.
        stream = client.api.build(
            path=ctx,
            dockerfile="Dockerfile",
            tag=status["image"],
            buildargs={"BASE": base_used},
            network_mode="host",
            labels={HASH_LABEL: status["context_sha256"]},
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
        )
        for chunk in stream:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text.strip():
                print(text, end="" if text.endswith("\n") else "\n", file=sys.stderr, flush=True)
            if "error" in chunk:
                raise SandboxError(f"building {status['image']} failed: {chunk['error'].strip()}")
    return {**image_status(image), "built": True, "base": base_used}


def _host_ca_bundle() -> Path | None:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _ensure_base(client, base: str, cache_dir: Path) -> str:
    import docker

    if base != "debootstrap":
        try:
            client.images.get(base)
            return base
        except docker.errors.ImageNotFound:
            pass
        if _try_pull(base):
            return base
        _log(f"{base} cannot be pulled (no registry?): using a debootstrap'd Debian {SUITE} rootfs instead")
    tag = f"audioprobe-base:{SUITE}-{_rootfs_key()[:12]}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    tarball = _rootfs_tarball(cache_dir / "rootfs")
    _log(f"importing {tarball} as {tag}")
    repo, _, version = tag.partition(":")
    client.api.import_image_from_file(
        str(tarball), repository=repo, tag=version, changes=['CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"]
    )
    return tag


def _try_pull(base: str) -> bool:
    """Pull with a deadline: a registry that is black-holed rather than refused would hang forever."""
    import docker

    result: dict[str, bool] = {}

    def pull() -> None:
        try:
            docker.from_env(timeout=PULL_TIMEOUT_S).images.pull(base)
            result["ok"] = True
        except Exception as exc:
            _log(f"pulling {base} failed: {str(exc)[:200]}")

    _log(f"pulling {base}")
    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(PULL_TIMEOUT_S)
    return result.get("ok", False)


def _rootfs_key() -> str:
    return hashlib.sha256(f"{SUITE}|minbase|{','.join(ROOTFS_PACKAGES)}|v1".encode()).hexdigest()


def _rootfs_tarball(rootfs_dir: Path) -> Path:
    """A cached tarball of a minimal Debian rootfs with Python 3; made with debootstrap when absent."""
    tarball = rootfs_dir / f"debian-{SUITE}-python3-{_rootfs_key()[:12]}.tar"
    if tarball.exists():
        return tarball
    if os.geteuid() != 0:
        raise SandboxError(
            "python:3.11-slim cannot be pulled and making a Debian rootfs with debootstrap needs root: "
            "run `sudo .venv/bin/audioprobe sandbox build`, or make the base image available to Docker"
        )
    if shutil.which("debootstrap") is None:
        if not Path("/etc/debian_version").exists():
            raise SandboxError("python:3.11-slim cannot be pulled and debootstrap is not installed")
        _log("apt-get install debootstrap")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends",
                   "debootstrap"]
        if subprocess.run(install, env=env, check=False).returncode:  # a fresh machine may lack package lists
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(install, env=env, check=True)
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    log_path = rootfs_dir / "debootstrap.log"
    with tempfile.TemporaryDirectory(dir=rootfs_dir, prefix="build-") as tmp:
        root = Path(tmp) / "root"
        _log(f"debootstrap {SUITE} ({', '.join(ROOTFS_PACKAGES)}) from {DEBIAN_MIRROR}; log: {log_path}")
        with open(log_path, "w") as log:
            proc = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(ROOTFS_PACKAGES)}",
                    SUITE,
                    str(root),
                    DEBIAN_MIRROR,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if proc.returncode:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            raise SandboxError("debootstrap failed:\n" + "\n".join(tail))
        # What a container never needs: package caches, indexes, docs (about 150 MB of 280).
        for sub in (
            "var/cache/apt",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
            "usr/share/locale",
            "var/log",
        ):
            target = root / sub
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        partial = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.replace(tarball)
    return tarball


__all__ = ["build_image", "image_status", "context_hash", "EngineUnavailable"]
