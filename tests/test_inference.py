"""Downstream use: load_model, scripts/predict.py on a real face video, report.py."""

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

SUBJECT = "synthetic_me/sub01"


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
  """The tiny config trained on one fold (6 steps, checkpoints at 3 and 6)."""
  from configs import baseline_synthetic  # pylint: disable=g-import-not-at-top
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  config = baseline_synthetic.get_config("tiny")
  config.input.data_dir = data_dir
  config.protocol.folds = (SUBJECT,)
  workdir = str(tmp_path_factory.mktemp("infer_run"))
  loso.train_and_evaluate(config, workdir)
  return workdir


def _fold_ckpt(workdir):
  return os.path.join(workdir, "folds", "synthetic_me__sub01", "checkpoints")


def _copy_ckpt(run_dir, tmp_path):
  dst = str(tmp_path / "checkpoints")
  shutil.copytree(_fold_ckpt(run_dir), dst)
  return dst


def _test_clips(data_dir):
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_corpus(["synthetic_me/tiny"], data_dir, show_progress=False)
  out = []
  for c in corpus.clips:
    if c.subject == SUBJECT:
      rec = corpus.record(c)
      frames = np.stack([sources.decode_frame(f) for f in rec["frames"]])
      out.append((c.sample_id, frames, int(rec["onset"]), int(rec["offset"])))
  return out


# ----------------------------------------------------------------------------
# load_model.


def test_load_model_matches_trainer_predictions(run_dir, data_dir):
  import mer_jax  # pylint: disable=g-import-not-at-top
  predictor = mer_jax.load_model(run_dir)  # a workdir with a single fold
  assert predictor.step == 6 and predictor.item == "state"
  assert predictor.test_subject == SUBJECT
  with open(os.path.join(run_dir, "predictions.csv")) as f:
    rows = {r["sample_id"]: r for r in csv.DictReader(f)}
  clips = _test_clips(data_dir)
  assert len(clips) == len(rows) == 5
  results = predictor.predict_many([(fr, on, off) for _, fr, on, off in clips])
  for (sid, fr, on, off), res in zip(clips, results):
    want = np.array([float(rows[sid]["p_" + n]) for n in predictor.class_names])
    np.testing.assert_allclose(res["probs"], want, atol=2e-5)
    assert res["pred_name"] == rows[sid]["pred_name"]
  # One clip alone (batch of 1) gives the same numbers as in a batch.
  sid, fr, on, off = clips[0]
  single = predictor(fr, onset=on, offset=off)
  np.testing.assert_allclose(single["probs"], results[0]["probs"], atol=1e-6)
  assert single["class_names"] == list(predictor.class_names)
  assert "dynamic_image" not in single  # baseline3d has none
  with pytest.raises(ValueError, match="onset"):
    predictor(fr, onset=5, offset=2)


def test_fold_choice_in_a_run_with_several_folds(run_dir, tmp_path):
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from mer_jax import inference  # pylint: disable=g-import-not-at-top
  for name in ("synthetic_me__sub01", "synthetic_me__sub02"):
    shutil.copytree(os.path.join(run_dir, "folds", "synthetic_me__sub01"),
                    tmp_path / "folds" / name)
  with pytest.raises(checkpoints.CheckpointError,
                     match="2 folds.*synthetic_me__sub01, synthetic_me__sub02"):
    inference.find_checkpoint_dir(str(tmp_path))
  for fold in ("sub02", "synthetic_me/sub02", "synthetic_me__sub02"):
    assert inference.find_checkpoint_dir(str(tmp_path), fold).endswith(
        os.path.join("synthetic_me__sub02", "checkpoints"))
  with pytest.raises(checkpoints.CheckpointError, match="No fold 'sub09'"):
    inference.find_checkpoint_dir(str(tmp_path), "sub09")
  with pytest.raises(checkpoints.CheckpointError, match="neither a run workdir"):
    inference.find_checkpoint_dir(str(tmp_path / "folds"))


