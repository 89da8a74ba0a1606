"""Input handling shared by the advantage functions: numpy / torch / lists in, (B, N) float64 numpy inside, same out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from polyenv.objectives import DEGENERATE


def _torch_tensor_type() -> Any:
    """``torch.Tensor`` if torch is already imported (a tensor input implies it is), else None; never imports torch."""
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None)


def as_reward_batch(rewards: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """``rewards`` of shape (N,) or (B, N) as a (B, N) float64 array, and a function mapping a (B, N) result back.

    The result comes back as the input's type and shape: a torch tensor keeps its device and float dtype (an integer
    tensor gives torch's default float dtype); numpy arrays and sequences give float64 numpy.
    """
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(rewards, tensor_type):
        source = rewards
        array = rewards.detach().to("cpu").double().numpy()
    else:
        source = None
        try:
            array = np.asarray(rewards, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"rewards must be numbers of shape (N,) or (B, N), got {type(rewards).__name__}") from err
    if array.ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (N,) or (B, N), got shape {array.shape}")
    if array.shape[-1] == 0:
        raise ValueError(f"a group needs at least one generation, got rewards of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"rewards must be finite, got {array[~np.isfinite(array)][:5].tolist()}")
    one_group = array.ndim == 1
    batch = np.ascontiguousarray(array.reshape(1, -1) if one_group else array)

    def restore(result: np.ndarray) -> Any:
        out = result.reshape(-1) if one_group else result
        if source is None:
            return out.astype(np.float64, copy=False)
        import torch

        dtype = source.dtype if source.is_floating_point() else torch.get_default_dtype()
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=source.device, dtype=dtype)

    return batch, restore


def as_strategy_batch(strategies: Any, shape: tuple[int, int]) -> np.ndarray:
    """Strategy labels as a (B, N) int64 array matching the rewards' batch ``shape``; labels are >= 0 or DEGENERATE."""
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(strategies, tensor_type):
        strategies = strategies.detach().to("cpu").numpy()
    array = np.asarray(strategies)
    integral = array.dtype.kind in "iu" or (
        array.dtype.kind == "f" and np.all(np.isfinite(array) & (array == np.round(array)))
    )
    if not integral:
        raise TypeError(f"strategies must be integer labels, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size != shape[0] * shape[1] or (array.ndim == 2 and array.shape != shape) or array.ndim not in (1, 2):
        raise ValueError(f"strategies must match the rewards' shape, got {array.shape} for rewards {shape}")
    array = array.reshape(shape)
    if array.size and array.min() < DEGENERATE:
        raise ValueError(f"strategy labels must be >= 0 or DEGENERATE ({DEGENERATE}), got {array.min()}")
    return array


def clusters(strategies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the (group, label) clusters of a (B, N) label batch.

    Returns ``cluster_id`` (B, N) with -1 for degenerate generations, ``sizes`` (C,) and ``cluster_row`` (C,), the
    group each cluster belongs to. O(B N log(B N)).
    """
    batch = strategies.shape[0]
    valid = strategies != DEGENERATE
    cluster_id = np.full(strategies.shape, -1, dtype=np.int64)
    if not valid.any():
        return cluster_id, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    labels, dense = np.unique(strategies[valid], return_inverse=True)
    rows = np.broadcast_to(np.arange(batch)[:, None], strategies.shape)[valid]
    keys, ids = np.unique(rows * labels.size + dense.reshape(-1), return_inverse=True)
    cluster_id[valid] = ids.reshape(-1)
    return cluster_id, np.bincount(ids.reshape(-1), minlength=keys.size), keys // labels.size
