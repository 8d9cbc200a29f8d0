r"""Classifies the micro-expression in a video with a trained mer-jax model.

  python scripts/predict.py --checkpoint runs/casme2/folds/casme2__sub01/checkpoints \
      --video clip.mp4 --onset 12 --offset 40
  python scripts/predict.py --checkpoint runs/casme2 --fold sub01 \
      --frames_dir EP02_01f/ --out pred.json
  python scripts/predict.py --checkpoint CKPT --video long.mp4 --window 30 --stride 10

Faces are followed over time (mer_jax.face_track): dlib HOG on every
--detect_every-th frame and on each clip's first frame, one face tracked from
detection to detection with smoothed landmarks in between. Each clip is
aligned exactly as the TFDS builders align one: a single similarity
transform from the face on its own first (onset) frame, the training
config's size; then sampled to the config's `num_frames` with its temporal
sampling. Without --onset/--offset the whole video is one clip; with
--window N every N-frame window (every --stride frames) is one clip. A clip
without a face, or whose face leaves mid-clip, is a reported row ("face":
false and why); the run fails only when no clip has a face.

Several faces: an error naming them, unless --largest_face or --face_index K
(K-th from the left) picks one; the tracker then holds that face.

Prints a table (to stderr when the JSON goes to stdout), the throughput
(frames/s of decode + detect + align + model) and the JSON: the class
probabilities of every clip. With --window and --out X.json, also
X_timeline.csv and X_timeline.png (probabilities over time, frames without a
face shaded). --checkpoint also takes an exported model (scripts/export.py).
Input, face and checkpoint problems end with "error: ..." and exit status 2,
never a traceback (--debug shows one); an unexpected error exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
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
  faces = p.add_mutually_exclusive_group()
  faces.add_argument("--largest_face", action="store_true",
                     help="with several faces, follow the largest (default: error)")
  faces.add_argument("--face_index", type=int, default=None, metavar="K",
                     help="with several faces, follow the K-th from the left (0-based)")
  p.add_argument("--detect_every", type=int, default=6,
                 help="run the face detector on every N-th frame (and on each "
                 "clip's first frame); the tracker fills in between")
  p.add_argument("--detect_max_side", type=int, default=800,
                 help="detect on a copy whose longer side is at most this "
                 "(800: the builders'; smaller is faster, landmarks are "
                 "still fitted at the builders' scale)")
  p.add_argument("--batch_size", type=int, default=8,
                 help="windows per forward pass of the model")
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
  for name in ("detect_every", "detect_max_side", "batch_size"):
    if getattr(args, name) < 1:
      p.error(f"--{name} must be >= 1")
  if args.face_index is not None and args.face_index < 0:
    p.error("--face_index must be >= 0")
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
  return np.stack(frames), fps  # one video: one frame size


def read_frames_dir(path: str, max_frames: int) -> np.ndarray:
  """RGB uint8 `[N, H, W, 3]` from the images of a folder, natural order."""
  import cv2  # pylint: disable=g-import-not-at-top
  from tfds_builders import corpus_io  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(path):
    raise InputError(f"frames folder {path} does not exist")
  names = sorted((n for n in os.listdir(path)
                  if n.lower().endswith(IMAGE_EXTS)), key=corpus_io.natural_key)
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
    row = f"{i:>5} {c['onset']:>5}-{c['offset']:<5} {t:>11}  "
    if c["face"]:
      row += f"{c['pred']:<{w}} " + " ".join(f"{c['probs'][n]:>{w}.3f}" for n in names)
    else:
      row += f"no face: {c['why']}"
    lines.append(row)
  n_face = sum(c["face"] for c in result["clips"])
  if n_face < len(result["clips"]):
    lines.append(f"{len(result['clips']) - n_face} of {len(result['clips'])} "
                 "clips have no face (see `why`)")
  print("\n".join(lines), file=stream, flush=True)


def throughput_line(timing: dict, num_frames: int) -> str:
  """"N frames: decode a s + detect b s + align c s + model d s = T s, F frames/s"."""
  parts = ("decode", "detect", "align", "model")
  total = sum(timing[k] for k in parts)
  return (f"throughput: {num_frames} frames: " +
          " + ".join(f"{k} {timing[k]:.2f} s" for k in parts) +
          f" = {total:.2f} s, {num_frames / max(total, 1e-9):.1f} frames/s "
          f"(model loading {timing['load']:.2f} s not counted)")


def timeline_paths(out: str) -> tuple[str, str]:
  root = os.path.splitext(out)[0]
  return root + "_timeline.csv", root + "_timeline.png"


# ----------------------------------------------------------------------------


def _dynamic_image_path(path: str, i: int, many: bool) -> str:
  if not many:
    return path
  root, ext = os.path.splitext(path)
  return f"{root}_w{i}{ext or '.png'}"


def run(args) -> tuple[dict, dict]:
  """Returns the JSON result and extras for the timeline (not in the JSON)."""
  from mer_jax import face_track  # pylint: disable=g-import-not-at-top
  from mer_jax import inference  # pylint: disable=g-import-not-at-top
  from mer_jax import plots  # pylint: disable=g-import-not-at-top

  timing = dict.fromkeys(("decode", "detect", "align", "model", "load"), 0.0)
  # Cheap checks first: a bad input or checkpoint path fails before any model
  # is built or any face detector loaded.
  t0 = time.perf_counter()
  if args.video:
    frames, fps = read_video(args.video, args.max_frames)
    source = args.video
  else:
    frames, fps = read_frames_dir(args.frames_dir, args.max_frames), 0.0
    source = args.frames_dir
  timing["decode"] = time.perf_counter() - t0
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
  # Faces over time: detections on a stride of frames and on every clip's
  # first frame (where the builders would detect), one face tracked.
  t0 = time.perf_counter()
  detector = face_align.HogDetector(max_side=args.detect_max_side)
  searched = face_track.detection_frames(len(frames), args.detect_every, [a for a, _ in spans])
  progress = None
  if len(searched) > 20 and sys.stderr.isatty():
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    progress = lambda it: tqdm(it, desc="faces", unit="frame", leave=False)  # pylint: disable=unnecessary-lambda-assignment
  try:
    track = face_track.track_face(
        frames, detector, detect_every=args.detect_every,
        extra_frames=[a for a, _ in spans], min_face_score=args.min_face_score,
        largest_face=args.largest_face, face_index=args.face_index,
        progress=progress)
  except face_align.FaceError as e:
    raise InputError(f"{source}: {e}") from None
  timing["detect"] = time.perf_counter() - t0

  t0 = time.perf_counter()
  rows, aligned = [], {}
  for i, (onset, offset) in enumerate(spans):
    ok, why = track.window_status(onset, offset)
    row = {"onset": onset, "offset": offset,
           "start_s": round(onset / fps, 4) if fps else None,
           "end_s": round((offset + 1) / fps, 4) if fps else None,
           "face": ok}
    if ok:
      # As the builders: one transform, from the clip's first frame.
      pts, how = track.frame_landmarks(onset)
      m = face_align.transform_from_landmarks(pts)
      aligned[i] = np.stack(face_align.apply(frames[onset:offset + 1], m, size))
      row["landmarks"] = how
      if onset in track.detections:
        row["face_box"] = [round(v, 1) for v in track.detections[onset].box]
    else:
      row.update(why=why, pred=None, pred_index=None, confidence=None, probs=None)
    rows.append(row)
  timing["align"] = time.perf_counter() - t0
  if not aligned:
    whys = "; ".join(f"clip {r['onset']}-{r['offset']}: {r['why']}" for r in rows[:3])
    more = f" (and {len(rows) - 3} more)" if len(rows) > 3 else ""
    raise InputError(
        f"no face in any clip of {source} ({len(frames)} frames, detector on "
        f"{len(track.searched)} of them, found on {len(track.detections)}): "
        f"{whys}{more}" + (
            "; --window N (or --onset/--offset) classifies the frames that have one"
            if len(spans) == 1 and track.detections else ""))

  t0 = time.perf_counter()
  predictor = inference.load_model(meta["checkpoint_dir"], step=args.step,
                                   batch_size=args.batch_size)
  timing["load"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  order = sorted(aligned)
  outs = predictor.predict_many([(aligned[i], 0, len(aligned[i]) - 1) for i in order])
  timing["model"] = time.perf_counter() - t0

  for i, o in zip(order, outs):
    c = rows[i]
    c.update(pred=o["pred_name"], pred_index=o["pred"],
             confidence=round(float(o["probs"][o["pred"]]), 6),
             probs={n: round(float(p), 6) for n, p in zip(o["class_names"], o["probs"])})
    if args.save_dynamic_image and "dynamic_image" in o:
      path = _dynamic_image_path(args.save_dynamic_image, i, len(spans) > 1)
      # float [H, W] in [0, 1] -> 8-bit grey.
      plots.save_png(np.clip(np.rint(o["dynamic_image"] * 255.0), 0, 255)
                         .astype(np.uint8), path)
      c["dynamic_image"] = os.path.abspath(path)
  if args.save_dynamic_image and "dynamic_image" not in outs[0]:
    warnings.warn(f"--save_dynamic_image: model {predictor.config.model_name!r} "
                  "returns no dynamic image; nothing written.")
  result = {
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
      "faces": {
          "detect_every": args.detect_every, "detect_max_side": args.detect_max_side,
          "detection_frames": len(track.searched),
          "detected_on": len(track.detections),
          "frames_with_face": int(track.present.sum()),
          "max_faces_on_a_frame": max(track.faces_seen.values(), default=0),
          "choice": ("largest" if args.largest_face else
                     f"index {args.face_index} from the left"
                     if args.face_index is not None else "single"),
      },
      "timing_s": {k: round(v, 3) for k, v in timing.items()},
      "clips": rows,
  }
  thumbs = [(i, aligned[i][0]) for i in order]
  return result, {"present": track.present, "thumbs": thumbs}


def write_outputs(args, result: dict, extra: dict) -> None:
  """Table + throughput, then the JSON (file or stdout) and the timeline."""
  text = json.dumps(result, indent=1)
  info = sys.stdout if args.out else sys.stderr
  print_table(result, info)
  print(throughput_line(result["timing_s"], result["num_frames"]), file=info)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      f.write(text + "\n")
    print(f"wrote {args.out}")
    if args.window is not None:
      from mer_jax import timeline  # pylint: disable=g-import-not-at-top
      csv_path, png_path = timeline_paths(args.out)
      timeline.write_csv(result, csv_path)
      thumbs = extra["thumbs"]
      keep = np.unique(np.linspace(0, len(thumbs) - 1, min(8, len(thumbs))).round().astype(int))
      timeline.plot(result, extra["present"], png_path,
                    thumbs=[thumbs[k] for k in keep],
                    title=f"{os.path.basename(result['input'])}: {result['model']}, "
                    f"{args.window}-frame windows every "
                    f"{args.stride or max(args.window // 2, 1)} frames")
      print(f"wrote {csv_path}\nwrote {png_path}")
  elif args.window is not None:
    print("note: no --out, so no timeline CSV / PNG (they go next to the JSON)",
          file=sys.stderr)
  if not args.out:
    print(text, flush=True)


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


@contextlib.contextmanager
def _plain_messages(debug: bool):
  """Warnings as one line each and no orbax / absl INFO and WARNING lines
  (noise for a one-shot prediction), unless --debug; restored afterwards, as
  main() is also called in-process (tests, notebooks)."""
  import logging  # pylint: disable=g-import-not-at-top
  absl_logger = logging.getLogger("absl")
  saved = warnings.showwarning, absl_logger.level
  if not debug:
    warnings.showwarning = _show_warning
    absl_logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    warnings.showwarning, level = saved
    absl_logger.setLevel(level)


def predict(args) -> int:
  with _plain_messages(args.debug):
    check_outputs_and_inputs(args)
    result, extra = run(args)
  try:
    write_outputs(args, result, extra)
  except OSError as e:
    raise InputError(f"cannot write {e.filename or args.out}: {e.strerror}") from None
  return 0


def main(argv=None) -> int:
  args = parse_args(argv)
  # One "error: ..." line; exit 2 for the input, face and checkpoint problems
  # above (InputError, CheckpointError and FaceError are ValueErrors).
  from mer_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.run_main(predict, args, debug=args.debug)


if __name__ == "__main__":
  sys.exit(main())
