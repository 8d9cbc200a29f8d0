"""Using a trained model: load a fold's checkpoint and classify clips.

  predictor = mer_jax.load_model("runs/casme2/folds/casme2__sub01/checkpoints")
  out = predictor(frames, onset=3, offset=40)  # frames: uint8 [N, H, W, 3]
  out["probs"], out["pred_name"]

A fold's `checkpoints/` directory is self-describing: `mer_jax_meta.json`
holds the full training config (model, input size, channels, normalisation,
temporal sampling) and the class names, so nothing else is needed. The
weights (read by `mer_jax.checkpoints`) are the `best` item (the
validation-selected step) when the fold was trained with
`protocol.selection = "inner_val"`, else the final `state`. Only `params`
and `batch_stats` are read (no optimizer state, no devices of the training
run): a model trained on 8 devices loads on one CPU.

`load_model` also reads an exported `.mer` artifact (`mer_jax.artifact`,
scripts/export.py) behind the same interface. Raw video: align the faces
first (`tfds_builders.face_align.align_clip`, or `mer_jax.face_track` over a
long video, as scripts/predict.py does).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mer_jax import checkpoints
from mer_jax import models
from mer_jax.data import pipeline
from mer_jax.data import sampling

log = logging.getLogger(__name__)


def _fold_checkpoint_dirs(workdir: str) -> dict[str, str]:
  """`{fold dir name: <workdir>/folds/<name>/checkpoints}` with a meta file."""
  root = os.path.join(workdir, "folds")
  out = {}
  if os.path.isdir(root):
    for name in sorted(os.listdir(root)):
      d = os.path.join(root, name, "checkpoints")
      if os.path.isfile(os.path.join(d, checkpoints.META_FILE)):
        out[name] = d
  return out


def find_checkpoint_dir(path: str, fold: str | None = None) -> str:
  """Resolves a fold's `checkpoints/` dir, a fold dir or a run workdir.

  Args:
    path: `<workdir>/folds/<fold>/checkpoints`, `<workdir>/folds/<fold>` or
      `<workdir>`.
    fold: for a workdir with several folds, which one: the test subject
      (`casme2/sub01`), its fold directory name (`casme2__sub01`) or the
      subject without the dataset (`sub01`) when that is unambiguous.

  Returns:
    The absolute path of the fold's `checkpoints/` directory.
  """
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise checkpoints.CheckpointError(
        f"{path} is not a directory. Give a run's workdir or a fold's "
        "checkpoints/ directory.")
  if os.path.isfile(os.path.join(path, checkpoints.META_FILE)):
    return path
  if os.path.isfile(os.path.join(path, "checkpoints", checkpoints.META_FILE)):
    return os.path.join(path, "checkpoints")
  folds = _fold_checkpoint_dirs(path)
  if not folds:
    if checkpoints.step_dirs(path):
      raise checkpoints.CheckpointError(
          f"{path} holds checkpoint steps but no {checkpoints.META_FILE}, which "
          "says how to rebuild the model; it was written by an older mer-jax "
          "or by something else. Retrain with the current trainer.")
    raise checkpoints.CheckpointError(
        f"{path} is neither a run workdir (no folds/*/checkpoints/"
        f"{checkpoints.META_FILE}) nor a fold's checkpoints/ directory.")
  if fold is None:
    if len(folds) == 1:
      return next(iter(folds.values()))
    raise checkpoints.CheckpointError(
        f"{path} is a run with {len(folds)} folds (one model per left-out "
        "subject); choose one with fold=... (--fold): " + ", ".join(folds))
  for key in (fold, checkpoints.fold_dirname(fold)):
    if key in folds:
      return folds[key]
  matches = [n for n in folds if n.endswith("__" + checkpoints.fold_dirname(fold))]
  if len(matches) == 1:
    return folds[matches[0]]
  raise checkpoints.CheckpointError(f"No fold {fold!r} in {path}"
                                    + (" (ambiguous)" if matches else "")
                                    + "; folds: " + ", ".join(folds))


def read_meta(path: str, fold: str | None = None) -> dict[str, Any]:
  """`mer_jax_meta.json` of a checkpoint (see `find_checkpoint_dir`), plus
  `checkpoint_dir`. Reads JSON only: cheap, no model is built. An
  exported `.mer` artifact (scripts/export.py) gives its spec in the same
  shape."""
  if os.path.isfile(path):
    from mer_jax import artifact  # pylint: disable=g-import-not-at-top
    spec = artifact.read_spec(path)
    return {"config": spec["config"], "class_names": spec["class_names"],
            "test_subject": spec["source"].get("test_subject", ""),
            "checkpoint_dir": os.path.abspath(path), "artifact": True}
  ckpt_dir = find_checkpoint_dir(path, fold)
  meta = checkpoints.read_meta(ckpt_dir)
  for key in ("config", "class_names"):
    if key not in meta:
      raise checkpoints.CheckpointError(
          f"{os.path.join(ckpt_dir, checkpoints.META_FILE)} has no {key!r} entry")
  meta["checkpoint_dir"] = ckpt_dir
  return meta


# ----------------------------------------------------------------------------
# The predictor.


@dataclasses.dataclass(kw_only=True)
class ClipClassifier:
  """A trained model's input pipeline and outputs; subclasses run the model.

  Attributes:
    config: the training config (`config.input` drives preprocessing).
    class_names: `[K]` class names, in logit order.
    checkpoint_dir: where the weights come from (a fold's checkpoints/
      directory, or an exported `.mer` file).
    step: the checkpoint step that was restored.
    item: "best" (inner-validation selection) or "state" (final step).
    selected_step: the training step the weights come from (for "best", the
      step inner validation chose; else `step`).
    test_subject: the subject this fold held out (never trained on).
    batch_size: clips per forward pass in `predict_clips` / `predict_many`.
  """
  config: ml_collections.ConfigDict
  class_names: tuple[str, ...]
  checkpoint_dir: str
  step: int
  item: str
  selected_step: int
  test_subject: str = ""
  batch_size: int = 8

  def _forward(self, clips: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 `[B, T, S, S, C]` -> `probs` `[B, K]` (+ `dynamic_image`)."""
    raise NotImplementedError

  @property
  def num_frames(self) -> int:
    return int(self.config.input.num_frames)

  @property
  def min_frames(self) -> int:
    """Frames a clip needs between onset and offset (inclusive)."""
    if self.config.input.temporal_sampling == "stride":
      return self.num_frames
    return 2  # one frame has no motion to classify

  def preprocess(self, frames: np.ndarray | Sequence[np.ndarray],
                 onset: int | None = None,
                 offset: int | None = None) -> np.ndarray:
    """Samples and resizes a clip as the training pipeline did.

    Args:
      frames: uint8 `[N, H, W, 3]` RGB face frames, aligned like the training
        corpus (see `tfds_builders.face_align.align_clip` for raw video).
      onset, offset: first / last frame of the expression (inclusive);
        default: the whole clip.

    Returns:
      uint8 `[T, S, S, C]`: `T = config.input.num_frames` frames sampled with
      `config.input.temporal_sampling`, `S = config.input.size`, `C =
      config.input.channels`.
    """
    n = len(frames)
    if n == 0:
      raise ValueError("the clip has no frames")
    onset = 0 if onset is None else int(onset)
    offset = n - 1 if offset is None else int(offset)
    if not 0 <= onset <= offset < n:
      raise ValueError(f"need 0 <= onset <= offset < {n} frames; got onset "
                       f"{onset}, offset {offset}")
    if offset - onset + 1 < self.min_frames:
      raise ValueError(
          f"the clip has {offset - onset + 1} frame(s) from onset to offset; "
          f"this model needs at least {self.min_frames} "
          f"({self.config.input.temporal_sampling} sampling of "
          f"{self.num_frames} frames)")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 [N, H, W, 3] RGB; got frame "
                       f"{first.dtype} {first.shape}")
    x = sampling.sample_clip(frames, onset, offset, self.num_frames,
                             self.config.input.temporal_sampling)
    x = pipeline.resize_clip(x, int(self.config.input.size))
    if int(self.config.input.channels) == 1:
      x = pipeline.to_grey(x)
    return x

  def predict_clips(self, clips: np.ndarray) -> dict[str, np.ndarray]:
    """Forward pass on preprocessed clips.

    Args:
      clips: uint8 `[B, T, S, S, C]` from `preprocess`.

    Returns:
      `probs` float32 `[B, K]`, and `dynamic_image` float32 `[B, H, W]` in
      [0, 1] when the model reconstructs one.
    """
    clips = np.asarray(clips)
    b = clips.shape[0]
    outs = []
    for i in range(0, b, self.batch_size):
      chunk = clips[i:i + self.batch_size]
      # Pad to a power of two (<= batch_size): few shapes, few compiles.
      size = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())
      pad = np.zeros((size - len(chunk),) + chunk.shape[1:], chunk.dtype)
      out = self._forward(np.concatenate([chunk, pad]))
      outs.append({k: np.asarray(v[:len(chunk)]) for k, v in out.items()})
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

  def _result(self, out: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    probs = out["probs"][i]
    pred = int(np.argmax(probs))
    res = {"probs": probs, "class_names": list(self.class_names), "pred": pred,
           "pred_name": self.class_names[pred]}
    if "dynamic_image" in out:
      res["dynamic_image"] = out["dynamic_image"][i]
    return res

  def __call__(self, frames: np.ndarray | Sequence[np.ndarray],
               onset: int | None = None,
               offset: int | None = None) -> dict[str, Any]:
    """Classifies one clip.

    Args:
      frames: uint8 `[N, H, W, 3]` RGB aligned face frames.
      onset, offset: expression onset / offset frame (default: whole clip).

    Returns:
      `probs` float32 `[K]`, `class_names` `[K]`, `pred` (index), `pred_name`,
      and `dynamic_image` float32 `[H, W]` in [0, 1] for models with one.
    """
    return self._result(self.predict_clips(self.preprocess(frames, onset, offset)[None]), 0)

  def predict_many(self, clips: Sequence[tuple[np.ndarray, int | None, int | None]]
                   ) -> list[dict[str, Any]]:
    """`[(frames, onset, offset), ...]` -> one result per clip, batched."""
    x = np.stack([self.preprocess(f, on, off) for f, on, off in clips])
    out = self.predict_clips(x)
    return [self._result(out, i) for i in range(len(clips))]


@dataclasses.dataclass(kw_only=True)
class Predictor(ClipClassifier):
  """A trained flax model restored from a checkpoint; call it on a clip.

  Attributes (besides `ClipClassifier`'s):
    model: the flax module.
    variables: `{"params": ..., ["batch_stats": ...]}`, numpy leaves.
  """
  model: Any
  variables: dict[str, Any]

  def __post_init__(self):
    self._apply = jax.jit(eval_fn(self.model))
    if getattr(self.model, "batch_inputs", ()):
      # e.g. miacnet apex="annotated": a raw clip has no annotation.
      log.warning("%s takes %s from the corpus annotations; a raw clip has "
                  "none, so the model falls back (miacnet: the estimated "
                  "apex, apex_fallback=%r).", self.config.model_name,
                  ", ".join(self.model.batch_inputs),
                  getattr(self.model, "apex_fallback", None))
    # On the default device once, not per call.
    self._device_variables = jax.device_put(self.variables)
    self._normalize = pipeline.Normalize(self.config.input)

  def _forward(self, clips: np.ndarray) -> dict[str, np.ndarray]:
    x = self._normalize({"frames": clips})["frames"]
    return jax.device_get(self._apply(self._device_variables, x))


def eval_fn(model):
  """`(variables, frames float32 [B, T, S, S, C] normalised) -> {"probs" [B, K],
  ["dynamic_image" [B, H, W]]}`: the eval forward pass, also what is exported.

  `dynamic_image` is the picture of the model module's `preview` hook (FDP's
  constructed dynamic image, in [0, 1]), for models that have one; the rest
  of `aux` is internal.
  """
  preview = getattr(importlib.import_module(type(model).__module__),
                    "preview", None)

  def apply(variables, frames):
    logits, aux = model.apply(variables, frames, train=False)
    out = {"probs": jax.nn.softmax(logits.astype(jnp.float32), axis=-1)}
    if preview is not None:
      out["dynamic_image"] = preview(aux, {})[0].astype(jnp.float32)
    return out

  return apply


def load_model(checkpoint_dir: str, *, fold: str | None = None,
               step: int | None = None, batch_size: int = 8) -> ClipClassifier:
  """Rebuilds a trained model from its checkpoint directory or `.mer` file.

  Args:
    checkpoint_dir: a fold's `checkpoints/` directory, the fold directory, or
      a run workdir (then `fold` picks the fold unless there is only one);
      or an exported `.mer` artifact (scripts/export.py; `fold` and `step`
      do not apply).
    fold: see `find_checkpoint_dir`.
    step: restore this step; default the newest step that restores (older
      steps are tried, with a `CheckpointFallbackWarning`, when the newest is
      corrupt or half-written).
    batch_size: clips per forward pass.

  Returns:
    A `Predictor`, or an `artifact.ExportedPredictor` for a `.mer` file.
  """
  if os.path.isfile(checkpoint_dir):
    from mer_jax import artifact  # pylint: disable=g-import-not-at-top
    return artifact.load_artifact(checkpoint_dir, batch_size=batch_size)
  meta = read_meta(checkpoint_dir, fold)
  config = ml_collections.ConfigDict(meta["config"])
  class_names = tuple(meta["class_names"])
  model = models.get_model(meta["model_name"], **checkpoints.model_kwargs(meta))
  shapes = jax.eval_shape(
      lambda: model.init({"params": jax.random.PRNGKey(0),
                          "dropout": jax.random.PRNGKey(0)},
                         jnp.zeros(pipeline.clip_shape(config.input),
                                   jnp.float32), train=False))
  target = {k: shapes[k] for k in ("params", "batch_stats") if shapes.get(k)}
  loaded = checkpoints.load_model_variables(meta["checkpoint_dir"], step=step,
                                            target=target)
  return Predictor(model=model, variables=loaded.variables, config=config,
                   class_names=class_names, checkpoint_dir=meta["checkpoint_dir"],
                   step=loaded.step, item=loaded.item,
                   selected_step=loaded.selected_step,
                   test_subject=meta.get("test_subject", ""),
                   batch_size=batch_size)

