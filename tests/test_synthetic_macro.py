"""Tests for the `synthetic_macro` builder: held-out identities, other motions."""

from __future__ import annotations

import numpy as np
import pytest

from tfds_builders.synthetic_macro import synthetic_macro_dataset_builder as smac
from tfds_builders.synthetic_me import synth
from tfds_builders.synthetic_me import synthetic_me_dataset_builder as smb

CONFIGS = {c.name: c for c in smac.Builder.BUILDER_CONFIGS}


def test_identities_are_held_out_from_synthetic_me():
  """No macro subject uses a synthetic_me crop or geometry; names differ."""
  micro_faces = {s.face for s in synth.SUBJECTS}
  micro_keys = {s.geometry_key for s in synth.SUBJECTS}
  assert not {s.face for s in smac.SUBJECTS} & micro_faces
  assert not {s.geometry_key for s in smac.SUBJECTS} & micro_keys
  assert len({s.geometry_key for s in smac.SUBJECTS}) == len(smac.SUBJECTS)
  assert not {s.name for s in smac.SUBJECTS} & {s.name for s in synth.SUBJECTS}
  faces = np.load(synth.FACES_PATH)
  names = faces["names"]
  assert not {names[s.face] for s in smac.SUBJECTS} & {
      names[s.face] for s in synth.SUBJECTS}


def test_motions_differ_from_synthetic_me():
  assert not set(smac.ACTION_UNITS) & set(smb.ACTION_UNITS)
  assert not set(smac.CLASS_NAMES) & set(smb.CLASS_NAMES)
  assert smac.AMPLITUDE_RANGE[0] > synth.AMPLITUDE_RANGE[1]  # macro scale
  for split, clips in smac.plan(CONFIGS["s64"]).items():
    assert {c.label for c in clips} == set(range(len(smac.CLASS_NAMES)))
    for c in clips:
      assert 4 <= c.onset < c.apex < c.offset < c.num_frames - 3
      assert (c.offset - c.onset) / smac.FPS >= 0.5  # longer than any micro clip


def test_macro_motion_is_large_and_localized():
  clip = smac.plan_subject(0, 1, 1)[2]
  frames, aux = smac.render_clip(0, clip, 112, return_aux=True)
  assert 5.0 <= aux["amplitude"] <= 10.0
  f = frames.astype(np.float32)
  change = ((f[clip.apex] - f[clip.onset])**2).mean(-1)
  assert change[aux["region"]].mean() > 3.0 * change[~aux["region"]].mean()


def test_tiny_build_reads_through_the_corpus_loader(data_dir):
  """Built like any corpus; the loader sees its subjects and classes."""
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_corpus(["synthetic_macro/tiny"], data_dir,
                               show_progress=False)
  assert corpus.class_names == smac.CLASS_NAMES
  assert sorted(corpus.subjects) == ["synthetic_macro/mac01",
                                     "synthetic_macro/mac02"]
  rec = corpus.record(corpus.clips[0])
  assert np.asarray(sources.decode_frame(rec["frames"][0])).shape == (32, 32, 3)
  assert smac.Builder.VERSION == "1.0.0"
  assert str(smac.Builder.VERSION) in smac.Builder.RELEASE_NOTES


def test_ma2mi_pretrain_has_no_renderer():
  """Macro clips come through builders only (issue: the task reached into the
  synthetic builder's internals)."""
  import inspect  # pylint: disable=g-import-not-at-top
  from mer_jax.data import macro_pairs  # pylint: disable=g-import-not-at-top
  from mer_jax.tasks import ma2mi_pretrain  # pylint: disable=g-import-not-at-top
  for module in (ma2mi_pretrain, macro_pairs):
    src = inspect.getsource(module)
    assert "synth" not in src.replace("synthetic_macro", "")
    assert not hasattr(module, "render_synthetic_macro")
  with pytest.raises(ValueError, match="builders only"):
    macro_pairs.load_clips(None, {"source": "synthetic_macro"})
