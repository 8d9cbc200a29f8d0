r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CASME II, LOSO.

  python scripts/main.py --config configs/fdp_casme2.py --workdir runs/fdp_casme2
  python scripts/main.py --config configs/fdp_casme2.py:3class --workdir runs/fdp_casme2_3class

Datasets: `casme2/5class_112` (happiness, disgust, repression, surprise,
others; the official code's CASME II protocol); `:3class` = MEGC (negative,
positive, surprise).

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("casme2", variants=("5class", "3class"))
