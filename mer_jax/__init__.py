"""mer-jax: micro-expression recognition in JAX/Flax."""

__version__ = "0.1.0"

# `load_model` / `Predictor` live in mer_jax.inference, which imports jax:
# resolve them on first use so `import mer_jax` (e.g. for the version, or in
# TFDS builders) stays cheap.
_LAZY = {"load_model": "mer_jax.inference", "Predictor": "mer_jax.inference"}
__all__ = ["__version__", "load_model", "Predictor"]


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'mer_jax' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
