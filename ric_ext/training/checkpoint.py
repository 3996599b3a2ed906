"""Training checkpoints: everything a run needs to continue (weights, optimiser, EMA, clock, best score).

Written atomically, read with ``weights_only=True``. ``compact=True`` stores
the optimiser moments in bfloat16 (float16 would flush Adam's tiny second
moments to 0; weights and EMA stay float32) and splits the file into shards
(see :func:`save`), for checkpoints committed to git or returned from a device
run so a run can continue in the next session. Rounded moments change the continuation very
slightly, so a compact resume is close to, not bit-identical with, an
uninterrupted run.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch

from ..errors import CheckpointError
from ..io_utils import atomic_write

FORMAT = "ric-ext-checkpoint"


def _half(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.bfloat16() if obj.is_floating_point() and obj.dim() > 0 else obj
    if isinstance(obj, dict):
        return {k: _half(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_half(v) for v in obj]
    return obj


def _shard_name(path: str, part: str, step: int) -> str:
    return f"{path}.{part}-{step:08d}"


def save(path: str, blob: Dict[str, Any], compact: bool = False) -> None:
    """Write a checkpoint atomically.

    ``compact``: the optimiser state (in bfloat16) and the EMA (float32: it is
    the exported model) go to shard files named after the step, next to
    ``path``; the main file (weights and metadata) names them and is written
    last, and older shards are removed only after it, so an interruption at
    any moment leaves a loadable checkpoint. Each file stays below the 16 MiB
    a device run may return, even at width 50 (~11 MB each).
    """
    if not compact:
        atomic_write(path, lambda tmp: torch.save(blob, tmp))
        return
    step = int(blob["step"])
    shards = {"optimizer": _half(blob["optimizer"])}
    if blob.get("ema") is not None:
        shards["ema"] = blob["ema"]
    names = {}
    for part, obj in shards.items():
        name = _shard_name(path, part, step)
        atomic_write(name, lambda tmp, o=obj: torch.save({"format": FORMAT + "-shard", "step": step, part: o}, tmp))
        names[part] = os.path.basename(name)
    main = {k: v for k, v in blob.items() if k not in shards}
    main.update(compact=True, shards=names)
    atomic_write(path, lambda tmp: torch.save(main, tmp))
    keep = set(names.values())
    prefix = os.path.basename(path) + "."
    folder = os.path.dirname(os.path.abspath(path))
    for f in os.listdir(folder):
        if f.startswith(prefix) and f not in keep and f.rsplit("-", 1)[-1].isdigit():
            os.remove(os.path.join(folder, f))


def _load_file(path: str, map_location: torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


def load(path: str, map_location: torch.device) -> Dict[str, Any]:
    blob = _load_file(path, map_location)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ric_ext training checkpoint")
    folder = os.path.dirname(os.path.abspath(path))
    for part, name in (blob.get("shards") or {}).items():
        shard_path = os.path.join(folder, os.path.basename(str(name)))
        if not os.path.isfile(shard_path):
            raise CheckpointError(f"checkpoint {path} needs its shard {name}, which is missing")
        shard = _load_file(shard_path, map_location)
        if not isinstance(shard, dict) or shard.get("step") != blob.get("step") or part not in shard:
            raise CheckpointError(f"shard {name} does not belong to checkpoint {path} (step {blob.get('step')})")
        blob[part] = shard[part]
    for k in ("step", "model_config", "model", "optimizer"):
        if k not in blob:
            raise CheckpointError(f"checkpoint {path} lacks {k!r}")
    return blob


def restore_optimizer(opt: torch.optim.Optimizer, state: dict, compact: bool) -> None:
    if compact:  # bfloat16 moments back to float32
        state = dict(
            state,
            state={
                k: {
                    n: (t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 else t)
                    for n, t in v.items()
                }
                for k, v in state["state"].items()
            },
        )
    opt.load_state_dict(state)
    # Moments saved from a run in the other memory layout: give them the parameter's strides, so the
    # optimiser's element-wise updates run on matching layouts (a run may switch --channels-last).
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for n, t in st.items():
                if isinstance(t, torch.Tensor) and t.shape == p.shape and t.stride() != p.stride():
                    st[n] = torch.empty_like(p, dtype=t.dtype).copy_(t)


def best_score(val: Optional[dict], min_agreement: float = 0.99) -> float:
    """Model selection: validation PSNR, among evaluations whose label agreement is >= min_agreement."""
    if not val or val.get("val_agreement", 0.0) < min_agreement:
        return float("-inf")
    return float(val["val_psnr"])
