"""File-descriptor plumbing between the supervisor and a box: pipes, stdin, reports, exits."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct


def pipe_with(content: bytes) -> int:
    """A pipe already holding `content` (small, fits the pipe buffer); returns the read end."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(w, view) :]
    finally:
        os.close(w)
    return r


def stdin_file(content: bytes, name: str = "stdin") -> int:
    """A memory file holding `content`, at offset 0 (any size, unlike `pipe_with`)."""
    # A sealed-off memory file rather than a pipe: no writer task, the code reads at its
    # own pace, and it can even seek.
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


async def read_child_pid(fd: int) -> int:
    """bubblewrap's --info-fd report: the host pid of the box's pid 1."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        chunk = os.read(fd, 4096)
        chunks.append(chunk)
        if not chunk and not done.done():
            done.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    report = json.loads(b"".join(chunks) or b"{}")
    pid = report.get("child-pid")
    if not isinstance(pid, int):
        raise ValueError("bubblewrap did not report its child")
    return pid


async def until_readable(fd: int) -> None:
    """Wait until `fd` is readable; for a pidfd, until its process has exited."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


# ioctl(PIDFD_GET_INFO) with the first published struct pidfd_info (64 bytes), Linux 6.15+
# for PIDFD_INFO_EXIT: the wait status of a process we held a pidfd to, even one reaped by
# someone else (the box's pid 1 reaps the code, and bubblewrap reports signals as 128 + n).
_PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11
_PIDFD_INFO_EXIT = 1 << 3
_PIDFD_INFO = struct.Struct("=QQ11IiI")


def child_of(pid: int) -> int | None:
    """The first child of `pid`, if it has one yet."""
    try:
        fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        children = os.read(fd, 4096).split()
    except OSError:
        return None
    finally:
        os.close(fd)
    return int(children[0]) if children else None


def wait_status(pidfd: int) -> int | None:
    """The raw wait status of the exited process behind `pidfd`, if the kernel keeps it."""
    buf = bytearray(_PIDFD_INFO.pack(_PIDFD_INFO_EXIT, 0, *([0] * 11), 0, 0))
    try:
        fcntl.ioctl(pidfd, _PIDFD_GET_INFO, buf)
    except OSError:
        return None
    fields = _PIDFD_INFO.unpack(bytes(buf))
    return fields[-2] if fields[0] & _PIDFD_INFO_EXIT else None