def test_inner_val_selection_loads_the_best_item(run_dir, data_dir, tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from mer_jax import inference  # pylint: disable=g-import-not-at-top
  ckpt = _copy_ckpt(run_dir, tmp_path)
  meta_path = os.path.join(ckpt, checkpoints.META_FILE)
  with open(meta_path) as f:
    meta = json.load(f)
  meta["selection"] = "inner_val"
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  # A `best` item as the trainer writes it, with a head that always says class 2.
  params = inference.load_model(_fold_ckpt(run_dir)).variables["params"]
  params = {k: dict(v) for k, v in params.items()}
  params["head"]["bias"] = np.where(np.arange(5) == 2, 50.0, 0.0).astype(np.float32)
  with ocp.StandardCheckpointer() as ck:
    for step in (3, 6):
      ck.save(os.path.join(ckpt, str(step), "best"),
              {"params": params, "batch_stats": {}, "score": np.float32(0.5),
               "step": np.int32(3)})
    ck.wait_until_finished()
  predictor = inference.load_model(ckpt)
  assert (predictor.item, predictor.step, predictor.selected_step) == ("best", 6, 3)
  _, fr, on, off = _test_clips(data_dir)[0]
  assert predictor(fr, on, off)["pred"] == 2


def test_corrupt_latest_checkpoint_falls_back_with_a_warning(run_dir, tmp_path):
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from mer_jax import inference  # pylint: disable=g-import-not-at-top
  ckpt = _copy_ckpt(run_dir, tmp_path)
  for f in glob.glob(os.path.join(ckpt, "6", "state", "**", "d", "*"), recursive=True):
    open(f, "wb").close()  # truncated, as by a full disk
  with pytest.warns(checkpoints.CheckpointFallbackWarning,
                    match=r"step 6 .* failed to restore .*trying step 3"):
    predictor = inference.load_model(ckpt)
  assert predictor.step == 3
  for f in glob.glob(os.path.join(ckpt, "3", "state", "**", "manifest.ocdbt"),
                     recursive=True):
    open(f, "wb").close()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", checkpoints.CheckpointFallbackWarning)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"No checkpoint step .*\n  step 6: .*\n  step 3: "):
      inference.load_model(ckpt)


def test_restore_latest_valid_quarantines_for_the_trainer(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  d = str(tmp_path / "ckpt")
  mngr = ocp.CheckpointManager(d, options=ocp.CheckpointManagerOptions(create=True))
  restore = lambda s: mngr.restore(s, args=ocp.args.Composite(
      state=ocp.args.StandardRestore({"w": np.zeros(3, np.float32)})))
  assert checkpoints.restore_latest_valid(mngr, restore) == (None, None)
  for step in (1, 2):
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(
        {"w": np.full(3, step, np.float32)})))
  mngr.wait_until_finished()
  for f in glob.glob(os.path.join(d, "2", "state", "**", "d", "*"), recursive=True):
    open(f, "wb").close()
  with pytest.warns(checkpoints.CheckpointFallbackWarning, match="step 2"):
    step, restored = checkpoints.restore_latest_valid(mngr, restore, quarantine=True)
  assert step == 1 and float(restored["state"]["w"][0]) == 1.0
  assert mngr.all_steps() == [1]
  assert [n.split("-")[0] for n in os.listdir(tmp_path / "corrupt_checkpoints")] == ["2"]
  # The re-trained step can be saved again (orbax skips steps <= the latest).
  mngr.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(
      {"w": np.full(3, 2.0, np.float32)})))
  mngr.wait_until_finished()
  assert checkpoints.restore_latest_valid(mngr, restore)[0] == 2
  mngr.close()


# ----------------------------------------------------------------------------
# scripts/predict.py on real face video.


