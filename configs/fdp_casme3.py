r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CAS(ME)^3 part A, LOSO.

  python scripts/main.py --config configs/fdp_casme3.py --workdir runs/fdp_casme3
  python scripts/main.py --config configs/fdp_casme3.py:4class --workdir runs/fdp_casme3_4class
  python scripts/main.py --config configs/fdp_casme3.py:3class --workdir runs/fdp_casme3_3class

Datasets: `casme3/7class_112` (happy, disgust, fear, anger, sad, surprise,
others); `:4class` (negative, positive, surprise, others), `:3class`
(negative, positive, surprise). The paper's CAS(ME)^3 protocol is unknown
(see FDP_SPEC.md 1.2).

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("casme3", variants=("7class", "4class", "3class"))
