"""torch state_dict <-> Flax variables of the official FDP port.

`load()` turns an official state_dict into Flax variables, `to_state_dict()`
goes back; `infer_config()` reads the Model kwargs from the shapes. Module
names mirror the torch names with `.N` -> `_N` (`stem.0` -> `stem_0`,
`features.3` -> `features_3`, `proj_head.0` -> `proj_head_0`); BN weight /
bias / running_mean / running_var -> `scale` / `bias` / batch_stats `mean` /
`var`; Linear (out, in) -> kernel (in, out); Conv2d OIHW -> HWIO.
`mer/conv3d/kernel` is the (3, 3, 8, 8) HWIO kernel of the equivalent 2-D conv
(torch weight (8, 1, 3, 3, 8) -> `w[:, 0].transpose(1, 2, 3, 0)`).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax.models.fdp_official.model import Model
from mer_jax.models.fdp_official.model import make_divisible

_BN_LEAVES = {"running_mean": "mean", "running_var": "var"}


def _torch_module_path(name: str) -> tuple[list[str], str]:
  """'frame_rep.stem.0.conv.weight' -> (['frame_rep', 'stem_0', 'conv'], 'weight')."""
  out: list[str] = []
  for p in name.split("."):
    if p.isdigit() and out:
      out[-1] = f"{out[-1]}_{p}"
    else:
      out.append(p)
  return out[:-1], out[-1]


def _torch_to_flax(name: str, value: np.ndarray
                   ) -> tuple[str, tuple[str, ...], np.ndarray] | None:
  """Maps one state_dict entry to (collection, path, array); None = skip."""
  mod, leaf = _torch_module_path(name)
  value = np.asarray(value)
  if leaf == "num_batches_tracked":
    return None
  if leaf in _BN_LEAVES:
    return "batch_stats", tuple(mod) + (_BN_LEAVES[leaf],), value
  if leaf == "bias":
    return "params", tuple(mod) + ("bias",), value
  if leaf != "weight":
    raise KeyError(f"Unknown state_dict entry {name!r}")
  if value.ndim == 1:  # BatchNorm weight
    return "params", tuple(mod) + ("scale",), value
  if value.ndim == 2:  # Linear (out, in) -> (in, out)
    return "params", tuple(mod) + ("kernel",), value.T
  if value.ndim == 4:  # Conv2d (O, I, kh, kw) -> HWIO
    return "params", tuple(mod) + ("kernel",), value.transpose(2, 3, 1, 0)
  if value.ndim == 5:  # Conv3d (O, 1, kh, kw, kd) -> 2-D HWIO (kh, kw, kd, O)
    if value.shape[1] != 1:
      raise ValueError(f"{name}: Conv3d with {value.shape[1]} input channels "
                       "has no 2-D equivalent here")
    return "params", tuple(mod) + ("kernel",), value[:, 0].transpose(1, 2, 3, 0)
  raise ValueError(f"{name}: unexpected weight shape {value.shape}")


def state_dict_keys(state_dict: Mapping[str, Any]) -> list[str]:
  """The torch state_dict names in a mapping (drops 'prefix/...' entries)."""
  return [k for k in state_dict if "/" not in k]


def infer_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Model config (Model kwargs incl. num_classes) from state_dict shapes."""
  def shape(k):
    if k not in state_dict:
      raise KeyError(f"state_dict lacks {k!r} (needed to infer the config)")
    return tuple(np.shape(state_dict[k]))

  stem = [shape(f"frame_rep.stem.{i}.conv.weight")[0] for i in range(3)]
  n_blocks = 0
  while f"frame_rep.features.{n_blocks}.mhca.group_conv3x3.weight" in state_dict:
    n_blocks += 1
  if n_blocks == 0:
    raise KeyError("state_dict has no frame_rep.features.* blocks")
  # A stage starts at block 0 and at every block with a patch_embed conv
  # (stride-2 blocks always have one; stage-0 block 0 has one iff widths
  # change). Widths come from the blocks' 3x3 convs.
  starts = [i for i in range(n_blocks)
            if i == 0 or f"frame_rep.features.{i}.patch_embed.conv.weight"
            in state_dict]
  if len(starts) != 4:
    raise ValueError(f"Expected 4 stages, found block starts {starts}")
  depths = [e - s for s, e in zip(starts, starts[1:] + [n_blocks])]
  widths = [shape(f"frame_rep.features.{s}.mhca.group_conv3x3.weight")[0]
            for s in starts]
  hidden = [shape(f"frame_rep.features.{s}.mlp.conv1.weight")[0] for s in starts]
  mlp_ratio = 3.0
  if any(make_divisible(w * mlp_ratio, 32) != h for w, h in zip(widths, hidden)):
    raise ValueError(f"MLP hidden widths {hidden} do not match mlp_ratio 3 for "
                     f"widths {widths}")
  conv3d = shape("mer.conv3d.weight")  # (8, 1, 3, 3, 8)
  feature_dim = shape("frame_rep.proj_head.0.weight")[0]
  return dict(
      num_classes=shape("mer.fc2.weight")[0],
      stem_chs=tuple(stem),
      depths=tuple(depths),
      widths=tuple(widths),
      mlp_ratio=mlp_ratio,
      head_dim=8,
      path_dropout=0.1,
      num_frames=8,
      feature_dim=feature_dim,
      rep_shape=(64, 64, conv3d[4]),
      rep_channels=conv3d[0],
      fc1_hidden=shape("mer.fc1.weight")[0],
      segnet_widths=tuple(shape(f"dyimg_net.conv{s}1.weight")[0]
                          for s in range(1, 5)),
  )


