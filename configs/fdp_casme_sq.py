r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CAS(ME)^2, LOSO.

  python scripts/main.py --config configs/fdp_casme_sq.py --workdir runs/fdp_casme_sq
  python scripts/main.py --config configs/fdp_casme_sq.py:4class --workdir runs/fdp_casme_sq_4class

Datasets: `casme_sq/3class_112` (negative, positive, surprise); `:4class`
adds others. The paper's CAS(ME)^2 protocol is unknown (see FDP_SPEC.md
1.2).

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("casme_sq", variants=("3class", "4class"))
