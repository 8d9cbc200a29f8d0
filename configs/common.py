"""Pieces shared by the config files (imported as `configs.common`).

A config file is `get_config(arg)`: the corpus, the variants its arg names
(`parse_arg`) and a model family's block from here (`fdp`, `fdp_corpus`,
`fdp_official_corpus`, `miacnet`, `ma2mi`), changed where it differs.
"""

from __future__ import annotations

from typing import Callable, Sequence

import ml_collections

from mer_jax import config_lib

ConfigDict = ml_collections.ConfigDict


def parse_arg(arg: str | None, variants: Sequence[str] = ("",)) -> tuple[str, bool]:
  """`(variant, tiny)` from a config arg such as `3class`, `tiny` or `3class,tiny`.

  The variant defaults to the first of `variants` ("" for configs whose
  default has no name); an unknown part or two variants raise, naming what
  is allowed.
  """
  parts = [p for p in (arg or "").split(",") if p]
  unknown = [p for p in parts if p not in ("tiny", *variants)]
  if unknown:
    allowed = ", ".join(v for v in ("tiny", *variants) if v)
    raise ValueError(f"Unknown config arg {unknown}: use {allowed} (comma-separated)")
  named = sorted({p for p in parts if p in variants}, key=parts.index)
  if len(named) > 1:
    raise ValueError(f"Config arg {arg!r} names {len(named)} variants {named}: "
                     "they exclude each other, give one (and optionally tiny)")
  return (named[0] if named else variants[0]), "tiny" in parts


def tiny_schedule(c: ConfigDict) -> ConfigDict:
  """A run of seconds (tests, a quick look): small batches, 6 steps."""
  c.input.batch_size = 8
  c.input.eval_batch_size = 8
  c.num_steps = 6
  c.log_every = 2
  c.checkpoint_every = 3
  c.protocol.eval_every = 3
  c.progress = False
  return c


# ----------------------------------------------------------------- FDP

# `config.model` of FDP (paper architecture, mer_jax/models/fdp.py) at the
# sizes the real-corpus configs use; `fdp_model(**changes)` changes some.
_FDP_MODEL = dict(
    patch=4, widths=(64, 128, 256), depths=(2, 2, 4), global_blocks=(1, 1, 1),
    sr_ratios=(4, 2, 1), head_dim=16, mlp_ratio=3.0, drop_path=0.1,
    rank_dim=128, rank_hidden=64, head_width=128, head_pool=2, dropout=0.3,
    decoder_widths=(64, 32, 16))
# What `fdp_tiny` shrinks (the rest of the model is kept).
_FDP_TINY = dict(
    widths=(8, 8), depths=(1, 1), global_blocks=(0, 1), sr_ratios=(2, 1),
    head_dim=4, rank_dim=8, rank_hidden=8, head_width=8, decoder_widths=(8, 4))


def fdp_model(**changes) -> ConfigDict:
  """FDP's `config.model`: the real-corpus sizes with `changes` (known keys only)."""
  unknown = sorted(set(changes) - set(_FDP_MODEL))
  if unknown:
    raise ValueError(f"fdp_model: unknown key(s) {unknown}; "
                     f"known: {sorted(_FDP_MODEL)}")
  return ConfigDict({**_FDP_MODEL, **changes})


def fdp_tiny(c: ConfigDict) -> ConfigDict:
  """Shrinks an FDP config to seconds (tests, a quick look)."""
  tiny_schedule(c)
  c.model.update(_FDP_TINY)
  return c


def fdp(datasets: Sequence[str], model: ConfigDict, *, lr: float,
        num_steps: int) -> ConfigDict:
  """FDP on `datasets`: 8 frames at 64 px, the dynamic-image target, the paper's losses.

  Ranking as the paper: chronological order of every pair of consecutive
  frames, no key frames. A fixed schedule (`lr`, `num_steps`); the model
  after the last step is reported.
  """
  c = config_lib.base_config()
  c.input.datasets = tuple(datasets)
  c.input.num_frames = 8
  c.input.size = 64
  c.input.targets = ("dynamic_image",)
  c.model_name = "fdp"
  c.model = model
  c.aux_loss.di_weight = 1.0
  c.aux_loss.rank_weight = 0.1
  c.aux_loss.rank_margin = 0.1
  c.aux_loss.rank_window = "clip"  # the paper: chronological order
  c.aux_loss.rank_use_apex = False  # the paper: no key frames
  c.schedule.lr = lr
  c.num_steps = num_steps
  return c


