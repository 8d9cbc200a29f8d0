r"""Classifies the micro-expression in a video with a trained mer-jax model.

  python scripts/predict.py --checkpoint runs/casme2/folds/casme2__sub01/checkpoints \
      --video clip.mp4 --onset 12 --offset 40
  python scripts/predict.py --checkpoint runs/casme2 --fold sub01 \
      --frames_dir EP02_01f/ --out pred.json
  python scripts/predict.py --checkpoint CKPT --video long.mp4 --window 30 --stride 10

The face is detected and aligned exactly as the TFDS builders do it (dlib
HOG on the clip's onset frame, one similarity transform for the whole clip,
the training config's size), then the clip is sampled to the config's
`num_frames` with its temporal sampling. Without --onset/--offset the whole
video is one clip; with --window N every N-frame window (every --stride
frames) is one clip, aligned on its own first frame.

Prints a table (to stderr when the JSON goes to stdout) and the JSON: the
class probabilities of every clip. Input, face and checkpoint problems end
with "error: ..." and exit status 2, never a traceback (--debug shows one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings

# Runnable from a clone without installing the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # pylint: disable=g-import-not-at-top

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class InputError(ValueError):
  """Unreadable or unsuitable input; the message says what to do."""


def parse_args(argv):
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="\n\n".join(__doc__.split("\n\n")[1:]))
  p.add_argument("--checkpoint", required=True,
                 help="a fold's checkpoints/ dir, a fold dir, or a run workdir")
  p.add_argument("--fold", default=None,
                 help="which fold of a run workdir (test subject, e.g. sub01)")
  p.add_argument("--step", type=int, default=None,
                 help="checkpoint step (default: newest that restores)")
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--video", help="a video file (anything OpenCV reads)")
  src.add_argument("--frames_dir", help="a folder of frame images, in natural "
                   "name order (img2 before img10)")
  p.add_argument("--onset", type=int, default=None, help="onset frame index")
  p.add_argument("--offset", type=int, default=None,
                 help="offset frame index (inclusive)")
  p.add_argument("--window", type=int, default=None,
                 help="sliding windows of this many frames (onset unknown)")
  p.add_argument("--stride", type=int, default=None,
                 help="frames between window starts (default: window // 2)")
  p.add_argument("--largest_face", action="store_true",
                 help="with several faces, use the largest (default: error)")
  p.add_argument("--min_face_score", type=float, default=0.5,
                 help="HOG score from which a second detection counts as "
                 "another face (weaker ones are false positives)")
  p.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
  p.add_argument("--save_dynamic_image", default=None, metavar="PNG",
                 help="write the model's dynamic image (FDP-like models); "
                 "with windows, one file per window (<name>_w<i>.png)")
  p.add_argument("--max_frames", type=int, default=5000,
                 help="refuse longer inputs (they are held in memory)")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  args = p.parse_args(argv)
  if args.window is not None and (args.onset is not None or args.offset is not None):
    p.error("--window is for an unknown onset; do not combine it with --onset/--offset")
  if args.stride is not None and args.window is None:
    p.error("--stride needs --window")
  if args.window is not None and args.window < 1:
    p.error("--window must be >= 1")
  if args.stride is not None and args.stride < 1:
    p.error("--stride must be >= 1")
  return args


# ----------------------------------------------------------------------------
# Input.


def read_video(path: str, max_frames: int) -> tuple[np.ndarray, float]:
  """RGB uint8 `[N, H, W, 3]` and the frame rate (0 when unknown)."""
  import cv2  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise InputError(f"video {path} does not exist")
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    raise InputError(f"cannot open video {path}: not a video file, or a "
                     "codec OpenCV cannot decode (convert it, e.g. "
                     "`ffmpeg -i in -c:v mjpeg out.avi`, or pass --frames_dir)")
  fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
  frames = []
  while True:
    ok, f = cap.read()
    if not ok:
      break
    if len(frames) >= max_frames:
      cap.release()
      raise InputError(f"{path} has more than {max_frames} frames; cut it or "
                       "raise --max_frames")
    frames.append(f[..., ::-1])
  cap.release()
  if not frames:
    raise InputError(f"cannot read any frame from video {path} (empty, "
                     "truncated or an undecodable codec)")
  return _stack(frames, path), fps


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_frames_dir(path: str, max_frames: int) -> np.ndarray:
  """RGB uint8 `[N, H, W, 3]` from the images of a folder, natural order."""
  import cv2  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(path):
    raise InputError(f"frames folder {path} does not exist")
  names = sorted((n for n in os.listdir(path)
                  if n.lower().endswith(IMAGE_EXTS)), key=_natural_key)
  if not names:
    raise InputError(f"{path} holds no images ({', '.join(IMAGE_EXTS)})")
  if len(names) > max_frames:
    raise InputError(f"{path} has {len(names)} frames (> --max_frames {max_frames})")
  frames = []
  for n in names:
    f = cv2.imread(os.path.join(path, n), cv2.IMREAD_COLOR)
    if f is None:
      raise InputError(f"cannot read image {os.path.join(path, n)}")
    frames.append(f[..., ::-1])
  return _stack(frames, path)


def _stack(frames, path) -> np.ndarray:
  shapes = {f.shape for f in frames}
  if len(shapes) > 1:
    raise InputError(f"frames of {path} differ in size: {sorted(shapes)[:3]}")
  return np.stack(frames)


def clip_spans(n: int, args) -> list[tuple[int, int]]:
  """`[(onset, offset)]` inclusive frame ranges to classify."""
  if args.window is not None:
    stride = args.stride or max(args.window // 2, 1)
    if n < args.window:
      raise InputError(f"the input has {n} frames, fewer than --window {args.window}")
    return [(s, s + args.window - 1) for s in range(0, n - args.window + 1, stride)]
  onset = 0 if args.onset is None else args.onset
  offset = n - 1 if args.offset is None else args.offset
  if not 0 <= onset < n or not 0 <= offset < n:
    raise InputError(f"--onset {onset} / --offset {offset} outside the "
                     f"input's {n} frames (0..{n - 1})")
  if offset < onset:
    raise InputError(f"--offset {offset} is before --onset {onset}")
  return [(onset, offset)]


# ----------------------------------------------------------------------------
# Output.


def print_table(result: dict, stream) -> None:
  names = result["class_names"]
  w = max(8, *(len(n) for n in names))
  head = f"{'clip':>5} {'frames':>11} {'time (s)':>11}  {'prediction':<{w}} " + \
      " ".join(f"{n[:w]:>{w}}" for n in names)
  lines = [f"{result['model']} ({result['checkpoint']}, step {result['step']})",
           head]
  for i, c in enumerate(result["clips"]):
    t = (f"{c['start_s']:.2f}-{c['end_s']:.2f}" if c.get("start_s") is not None
         else "")
    lines.append(f"{i:>5} {c['onset']:>5}-{c['offset']:<5} {t:>11}  "
                 f"{c['pred']:<{w}} " +
                 " ".join(f"{c['probs'][n]:>{w}.3f}" for n in names))
  print("\n".join(lines), file=stream, flush=True)


def save_png(image01: np.ndarray, path: str) -> None:
  """Writes a float `[H, W]` image in [0, 1] as an 8-bit grey PNG."""
  import cv2  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img = np.clip(np.rint(np.asarray(image01) * 255.0), 0, 255).astype(np.uint8)
  if not cv2.imwrite(path, img):
    raise InputError(f"cannot write {path} (is the extension .png?)")


# ----------------------------------------------------------------------------


def run(args) -> dict:
  from mer_jax import inference  # pylint: disable=g-import-not-at-top

  # Cheap checks first: a bad input or checkpoint path fails before any model
  # is built or any face detector loaded.
  if args.video:
    frames, fps = read_video(args.video, args.max_frames)
    source = args.video
  else:
    frames, fps = read_frames_dir(args.frames_dir, args.max_frames), 0.0
    source = args.frames_dir
  spans = clip_spans(len(frames), args)
  meta = inference.read_meta(args.checkpoint, args.fold)
  cfg_in = meta["config"]["input"]
  size = int(cfg_in["size"])
  need = int(cfg_in["num_frames"]) if cfg_in["temporal_sampling"] == "stride" else 2
  short = [(a, b) for a, b in spans if b - a + 1 < need]
  if short:
    a, b = short[0]
    raise InputError(
        f"too few frames: clip {a}-{b} has {b - a + 1}, the model needs at "
        f"least {need} ({cfg_in['temporal_sampling']} sampling of "
        f"{cfg_in['num_frames']} frames)")

  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  if not face_align.models_available():
    raise InputError("face alignment needs dlib and face_recognition_models: "
                     "pip install 'mer-jax[faces]'")
  aligned = []
  for onset, offset in spans:
    # As the builders: detect on the clip's onset frame, one transform for all.
    try:
      aligned.append(inference.align_clip(
          frames[onset:offset + 1], size, detect_frame=0,
          largest_face=args.largest_face, min_face_score=args.min_face_score))
    except inference.FaceError as e:
      raise InputError(f"frame {onset} of {source}: {e}") from None

  predictor = inference.load_model(meta["checkpoint_dir"], step=args.step)
  outs = predictor.predict_many([(a, 0, len(a) - 1) for a in aligned])

  clips = []
  for i, ((onset, offset), o) in enumerate(zip(spans, outs)):
    c = {"onset": onset, "offset": offset,
         "start_s": round(onset / fps, 4) if fps else None,
         "end_s": round((offset + 1) / fps, 4) if fps else None,
         "pred": o["pred_name"], "pred_index": o["pred"],
         "confidence": round(float(o["probs"][o["pred"]]), 6),
         "probs": {n: round(float(p), 6) for n, p in zip(o["class_names"], o["probs"])}}
    if args.save_dynamic_image and "dynamic_image" in o:
      path = args.save_dynamic_image
      if len(spans) > 1:
        root, ext = os.path.splitext(path)
        path = f"{root}_w{i}{ext or '.png'}"
      save_png(o["dynamic_image"], path)
      c["dynamic_image"] = os.path.abspath(path)
    clips.append(c)
  if args.save_dynamic_image and "dynamic_image" not in outs[0]:
    warnings.warn(f"--save_dynamic_image: model {predictor.config.model_name!r} "
                  "returns no dynamic image; nothing written.")
  return {
      "input": os.path.abspath(source), "num_frames": len(frames), "fps": fps,
      "checkpoint": predictor.checkpoint_dir, "step": predictor.step,
      "weights": predictor.item, "selected_step": predictor.selected_step,
      "model": predictor.config.model_name,
      "dataset": ",".join(predictor.config.input.datasets),
      "test_subject": predictor.test_subject,
      "class_names": list(predictor.class_names),
      "alignment": face_align.ALIGN_VERSION,
      "input_size": size, "sampled_frames": predictor.num_frames,
      "temporal_sampling": predictor.config.input.temporal_sampling,
      "clips": clips,
  }


def check_outputs_and_inputs(args) -> None:
  """Checks made before any model is loaded or any frame read."""
  if args.video and args.video.lower().endswith(IMAGE_EXTS):
    raise InputError(f"--video {args.video} is an image; for a clip stored as "
                     "image files, put them in one folder and pass it with "
                     "--frames_dir")
  for flag, path in (("--out", args.out), ("--save_dynamic_image",
                                           args.save_dynamic_image)):
    if not path:
      continue
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
      raise InputError(f"{flag} {path} is a folder; give a file name")
    if not os.path.isdir(folder):
      raise InputError(f"{flag} {path}: the folder {folder} does not exist; "
                       "create it or choose another path")
    if not os.access(folder, os.W_OK):
      raise InputError(f"{flag} {path}: the folder {folder} is not writable")


def _show_warning(message, category, filename, lineno, file=None, line=None):
  del category, filename, lineno, line
  print(f"warning: {message}", file=file or sys.stderr, flush=True)


def main(argv=None) -> int:
  args = parse_args(argv)
  import logging  # pylint: disable=g-import-not-at-top
  absl_logger = logging.getLogger("absl")
  saved = warnings.showwarning, absl_logger.level
  if not args.debug:
    warnings.showwarning = _show_warning
    # orbax / absl INFO and WARNING lines are noise for a one-shot prediction.
    absl_logger.setLevel(logging.ERROR)
  try:
    check_outputs_and_inputs(args)
    result = run(args)
  except Exception as e:  # pylint: disable=broad-except
    if args.debug:
      raise
    # CheckpointError and FaceError (mer_jax.inference) are ValueErrors.
    if isinstance(e, (ValueError, OSError)):
      print(f"error: {e}", file=sys.stderr)
    else:
      print(f"error: {type(e).__name__}: {e}\n(run with --debug for the "
            "traceback)", file=sys.stderr)
    return 2
  finally:
    # main() is also called in-process (tests, notebooks): leave no trace.
    warnings.showwarning, level = saved
    absl_logger.setLevel(level)
  text = json.dumps(result, indent=1)
  if args.out:
    try:
      with open(args.out, "w") as f:
        f.write(text + "\n")
    except OSError as e:
      print(f"error: cannot write --out {args.out}: {e.strerror}", file=sys.stderr)
      return 2
    print_table(result, sys.stdout)
    print(f"wrote {args.out}")
  else:
    print_table(result, sys.stderr)
    print(text, flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
