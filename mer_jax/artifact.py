"""Portable inference artifacts (`.mer`): a trained fold that needs only jax + numpy.

A `.mer` file is a zip archive:
  spec.json          format, input spec, class names, outputs, training config,
                     where the weights come from
  function.jaxexport `jax.export` serialization (StableHLO) of
                     `f(params: list of arrays, frames: uint8 [B, T, S, S, C])
                      -> {"probs": float32 [B, K], ["dynamic_image": [B, H, W]]}`
                     with a symbolic batch size B; normalisation happens inside
  params.npz         the arrays of `params`, named p0000, p0001, ... in order
  param_paths.json   the flax variable path of each array (for people)

Reading one without mer-jax (frames already aligned, sampled to T frames and
resized to S, as `spec["input"]` says):

  import io, json, zipfile
  import numpy as np
  from jax import export
  with zipfile.ZipFile("model.mer") as z:
    spec = json.loads(z.read("spec.json"))
    fn = export.deserialize(bytearray(z.read("function.jaxexport")))
    npz = np.load(io.BytesIO(z.read("params.npz")))
    params = [npz[k] for k in sorted(npz.files)]
  probs = np.asarray(fn.call(params, clips)["probs"])  # clips: uint8 [B, T, S, S, C]

`mer_jax.load_model("model.mer")` gives the same `predictor(frames, onset,
offset)` interface as a checkpoint, with mer-jax's sampling and resizing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from typing import Any, Sequence

import numpy as np

from mer_jax import checkpoints
from mer_jax import inference

FORMAT = "mer-jax-exported"
FORMAT_VERSION = 1
SPEC = "spec.json"
FUNCTION = "function.jaxexport"
PARAMS = "params.npz"
PARAM_PATHS = "param_paths.json"
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


class ArtifactError(ValueError):
  """Not a readable `.mer` artifact; the message says why."""


def is_artifact(path: str) -> bool:
  """True for a file that is a zip archive with a `spec.json` of this format."""
  if not os.path.isfile(path) or not zipfile.is_zipfile(path):
    return False
  try:
    with zipfile.ZipFile(path) as z:
      return json.loads(z.read(SPEC)).get("format") == FORMAT
  except (KeyError, ValueError, OSError):
    return False


def read_spec(path: str) -> dict[str, Any]:
  """The artifact's `spec.json` (cheap: no function is deserialized)."""
  try:
    with zipfile.ZipFile(path) as z:
      spec = json.loads(z.read(SPEC))
  except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
    raise ArtifactError(f"{path} is not a mer-jax exported model ({e}); make "
                        "one with scripts/export.py") from None
  if spec.get("format") != FORMAT:
    raise ArtifactError(f"{path}: spec.json format {spec.get('format')!r}, "
                        f"expected {FORMAT!r}")
  if spec.get("format_version", 0) > FORMAT_VERSION:
    raise ArtifactError(f"{path} has format version {spec['format_version']}; "
                        f"this mer-jax reads <= {FORMAT_VERSION}: upgrade mer-jax")
  return spec


