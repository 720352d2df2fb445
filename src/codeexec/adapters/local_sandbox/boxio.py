"""File-descriptor plumbing between the supervisor and a box: pipes, stdin, reports, exits."""

from __future__ import annotations

import asyncio
import json
import os


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


def stdin_file(content: bytes) -> int:
    # A sealed-off memory file rather than a pipe: no writer task, the code reads at its
    # own pace, and it can even seek.
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
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
