"""Workdirs and builds you can trust: run identity, locks, verified builds,
range-checked configs, one-line errors (issue: reruns, locks and rebuilds)."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLD = "synthetic_me/sub01"
FOLD_DIR = "synthetic_me__sub01"


def _config(name, data_dir, **overrides):
  sys.path.insert(0, ROOT)
  module = importlib.import_module(f"configs.{name}")
  c = module.get_config("tiny")
  c.input.data_dir = data_dir
  # The shapes and schedule of tests/test_distributed.py's run: the
  # persistent compile cache serves both.
  c.update_from_flattened_dict({"num_steps": 8, "checkpoint_every": 4,
                                "progress": False, "protocol.folds": (FOLD,),
                                "mesh.data": 1, **overrides})
  return c


def _script(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "scripts", f"{name}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _env(data_dir):
  import jax  # pylint: disable=g-import-not-at-top
  return dict(os.environ, TFDS_DATA_DIR=data_dir, JAX_PLATFORMS="cpu",
              XLA_FLAGS="--xla_force_host_platform_device_count=1",
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")


def _main(workdir, data_dir, *extra, config="baseline_synthetic"):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "main.py"),
       f"--config={os.path.join(ROOT, 'configs', config)}.py:tiny",
       f"--workdir={workdir}", *extra],
      env=_env(data_dir), cwd=ROOT, capture_output=True, text=True, timeout=600)


def _snapshot(workdir):
  """Every file under `workdir` (but the lock) -> its bytes."""
  out = {}
  for root, _, names in os.walk(workdir):
    for n in names:
      p = os.path.join(root, n)
      if n != ".lock":
        with open(p, "rb") as f:
          out[os.path.relpath(p, workdir)] = f.read()
  return out


# ----------------------------------------------------------------------------
# 5. Config values that cannot work.

BAD_VALUES = [
    ("num_steps", 0), ("num_steps", -5), ("keep_checkpoints", 0),
    ("checkpoint_every", 0), ("log_every", 0), ("input.size", 0),
    ("input.batch_size", 0), ("input.eval_batch_size", -1),
    ("input.num_frames", 0), ("input.channels", 2), ("input.std", 0.0),
    ("protocol.eval_every", 0), ("protocol.val_subjects", 0),
    ("protocol.parallel_folds", 0), ("schedule.lr", -1e-3),
    ("schedule.warmup_steps", -1), ("schedule.name", "cosine"),
    ("input.temporal_sampling", "random"), ("input.augment.max_shift", 0.7),
    ("input.augment.scale", (1.1, 0.9)), ("mesh.fsdp", 0), ("mesh.data", 0),
    ("model.dropout", 1.5), ("optimizer.grad_clip_norm", -1.0),
]


def test_each_bad_config_value_is_refused_before_any_work(tmp_path):
  from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  for key, value in BAD_VALUES:
    c = _config("baseline_synthetic", str(tmp_path / "no_data"))
    c.update_from_flattened_dict({key: value})
    with pytest.raises(ValueError, match=rf"config\.{key}=.*allowed") as e:
      config_lib.validate(c)
    assert key in str(e.value), (key, value)
    workdir = tmp_path / "w"
    with pytest.raises(ValueError, match=rf"config\.{key}="):
      loso.train_and_evaluate(c, str(workdir))
    # Refused before any work: no workdir, no dataset build.
    assert not workdir.exists() and not (tmp_path / "no_data").exists(), key


# ----------------------------------------------------------------------------
# 1, 2. Reruns with another setup; a failed rerun leaves the old run usable.


@pytest.fixture(scope="module")
def one_fold_run(data_dir, tmp_path_factory):
  """baseline3d, 8 steps, one fold; finished."""
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp("identity") / "run")
  loso.train_and_evaluate(_config("baseline_synthetic", data_dir), workdir)
  return workdir


def test_rerun_with_other_model_seed_or_steps_is_refused(one_fold_run, data_dir):
  from mer_jax import inference, run_identity  # pylint: disable=g-import-not-at-top
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  workdir = one_fold_run
  before = _snapshot(workdir)
  assert {"run.json", "results.json", "config.json",
          f"folds/{FOLD_DIR}/run.json"} <= set(before)
  reruns = [(_config("fdp_synthetic", data_dir), "model_name: 'baseline3d' -> 'fdp'"),
            (_config("baseline_synthetic", data_dir, seed=1), "seed: 0 -> 1"),
            (_config("baseline_synthetic", data_dir, num_steps=6),
             "num_steps: 8 -> 6")]
  for config, diff in reruns:
    with pytest.raises(run_identity.RunMismatchError) as e:
      loso.train_and_evaluate(config, workdir)
    msg = str(e.value)
    assert diff in msg and "--overwrite" in msg and "new --workdir" in msg, msg
    assert _snapshot(workdir) == before  # the old run is intact, byte for byte
  # A killed fold resumed with fewer steps: its own run.json refuses it too.
  fold_run = os.path.join(workdir, "folds", FOLD_DIR, "run.json")
  hidden = [os.path.join(workdir, n) for n in ("run.json", "config.json")]
  for p in hidden:
    os.rename(p, p + ".bak")
  try:
    with pytest.raises(run_identity.RunMismatchError, match=fold_run):
      loso.train_and_evaluate(reruns[2][0], workdir)
  finally:
    for p in hidden:
      os.rename(p + ".bak", p)
  # The refused reruns left the checkpoints loadable as predict.py loads them.
  predictor = inference.load_model(workdir, fold="sub01")
  assert predictor.config.model_name == "baseline3d" and predictor.step == 8
  # Logging cadence, output and device options do not change the identity.
  same = _config("baseline_synthetic", data_dir, log_every=2, checkpoint_every=2,
                 preview_samples=0, **{"mesh.data": 8})
  assert loso.train_and_evaluate(same, workdir)["num_steps"] == 8


def test_overwrite_moves_the_old_run_aside(one_fold_run, tmp_path):
  from mer_jax import run_identity  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "run")
  shutil.copytree(one_fold_run, workdir)
  before = _snapshot(workdir)
  moved = run_identity.move_aside(workdir)
  assert moved.startswith(workdir + ".replaced-")
  assert _snapshot(moved) == before  # nothing deleted
  assert os.listdir(workdir) in ([], [".lock"])


def test_damaged_result_json_is_named(one_fold_run, data_dir, tmp_path):
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "run")
  shutil.copytree(one_fold_run, workdir)
  path = os.path.join(workdir, "folds", FOLD_DIR, "result.json")
  with open(path, "r+") as f:
    f.truncate(96)
  with pytest.raises(checkpoints.JsonFileError, match=path):
    loso.train_and_evaluate(_config("baseline_synthetic", data_dir), workdir)


# ----------------------------------------------------------------------------
# 3. One writer per workdir; 6. one-line errors from scripts/main.py.


def test_locked_workdir_file_workdir_and_nan_stop(data_dir, tmp_path):
  from mer_jax import run_identity  # pylint: disable=g-import-not-at-top
  locked = str(tmp_path / "locked")
  assert run_identity.lock_workdir(locked)
  try:
    t0 = time.time()
    p = _main(locked, data_dir)
    elapsed = time.time() - t0
  finally:
    run_identity.unlock_workdir(locked)
  assert p.returncode == 2, p.stderr[-2000:]
  assert f"in use by process {os.getpid()} on host" in p.stderr
  assert "Traceback" not in p.stderr
  # Python start-up and config parsing only: JAX is not even imported.
  assert elapsed < 2.5, elapsed
  print(f"locked workdir refused in {elapsed:.2f} s")

  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  p = _main(str(a_file), data_dir)
  assert p.returncode == 2 and "is a file, not a folder" in p.stderr, p.stderr
  assert "Traceback" not in p.stderr

  # A NaN stop while async checkpoint saves are in flight: one error line.
  p = _main(str(tmp_path / "nan"), data_dir, "--config.num_steps=4",
            "--config.schedule.lr=1e9", "--config.schedule.name=constant",
            "--config.log_every=4", "--config.checkpoint_every=1",
            f"--config.protocol.folds=('{FOLD}',)", "--config.progress=False")
  assert p.returncode == 2, p.stderr[-3000:]
  assert "error: Non-finite loss" in p.stderr
  assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr[-3000:]


# ----------------------------------------------------------------------------
# 4. Builds that know what they are.


def test_truncated_shard_is_named_at_training_and_by_verify(data_dir, tmp_path,
                                                            capsys):
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  sources.prepare("synthetic_me/tiny", data_dir, auto_build=True)
  copy = str(tmp_path / "tfds")
  shutil.copytree(os.path.join(data_dir, "synthetic_me"),
                  os.path.join(copy, "synthetic_me"))
  builder = sources.get_builder("synthetic_me/tiny", copy)
  if sources.read_shard_checksums(builder) is None:  # built before checksums
    sources.write_shard_checksums(builder)
  build = _script("build_dataset")
  assert build.main(["synthetic_me/tiny", "--data_dir", copy, "--verify"]) == 0
  assert "verified synthetic_me/tiny" in capsys.readouterr().out
  shard = sorted(f for f in os.listdir(builder.data_dir) if "sub02.array_record" in f)[0]
  path = os.path.join(builder.data_dir, shard)
  os.truncate(path, os.path.getsize(path) // 2)
  rc = build.main(["synthetic_me/tiny", "--data_dir", copy, "--verify"])
  err = capsys.readouterr().err
  assert rc == 2 and path in err and "truncated" in err and "--overwrite" in err, err
  with pytest.raises(sources.DatasetError) as e:
    sources.load_corpus(["synthetic_me/tiny"], copy, show_progress=False)
  msg = str(e.value)
  assert path in msg and "build_dataset.py synthetic_me/tiny" in msg, msg
  assert "--overwrite" in msg
  # --overwrite rebuilds; the damaged build is moved aside, not deleted.
  assert build.main(["synthetic_me/tiny", "--data_dir", copy, "--overwrite"]) == 0
  out = capsys.readouterr().out
  moved = [ln.split("moved the old build to ")[1] for ln in out.splitlines()
           if "moved the old build to" in ln]
  assert moved and os.path.getsize(os.path.join(moved[0], shard)) < \
      os.path.getsize(path)  # the old, truncated shard, kept
  assert build.main(["synthetic_me/tiny", "--data_dir", copy, "--verify"]) == 0


def test_rebuild_with_other_options_is_refused(tmp_path, capsys):
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import corpus_fixtures as cf  # pylint: disable=g-import-not-at-top
  manual = str(tmp_path / "casme2")
  os.makedirs(manual)
  cf.make_casme2(manual)
  data = str(tmp_path / "d")
  build = _script("build_dataset")
  common = ["casme2/3class_112", "--manual_dir", manual, "--data_dir", data]
  assert build.main(common + ["--alignment", "none"]) == 0
  capsys.readouterr()
  for args, what in ((["--alignment", "dlib_or_center"], "alignment"),
                     (["--alignment", "none", "--strict"], "strict")):
    rc = build.main(common + args)
    err = capsys.readouterr().err
    assert rc == 2 and "built with other options" in err and what in err, err
    assert "--overwrite" in err and "Traceback" not in err
  # The same request again is fine, and so is --verify.
  assert build.main(common + ["--alignment", "none"]) == 0
  assert build.main(common + ["--verify"]) == 0


# ----------------------------------------------------------------------------
# 6. report.py lists what it skipped; predict.py checks its paths first.


def test_report_lists_skipped_runs(one_fold_run, tmp_path, capsys):
  report = _script("report")
  runs = tmp_path / "runs"
  shutil.copytree(one_fold_run, runs / "good")
  shutil.copytree(one_fold_run, runs / "truncated")
  with open(runs / "truncated" / "results.json", "r+") as f:
    f.truncate(96)
  shutil.copytree(one_fold_run, runs / "killed")
  os.remove(runs / "killed" / "results.json")
  os.makedirs(runs / "empty" / "folds")
  rc = report.main([str(runs), "--no_per_fold"])
  out, err = capsys.readouterr()
  assert rc == 0 and "baseline3d" in out, err
  assert "skipped 3 run(s)" in err
  assert f"{runs / 'truncated' / 'results.json'} is damaged" in err
  assert f"{runs / 'killed'}: no results.json: 1 of 1 started folds finished" in err
  assert f"{runs / 'empty'}: no results.json and no fold started" in err


def test_predict_checks_out_folder_and_image_as_video(one_fold_run, tmp_path,
                                                      capsys):
  predict = _script("predict")
  image = tmp_path / "frame.png"
  image.write_bytes(b"\x89PNG")
  rc = predict.main(["--checkpoint", one_fold_run, "--fold", "sub01",
                     "--video", str(image)])
  err = capsys.readouterr().err
  assert rc == 2 and "--frames_dir" in err and "is an image" in err, err
  frames = tmp_path / "frames"
  frames.mkdir()
  out = tmp_path / "missing" / "pred.json"
  t0 = time.time()
  rc = predict.main(["--checkpoint", one_fold_run, "--fold", "sub01",
                     "--frames_dir", str(frames), "--out", str(out)])
  err = capsys.readouterr().err
  assert rc == 2 and str(tmp_path / "missing") in err and "does not exist" in err
  assert time.time() - t0 < 5  # before any frame is read or model loaded


def test_failed_auto_build_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
  """A full disk midway through an auto-build: one DatasetError, no half build."""
  import errno  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  from tfds_builders.synthetic_me import synthetic_me_dataset_builder as smb  # pylint: disable=g-import-not-at-top
  original = smb.Builder._generate_examples

  def generate(self, clips):
    for i, ex in enumerate(original(self, clips)):
      if i == 2:
        raise OSError(errno.ENOSPC, "No space left on device")
      yield ex

  monkeypatch.setattr(smb.Builder, "_generate_examples", generate)
  data = str(tmp_path / "tfds")
  with pytest.raises(sources.DatasetError, match="Free disk space"):
    sources.load_corpus(["synthetic_me/tiny"], data, show_progress=False)
  left = [os.path.join(r, n) for r, ds, fs in os.walk(data) for n in ds + fs]
  assert not [p for p in left if "incomplete" in p or p.endswith(
      ("dataset_info.json", ".array_record-00000-of-00001"))], left
  assert not sources.get_builder("synthetic_me/tiny", data).is_prepared()
