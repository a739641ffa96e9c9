"""The pre-exec stage: trusted Python that installs the kernel filters, then exec()s the rest.

Not imported: the runner reads this file and runs its text as ``python -I -S -B -c PRE_EXEC
CONFIG ARGV...`` (``CONFIG``: JSON with the files to mask, the Landlock ABI, the seccomp program
as hex, the writable dirs and files, the boot-error mark and exit code; ``ARGV``: the command it
becomes). It runs after the jail is built (inside its namespaces, as their root when there is a
jail) and before ``setpriv`` and the bootstrap. It is the only code that loads ctypes, and it
exec()s away, so nothing of it survives into the program's process. It

1. masks the ctypes-style extension files with ``/dev/null`` (bind mounts; the jail script leaves
   them to this stage, which needs ``_ctypes`` first),
2. sets ``PR_SET_NO_NEW_PRIVS``,
3. where the kernel has Landlock, restricts filesystem writes to the box, ``/tmp``, ``/dev/shm``
   and a few device nodes,
4. installs the seccomp filter (classic BPF, built by ``seccomp.seccomp_program``) that checks the
   architecture and denies with EPERM the syscalls an untrusted program never needs.

Filters survive execve and cannot be removed; children inherit them. Any failure ends the run
(boot error).
"""

if __name__ != "__main__":  # pragma: no cover - a script for the sandbox's interpreter only
    raise ImportError("spgg_jax.tasks.sandbox.pre_exec is run by the sandbox (python -c), not imported")

import json, os, struct, sys
cfg = json.loads(sys.argv[1])
argv = sys.argv[2:]

def fail(msg):
    os.write(2, ("\n%s pre-exec: %s\n" % (cfg["boot_mark"], msg)).encode("utf-8", "replace"))
    os._exit(cfg["boot_exit"])

try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    UL = ctypes.c_ulong

    def check(rc, what):
        if rc < 0 or (rc != 0 and what != "landlock"):
            e = ctypes.get_errno()
            fail("%s failed: %s" % (what, os.strerror(e)))
        return rc

    for f in cfg["mask"]:
        check(libc.mount(b"/dev/null", f.encode(), None, UL(4096), None), "mount --bind /dev/null " + f)
    check(libc.prctl(38, UL(1), UL(0), UL(0), UL(0)), "PR_SET_NO_NEW_PRIVS")

    abi = cfg["landlock_abi"]
    if abi > 0:
        W = 2 | 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096  # write/make/remove rights
        if abi >= 2:
            W |= 8192  # REFER
        if abi >= 3:
            W |= 16384  # TRUNCATE
        attr = ctypes.create_string_buffer(struct.pack("<Q", W))
        rfd = check(libc.syscall(444, attr, UL(8), UL(0)), "landlock")
        for d in cfg["writable_dirs"]:
            fd = os.open(d, os.O_PATH | os.O_CLOEXEC)
            rule = ctypes.create_string_buffer(struct.pack("<Qi", W, fd))
            check(libc.syscall(445, rfd, UL(1), rule, UL(0)), "landlock_add_rule " + d)
            os.close(fd)
        FW = 2 | (16384 if abi >= 3 else 0)  # write and truncate: all a file rule may grant here
        for f in cfg["writable_files"]:
            try:
                fd = os.open(f, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            rule = ctypes.create_string_buffer(struct.pack("<Qi", FW, fd))
            check(libc.syscall(445, rfd, UL(1), rule, UL(0)), "landlock_add_rule " + f)
            os.close(fd)
        check(libc.syscall(446, rfd, UL(0)), "landlock_restrict_self")
        os.close(rfd)

    prog = bytes.fromhex(cfg["bpf"])
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HxxxxxxP", len(prog) // 8, ctypes.addressof(buf))
    check(libc.prctl(22, UL(2), ctypes.create_string_buffer(fprog), UL(0), UL(0)), "PR_SET_SECCOMP")
except SystemExit:
    raise
except BaseException as e:
    fail(repr(e))
try:
    os.execv(argv[0], argv)
except OSError as e:
    fail("exec %s: %r" % (argv[0], e))
