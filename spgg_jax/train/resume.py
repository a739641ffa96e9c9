"""What may differ when a run is resumed: :data:`RESUMABLE_CHANGES`, and :func:`config_differences`
between a run's saved ``RUN_DIR/config.json`` (the effective configuration,
:meth:`~spgg_jax.train.config.TrainConfig.to_dict`) and the config it is resumed with."""

from __future__ import annotations

import json
from typing import Any, Mapping

from spgg_jax.settings import declared
from spgg_jax.train.config import TrainConfig

#: top-level keys that may differ between a run and its resumption (they do not change what is
#: computed; the mesh may change too: orbax reshards the restored state onto the new mesh)
RESUMABLE_CHANGES = tuple(d.name for d in declared(TrainConfig) if d.setting.resumable)


def config_differences(saved: Mapping[str, Any], current: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Top-level keys whose values differ between a saved run config and this one (ignoring
    :data:`RESUMABLE_CHANGES`)."""
    now = json.loads(json.dumps(current.to_dict()))
    try:  # keys added since the run was saved read as their defaults
        saved = json.loads(json.dumps(TrainConfig.from_dict(saved).to_dict()))
    except (ValueError, TypeError, KeyError, OSError):
        pass
    diffs = {}
    for k in set(saved) | set(now):
        if k in RESUMABLE_CHANGES:
            continue
        if saved.get(k) != now.get(k):
            diffs[k] = (saved.get(k), now.get(k))
    return diffs
