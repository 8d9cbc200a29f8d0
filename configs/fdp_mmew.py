r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on MMEW micro-expressions, LOSO.

  python scripts/build_dataset.py --dataset mmew --config 7class_112 --manual_dir /path/to/MMEW
  python scripts/main.py --config configs/fdp_mmew.py --workdir runs/fdp_mmew
  python scripts/main.py --config configs/fdp_mmew.py:6class --workdir runs/fdp_mmew_6class

Datasets: `mmew/7class_112` (happiness, surprise, anger, disgust, fear,
sadness, others: the sheet's classes); `:6class` leaves 'others' out (the
class set of HTNet's MMEW_Micro_Exp_delete_others.csv); `:3class` =
negative / positive / surprise (the MEGC folding). MMEW has no agreed
protocol (MA2MI_NOTES.md: papers use 4, 6 or 7 classes). One LOSO fold per
subject of the sheet (S01..S30).

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine).
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("7class", "6class", "3class"))
  return common.fdp_real_corpus((f"mmew/{protocol}_112",), num_steps=500,
                                tiny=tiny)
