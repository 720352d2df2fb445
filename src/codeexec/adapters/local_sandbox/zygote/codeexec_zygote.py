"""Inside the zygote: fork one box per request, as bubblewrap and setpriv would build it.

Runs under the toolchain's own interpreter, not ours: the standard library only, and only
what it needs, since every module imported here is one the code process must forget.

    zygote (root, host namespaces; never runs code)
      init  pid 1 of the box, in new pid, cgroup, mount, net, ipc and uts namespaces;
            builds the root the same way bubblewrap does, waits for its go, then reaps
            as bubblewrap's pid 1 does (and exits with the code's status)
        code  pid 2: the run's uid, no capabilities, no_new_privs, seccomp; then it either
              returns into the interpreter (which runs /box/main.py) or execs
"""

from __future__ import annotations

import _socket
import ctypes
import fcntl
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

libc = ctypes.CDLL(None, use_errno=True)
libc.sbrk.restype = ctypes.c_void_p
libc.malloc.restype = ctypes.c_void_p
libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x20000, 0x2000000, 0x4000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x8000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_MM, PR_SET_MM_MAP = 35, 14
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
_SIGKILL, _SIGCHLD = 9, 17
MADV_POPULATE_WRITE = 23  # Linux 5.14


class SetupError(Exception):
    """The box could not be built; the message goes to the run's stderr, as bwrap's would."""


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    check(libc.setns(fd, nstype), "setns")


def prctl(option: int, *args: int) -> int:
    values = [ctypes.c_ulong(a) for a in (*args, 0, 0, 0, 0)[:4]]
    return int(libc.prctl(option, *values))


def loopback_up() -> None:
    """Bring `lo` up in the new network namespace, as bubblewrap does."""
    siocsifflags, iff_up = 0x8914, 0x1
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
    try:
        request = b"lo".ljust(16, b"\0") + iff_up.to_bytes(2, sys.byteorder) + bytes(22)
        fcntl.ioctl(sock.fileno(), siocsifflags, request)
    finally:
        sock.close()


with open("/proc/sys/kernel/cap_last_cap", "rb") as _f:
    _CAP_LAST = int(_f.read())


def drop_to(uid: int) -> None:
    """What `setpriv --reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all
    --no-new-privs` does, in the same order."""
    for cap in range(_CAP_LAST + 1):
        if prctl(PR_CAPBSET_DROP, cap) != 0:
            check(-1, "dropping the bounding set")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted and effective go
    drop_capabilities()
    check(prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    # Changing uid made us undumpable, so /proc/self would be root's; the exec a cold
    # start does after setpriv makes it dumpable again, and so do we.
    check(prctl(PR_SET_DUMPABLE, 1), "dumpable")


def drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


class _MmMap(ctypes.Structure):
    _fields_ = (
        ("start_code", ctypes.c_uint64),
        ("end_code", ctypes.c_uint64),
        ("start_data", ctypes.c_uint64),
        ("end_data", ctypes.c_uint64),
        ("start_brk", ctypes.c_uint64),
        ("brk", ctypes.c_uint64),
        ("start_stack", ctypes.c_uint64),
        ("arg_start", ctypes.c_uint64),
        ("arg_end", ctypes.c_uint64),
        ("env_start", ctypes.c_uint64),
        ("env_end", ctypes.c_uint64),
        ("auxv", ctypes.c_void_p),
        ("auxv_size", ctypes.c_uint32),
        ("exe_fd", ctypes.c_uint32),
    )


def load_seccomp(program: bytes) -> None:
    fprog = _SockFprog(len(program) // 8, program)
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog)), "seccomp")


def show_as(argv: list[bytes], env: list[bytes]) -> None:
    """Make /proc/self/cmdline and /proc/self/environ read as a cold start's would.

    The memory is never freed: the kernel reads it whenever anyone looks."""
    args, envs = b"".join(a + b"\0" for a in argv), b"".join(e + b"\0" for e in env)
    size = len(args) + len(envs)
    addr = libc.malloc(size)
    if not addr:
        raise SetupError("out of memory")
    ctypes.memmove(addr, args + envs, size)
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()

    def field(n: int) -> int:  # 1-based, as proc(5) numbers them
        return int(fields[n - 3])

    mm = _MmMap(
        field(26),
        field(27),
        field(45),
        field(46),
        field(47),
        libc.sbrk(0),
        field(28),
        addr,
        addr + len(args),
        addr + len(args),
        addr + size,
        None,
        0,
        0xFFFFFFFF,
    )
    check(prctl(PR_SET_MM, PR_SET_MM_MAP, ctypes.addressof(mm), ctypes.sizeof(mm)), "PR_SET_MM")


def own_private_pages() -> None:
    """Copy now the pages this fork shares copy-on-write with the zygote, as its writes
    would: each writable private mapping's pages that are in memory, in one madvise per
    run of them. A forked interpreter writes most of them as it runs and exits (reference
    counts, the collector, finalisation), and a copy made in one call costs less than a
    fault per page. The contents do not change. Where the kernel refuses (no
    MADV_POPULATE_WRITE before Linux 5.14), the pages are copied as they are written."""
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/maps", "rb") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        perms, name = fields[1], fields[5] if len(fields) > 5 else b""
        if perms[1:2] != b"w" or perms[3:4] != b"p" or name in (b"[vvar]", b"[vsyscall]"):
            continue
        start, end = (int(x, 16) for x in fields[0].split(b"-"))
        count = (end - start) // page
        vec = ctypes.create_string_buffer(count)
        if libc.mincore(start, end - start, vec) != 0:
            continue
        resident = vec.raw
        i = resident.find(1)
        while 0 <= i < count:
            j = resident.find(0, i)
            j = count if j < 0 else j
            if libc.madvise(start + i * page, (j - i) * page, MADV_POPULATE_WRITE) != 0:
                break  # refused (an older kernel, a special mapping): copied when written
            i = resident.find(1, j)


def die_with_parent() -> None:
    prctl(PR_SET_PDEATHSIG, _SIGKILL)


def propagate(status: int) -> int:
    """A child's wait status as an exit code, as bubblewrap reports it: 128 + n for signal n."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd, already gone


def recv(sock: _socket.socket) -> tuple[bytes, list[int]]:
    """One message and the fds it carried."""
    cmsg_space = _socket.CMSG_SPACE(16 * 4)
    data, ancdata, _, _ = sock.recvmsg(1 << 20, cmsg_space)
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    return data, fds


def send(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    payload = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    ancdata = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)] if fds else []
    sock.sendmsg([data], ancdata)


def default_sigchld() -> None:
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
