r"""MA2MI pretraining on MMEW's macro-expression part (`mmew/macro_112`), 112 px.

  python scripts/build_dataset.py --dataset mmew --config macro_112 --manual_dir /path/to/MMEW
  python scripts/main.py --config configs/ma2mi_mmew.py --workdir runs/ma2mi_mmew

CAVEAT: as the authors describe the release (http://www.dpailab.com/database.html:
`Macro_Expression/S03/happiness/S03-01-001.jpg` is "the 1st sample with
happiness emotion for the 3rd subject"), each of MMEW's 900 macro samples is
ONE image. MA2MI learns from motion between frames of a clip, so single
images give it nothing: the pretraining task leaves clips under 3 frames
out and, when none is left, stops with an error that says so and points to
configs/ma2mi_oulu_casia.py (subject-disjoint macro videos, the practical
pretraining for the MMEW benchmark). The config exists so that this path
is explicit and tested (tests/test_corpora_mmew_oulu.py), not because it
can pretrain on the release as documented.
Everything else as configs/ma2mi_ck_plus.py.
"""

from configs import ma2mi_ck_plus


def get_config(arg=None):
  c = ma2mi_ck_plus.get_config(arg)
  c.input.datasets = ("mmew/macro_112",)
  return c