def fdp_real_corpus(datasets: Sequence[str], num_steps: int = 500,
                    tiny: bool = False) -> ConfigDict:
  """FDP (paper architecture) on licensed corpora: 8 grey 64x64 frames.

  Input as the paper / official code: 8 frames sampled uniformly from onset
  to offset, 64x64 grey (builders store 112 px; the pipeline area-resizes).
  Default (full) widths; a fixed schedule at batch 32 (the official run is
  501 steps at batch 36); the model after the last step is reported, no
  selection on the test subject. Not measured here (the licensed corpora
  are not available on this machine); the aux-loss weights are those that
  worked on the synthetic corpus. `tiny` shrinks the model (for tests; it
  still names the real corpus).
  """
  c = fdp(datasets, fdp_model(), lr=1e-3, num_steps=num_steps)
  c.input.channels = 1
  c.input.batch_size = 32
  c.optimizer.kwargs.weight_decay = 1e-3
  c.schedule.warmup_steps = 50
  return fdp_tiny(c) if tiny else c


def fdp_corpus(*builders: str, variants: Sequence[str], num_steps: int = 500
               ) -> Callable[[str | None], ConfigDict]:
  """`get_config` of `fdp_real_corpus` on `<builder>/<variant>_112` of every builder.

  The arg names the variant (default: the first of `variants`) and `tiny`.
  """
  def get_config(arg: str | None = None) -> ConfigDict:
    variant, tiny = parse_arg(arg, variants)
    return fdp_real_corpus(tuple(f"{b}/{variant}_112" for b in builders),
                           num_steps=num_steps, tiny=tiny)
  return get_config


def fdp_official(datasets: Sequence[str], class_order: Sequence[str],
                 tiny: bool = False) -> ConfigDict:
  """The released FDP code (`fdp_official`) with its official schedule.

  As the official train.py: 8 grey 64x64 frames taken with the official
  stride rule from onset to offset, no augmentation, inputs 2 * grey - 1,
  batch 36, 501 steps per LOSO fold, Adam(lr 1e-4) with coupled L2 1e-3 on
  every parameter, no schedule, no gradient clipping, loss CE + 100 * MSE to
  the dynamic image; classes in the official label order (`class_order`),
  so a converted official checkpoint's head matches.

  Deliberately not reproduced (FDP_SPEC.md 1, 3): the official per-split
  scalar re-normalisation, which normalises the test subject with its own
  statistics; training in eval mode from epoch 2 on; and keeping the epoch
  with the best test accuracy. Here the model after step 501 is reported.
  `tiny`: the reduced widths of the reference file (tests).
  """
  c = config_lib.base_config()
  c.input.datasets = tuple(datasets)
  c.input.class_order = tuple(class_order)
  c.input.num_frames = 8
  c.input.temporal_sampling = "stride"
  c.input.size = 64
  c.input.channels = 1
  c.input.mean = 0.5
  c.input.std = 0.5
  c.input.targets = ("dynamic_image",)
  c.input.augment.enabled = False
  c.input.batch_size = 36
  c.input.eval_batch_size = 48
  c.model_name = "fdp_official"
  # The fastest route on the devices at hand (`fdp_official.resolve_kwargs`):
  # bfloat16 operands with float32 accumulation on a CPU with AVX512-BF16
  # (im2col on maps up to 1024 px) and on GPU / TPU (their convs, 0); the
  # official float32 numerics (im2col on the 2x2 maps, 4) on a CPU without
  # it, where bfloat16 gains nothing. For the official numerics everywhere:
  # --config.model.matmul_dtype=float32 --config.model.im2col_max_pixels=4.
  c.model.matmul_dtype = "auto"
  c.model.im2col_max_pixels = -1
  c.aux_loss.dy_weight = 100.0
  c.optimizer.name = "adam"
  c.optimizer.kwargs = ConfigDict({"b1": 0.9, "b2": 0.999, "eps": 1e-8})
  c.optimizer.coupled_weight_decay = 1e-3
  c.optimizer.grad_clip_norm = 0.0
  c.schedule.name = "constant"
  c.schedule.lr = 1e-4
  c.num_steps = 501
  if tiny:
    tiny_schedule(c)
    # The reduced widths of the reference file (the raw reshape still needs
    # 8 frames of 4096 features and 64x64 inputs).
    c.model.stem_chs = (8, 8, 16)
    c.model.depths = (2, 2, 2, 2)
    c.model.widths = (16, 24, 32, 48)
    c.model.fc1_hidden = 32
    c.model.segnet_widths = (8, 16, 32, 64)
  return c


def fdp_official_corpus(dataset: str, class_order: Sequence[str]
                        ) -> Callable[[str | None], ConfigDict]:
  """`get_config` of `fdp_official` on `dataset`, relabelled to `class_order`.

  The arg names only the dataset's protocol (e.g. `5class`) and `tiny`.
  Not measured here (the licensed corpora are not available on this machine).
  """
  protocol = dataset.split("/")[1].rsplit("_", 1)[0]

  def get_config(arg: str | None = None) -> ConfigDict:
    _, tiny = parse_arg(arg, (protocol,))
    return fdp_official((dataset,), class_order, tiny=tiny)
  return get_config


