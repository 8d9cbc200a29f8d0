r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on SMIC-HS, LOSO.

  python scripts/main.py --config configs/fdp_smic.py --workdir runs/fdp_smic

Dataset: `smic/3class_112` (negative, positive, surprise; SMIC has no apex
annotation, the builder uses the middle frame).

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("smic", variants=("3class",))
