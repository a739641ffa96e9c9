"""The seccomp filter the pre-exec stage installs: a classic-BPF program, built here per arch.

It checks the architecture (any other ABI, x32 included, kills the process), answers EPERM to the
syscalls in :data:`DENY_SYSCALLS`, to ``socket`` of any family but ``AF_UNIX`` and to ``clone``
with a namespace flag, and ENOSYS to ``clone3``. ``pre_exec.py`` receives the program as hex.
"""

from __future__ import annotations

import struct
from typing import Optional

#: Architecture tokens (AUDIT_ARCH_*) of the arches the filter knows.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
#: Denied with EPERM: namespaces and mounts, tracing and other processes' memory, kernel
#: keyrings, BPF, perf, modules, kexec, io_uring, userfaultfd, personality, handle-based opens,
#: SysV IPC (shared memory, semaphores, message queues), POSIX message queues and memfd_create
#: (kernel objects and memory that would sit outside the run's limits; the x86 multiplexer
#: ``ipc`` exists only for the 32-bit ABI, which the arch check already kills).
DENY_SYSCALLS = {
    "x86_64": {
        "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "process_vm_readv": 310, "process_vm_writev": 311, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "personality": 135, "open_by_handle_at": 304, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "quotactl": 179,
        "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
        "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
        "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
        "mq_notify": 244, "mq_getsetattr": 245, "memfd_create": 319, "memfd_secret": 447,
    },
    "aarch64": {
        "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241, "keyctl": 219,
        "add_key": 217, "request_key": 218, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "process_vm_readv": 270, "process_vm_writev": 271, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "personality": 92, "open_by_handle_at": 265, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142, "quotactl": 60,
        "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193,
        "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187,
        "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183,
        "mq_notify": 184, "mq_getsetattr": 185, "memfd_create": 279, "memfd_secret": 447,
    },
}
#: socket(2) (only AF_UNIX allowed), clone(2) (namespace flags denied) and clone3(2) (ENOSYS:
#: its flags sit in memory a filter cannot read; glibc then falls back to clone).
_SOCKET_NR = {"x86_64": 41, "aarch64": 198}
_CLONE_NR = {"x86_64": 56, "aarch64": 220}
_CLONE3_NR = {"x86_64": 435, "aarch64": 435}
#: CLONE_NEWTIME | NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000


def seccomp_program(arch: str) -> Optional[bytes]:
    """The classic-BPF seccomp program for ``arch`` (``None`` when the arch is not known)."""
    if arch not in AUDIT_ARCH:
        return None
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    ins: list[tuple[int, int, int, int]] = []
    ins.append((ld, 0, 0, 4))  # arch
    ins.append((jeq, 1, 0, AUDIT_ARCH[arch]))
    ins.append((ret, 0, 0, kill))  # a syscall of another ABI: kill the process
    ins.append((ld, 0, 0, 0))  # nr
    if arch == "x86_64":
        ins.append((jge, 0, 1, 0x40000000))  # x32 ABI numbers
        ins.append((ret, 0, 0, kill))
    for nr in sorted(set(DENY_SYSCALLS[arch].values())):
        ins.append((jeq, 0, 1, nr))
        ins.append((ret, 0, 0, eperm))
    ins.append((jeq, 0, 1, _CLONE3_NR[arch]))
    ins.append((ret, 0, 0, enosys))
    # socket: args[0] (low 32 bits at offset 16) must be AF_UNIX
    ins.append((jeq, 0, 4, _SOCKET_NR[arch]))
    ins.append((ld, 0, 0, 16))
    ins.append((jeq, 0, 1, 1))
    ins.append((ret, 0, 0, allow))
    ins.append((ret, 0, 0, eperm))
    # clone: args[0] = flags (low 32 bits) must carry no namespace flag
    ins.append((jeq, 0, 4, _CLONE_NR[arch]))
    ins.append((ld, 0, 0, 16))
    ins.append((jset, 0, 1, _CLONE_NS_FLAGS))
    ins.append((ret, 0, 0, eperm))
    ins.append((ret, 0, 0, allow))
    ins.append((ret, 0, 0, allow))
    return b"".join(struct.pack("<HBBI", c, jt, jf, k) for c, jt, jf, k in ins)