def _write_video(path, frames_rgb, fps=30.0):
  import cv2  # pylint: disable=g-import-not-at-top
  h, w = frames_rgb.shape[1:3]
  for fourcc, ext in (("mp4v", ".mp4"), ("MJPG", ".avi")):
    p = os.path.splitext(path)[0] + ext
    writer = cv2.VideoWriter(p, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if writer.isOpened():
      for f in frames_rgb:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
      writer.release()
      return p
  raise RuntimeError("OpenCV can write neither mp4v nor MJPG video here")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  """A real face (package-shipped crop, rendered with an AU motion) on a
  background with margin, so dlib finds it; a blank video; two faces."""
  import cv2  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  from tfds_builders.synthetic_me import synth  # pylint: disable=g-import-not-at-top
  if not face_align.models_available():
    pytest.skip("dlib / face_recognition_models not installed")
  d = tmp_path_factory.mktemp("videos")
  plan = synth.plan_subject(0, 1, 1)[0]
  face = np.stack([cv2.resize(f, (160, 160)) for f in synth.render_clip(0, plan, 112)])
  t = len(face)
  one = np.full((t, 240, 320, 3), 90, np.uint8)
  one[:, 40:200, 80:240] = face
  two = np.full((t, 240, 480, 3), 90, np.uint8)
  two[:, 40:200, 20:180] = face
  two[:, 50:170, 320:440] = np.stack([cv2.resize(f, (120, 120)) for f in face])
  junk = d / "junk.mp4"
  junk.write_bytes(b"this is not a video\n" * 50)
  return {"face": _write_video(str(d / "face.mp4"), one),
          "blank": _write_video(str(d / "blank.mp4"), np.full_like(one, 90)),
          "two": _write_video(str(d / "two.mp4"), two),
          "junk": str(junk), "plan": plan}


def test_face_transform_is_the_builders(videos):
  import cv2  # pylint: disable=g-import-not-at-top
  from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
  cap = cv2.VideoCapture(videos["face"])
  _, frame = cap.read()
  rgb = np.ascontiguousarray(frame[..., ::-1])
  want = face_align.FaceAligner().transform(rgb)
  np.testing.assert_array_equal(face_align.face_transform(rgb), want)
  aligned = face_align.align_clip(rgb[None], 32)
  np.testing.assert_array_equal(aligned[0], face_align.apply([rgb], want, 32)[0])


def test_predict_script_on_a_face_video(run_dir, videos, tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  out = tmp_path / "pred.json"
  plan = videos["plan"]
  env = dict(os.environ,
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "predict.py"),
       "--checkpoint", _fold_ckpt(run_dir), "--video", videos["face"],
       "--onset", str(plan.onset), "--offset", str(plan.offset),
       "--out", str(out), "--save_dynamic_image", str(tmp_path / "di.png")],
      env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  result = json.loads(out.read_text())
  assert result["model"] == "baseline3d" and result["step"] == 6
  assert result["num_frames"] == plan.num_frames
  (clip,) = result["clips"]
  assert (clip["onset"], clip["offset"]) == (plan.onset, plan.offset)
  assert set(clip["probs"]) == set(result["class_names"])
  assert abs(sum(clip["probs"].values()) - 1) < 1e-4
  assert clip["pred"] == max(clip["probs"], key=clip["probs"].get)
  assert "brow_raise" in proc.stdout  # the terminal table
  # baseline3d reconstructs no dynamic image: a warning, no file.
  assert "returns no dynamic image" in proc.stderr
  assert not (tmp_path / "di.png").exists()


def _predict(capsys, *argv):
  import predict  # pylint: disable=g-import-not-at-top
  rc = predict.main(list(argv))
  out, err = capsys.readouterr()
  assert "Traceback" not in out + err
  return rc, out, err


def test_predict_sliding_windows(run_dir, videos, capsys):
  rc, out, err = _predict(capsys, "--checkpoint", run_dir, "--video",
                          videos["face"], "--window", "16", "--stride", "8")
  assert rc == 0, err
  result = json.loads(out)
  spans = [(c["onset"], c["offset"]) for c in result["clips"]]
  assert spans == [(0, 15), (8, 23), (16, 31)]
  assert "16-31" in err  # the table goes to stderr when JSON is on stdout


def test_predict_frames_dir_in_natural_order(run_dir, videos, tmp_path, capsys):
  import cv2  # pylint: disable=g-import-not-at-top
  cap = cv2.VideoCapture(videos["face"])
  n = 0
  while True:
    ok, f = cap.read()
    if not ok:
      break
    n += 1
    cv2.imwrite(str(tmp_path / f"img{n}.png"), f)  # img2 sorts before img10
  (tmp_path / "notes.txt").write_text("not a frame")
  plan = videos["plan"]
  rc, out, err = _predict(capsys, "--checkpoint", run_dir, "--frames_dir",
                          str(tmp_path), "--onset", str(plan.onset),
                          "--offset", str(plan.offset))
  assert rc == 0, err
  result = json.loads(out)
  assert result["num_frames"] == n == plan.num_frames
  assert result["fps"] == 0.0 and result["clips"][0]["start_s"] is None
  # The same decoded frames as the video, so the same numbers (a lexical
  # order, img1, img10, img11, ..., would scramble the clip).
  rc, out, err = _predict(capsys, "--checkpoint", run_dir, "--video",
                          videos["face"], "--onset", str(plan.onset),
                          "--offset", str(plan.offset))
  assert rc == 0, err
  assert json.loads(out)["clips"][0]["probs"] == result["clips"][0]["probs"]


@pytest.mark.parametrize("case,extra,message", [
    ("blank", (), "no face in any clip of .*blank.*: clip 0-31: no face on frame 0"),
    ("junk", (), "cannot open video"),
    ("missing", (), "does not exist"),
    ("two", (), "2 faces found .*--largest_face"),
    ("face", ("--onset", "5", "--offset", "5"), "too few frames"),
    ("face", ("--window", "99"), "fewer than --window 99"),
])
def test_predict_errors_are_clear(run_dir, videos, capsys, case, extra, message):
  video = videos.get(case, "/nonexistent/clip.mp4")
  rc, out, err = _predict(capsys, "--checkpoint", run_dir, "--video", video, *extra)
  assert rc == 2
  assert err.startswith("error: ")
  assert re.search(message, err), err
  assert not out


def test_predict_and_export_exit_codes(tmp_path, capsys, monkeypatch):
  """As documented: a problem the user can fix exits 2 with one `error:`
  line; an unexpected error exits 1, with the hint to rerun with --debug."""
  import export  # pylint: disable=g-import-not-at-top
  import predict  # pylint: disable=g-import-not-at-top
  missing = str(tmp_path / "no_run")
  rc = export.main(["--checkpoint", missing, "--out", str(tmp_path / "m.mer")])
  out, err = capsys.readouterr()
  assert rc == 2 and err.startswith(f"error: {missing} is not a directory")
  assert "Traceback" not in out + err

  def bug(args):
    raise RuntimeError("a bug")

  monkeypatch.setattr(predict, "run", bug)
  rc, out, err = _predict(capsys, "--checkpoint", missing, "--video", "clip.mp4")
  assert rc == 1 and err.startswith("error: RuntimeError: a bug") and "--debug" in err


def test_predict_falls_back_past_a_corrupt_checkpoint(run_dir, videos, tmp_path,
                                                      capsys):
  ckpt = _copy_ckpt(run_dir, tmp_path)
  for f in glob.glob(os.path.join(ckpt, "6", "state", "**", "d", "*"), recursive=True):
    open(f, "wb").close()
  rc, out, err = _predict(capsys, "--checkpoint", ckpt, "--video", videos["face"])
  assert rc == 0, err
  assert json.loads(out)["step"] == 3
  assert re.search(r"warning: Checkpoint step 6 .* failed to restore .*; trying "
                   r"step 3", err), err


def test_predict_largest_face_flag(run_dir, videos, capsys):
  rc, out, err = _predict(capsys, "--checkpoint", run_dir, "--video",
                          videos["two"], "--largest_face")
  assert rc == 0, err
  assert len(json.loads(out)["clips"]) == 1


def test_predict_saves_the_dynamic_image_of_fdp(videos, tmp_path, capsys):
  """An FDP-like model (aux["dynamic_image"]): the PNG is written."""
  if not os.path.exists(os.path.join(ROOT, "configs", "fdp_synthetic.py")):
    pytest.skip("configs/fdp_synthetic.py not present")
  import model_fixtures  # pylint: disable=g-import-not-at-top
  ckpt = tmp_path / "checkpoints"
  # Untrained weights are enough to exercise the path.
  i = model_fixtures.zero_fdp_checkpoint(ckpt).input
  png = tmp_path / "di.png"
  rc, out, err = _predict(capsys, "--checkpoint", str(ckpt), "--video",
                          videos["face"], "--save_dynamic_image", str(png))
  assert rc == 0, err
  assert json.loads(out)["clips"][0]["dynamic_image"] == str(png)
  import cv2  # pylint: disable=g-import-not-at-top
  img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
  assert img.shape == (i.size, i.size) and img.dtype == np.uint8


# ----------------------------------------------------------------------------
# scripts/report.py.


def test_report(run_dir, tmp_path, capsys):
  import report  # pylint: disable=g-import-not-at-top
  paper = tmp_path / "paper.json"
  paper.write_text(json.dumps({"results": [
      {"paper": "Test et al.", "source": "test", "models": ["baseline3d"],
       "dataset": "synthetic_me", "protocol": "loso", "selection": "oracle",
       "uf1": 0.9, "uar": None, "accuracy": 0.95}]}))
  rc = report.main([run_dir, "--out", str(tmp_path / "rep"),
                    "--paper_table", str(paper)])
  out, err = capsys.readouterr()
  assert rc == 0, err
  with open(os.path.join(run_dir, "results.json")) as f:
    results = json.load(f)
  assert "synthetic_me/tiny" in out and "baseline3d" in out
  assert f"{results['uf1']:.3f}" in out
  assert "0.900/—/0.950 [oracle] Test et al." in out
  assert "synthetic_me/sub01" in out  # the per-fold table
  assert (tmp_path / "rep" / "report.md").read_text().startswith("# mer-jax results")
  pngs = list((tmp_path / "rep").glob("confusion_*.png"))
  assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
  # The committed paper table parses and is empty unless entries cite a source.
  with open(os.path.join(ROOT, "mer_jax", "paper_results.json")) as f:
    committed = json.load(f)
  assert all(e.get("source") for e in committed["results"])
  assert report.main([str(tmp_path / "empty_dir_missing")]) == 2
