"""The bootstrap: trusted code that runs first in the sandbox's fresh interpreter.

Not imported: the runner reads this file and runs its text as ``python -I -S -B -c BOOTSTRAP
CONFIG`` (``CONFIG``: the JSON the runner builds, ``sys.argv[1]`` here), in the jail when there is
one (where this file does not exist). It forks once: the parent (the supervisor; PID 1 of the new
PID namespace when there is one) waits and writes the child's exit status to a file the child
cannot write; the child applies rlimits, drops privileges, installs the audit hook and only then
runs the program as ``__main__``.

The audit hook uses only C functions captured before the program runs and ``str``/``bytes``
methods, never a standard-library Python helper the program could patch; ctypes is never loaded
here (a loaded ``_ctypes`` could be imported again by the program).
"""

if __name__ != "__main__":  # pragma: no cover - a script for the sandbox's interpreter only
    raise ImportError("spgg_jax.tasks.sandbox.bootstrap is run by the sandbox (python -c), not imported")

import os, sys, json, resource
cfg = json.loads(sys.argv[1])

def _boot_fail(msg):
    os.write(2, ("\n%s %s\n" % (BOOT_MARK, msg)).encode("utf-8", "replace"))
    os._exit(BOOT_EXIT)

BOOT_MARK = cfg["boot_mark"]; BOOT_EXIT = cfg["boot_exit"]
try:
    pid = os.fork()
except OSError as e:
    _boot_fail("fork of the supervisor failed: %r" % (e,))