@functools.lru_cache(maxsize=8)
def _variable_shapes(config_items: tuple) -> dict:
  config = dict(config_items)
  model = Model(**config)
  t = config.get("num_frames", 8)
  h, w = 64, 64
  x = jax.ShapeDtypeStruct((1, t, h, w, 1), jnp.float32)
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x)
  return {c: {p: tuple(v.shape)
              for p, v in traverse_util.flatten_dict(shapes[c]).items()}
          for c in ("params", "batch_stats")}


def _config_key(config: Mapping[str, Any]) -> tuple:
  return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                      for k, v in config.items()))


def variable_shapes(config: Mapping[str, Any]
                    ) -> dict[str, dict[tuple[str, ...], tuple[int, ...]]]:
  """`{'params' | 'batch_stats': {path: shape}}` of `Model(**config)`.

  Traced with `jax.eval_shape` on one 64x64 grey clip (nothing computed).
  """
  return _variable_shapes(_config_key(config))


def load(state_dict: Mapping[str, Any], config: Mapping[str, Any] | None = None,
         strict: bool = True) -> dict[str, dict]:
  """Converts a torch FDP state_dict to flax variables.

  Args:
    state_dict: torch name -> array (numpy or torch tensors). Entries whose
      name contains '/' (reference-file extras) and `num_batches_tracked` are
      ignored.
    config: Model kwargs; inferred from the shapes when None.
    strict: raise on missing / unexpected keys and shape mismatches.

  Returns:
    {'params': ..., 'batch_stats': ...} (nested dicts of float32 numpy arrays).
  """
  if config is None:
    config = infer_config(state_dict)
  expected = variable_shapes(config)
  flat: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for name in state_dict_keys(state_dict):
    value = state_dict[name]
    if hasattr(value, "detach"):  # torch tensor
      value = value.detach().cpu().numpy()
    conv = _torch_to_flax(name, value)
    if conv is None:
      continue
    coll, path, arr = conv
    exp = expected[coll].get(path)
    if exp is None:
      if strict:
        raise KeyError(f"Unexpected state_dict key {name!r} (-> {coll}/"
                       f"{'/'.join(path)}) for config {dict(config)}")
      continue
    if tuple(arr.shape) != exp:
      raise ValueError(f"Shape mismatch for {name!r}: torch {np.shape(value)} "
                       f"-> flax {arr.shape}, expected {exp}")
    flat[coll][path] = np.asarray(arr, np.float32)
  for coll in ("params", "batch_stats"):
    missing = sorted(set(expected[coll]) - set(flat[coll]))
    if missing and strict:
      names = [to_torch_name(coll, p) for p in missing[:10]]
      raise KeyError(f"state_dict is missing {len(missing)} keys, e.g. {names}")
  return {c: traverse_util.unflatten_dict(flat[c])
          for c in ("params", "batch_stats")}


def to_torch_name(collection: str, path: Sequence[str]) -> str:
  """Flax variable path -> torch state_dict name."""
  mods = [re.sub(r"^(stem|features|proj_head)_(\d+)$", r"\1.\2", p)
          for p in path[:-1]]
  leaf = path[-1]
  if collection == "batch_stats":
    leaf = {"mean": "running_mean", "var": "running_var"}[leaf]
  else:
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[leaf]
  return ".".join(mods + [leaf])


def to_state_dict(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Inverse of `load` (num_batches_tracked is not tracked and not emitted)."""
  out = {}
  for coll in ("params", "batch_stats"):
    for path, v in traverse_util.flatten_dict(variables.get(coll, {})).items():
      v = np.asarray(v)
      name = to_torch_name(coll, path)
      if path[-1] == "kernel":
        if v.ndim == 2:
          v = v.T
        elif path[-2] == "conv3d":
          v = v.transpose(3, 0, 1, 2)[:, None]
        else:
          v = v.transpose(3, 2, 0, 1)
      out[name] = np.ascontiguousarray(v)
  return out
