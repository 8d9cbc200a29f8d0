"""CPU flags and the "auto" matmul route of fdp_official (no compilation)."""

from mer_jax import hardware
from mer_jax import models
from mer_jax.models import fdp_official

AUTO = {"matmul_dtype": "auto", "im2col_max_pixels": -1}


def test_cpu_info_reads_flags():
  info = hardware.cpu_info()
  assert set(info["flags"]) == set(hardware.CPU_FLAGS)
  assert isinstance(info["model"], str) and info["model"]
  with open("/proc/cpuinfo") as f:
    text = f.read()
  assert info["flags"]["avx512f"] == (" avx512f" in text)


def test_auto_route_follows_cpu_flags(monkeypatch):
  monkeypatch.setattr(hardware, "cpu_has_bf16_dots", lambda: True)
  assert fdp_official.resolve_kwargs(AUTO, "cpu") == {
      "matmul_dtype": "bfloat16", "im2col_max_pixels": 1024}
  monkeypatch.setattr(hardware, "cpu_has_bf16_dots", lambda: False)
  assert fdp_official.resolve_kwargs(AUTO, "cpu") == {
      "matmul_dtype": "float32", "im2col_max_pixels": 4}
  # Accelerators: bfloat16 operands, their own convolutions.
  assert fdp_official.resolve_kwargs(AUTO, "tpu") == {
      "matmul_dtype": "bfloat16", "im2col_max_pixels": 0}
  # Explicit settings are kept.
  explicit = {"matmul_dtype": "float32", "im2col_max_pixels": 0}
  assert fdp_official.resolve_kwargs(explicit, "tpu") == explicit


def test_get_model_resolves_for_platform():
  m = models.get_model("fdp_official", 5, platform="tpu", **AUTO)
  assert (m.matmul_dtype, m.im2col_max_pixels) == ("bfloat16", 0)
