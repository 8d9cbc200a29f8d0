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

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("mmew", variants=("7class", "6class", "3class"))
