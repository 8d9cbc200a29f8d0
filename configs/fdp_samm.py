r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on SAMM, LOSO.

  python scripts/main.py --config configs/fdp_samm.py --workdir runs/fdp_samm
  python scripts/main.py --config configs/fdp_samm.py:3class --workdir runs/fdp_samm_3class

Datasets: `samm/5class_112` (anger, contempt, happiness, surprise, other;
the official code's SAMM protocol); `:3class` = MEGC (negative, positive,
surprise).

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("samm", variants=("5class", "3class"))