def export_model(checkpoint: str, out: str, *, fold: str | None = None,
                 step: int | None = None,
                 platforms: Sequence[str] = DEFAULT_PLATFORMS) -> dict[str, Any]:
  """Writes a fold's eval function, params and input spec to `out` (.mer).

  Args:
    checkpoint, fold, step: as `mer_jax.load_model`.
    out: the artifact path.
    platforms: lowering targets of the StableHLO module (jax can lower for
      GPU and TPU on a CPU-only machine).

  Returns:
    The spec written.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top
  import mer_jax  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top

  meta = inference.read_meta(checkpoint, fold)
  predictor = inference.load_model(meta["checkpoint_dir"], step=step)
  cfg = predictor.config.input
  t, s, c = int(cfg.num_frames), int(cfg.size), int(cfg.channels)
  mean = np.asarray(cfg.mean, np.float32)
  std = np.asarray(cfg.std, np.float32)
  leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(predictor.variables)
  leaves = [np.asarray(v) for _, v in leaves_with_paths]
  apply = inference.eval_fn(predictor.model)

  def fn(params, frames):
    # The same arithmetic as pipeline.Normalize, inside the function so that
    # callers feed uint8 frames.
    x = (frames.astype(jnp.float32) / 255.0 - mean) / std
    return apply(jax.tree.unflatten(treedef, params), x)

  (b,) = jax_export.symbolic_shape("b")
  exported = jax_export.export(jax.jit(fn), platforms=tuple(platforms))(
      [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in leaves],
      jax.ShapeDtypeStruct((b, t, s, s, c), jnp.uint8))
  out_shapes = jax.eval_shape(fn, leaves, jax.ShapeDtypeStruct((1, t, s, s, c), jnp.uint8))
  outputs = {"probs": "float32 [B, K], softmax over class_names"}
  if "dynamic_image" in out_shapes:
    outputs["dynamic_image"] = "float32 [B, H, W] in [0, 1]"
  spec = {
      "format": FORMAT, "format_version": FORMAT_VERSION,
      "model": predictor.config.model_name,
      "class_names": list(predictor.class_names),
      "input": {
          "layout": "[B, T, S, S, C]", "dtype": "uint8",
          "num_frames": t, "size": s, "channels": c,
          "color": "RGB" if c == 3 else "grey (PIL 'L': (19595 R + 38470 G + 7471 B + 32768) >> 16)",
          "normalisation": {"mean": mean.tolist(), "std": std.tolist(),
                            "formula": "(x / 255 - mean) / std",
                            "applied": "inside the function: feed uint8"},
          "temporal_sampling": cfg.temporal_sampling,
          "temporal_sampling_rule": {
              "uniform": "frames[round(linspace(onset, offset, T))]",
              "stride": "frames[onset + i * (L // T)] for L = offset - onset + 1 "
                        ">= T, else uniform",
              "interpolate": "linear interpolation at linspace(onset, offset, T)",
          }[cfg.temporal_sampling],
          "min_frames": predictor.min_frames,
          "resize": "cv2.INTER_AREA when shrinking, INTER_LINEAR when enlarging",
          "alignment": {"version": face_align.ALIGN_VERSION,
                        "eye_dist": face_align.EYE_DIST, "eye_y": face_align.EYE_Y,
                        "rule": "one similarity transform per clip from the "
                                "dlib 5-point landmarks of its onset frame"},
      },
      "outputs": outputs,
      "function": {"file": FUNCTION, "args": "(params: list of arrays in "
                   f"{PARAMS} order p0000.., frames)",
                   "platforms": list(exported.platforms),
                   "batch": "symbolic", "jax_version": jax.__version__,
                   "calling_convention_version": exported.calling_convention_version},
      "source": {"checkpoint": os.path.basename(os.path.dirname(meta["checkpoint_dir"]))
                 or meta["checkpoint_dir"],
                 "step": predictor.step, "item": predictor.item,
                 "selected_step": predictor.selected_step,
                 "test_subject": predictor.test_subject,
                 "mer_jax_version": mer_jax.__version__},
      "config": meta["config"],
  }
  buf = io.BytesIO()
  np.savez(buf, **{f"p{i:04d}": v for i, v in enumerate(leaves)})
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  tmp = out + ".tmp"
  with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(SPEC, json.dumps(spec, indent=1))
    z.writestr(FUNCTION, bytes(exported.serialize()))
    z.writestr(PARAMS, buf.getvalue())
    z.writestr(PARAM_PATHS, json.dumps(
        [jax.tree_util.keystr(p) for p, _ in leaves_with_paths], indent=0))
  os.replace(tmp, out)
  return spec


def load_artifact(path: str, *, batch_size: int = 8):
  """An `ExportedPredictor` for a `.mer` file (same interface as `Predictor`)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top

  spec = read_spec(path)
  with zipfile.ZipFile(path) as z:
    exported = jax_export.deserialize(bytearray(z.read(FUNCTION)))
    npz = np.load(io.BytesIO(z.read(PARAMS)))
    params = [npz[k] for k in sorted(npz.files)]
  src = spec["source"]
  return ExportedPredictor(
      exported=exported, params=params,
      config=ml_collections.ConfigDict(checkpoints.lists_to_tuples(spec["config"])),
      class_names=tuple(spec["class_names"]), checkpoint_dir=os.path.abspath(path),
      step=int(src["step"]), item=src["item"], selected_step=int(src["selected_step"]),
      test_subject=src.get("test_subject", ""), batch_size=batch_size)


@dataclasses.dataclass(kw_only=True)
class ExportedPredictor(inference.ClipClassifier):
  """A `.mer` artifact's function and params behind the `Predictor` interface."""
  exported: Any
  params: list[np.ndarray]

  def _forward(self, clips: np.ndarray) -> dict[str, np.ndarray]:
    out = self.exported.call(self.params, np.asarray(clips, np.uint8))
    return {k: np.asarray(v) for k, v in out.items()}
