"""The trainer end to end on the tiny synthetic corpus, and resume after a kill."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "baseline_synthetic.py")


def _tiny_config(**overrides):
  sys.path.insert(0, ROOT)
  from configs import baseline_synthetic  # pylint: disable=g-import-not-at-top
  c = baseline_synthetic.get_config("tiny")
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
  from mer_jax.training import loso
  workdir = str(tmp_path_factory.mktemp("run"))
  config = _tiny_config(**{"input.data_dir": data_dir, "num_steps": 30,
                           "log_every": 5, "checkpoint_every": 10})
  results = loso.train_and_evaluate(config, workdir)
  return workdir, results


def test_results_schema(tiny_run):
  workdir, results = tiny_run
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(results))
  for key in ("protocol", "dataset", "model", "uf1", "uar", "accuracy", "oracle",
              "per_fold", "seed", "class_names", "confusion"):
    assert key in on_disk, key
  assert on_disk["oracle"] is False
  assert on_disk["protocol"] == "loso"
  assert on_disk["dataset"] == "synthetic_me/tiny"
  assert len(on_disk["per_fold"]) == 3
  for pf in on_disk["per_fold"]:
    assert set(pf) >= {"subject", "n", "uf1", "uar", "accuracy"}
  assert sum(pf["n"] for pf in on_disk["per_fold"]) == on_disk["n"]
  assert np.array(on_disk["confusion"]).sum() == on_disk["n"]
  assert 0.0 <= on_disk["uf1"] <= 1.0


def test_outputs_written(tiny_run):
  workdir, results = tiny_run
  with open(os.path.join(workdir, "predictions.csv")) as f:
    rows = f.read().strip().splitlines()
  assert len(rows) == results["n"] + 1
  assert rows[0].startswith("fold_subject,sample_id,label")
  with open(os.path.join(workdir, "confusion.png"), "rb") as f:
    assert f.read(4) == b"\x89PNG"
  tb = os.path.join(workdir, "tensorboard")
  events = [os.path.join(d, n) for d, _, ns in os.walk(tb) for n in ns
            if n.startswith("events.out.tfevents")]
  assert len(events) >= 4  # one per fold + the summary


def test_loss_decreases(tiny_run):
  workdir, _ = tiny_run
  from tensorboard.backend.event_processing import event_accumulator
  fold_dir = sorted(d for d in os.listdir(os.path.join(workdir, "tensorboard"))
                    if d.startswith("synthetic_me"))[0]
  ea = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard", fold_dir))
  ea.Reload()
  losses = [e.value for e in ea.Scalars("train/loss")]
  assert len(losses) == 6
  assert np.mean(losses[-2:]) < np.mean(losses[:2])


def test_no_test_subject_in_training(data_dir):
  from mer_jax.training import loso
  from mer_jax.data import sources
  config = _tiny_config(**{"input.data_dir": data_dir,
                           "protocol.selection": "inner_val"})
  corpus = sources.load_corpus(list(config.input.datasets), data_dir,
                               show_progress=False)
  for train_subjects, test in sources.loso_folds(corpus.subjects):
    fold = loso.split_fold(config, corpus, 0, train_subjects, test)
    assert {c.subject for c in fold.test_clips} == {test}
    used = {c.subject for c in fold.train_clips + fold.val_clips}
    assert test not in used
    assert not {c.subject for c in fold.train_clips} & set(fold.val_subjects)
    assert len(fold.val_subjects) == 1


def _main(workdir, data_dir, *extra):
  import jax  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TFDS_DATA_DIR=data_dir,
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "main.py"),
       f"--config={CONFIG}:tiny", f"--workdir={workdir}",
       "--config.num_steps=24", "--config.checkpoint_every=4", *extra],
      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      start_new_session=True)


def _has_checkpoint(path):
  return os.path.isdir(path) and any(d.isdigit() for d in os.listdir(path))


def test_resume_after_kill_gives_identical_results(data_dir, tmp_path):
  ref_dir, run_dir = str(tmp_path / "ref"), str(tmp_path / "killed")
  # The reference reads through a grain worker process, the killed/resumed
  # run in the main process: batches depend only on (seed, step), so the
  # results must match either way.
  ref = _main(ref_dir, data_dir, "--config.input.workers=1")
  out, _ = ref.communicate(timeout=600)
  assert ref.returncode == 0, out.decode()[-3000:]

  # Kill -9 (the whole process group) once the second fold has a checkpoint.
  proc = _main(run_dir, data_dir)
  folds = os.path.join(run_dir, "folds")
  deadline = time.time() + 600
  killed = False
  while time.time() < deadline and proc.poll() is None:
    done = [d for d in (os.listdir(folds) if os.path.isdir(folds) else [])
            if _has_checkpoint(os.path.join(folds, d, "checkpoints"))]
    if len(done) >= 2:
      os.killpg(proc.pid, signal.SIGKILL)
      killed = True
      break
    time.sleep(0.05)
  proc.communicate()
  assert killed, "the run finished before it could be killed"
  assert not os.path.exists(os.path.join(run_dir, "results.json"))

  resumed = _main(run_dir, data_dir)
  out, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, out.decode()[-3000:]
  with open(os.path.join(ref_dir, "results.json")) as f:
    a = json.load(f)
  with open(os.path.join(run_dir, "results.json")) as f:
    b = json.load(f)
  assert a == b
  with open(os.path.join(ref_dir, "predictions.csv")) as f1, \
       open(os.path.join(run_dir, "predictions.csv")) as f2:
    assert f1.read() == f2.read()
  # TensorBoard shows each step once: the resumed fold marked its restart.
  from tensorboard.backend.event_processing import event_accumulator
  for d in os.listdir(os.path.join(run_dir, "tensorboard")):
    if not d.startswith("synthetic_me"):
      continue
    curves = []
    for w in (run_dir, ref_dir):
      ea = event_accumulator.EventAccumulator(os.path.join(w, "tensorboard", d))
      ea.Reload()
      curves.append([(e.step, e.value) for e in ea.Scalars("train/loss")])
    assert curves[0] == curves[1], d


def test_unknown_config_key_is_named(data_dir):
  from mer_jax.training import loso
  config = _tiny_config(**{"input.data_dir": data_dir})
  config.unlock()
  config.input.nmu_frames = 4
  with pytest.raises(ValueError, match="input.nmu_frames"):
    loso.train_and_evaluate(config, "/tmp/unused")


def test_missing_dataset_names_builder_and_how_to_build(tmp_path):
  from mer_jax.data import sources
  with pytest.raises(sources.DatasetError, match="build_dataset.py"):
    sources.load_corpus(["synthetic_me/tiny"], str(tmp_path), auto_build=False)
  with pytest.raises(sources.DatasetError, match="Unknown dataset builder"):
    sources.load_corpus(["nosuchcorpus/x"], str(tmp_path))


def test_nan_loss_stops_naming_step_and_fold(data_dir, tmp_path):
  from mer_jax.training import loso
  config = _tiny_config(**{"input.data_dir": data_dir, "schedule.name": "constant",
                           "schedule.lr": float("nan"), "num_steps": 4,
                           "log_every": 4})
  # Step 1's loss is computed before the NaN update; step 2's is NaN.
  with pytest.raises(FloatingPointError, match=r"at step 2 of fold 1 \(test subject"):
    loso.train_and_evaluate(config, str(tmp_path))


def test_inner_validation_selects_on_training_subjects(data_dir, tmp_path):
  from mer_jax.training import loso
  config = _tiny_config(**{"input.data_dir": data_dir, "num_steps": 6,
                           "protocol.selection": "inner_val",
                           "protocol.eval_every": 2, "checkpoint_every": 2})
  results = loso.train_and_evaluate(config, str(tmp_path))
  assert results["selection"] == "inner_val" and results["oracle"] is False
  for pf in results["per_fold"]:
    assert pf["selected_step"] in (2, 4, 6)
  for d in os.listdir(tmp_path / "folds"):
    with open(tmp_path / "folds" / d / "result.json") as f:
      r = json.load(f)
    assert len(r["val_subjects"]) == 1 and r["subject"] not in r["val_subjects"]


# ----------------------------------------------------------------------------
# Dynamic-image previews (folds/<subject>/dynamic_images.png + TensorBoard).


def _tiny_fdp_config(data_dir, **overrides):
  sys.path.insert(0, ROOT)
  from configs import fdp_synthetic  # pylint: disable=g-import-not-at-top
  c = fdp_synthetic.get_config("tiny")
  c.input.data_dir = data_dir
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture(scope="module")
def tiny_fdp_run(data_dir, tmp_path_factory):
  """3 folds over 8 devices: folds 1-2 vmapped together, fold 3 alone."""
  from mer_jax.training import loso
  workdir = str(tmp_path_factory.mktemp("fdp_run"))
  config = _tiny_fdp_config(data_dir, **{"protocol.parallel_folds": 2,
                                         "preview_samples": 3})
  results = loso.train_and_evaluate(config, workdir)
  return workdir, results, config


def _fold_dirs(workdir):
  return sorted(os.listdir(os.path.join(workdir, "folds")))


def test_dynamic_image_previews_written(tiny_fdp_run):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  from mer_jax import plots
  workdir, results, config = tiny_fdp_run
  folds = _fold_dirs(workdir)
  assert len(folds) == 3
  h, w = plots.grid_size(3, config.input.num_frames, with_target=True)
  for d in folds:
    png = os.path.join(workdir, "folds", d, "dynamic_images.png")
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (h, w, 3), d
    # Frames drawn, not a blank page: dark and light pixels both present.
    assert img.min() < 40 and img.max() > 215 and img.std() > 20, d
    ea = event_accumulator.EventAccumulator(
        os.path.join(workdir, "tensorboard", d),
        size_guidance={event_accumulator.IMAGES: 0})
    ea.Reload()
    assert ea.Tags()["images"] == ["test/dynamic_images"], d
    (ev,) = ea.Images("test/dynamic_images")
    assert (ev.step, ev.height, ev.width) == (config.num_steps, h, w)
    tb = np.asarray(Image.open(io.BytesIO(ev.encoded_image_string)))
    np.testing.assert_array_equal(tb[..., :3], img)  # the same pixels as the PNG


def test_previews_do_not_change_results(tiny_fdp_run, data_dir, tmp_path):
  """Fold 3 of the fixture ran alone: rerun it without previews, same result."""
  from mer_jax.training import loso
  workdir, _, _ = tiny_fdp_run
  last = _fold_dirs(workdir)[-1]
  with open(os.path.join(workdir, "folds", last, "result.json")) as f:
    with_previews = json.load(f)
  config = _tiny_fdp_config(data_dir, **{"preview_samples": 0,
                                         "protocol.folds": (with_previews["subject"],)})
  loso.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "folds" / last / "result.json") as f:
    assert json.load(f) == with_previews
  assert not os.path.exists(tmp_path / "folds" / last / "dynamic_images.png")


def test_no_previews_for_models_without_dynamic_image(tiny_run):
  from tensorboard.backend.event_processing import event_accumulator
  workdir, _ = tiny_run
  for d in _fold_dirs(workdir):
    assert not os.path.exists(os.path.join(workdir, "folds", d, "dynamic_images.png"))
    ea = event_accumulator.EventAccumulator(os.path.join(workdir, "tensorboard", d))
    ea.Reload()
    assert ea.Tags()["images"] == []


def test_preview_samples_validated():
  from mer_jax import config_lib
  c = config_lib.base_config()
  c.preview_samples = -1
  with pytest.raises(ValueError, match="preview_samples"):
    config_lib.validate(c)
