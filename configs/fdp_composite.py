r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on the MEGC 2019 composite
(SMIC-HS + CASME II + SAMM, 3 classes), LOSO.

  python scripts/main.py --config configs/fdp_composite.py --workdir runs/fdp_composite

Datasets: `smic/3class_112`, `casme2/3class_112`, `samm/3class_112` pooled
(negative, positive, surprise), one LOSO fold per subject of every corpus.

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine);
the aux-loss weights are those that worked on the synthetic corpus.
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg, ("3class",))
  return common.fdp_real_corpus(("smic/3class_112", "casme2/3class_112", "samm/3class_112"),
                                num_steps=800, tiny=tiny)
