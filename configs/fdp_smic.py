r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on SMIC-HS, LOSO.

  python scripts/main.py --config configs/fdp_smic.py --workdir runs/fdp_smic

Dataset: `smic/3class_112` (negative, positive, surprise; SMIC has no apex
annotation, the builder uses the middle frame). Same input, model and fixed
schedule as the other real-corpus FDP configs (configs/common.py). Not
measured here (the licensed corpus is not available on this machine).
`:tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("3class",))
  return common.fdp_real_corpus((f"smic/{protocol}_112",), num_steps=500,
                                tiny=tiny)
