r"""The released FDP code (`fdp_official`) on CASME II with the official schedule.

  python scripts/main.py --config configs/fdp_official_casme2.py --workdir runs/fdp_official_casme2

Dataset `casme2/5class_112` relabelled to the official order (0 surprise,
1 happiness, 2 disgust, 3 repression, 4 others), so that a checkpoint
converted with `scripts/convert_fdp_torch.py` and loaded with
`config.init_from` predicts the right classes. Batch 36, 501 steps per fold,
Adam(1e-4) + coupled L2 1e-3: see `configs/common.py:fdp_official` for what
is and is not reproduced. The official subject list has 25 of the 26
subjects (no 18); LOSO here has one fold per subject with clips in the
protocol.

Not measured here (the licensed corpus is not available on this machine).
`tiny` uses the reduced reference widths (tests).
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg, ("5class",))
  return common.fdp_official(
      ("casme2/5class_112",),
      ("surprise", "happiness", "disgust", "repression", "others"), tiny=tiny)
