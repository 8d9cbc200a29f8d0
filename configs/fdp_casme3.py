r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CAS(ME)^3 part A, LOSO.

  python scripts/main.py --config configs/fdp_casme3.py --workdir runs/fdp_casme3
  python scripts/main.py --config configs/fdp_casme3.py:4class --workdir runs/fdp_casme3_4class
  python scripts/main.py --config configs/fdp_casme3.py:3class --workdir runs/fdp_casme3_3class

Datasets: `casme3/7class_112` (happy, disgust, fear, anger, sad, surprise,
others); `:4class` (negative, positive, surprise, others), `:3class`
(negative, positive, surprise). The paper's CAS(ME)^3 protocol is unknown
(see FDP_SPEC.md 1.2).

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine);
the aux-loss weights are those that worked on the synthetic corpus.
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("7class", "4class", "3class"))
  return common.fdp_real_corpus((f"casme3/{protocol}_112",), num_steps=500,
                                tiny=tiny)
