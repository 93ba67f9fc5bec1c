"""The work dir's files, as the sandbox's runner reads them: which outputs to send, and which WAVs are
already in the form the host reads (so the decoder need not start). Standard library only.

In the sandbox this is not a module: `sandbox/container.py` passes this file's source and runner.py's
as one `python3 -c` program (RUNNER_SRC), this one first; on the host runner.py imports it.
"""

import fnmatch
import os
import stat
import struct

WORK = "/work"
MAX_FILES = 64


def printable(name):
    """A name as UTF-8 text: undecodable bytes shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def wanted(patterns, exclude):
    """Names in the work dir that match the patterns (nothing checked about them yet)."""
    try:
        names = sorted(os.listdir(WORK))
    except OSError:
        return []
    return [n for n in names if n not in exclude and any(fnmatch.fnmatchcase(n, p) for p in patterns)]


MIN_WAVE_RIFF = 4 + 8 + 16 + 8  # "WAVE", a fmt chunk, a data chunk's header


def riff_end(size, riff):
    """Where a RIFF chunk of declared size riff ends, its pad byte allowed when the file has it."""
    end = 8 + riff
    return end + 1 if riff & 1 and size > end else end


def trim_to_riff(path):
    """Cut a RIFF/WAVE file to the end of its RIFF chunk; returns how many bytes went.

    Bytes after the chunk are no part of the audio, and would otherwise travel to the host whole.
    Only a regular file is touched (opened without following links, checked after opening)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        head = os.pread(fd, 12, 0) if stat.S_ISREG(st.st_mode) else b""
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return 0
        riff = struct.unpack("<I", head[4:8])[0]
        end = riff_end(st.st_size, riff)
        if st.st_size <= end or riff < MIN_WAVE_RIFF:
            return 0  # nothing after the chunk, or a size no WAVE has (0 from a streaming writer): the decoder's
        os.ftruncate(fd, end)
        return st.st_size - end
    except OSError:
        return 0
    finally:
        os.close(fd)


def collect(patterns, max_bytes, exclude):
    """Regular files in the work dir matching the patterns; everything else is refused with a reason.

    max_bytes bounds the files' total, not only each one. Runs as the program's uid (as_program).
    """
    accepted, rejected, total = [], [], 0
    try:
        names = sorted(os.listdir(WORK))
    except OSError as exc:
        return [], ["work dir unreadable: %s" % exc]
    for name in names:
        if name in exclude or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if printable(name) != name:
            rejected.append("%s: file name is not UTF-8" % printable(name))
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


MAX_OTHER_CHUNK_BYTES = 64 * 1024
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def already_normal(path):
    """True when the file is already what normalise.py would write, checked as strictly as the host's
    reader (tasks/judges/wavfile.py): RIFF/WAVE, PCM16 or float32 (EXTENSIBLE of those too), 1-8
    channels, at most 48 kHz and 60 s, every size consistent with the file, and little but audio in it:
    chunks other than fmt and data (LIST, PEAK, junk) at most MAX_OTHER_CHUNK_BYTES in all, so a note
    cannot carry 90 MB of anything inside its RIFF chunk either. Saves the decoder's start-up."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return False
        if riff_end(size, struct.unpack("<I", head[4:8])[0]) != size:
            return False  # plain only when the file is its RIFF chunk, nothing before or after
        fmt, data, other, pos = None, False, 0, 12
        for _ in range(64):
            if pos >= size - 1 and data:  # the chunks end where the file ends (a pad byte allowed)
                return True
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if pos + 8 + csize > size:
                return False
            if cid == b"fmt ":
                raw = f.read(min(csize, 64))
                if not 16 <= csize <= 1024:
                    return False
                tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", raw[:16])
                if tag == 0xFFFE:
                    if len(raw) < 40 or raw[26:40] != GUID_TAIL:
                        return False
                    extension_size, valid_bits = struct.unpack("<HH", raw[16:20])
                    if extension_size < 22 or valid_bits != bits:
                        return False
                    tag = struct.unpack("<H", raw[24:26])[0]
                if (tag, bits) not in ((1, 16), (3, 32)) or not 1 <= channels <= 8 or not 1 <= rate <= 48000:
                    return False
                if align != channels * bits // 8 or byte_rate != rate * align:
                    return False
                fmt = (rate, align)
            elif cid == b"data":
                if data or fmt is None or csize % fmt[1] or csize // fmt[1] > 60 * fmt[0]:
                    return False
                data = True
            else:
                other += csize
                if other > MAX_OTHER_CHUNK_BYTES:
                    return False
            pos += 8 + csize + (csize & 1)
    return False