if pid:
    import signal
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    res = {"cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}
    if os.WIFSIGNALED(status):
        res["signal"] = os.WTERMSIG(status); res["exitcode"] = -res["signal"]
    else:
        res["signal"] = None; res["exitcode"] = os.WEXITSTATUS(status)
    with os.fdopen(cfg["status_fd"], "w") as f:
        json.dump(res, f)
    os._exit(0)

# ---- child: limits, privileges, hook, program ----
try:
    os.close(cfg["status_fd"])  # only the supervisor reports the exit status
    for name, soft, hard in cfg["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if cfg["uid"] is not None:
        # PR_SET_NO_NEW_PRIVS was set by `setpriv` before this interpreter started (ctypes is
        # never loaded here: a loaded _ctypes could be imported again by the program).
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        if os.getuid() != cfg["uid"] or os.geteuid() != cfg["uid"]:
            _boot_fail("privilege drop did not take effect")
    os.chdir(cfg["box"])
    os.umask(0o077)
    with open(cfg["program"], "r", encoding="utf-8") as f:
        _src = f.read()
    _code = compile(_src, cfg["program"], "exec")
except SyntaxError:
    raise
except BaseException as e:
    _boot_fail(repr(e))


def _install_hook(box, blocked_mark, blocked_exit, blocked_imports):
    # Only C functions captured now and str/bytes methods (which a program cannot replace) are
    # used below: no standard-library Python helper whose globals the program could patch.
    import stat as _stat_mod
    _lstat = os.lstat
    _stat = os.stat
    _readlink = os.readlink
    _S_ISLNK = _stat_mod.S_ISLNK
    _S_ISDIR = _stat_mod.S_ISDIR
    _getcwd = os.getcwd
    _str, _bytes, _int = str, bytes, int
    _DIRFLAGS = getattr(os, "O_PATH", 0) | getattr(os, "O_DIRECTORY", 0)
    _write = os.write
    _exit = os._exit
    _W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    _blocked_imports = frozenset(blocked_imports)
    _always = frozenset((
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
        "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "os.startfile",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "sys.settrace", "sys.setprofile", "sys._setprofileallthreads", "sys._settraceallthreads",
        "os.setns", "os.unshare", "resource.prlimit", "pty.spawn", "webbrowser.open",
    ))
    # event name -> indices of path arguments that must stay inside the box
    _paths = {
        "os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
        "os.symlink": (1,), "os.link": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
        "os.chown": (0,), "os.chflags": (0,), "os.lchflags": (0,), "os.utime": (0,),
        "os.chroot": (0,), "shutil.rmtree": (0,), "shutil.chown": (0,), "os.mkfifo": (0,),
        "os.mknod": (0,),
    }
    _funcattrs = frozenset(("__code__", "__defaults__", "__kwdefaults__", "__closure__",
                            "__globals__"))

    def deny(event, detail):
        try:
            msg = "\n%s %s %s\n" % (blocked_mark, event, detail)
            _write(2, msg.encode("utf-8", "replace")[:2000])
        finally:
            _exit(blocked_exit)

    def resolve(p):
        """Absolute path of str ``p`` with every existing symlink resolved (like realpath)."""
        if not p.startswith("/"):
            p = _getcwd() + "/" + p
        todo = [q for q in p.split("/") if q and q != "."][::-1]
        out = []
        links = 0
        while todo:
            q = todo.pop()
            if q == "..":
                if out:
                    out.pop()
                continue
            cand = "/" + "/".join(out + [q])
            try:
                st = _lstat(cand)
            except OSError:
                out.append(q)
                continue
            if _S_ISLNK(st.st_mode):
                links += 1
                if links > 40:
                    raise OSError("too many symlinks")
                target = _readlink(cand)
                if target.startswith("/"):
                    out = []
                todo.extend([x for x in target.split("/") if x and x != "."][::-1])
            else:
                out.append(q)
        return "/" + "/".join(out)

    def as_text(p):
        """str for an exact str/bytes path; None for anything else (a path object's
        ``__fspath__`` could answer differently when the interpreter asks again)."""
        if type(p) is _str:
            return p
        if type(p) is _bytes:
            return p.decode("utf-8", "surrogateescape")
        return None

    def inside(p):
        if type(p) is _int:
            return True  # an already-open descriptor
        t = as_text(p)
        if t is None:
            return False
        try:
            rp = resolve(t)
        except BaseException:
            return False
        return rp == box or rp.startswith(box + "/") or rp == "/dev/null"

    def is_dir(p):
        t = as_text(p)
        if t is None:
            return True
        try:
            return _S_ISDIR(_stat(t).st_mode)
        except BaseException:
            return False

    def hook(event, args):
        if event in _always or event.startswith(("socket.", "ctypes.")):
            deny(event, repr(args)[:200])
        elif event == "open":
            path, mode, flags = args
            writing = (type(mode) is _str and any(c in mode for c in "wax+")) or (
                type(flags) is _int and (flags & _W))
            if writing and not inside(path):
                deny(event, repr(path)[:200])
            # A descriptor on a directory outside the box would let dir_fd-relative calls
            # (os.open(name, flags, dir_fd=fd): the "open" event does not carry dir_fd) reach it.
            # Only os.open (mode None) opens directories; io.open refuses them.
            if mode is None and type(path) is not _int and not inside(path) and (
                    (type(flags) is _int and flags & _DIRFLAGS) or is_dir(path)):
                deny(event, "directory " + repr(path)[:200])
        elif event == "import":
            # every component of the name (``zz._cffi_backend`` loads the same extension as
            # ``_cffi_backend``: its init function is named after the last component) and the
            # file it comes from (``_imp.create_dynamic`` reports the extension's path here)
            name = args[0]
            if type(name) is not _str:
                deny(event, "a module name that is not a str")
            for part in name.split("."):
                if part in _blocked_imports:
                    deny(event, name)
            origin = args[1] if len(args) > 1 else None
            if origin is not None:
                t = as_text(origin)
                if t is None:
                    deny(event, "a module path that is not a str")
                if t.rpartition("/")[2].partition(".")[0] in _blocked_imports:
                    deny(event, name + " from " + t[:200])
        elif event in _paths:
            for i in _paths[event]:
                if i < len(args) and not inside(args[i]):
                    deny(event, repr(args[i])[:200])
            dir_fd = args[-1] if args else None
            if isinstance(dir_fd, int) and dir_fd != -1 and event not in ("os.truncate",):
                deny(event, "dir_fd")
        elif event == "object.__setattr__":
            if len(args) >= 2 and args[1] in _funcattrs:
                deny(event, args[1])

    sys.addaudithook(hook)


if cfg["audit_hook"]:
    _install_hook(cfg["box"], cfg["blocked_mark"], cfg["blocked_exit"], cfg["blocked_imports"])

import types as _types
_main = _types.ModuleType("__main__")
_main.__file__ = cfg["program"]
_main.__builtins__ = __builtins__
sys.modules["__main__"] = _main
sys.argv = [cfg["program"]]
del cfg, _types, pid
exec(_code, _main.__dict__)