# ------------------------------------------------------ MIACNet / MA2MI

# The branch keys that fix MIACNet's parameter shapes, by input size. A
# MA2MI pretraining config takes the size of the MIACNet config it
# pretrains for, so the saved parameters match by path and shape.
_MIACNET_BRANCHES = {
    # MMNet at the paper's 14 x 14 grid: 112 px -> stride-2 stem -> stages
    # (1, 2, 2) -> 14 x 14 x 512; position ViT depth 2, 4 heads, MLP ratio 4.
    112: dict(stem_width=64, widths=(128, 256, 512), strides=(1, 2, 2),
              position_depth=2, position_heads=4, position_mlp_ratio=4.0),
    # 64 px -> stem s2 (32) -> strides (1, 2, 2) -> 8 x 8 grid; small widths
    # so a full 10-fold LOSO runs in minutes on 2 CPU cores.
    64: dict(stem_width=16, widths=(16, 32, 32), strides=(1, 2, 2),
             position_depth=2, position_heads=4, position_mlp_ratio=2.0),
    # Tests: seconds.
    32: dict(stem_width=8, widths=(8, 16), strides=(1, 2),
             position_depth=1, position_heads=2, position_mlp_ratio=2.0),
}


def miacnet_branches(c: ConfigDict, size: int) -> ConfigDict:
  """Sets `c.input.size` (112, 64, or 32 for tests) and MIACNet's branch keys for it."""
  c.input.size = size
  c.model.update(_MIACNET_BRANCHES[size], position_input="patch")
  return c


def miacnet_tiny(c: ConfigDict) -> ConfigDict:
  """Shrinks a MIACNet / MA2MI config to seconds (tests); keeps the data."""
  tiny_schedule(c)
  c.input.num_frames = 4
  return miacnet_branches(c, 32)


def miacnet(datasets: Sequence[str], size: int, *, dropout: float,
            weight_decay: float, lr: float, warmup_steps: int, num_steps: int,
            log_every: int) -> ConfigDict:
  """MIACNet on `datasets` (8 frames from onset to offset) with MMNet's apex protocol.

  Apex as MMNet: the annotated onset (frame 0) and apex. Clips without an
  annotated apex (apex_index -1; counted when the corpus is opened) use the
  estimated one (the frame farthest from the onset->offset interpolation;
  see mer_jax/models/miacnet.py). A fixed warmup-cosine schedule.
  """
  c = config_lib.base_config()
  c.input.datasets = tuple(datasets)
  c.input.num_frames = 8  # onset..offset; MIACNet uses onset + one apex
  miacnet_branches(c, size)
  c.model_name = "miacnet"
  c.model.fusion = "sum"
  c.model.dropout = dropout
  c.model.apex = "annotated"
  c.model.apex_fallback = "detrended"
  c.model.apex_topk = 2
  # MMNet's onset jitter (<= 0.15 (apex - onset) / 4 frames) is below one of
  # the 8 sampled frames: none.
  c.model.onset_jitter = 0
  c.aux_loss.orth_weight = 0.0
  c.optimizer.kwargs.weight_decay = weight_decay
  c.schedule.lr = lr
  c.schedule.warmup_steps = warmup_steps
  c.num_steps = num_steps
  c.log_every = log_every
  return c


def ma2mi(datasets: Sequence[str], size: int, *, predictor_width: int,
          decoder_width: int, batch_size: int, lr: float, warmup_steps: int,
          num_steps: int, log_every: int, latent_weight: float,
          ema_momentum: float, image_every: int) -> ConfigDict:
  """MA2MI pretraining (task `ma2mi_pretrain`) on `datasets`; labels unused.

  The branches of a `size` px MIACNet (`miacnet_branches`). Frame pairs
  (t, t+k) inside the expression with k <= 160 ms, future m <= 100 ms; the
  pixel loss (weight 1) plus `latent_weight` x the EMA latent target.
  """
  c = config_lib.base_config()
  c.task = "ma2mi_pretrain"
  c.model_name = "ma2mi"
  c.input.datasets = tuple(datasets)
  miacnet_branches(c, size)
  c.model.predictor_width = predictor_width
  c.model.decoder_width = decoder_width
  c.input.batch_size = batch_size
  c.optimizer.kwargs.weight_decay = 0.05
  c.schedule.lr = lr
  c.schedule.warmup_steps = warmup_steps
  c.num_steps = num_steps
  c.log_every = log_every
  c.pretrain.source = "tfds"
  c.pretrain.max_gap_ms = 160.0
  c.pretrain.future_gap_ms = 100.0
  c.pretrain.within_expression = True
  c.pretrain.pixel_weight = 1.0
  c.pretrain.latent_weight = latent_weight
  c.pretrain.ema_momentum = ema_momentum
  c.pretrain.image_every = image_every
  return c
