"""The zygote's entry: `python3 /box/main.py` stopped inside `site`, forking boxes on request.

The zygote is the toolchain's interpreter started as a cold run starts it (same binary, argv,
environment, plus PYTHONPATH naming this directory), so `site` imports this module as its
`sitecustomize` after everything a cold start imports and before the main script. Here it
serves box requests from the sandbox forever. In each box's code process it returns instead:
it forgets itself (modules, sys.path entry, environment variable, argv) and raises the
ImportError a cold start's `import sitecustomize` raises, and the interpreter goes on to run
/box/main.py (inside the box by then) through its own main path: argv, `__main__`,
sys.path[0], exceptions and exit status exactly as a cold start. It never runs user code
itself, and a process that ran code is never reused: each box is forked afresh.
"""

import sys

_COLD_MODULES = frozenset(sys.modules) - {"sitecustomize"}
"""What a cold start has imported when its `site` looks for sitecustomize."""

import _socket  # noqa: E402
import marshal  # noqa: E402  (after the snapshot above)
import os  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import NoReturn

    from codeexec.adapters.local_sandbox.zygote import codeexec_boxroot as boxroot
    from codeexec.adapters.local_sandbox.zygote import codeexec_zygote as box
else:
    import _signal  # the C module: `signal` would import enum, and more to fork and forget

    import codeexec_boxroot as boxroot
    import codeexec_zygote as box

_HERE = os.path.dirname(os.path.abspath(__file__))
Program = dict[str, object]


def _control_socket() -> _socket.socket:
    # The server passes one socket and nothing else above stderr.
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        if fd > 2:
            try:
                return _socket.socket(fileno=fd)
            except OSError:
                continue
    raise SystemExit("codeexec zygote: no control socket")


def serve(sock: _socket.socket) -> Program:
    """Fork a box per request until the server goes away; returns only in a code process."""

    def reap(signum: int, frame: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            box.send(sock, marshal.dumps({"exited": pid, "status": status}), [])

    _signal.signal(_signal.SIGCHLD, reap)
    own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    box.send(sock, marshal.dumps({"ready": os.getpid()}), [])
    while True:
        data, fds = box.recv(sock)
        if not data:
            os._exit(0)  # the server closed its end (or died): so do we, and our boxes
        request = marshal.loads(data)
        # No exit report may overtake the reply that names the pid.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGCHLD})
        try:
            # Our next child is pid 1 of a new pid namespace (as bubblewrap's clone makes
            # it), in a new cgroup namespace rooted where we are (the server's cgroup).
            box.unshare(box.CLONE_NEWPID | box.CLONE_NEWCGROUP)
            pid = os.fork()
        except (OSError, box.SetupError) as exc:
            reply, pid = {"tag": request["tag"], "error": str(exc)}, -1
        if pid == 0:
            box.default_sigchld()
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGCHLD})
            return _init(sock, request, fds)
        try:
            box.setns(own_pid_namespace, box.CLONE_NEWPID)  # for the next box: its own again
            for fd in fds:
                os.close(fd)
            if pid < 0:
                box.send(sock, marshal.dumps(reply), [])
                continue
            pidfd = os.pidfd_open(pid)
            try:
                box.send(sock, marshal.dumps({"tag": request["tag"], "pid": pid}), [pidfd])
            finally:
                os.close(pidfd)
        finally:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGCHLD})


def _fail(what: BaseException) -> "NoReturn":
    os.write(2, f"codeexec box: {what}\n".encode())
    os._exit(1)


