r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on the MEGC 2019 composite
(SMIC-HS + CASME II + SAMM, 3 classes), LOSO.

  python scripts/main.py --config configs/fdp_composite.py --workdir runs/fdp_composite

Datasets: `smic/3class_112`, `casme2/3class_112`, `samm/3class_112` pooled
(negative, positive, surprise), one LOSO fold per subject of every corpus.

Input, model, fixed schedule, `tiny`: `configs/common.py:fdp_real_corpus`.
"""

from configs import common

get_config = common.fdp_corpus("smic", "casme2", "samm", variants=("3class",),
                               num_steps=800)
