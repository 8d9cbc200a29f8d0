"""Every key the trainer reads, with its default.

Config files in `configs/` start from `base_config()` and change values;
`validate()` rejects keys that are not defined here (a ConfigDict accepts
typos silently, which would silently fall back to defaults).
"""

from __future__ import annotations

import re

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """The complete default configuration."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # What scripts/main.py runs: a task of `mer_jax.tasks.TASKS`, "mer" (train
  # + evaluate under `protocol`) or "ma2mi_pretrain".
  c.task = "mer"
  # An orbax checkpoint directory to initialise matching parameters from
  # (e.g. MA2MI pretraining); parameters not in it keep their fresh init.
  c.init_from = ""
  # Task-specific settings (free-form; read by the task module).
  c.pretrain = ml_collections.ConfigDict()

  c.input = ml_collections.ConfigDict()
  # TFDS names `<builder>/<config>`; several (comma-separated) = composite.
  c.input.datasets = ("synthetic_me/s64",)
  c.input.data_dir = ""  # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.input.auto_build = True  # build corpora that need no manual data
  c.input.num_frames = 8
  c.input.temporal_sampling = "uniform"  # uniform | interpolate | stride
  c.input.size = 64
  c.input.channels = 3  # 1 = grey (PIL 'L')
  c.input.mean = 0.5
  c.input.std = 0.5
  c.input.targets = ()  # e.g. ("dynamic_image",)
  # Class names in head order (a permutation of the builder's); () = as built.
  c.input.class_order = ()
  c.input.batch_size = 16  # global
  c.input.eval_batch_size = 32
  c.input.read_threads = 1
  c.input.prefetch = 4
  c.input.workers = 0  # grain worker processes (0: in the main process)
  c.input.augment = ml_collections.ConfigDict()
  c.input.augment.enabled = True
  c.input.augment.flip = True
  c.input.augment.max_rotate_deg = 5.0
  c.input.augment.scale = (0.95, 1.05)
  c.input.augment.max_shift = 0.04  # fraction of width/height
  c.input.augment.brightness = 0.05
  c.input.augment.contrast = 0.1

  c.model_name = "baseline3d"
  c.model = ml_collections.ConfigDict()
  c.aux_loss = ml_collections.ConfigDict()  # kwargs of the model's aux_losses

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"  # any optax optimizer taking learning_rate
  c.optimizer.kwargs = ml_collections.ConfigDict({"weight_decay": 1e-4})
  c.optimizer.grad_clip_norm = 1.0  # 0 = off
  # Coupled L2 (wd * param added to the gradient before the optimizer, as
  # torch.optim.Adam(weight_decay=)); 0 = off. Not AdamW's decoupled decay.
  c.optimizer.coupled_weight_decay = 0.0
  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = "warmup_cosine"  # constant | warmup_cosine
  c.schedule.lr = 1e-3
  c.schedule.warmup_steps = 20
  c.num_steps = 300  # per fold, fixed

  c.protocol = ml_collections.ConfigDict()
  c.protocol.name = "loso"
  # fixed: report the model after num_steps. inner_val: hold out
  # `val_subjects` training subjects, keep the step with the best validation
  # UF1. The test subject's labels never choose anything.
  c.protocol.selection = "fixed"
  c.protocol.val_subjects = 1
  c.protocol.eval_every = 100
  c.protocol.folds = ()  # subset of test subjects to run (empty = all)
  # Train K folds at once in one compiled program (vmap over stacked states;
  # the fold axis is sharded over mesh.folds devices). Same results as K=1.
  c.protocol.parallel_folds = 1

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # devices on the data axis (-1 = all / fsdp)
  c.mesh.fsdp = 1  # devices that split large parameters (FSDP); 1 = replicate
  c.mesh.fsdp_min_size = 2 ** 14  # smaller leaves stay replicated
  c.mesh.folds = 1  # devices that split the fold axis of parallel_folds

  c.log_every = 25
  c.checkpoint_every = 100
  c.keep_checkpoints = 2
  # Test clips per fold drawn in folds/<subject>/dynamic_images.png and
  # TensorBoard (models whose aux output has a dynamic image); 0 = off.
  c.preview_samples = 4
  c.progress = True
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every key that `base_config` does not define."""
  base = base_config()
  unknown = []

  def walk(cfg, ref, prefix):
    for k, v in cfg.items():
      path = f"{prefix}{k}"
      if ref is None:
        continue
      if k not in ref:
        unknown.append(path)
      elif isinstance(v, ml_collections.ConfigDict) and k not in _FREE_FORM:
        walk(v, ref[k], path + ".")

  walk(config, base, "")
  if unknown:
    raise ValueError(
        "Unknown config key(s): " + ", ".join(unknown) +
        ". Check the spelling against mer_jax/config_lib.py:base_config().")
  if config.protocol.selection not in ("fixed", "inner_val"):
    raise ValueError(f"config.protocol.selection={config.protocol.selection!r}; "
                     "use 'fixed' or 'inner_val'.")
  preview = config.get("preview_samples", 0)
  if isinstance(preview, bool) or not isinstance(preview, int) or preview < 0:
    raise ValueError(f"config.preview_samples={preview!r}; use an integer >= 0 "
                     "(0 = no dynamic-image previews).")
  problems = [p for p in (_check_range(config, key, *rule) for key, rule in
                          _RANGES.items()) if p]
  for section in ("model", "aux_loss"):
    for k, v in _flat(config.get(section) or {}, f"{section}."):
      if _PROBABILITY.search(k.rsplit(".", 1)[-1]) and _is_number(v) and \
          not 0.0 <= v <= 1.0:
        problems.append(f"config.{k}={v!r}: a probability, allowed range [0, 1]")
  scale = config.input.augment.scale
  if (not isinstance(scale, (tuple, list)) or len(scale) != 2
      or not all(_is_number(x) and x > 0 for x in scale) or scale[0] > scale[1]):
    problems.append(f"config.input.augment.scale={scale!r}: allowed (lo, hi) "
                    "with 0 < lo <= hi")
  data = config.mesh.data
  if data is not None and (not isinstance(data, int) or isinstance(data, bool)
                           or (data != -1 and data < 1)):
    problems.append(f"config.mesh.data={data!r}: allowed -1 (all devices) or >= 1")
  if problems:
    raise ValueError("Config value(s) that cannot work:\n  " + "\n  ".join(problems))


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _flat(d, prefix):
  for k, v in d.items():
    if isinstance(v, (dict, ml_collections.ConfigDict)):
      yield from _flat(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", v


def _check_range(config, key: str, kind: str, lo=None, hi=None,
                 choices=None) -> str | None:
  """One problem line for `key`, or None. kind: 'int' | 'float' | 'choice'."""
  v = config
  for part in key.split("."):
    if part not in v:
      return None
    v = v[part]
  if kind == "choice":
    return None if v in choices else (
        f"config.{key}={v!r}: allowed {' | '.join(map(repr, choices))}")
  ok_type = (isinstance(v, int) and not isinstance(v, bool)) if kind == "int" \
      else _is_number(v)
  where = (f"[{lo}, {hi}]" if hi is not None else "> 0" if lo == _POSITIVE
           else f">= {lo}" if lo is not None else "any")
  if not ok_type:
    return f"config.{key}={v!r}: allowed an {kind} {where}"
  # NaN passes on purpose: a NaN learning rate is a trainer test (stops at
  # the first non-finite loss, naming the step).
  if (lo is not None and v < lo) or (hi is not None and v > hi):
    return f"config.{key}={v!r}: allowed range {where}"
  return None


_POSITIVE = 1e-30  # a lower bound meaning "> 0"

# key -> (kind, lo, hi[, choices]); every value outside cannot work.
_RANGES = {
    **dict.fromkeys((  # counts
        "num_steps", "log_every", "checkpoint_every", "keep_checkpoints",
        "input.num_frames", "input.batch_size", "input.eval_batch_size",
        "protocol.val_subjects", "protocol.eval_every", "protocol.parallel_folds",
        "mesh.fsdp", "mesh.folds"), ("int", 1)),
    **dict.fromkeys((
        "input.read_threads", "input.prefetch", "input.workers",
        "schedule.warmup_steps", "mesh.fsdp_min_size"), ("int", 0)),
    **dict.fromkeys(("input.std", "schedule.lr"), ("float", _POSITIVE)),
    **dict.fromkeys(("optimizer.grad_clip_norm", "optimizer.coupled_weight_decay"),
                    ("float", 0.0)),
    **dict.fromkeys(("input.augment.brightness", "input.augment.contrast"),
                    ("float", 0.0, 1.0)),
    "input.size": ("int", 8),
    "input.augment.max_rotate_deg": ("float", 0.0, 180.0),
    "input.augment.max_shift": ("float", 0.0, 0.5),
    "input.channels": ("choice", None, None, (1, 3)),
    "input.temporal_sampling": ("choice", None, None,
                                ("uniform", "interpolate", "stride")),
    "schedule.name": ("choice", None, None, ("constant", "warmup_cosine")),
}
# Free-form model / aux-loss keys that are probabilities.
_PROBABILITY = re.compile(r"(^|_)(dropout|drop_path|prob|p)$|dropout")


# Sections whose keys are the model's / optimizer's own keyword arguments.
_FREE_FORM = ("model", "aux_loss", "kwargs", "pretrain")
