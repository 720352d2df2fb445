"""The socket policy, tried from inside a real box: AF_UNIX works, every other family fails."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from boxkit import run

from codeexec.adapters.local_sandbox import BubblewrapSandbox

pytestmark = pytest.mark.integration

AF_MAX = 64  # above every family a kernel knows today (46 in Linux 6.x)
NAMES = {int(v): n for n, v in vars(socket).items() if n.startswith("AF_") and isinstance(v, int)}
# Linux's names where this Python has none (or an alias: AF_ROUTE for AF_NETLINK).
KERNEL_NAMES = (
    "IB MPLS - - BLUETOOTH IUCV RXRPC ISDN PHONET IEEE802154 CAIF - NFC - KCM - SMC XDP MCTP"
)
NAMES.update({27 + i: f"AF_{n}" for i, n in enumerate(KERNEL_NAMES.split()) if n != "-"})
NAMES[16] = "AF_NETLINK"
FAMILIES = [f for f in range(AF_MAX) if f != socket.AF_UNIX]

# Every family, every type, and socketpair; plus a family whose upper 32 bits are set
# (the kernel reads an int: the filter must read the same low half).
PROBE = """
import ctypes, errno, json, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def outcome(make):
    try:
        made = make()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    for s in made if isinstance(made, tuple) else [made]:
        s.close()
    return "ok"
types = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM, "raw": socket.SOCK_RAW,
         "seqpacket": socket.SOCK_SEQPACKET}
out = {}
for family in range(int(sys.argv[1])):
    seen = {n: outcome(lambda: socket.socket(family, t, 0)) for n, t in types.items()}
    seen["pair"] = outcome(lambda: socket.socketpair(family, socket.SOCK_STREAM, 0))
    out[family] = seen
def raw_socket(family):
    args = [ctypes.c_long(v) for v in (41, family, socket.SOCK_STREAM, 0)]
    fd = libc.syscall(*args)
    return "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()]
out["high_inet"] = raw_socket((1 << 32) | socket.AF_INET)
out["high_vsock"] = raw_socket((1 << 32) | socket.AF_VSOCK)
out["high_unix"] = raw_socket((1 << 32) | socket.AF_UNIX)
print(json.dumps(out))
"""


_probed: dict[str, object] = {}


async def probed(sandbox: BubblewrapSandbox) -> dict[str, object]:
    """What each family gave inside a box (one run for all: each family's test reads it)."""
    if not _probed:
        result = await run(sandbox, "python", PROBE, args=(str(AF_MAX),))
        assert result.stderr == b"", result.stderr
        _probed.update(json.loads(result.stdout))
    return _probed


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: NAMES.get(f, f"AF_{f}"))
async def test_every_family_but_unix_is_refused(sandbox: BubblewrapSandbox, family: int) -> None:
    refused = dict.fromkeys(("stream", "dgram", "raw", "seqpacket", "pair"), "EAFNOSUPPORT")
    assert (await probed(sandbox))[str(family)] == refused


async def test_the_filter_reads_the_family_as_the_kernel_does(
    sandbox: BubblewrapSandbox,
) -> None:
    seen = await probed(sandbox)
    assert seen["high_inet"] == "EAFNOSUPPORT"
    assert seen["high_vsock"] == "EAFNOSUPPORT"
    assert seen["high_unix"] == "ok"


async def test_unix_sockets_work_but_only_inside_the_box(sandbox: BubblewrapSandbox) -> None:
    assert (await probed(sandbox))[str(socket.AF_UNIX)] == {
        "stream": "ok",
        "dgram": "ok",
        "raw": "ok",  # the kernel makes it a datagram socket
        "seqpacket": "ok",
        "pair": "ok",
    }
    # A host service on an abstract unix socket: another network namespace, out of reach.
    host_name = f"codeexec-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + host_name)
    listener.listen()
    code = (
        "import socket, sys\n"
        "a, b = socket.socketpair()\na.sendall(b'pair')\nprint(b.recv(4).decode())\n"
        "srv = socket.socket(socket.AF_UNIX)\nsrv.bind('/box/s')\nsrv.listen()\n"
        "c = socket.socket(socket.AF_UNIX)\nc.connect('/box/s')\nc.sendall(b'path')\n"
        "print(srv.accept()[0].recv(4).decode())\n"
        "try:\n    socket.socket(socket.AF_UNIX).connect('\\0' + sys.argv[1])\n"
        "    print('reached host')\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
    )
    try:
        result = await run(sandbox, "python", code, args=(host_name,))
    finally:
        listener.close()
    assert result.stdout == b"pair\npath\nConnectionRefusedError\n", result


async def test_kernel_wide_syscalls_stay_denied(sandbox: BubblewrapSandbox) -> None:
    calls = {
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "bpf": 321,
        "userfaultfd": 323,
        "perf_event_open": 298,
        "keyctl": 250,
        "unshare": 272,
        "setns": 308,
        "mount": 165,
        "ptrace": 101,
        "process_vm_readv": 310,
        "open_by_handle_at": 304,
    }
    code = (
        "import ctypes, errno, json, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "buf = ctypes.create_string_buffer(256)\nout = {}\n"
        "for name, nr in json.loads(sys.argv[1]).items():\n"
        "    rc = libc.syscall(nr, 8, buf, 0, 0, 0)\n"
        "    out[name] = 'ok' if rc >= 0 else errno.errorcode[ctypes.get_errno()]\n"
        "print(json.dumps(out))\n"
    )
    result = await run(sandbox, "python", code, args=(json.dumps(calls),))
    assert json.loads(result.stdout) == dict.fromkeys(calls, "EPERM")
