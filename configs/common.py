"""Pieces shared by the config files (imported as `configs.common`)."""

from __future__ import annotations

from typing import Sequence

import ml_collections

from mer_jax import config_lib


def parse_arg(arg: str | None, protocols: Sequence[str]) -> tuple[str, bool]:
  """`(protocol, tiny)` from a config arg such as `3class`, `tiny` or `3class,tiny`.

  The protocol defaults to the first of `protocols`.
  """
  parts = [p for p in (arg or "").split(",") if p]
  unknown = [p for p in parts if p not in ("tiny", *protocols)]
  if unknown:
    raise ValueError(f"Unknown config arg {unknown}: use tiny, "
                     f"{', '.join(protocols)} (comma-separated)")
  named = [p for p in parts if p in protocols]
  return (named[-1] if named else protocols[0]), "tiny" in parts


def tiny_schedule(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A run of seconds (tests, a quick look): small batches, 6 steps."""
  c.input.batch_size = 8
  c.input.eval_batch_size = 8
  c.num_steps = 6
  c.log_every = 2
  c.checkpoint_every = 3
  c.protocol.eval_every = 3
  c.progress = False
  return c


def fdp_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks an FDP config to seconds (tests, a quick look)."""
  tiny_schedule(c)
  c.model.widths = (8, 8)
  c.model.depths = (1, 1)
  c.model.global_blocks = (0, 1)
  c.model.sr_ratios = (2, 1)
  c.model.head_dim = 4
  c.model.rank_dim = 8
  c.model.rank_hidden = 8
  c.model.head_width = 8
  c.model.decoder_widths = (8, 4)
  return c


def fdp_real_corpus(datasets: Sequence[str], num_steps: int = 500,
                    tiny: bool = False) -> ml_collections.ConfigDict:
  """FDP (paper architecture) on licensed corpora: 8 grey 64x64 frames.

  Input as the paper / official code: 8 frames sampled uniformly from onset
  to offset, 64x64 grey (builders store 112 px; the pipeline area-resizes).
  Default (full) widths; a fixed schedule at batch 32 (the official run is
  501 steps at batch 36); the model after the last step is reported.
  """
  c = config_lib.base_config()
  c.input.datasets = tuple(datasets)
  c.input.num_frames = 8
  c.input.size = 64
  c.input.channels = 1
  c.input.targets = ("dynamic_image",)
  c.input.batch_size = 32
  c.model_name = "fdp"
  c.model.patch = 4
  c.model.widths = (64, 128, 256)
  c.model.depths = (2, 2, 4)
  c.model.global_blocks = (1, 1, 1)
  c.model.sr_ratios = (4, 2, 1)
  c.model.head_dim = 16
  c.model.mlp_ratio = 3.0
  c.model.drop_path = 0.1
  c.model.rank_dim = 128
  c.model.rank_hidden = 64
  c.model.head_width = 128
  c.model.head_pool = 2
  c.model.dropout = 0.3
  c.model.decoder_widths = (64, 32, 16)
  c.aux_loss.di_weight = 1.0
  c.aux_loss.rank_weight = 0.1
  c.aux_loss.rank_margin = 0.1
  c.aux_loss.rank_window = "clip"  # the paper: chronological order
  c.aux_loss.rank_use_apex = False  # the paper: no key frames
  c.optimizer.kwargs.weight_decay = 1e-3
  c.schedule.lr = 1e-3
  c.schedule.warmup_steps = 50
  c.num_steps = num_steps
  return fdp_tiny(c) if tiny else c


def fdp_official(datasets: Sequence[str], class_order: Sequence[str],
                 tiny: bool = False) -> ml_collections.ConfigDict:
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
  # The official float32 numerics. `matmul_dtype = "bfloat16"` (with
  # im2col_max_pixels = 1024 on a CPU, 0 on GPU / TPU) runs every product
  # with bfloat16 operands and float32 accumulation: 1.45x faster on a CPU.
  c.model.matmul_dtype = "float32"
  c.model.im2col_max_pixels = 4
  c.aux_loss.dy_weight = 100.0
  c.optimizer.name = "adam"
  c.optimizer.kwargs = ml_collections.ConfigDict(
      {"b1": 0.9, "b2": 0.999, "eps": 1e-8})
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


def miacnet_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a 112 px MIACNet / MA2MI config to seconds (tests); keeps the data."""
  tiny_schedule(c)
  c.input.size = 32
  c.input.num_frames = 4
  c.model.stem_width = 8
  c.model.widths = (8, 16)
  c.model.strides = (1, 2)
  c.model.position_depth = 1
  c.model.position_heads = 2
  c.model.position_mlp_ratio = 2.0
  return c
