"""``spgg parallel show`` (registered through the CLI plugin list)."""

import argparse
import json

import pytest
from jax.sharding import PartitionSpec

from spgg_jax.cli import parallel as cli


def _parse(argv):
    parser = argparse.ArgumentParser(prog="spgg")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    return parser.parse_args(argv)


def test_registered_in_main():
    from spgg_jax.cli import main

    assert "spgg_jax.cli.parallel" in main.COMMAND_MODULES


def test_show_json(capsys, monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SPGG_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    args = _parse(["parallel", "show", "--mesh", "fsdp=-1,tensor=2", "--rules", "kv_heads=none",
                   "--json"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mesh"] == {"data": 1, "fsdp": 4, "tensor": 2}
    assert info["global_devices"] == 8 and info["process_count"] == 1
    assert info["rules"][0] == ["kv_heads", None]
    assert info["examples"]["k/v kernel"] == str(PartitionSpec("fsdp", None, None))
    args = _parse(["parallel", "show"])
    assert args.func(args) == 0
    assert "mesh: data=8, fsdp=1, tensor=1" in capsys.readouterr().out


def test_show_bad_mesh_is_a_value_error():
    args = _parse(["parallel", "show", "--mesh", "data=3"])
    with pytest.raises(ValueError, match="3 devices but 8"):
        args.func(args)
