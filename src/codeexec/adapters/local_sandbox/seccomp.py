"""A seccomp filter for the box: no new namespaces, no kernel-wide or rarely-audited syscalls,
and sockets of the local (AF_UNIX) family only."""

from __future__ import annotations

import errno
import platform
import struct

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_ABS_W, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_NR_CLONE, _NR_CLONE3 = 56, 435
_NR_SOCKET, _NR_SOCKETPAIR = 41, 53
_AF_UNIX = 1
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
# | CLONE_NEWNET: a process may fork and start threads, never enter new namespaces (a user
# namespace would hand it capabilities over fresh kernel code paths).
_CLONE_NAMESPACES = 0x7E020000

# x86_64 numbers. Namespaces: unshare, setns. Mounts: mount, umount2, pivot_root, chroot,
# open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr. Tracing and other
# processes' memory: ptrace, process_vm_readv/writev, kcmp. Kernel-wide: bpf, perf_event_open,
# userfaultfd, keyctl, add_key, request_key, kexec_load, kexec_file_load, init_module,
# finit_module, delete_module, iopl, ioperm, swapon, swapoff, reboot, acct, settimeofday,
# clock_settime, clock_adjtime, adjtimex, quotactl, lookup_dcookie, vhangup, fanotify_init,
# name_to_handle_at, open_by_handle_at, memfd_secret. io_uring_*: a large, often-patched surface.
_DENIED = (
    272,
    308,
    165,
    166,
    155,
    161,
    428,
    429,
    430,
    431,
    432,
    433,
    442,
    101,
    310,
    311,
    312,
    321,
    298,
    323,
    250,
    248,
    249,
    246,
    320,
    175,
    313,
    176,
    172,
    173,
    167,
    168,
    169,
    163,
    164,
    227,
    305,
    159,
    179,
    212,
    153,
    300,
    303,
    304,
    447,
    425,
    426,
    427,
)


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported() -> bool:
    return platform.machine() == "x86_64"


def filter_program() -> bytes:
    """The classic-BPF program bubblewrap loads with --seccomp (x86_64 only)."""
    eperm = _RET_ERRNO | errno.EPERM
    prog = [
        _op(_LD_ABS_W, 4),  # seccomp_data.arch
        _op(_JEQ_K, _AUDIT_ARCH_X86_64, jt=1),
        _op(_RET_K, eperm),
        _op(_LD_ABS_W, 0),  # seccomp_data.nr
        _op(_JGE_K, _X32_BIT, jf=1),
        _op(_RET_K, eperm),
    ]
    for nr in _DENIED:
        prog += [_op(_JEQ_K, nr, jf=1), _op(_RET_K, eperm)]
    # socket(2), socketpair(2): an allowlist of families, AF_UNIX alone (runtimes use it for
    # their own plumbing: asyncio's self-pipe, multiprocessing). The network families only
    # reach an empty namespace anyway; the others (netlink, packet, vsock, bluetooth, alg,
    # xdp...) are kernel subsystems the code has no use for, some loaded on demand by the
    # very call, and vsock reaches the hypervisor past any network namespace. They fail as
    # for a family this kernel lacks. The kernel reads the family as an int: the low half.
    prog += [
        _op(_JEQ_K, _NR_SOCKET, jt=1),
        _op(_JEQ_K, _NR_SOCKETPAIR, jf=4),
        _op(_LD_ABS_W, 16),  # low half of seccomp_data.args[0]: the address family
        _op(_JEQ_K, _AF_UNIX, jf=1),
        _op(_RET_K, _RET_ALLOW),
        _op(_RET_K, _RET_ERRNO | errno.EAFNOSUPPORT),
    ]
    # clone3 passes its flags in memory a filter cannot read: say it does not exist, and
    # the C library falls back to clone, whose flags it can.
    prog += [_op(_JEQ_K, _NR_CLONE3, jf=1), _op(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    prog += [
        _op(_JEQ_K, _NR_CLONE, jf=3),
        _op(_LD_ABS_W, 16),  # low half of seccomp_data.args[0]: the clone flags
        _op(_JSET_K, _CLONE_NAMESPACES, jf=1),
        _op(_RET_K, eperm),
        _op(_RET_K, _RET_ALLOW),
    ]
    return b"".join(prog)