def _init(sock: _socket.socket, request: Program, fds: list[int]) -> Program:
    """pid 1 of the box. Builds its root, forks the code's process ahead, then reaps as init
    does."""
    stdout, stderr, control = fds
    box.die_with_parent()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    box.close_fds_except({0, 1, 2, control})
    sock.detach()
    try:
        os.setsid()
        if box.prctl(box.PR_SET_NO_NEW_PRIVS, 1) != 0:
            raise box.SetupError("no_new_privs refused")
        box.unshare(box.CLONE_NEWNS | box.CLONE_NEWNET | box.CLONE_NEWIPC | box.CLONE_NEWUTS)
        data_files = boxroot.build_root(list(request["ops"]), str(request["hostname"]))  # type: ignore[call-overload]
        box.loopback_up()
    except (OSError, box.SetupError) as exc:
        _fail(exc)
    seccomp = request.get("seccomp")
    prefault = bool(request.get("prefault", True))
    # The code's process is forked now, not at the go: it copies the pages it shares with
    # the zygote while the box waits, so the run does not take those faults (see _code).
    # But only once the supervisor has put us in the box's cgroup: a child forked before
    # would stay outside it, with no memory, pids or CPU limit of the run.
    try:
        joined = _socket.socket(fileno=control)
        said = joined.recv(16)
        joined.detach()
    except OSError as exc:
        _fail(exc)
    if said != b"joined":
        os._exit(1)  # the supervisor went away: nothing runs here
    pid = os.fork()
    if pid == 0:
        return _code(control, data_files, seccomp, prefault)
    box.close_fds_except({0, 1, 2})
    try:
        box.drop_capabilities()
        if seccomp:
            box.load_seccomp(seccomp)  # type: ignore[arg-type]
    except box.SetupError:
        pass  # init runs no code; its own filter is a second belt
    status = 1
    while True:
        try:
            child, raw = os.wait()
        except ChildProcessError:
            os._exit(status)
        if child == pid:
            status = box.propagate(raw)


def _code(control: int, data_files: dict[str, int], seccomp: object, prefault: bool) -> Program:
    """pid 2 of the box, forked before the go: makes its copy-on-write pages its own (when
    `prefault`: the box is expected to run Python here; a program it execs would discard
    them), says the box is ready, and at the go becomes the run's unprivileged process;
    returns what it is to run. It has run nothing before the go and is used for this one
    run only."""
    box.die_with_parent()  # and as pid 1 of the namespace, its exit kills us anyway
    try:
        if prefault:
            box.own_private_pages()
        sock = _socket.socket(fileno=control)
        sock.send(b"ready")
        data, fds = box.recv(sock)
        sock.detach()
    except (OSError, box.SetupError) as exc:
        _fail(exc)
    if not data:
        os._exit(1)  # the supervisor went away before its go: nothing runs here
    go: Program = marshal.loads(data)
    try:
        for name, fd in data_files.items():
            os.write(fd, go["data"][name])  # type: ignore[index]
        os.umask(0o077)
        if fds:
            os.dup2(fds[0], 0)
        box.close_fds_except({0, 1, 2})
        os.chdir("/box")
        if go["mode"] != "exec":
            argv = [os.fsencode(a) for a in go["argv"]]  # type: ignore[attr-defined]
            box.show_as(argv, list(go["env"]))  # type: ignore[call-overload]
        box.drop_to(int(go["uid"]))  # type: ignore[call-overload]
        if seccomp:
            box.load_seccomp(seccomp)  # type: ignore[arg-type]
    except (OSError, box.SetupError) as exc:
        _fail(exc)
    return go


def _forget_ourselves(go: Program) -> None:
    """Leave the interpreter as a cold start's is at this point of its `site`."""
    args = [str(a) for a in go["args"]]  # type: ignore[attr-defined]
    sys.argv[1:] = args
    sys.orig_argv[:] = [str(a) for a in go["argv"]]  # type: ignore[attr-defined]
    while _HERE in sys.path:
        sys.path.remove(_HERE)
    sys.path_importer_cache.pop(_HERE, None)
    os.environ.pop("PYTHONPATH", None)
    for name in set(sys.modules) - _COLD_MODULES - {"sitecustomize"}:
        del sys.modules[name]


def _exec(go: Program) -> None:
    argv = [str(a) for a in go["argv"]]  # type: ignore[attr-defined]
    env: dict[str, str] = {}
    for entry in go["env"]:  # type: ignore[attr-defined]
        key, _, value = os.fsdecode(entry).partition("=")
        env[key] = value
    # What the interpreter ignores (SIGPIPE, SIGXFSZ) a runtime it execs must not: the
    # defaults, as subprocess's restore_signals gives bubblewrap on the cold path.
    for number in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(number, _signal.SIG_DFL)
    try:
        if "/" in argv[0]:
            os.execve(argv[0], argv, env)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(2, f"codeexec box: failed to execute {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


_program = serve(_control_socket())
if _program["mode"] == "exec":
    _exec(_program)
_forget_ourselves(_program)
del _program
raise ImportError("No module named 'sitecustomize'", name="sitecustomize")
