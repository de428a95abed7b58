"""VQGAN networks (jaxgen.models.vqgan): parameter counts equal taming-transformers' modules, the API the
tasks use, and invariants of one tiny forward. Numerical agreement with taming's code is
tests/convert/test_taming_convert.py.

Full-size networks are only traced (``jax.eval_shape``); the tiny one runs once (module-scope fixture).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as models
from jaxgen.errors import ConfigError
from jaxgen.models.vqgan import ActNorm
from tests.fixtures.fast_compile import jit_fast

# taming-transformers (CompVis, HEAD 3ba01b2) modules built in torch with the same configurations:
# `python scripts/make_taming_fixture.py --repo GITDIR --counts` (sum of p.numel() over parameters()).
# ImageNet f16: configs/imagenet_vqgan.yaml ddconfig; encoder 29,298,176, decoder 42,449,795, codebook K·256,
# quant_conv and post_quant_conv 65,792 each.
TAMING_COUNTS = {
    "vqgan_imagenet_f16_1024": 72_141_699,
    "vqgan_imagenet_f16_16384": 76_073_859,
    "vqgan_tiny": 1_017_875,            # ch 32, ch_mult (1,2,2), 1 res block, attn 8, z/embed 16, 64 codes
}
TAMING_PARTS = {"encoder": 29_298_176, "decoder": 42_449_795, "quant_conv": 65_792, "post_quant_conv": 65_792}
# NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3), BatchNorm / ActNorm (taming's defaults).
TAMING_PATCHGAN = {False: 2_765_633, True: 2_766_529}


@pytest.mark.parametrize("name", sorted(TAMING_COUNTS))
def test_param_counts_equal_taming(name):
  p = models.param_shapes(name)
  assert models.count_params(p) == TAMING_COUNTS[name]
  k = {"vqgan_imagenet_f16_1024": 1024, "vqgan_imagenet_f16_16384": 16384, "vqgan_tiny": 64}[name]
  d = 16 if name == "vqgan_tiny" else 256
  assert p["quantize"]["embedding"].shape == (k, d)
  assert p["decoder"]["conv_out"]["kernel"].shape[-1] == 3          # the task's adaptive-weight layer
  if name == "vqgan_imagenet_f16_1024":
    assert {n: models.count_params(p[n]) for n in TAMING_PARTS} == TAMING_PARTS


@pytest.mark.parametrize("actnorm", [False, True])
def test_patchgan_counts_and_logit_map(actnorm):
  v = models.init_shapes("patchgan", use_actnorm=actnorm)
  assert models.count_params(v["params"]) == TAMING_PATCHGAN[actnorm]
  assert ("batch_stats" in v) != actnorm
  d = models.create("patchgan", use_actnorm=actnorm)
  out = jax.eval_shape(lambda v: d.apply(v, jnp.zeros((2, 256, 256, 3))), v)
  assert out.shape == (2, 30, 30, 1) and out.dtype == jnp.float32         # 70×70 PatchGAN on 256²


def test_bf16_shapes_and_imagenet_code_grid():
  m = models.create("vqgan_tiny", dtype="bfloat16")
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  v = jax.eval_shape(lambda x: m.init(jax.random.key(0), x), x)
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(v))     # bf16 compute, f32 params
  x_rec, qloss, idx = jax.eval_shape(m.apply, v, x)
  assert x_rec.shape == (1, 32, 32, 3) and x_rec.dtype == jnp.float32
  assert idx.shape == (1, 8, 8) and idx.dtype == jnp.int32 and qloss.shape == ()
  big = models.create("vqgan_imagenet_f16_16384", dtype="bfloat16")
  vb = {"params": models.param_shapes("vqgan_imagenet_f16_16384")}
  z_q, idx, _ = jax.eval_shape(lambda v, x: big.apply(v, x, method="encode"), vb,
                               jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  assert z_q.shape == (1, 16, 16, 256) and idx.shape == (1, 16, 16)             # f16: 256² → 16×16 codes


def numpy_init(shapes, seed=0):
  """Random variables without compiling ``init`` (its per-parameter RNG costs ~30 s of XLA compile on CPU):
  kernels U(±1/√fan_in) as torch, GroupNorm scale 1 and bias 0, the codebook N(0, 0.5²) (on the scale of z, so
  several codes are used)."""
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name == "kernel":
      b = 1 / np.sqrt(np.prod(s.shape[:-1]))
      return rng.uniform(-b, b, s.shape).astype(np.float32)
    if name == "embedding":
      return rng.normal(0, 0.5, s.shape).astype(np.float32)
    return (np.ones if name == "scale" else np.zeros)(s.shape, np.float32)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


@pytest.fixture(scope="module")
def tiny():
  # vqgan_tiny at 16² (resolution=16): levels 16, 8, 4 → attention at the 8² level, 4×4 codes.
  m = models.create("vqgan_tiny", resolution=16)
  x = np.random.default_rng(1).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  v = numpy_init(jax.eval_shape(lambda x: m.init(jax.random.key(0), x), x))

  def run(v, x):
    x_rec, qloss, idx = m.apply(v, x)
    z = m.apply(v, x, method="encode_latent")
    q = m.apply(v, z, method="quantize_latent")
    z_q, idx2, qloss2 = m.apply(v, x, method="encode")
    return dict(x_rec=x_rec, qloss=qloss, idx=idx, z=z, q=q, z_q=z_q, idx2=idx2, qloss2=qloss2,
                dec_code=m.apply(v, idx, method="decode_code"))

  return v, jit_fast(run, v, x)(v, x)


def test_tiny_forward_shapes_and_code_path(tiny):
  v, o = tiny
  assert o["x_rec"].shape == (2, 16, 16, 3) and o["idx"].shape == (2, 4, 4)   # f4: 16² → 4×4 codes
  idx = np.asarray(o["idx"])
  assert idx.min() >= 0 and idx.max() < 64 and len(np.unique(idx)) > 1
  np.testing.assert_array_equal(idx, o["idx2"])
  # decode(codes) is the forward pass: z_q's forward value is the codebook row of each index
  np.testing.assert_allclose(o["dec_code"], o["x_rec"], atol=1e-5)
  np.testing.assert_allclose(o["z_q"], np.asarray(v["params"]["quantize"]["embedding"])[idx], atol=1e-6)


def test_tiny_quantizer_loss_is_tamings_legacy_formula(tiny):
  v, o = tiny
  z, e = np.asarray(o["z"]), np.asarray(v["params"]["quantize"]["embedding"])
  d = ((z[..., None, :] - e) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(o["idx"]), d.argmin(-1))
  mse = np.mean((e[d.argmin(-1)] - z) ** 2)
  np.testing.assert_allclose(o["qloss"], 1.25 * mse, rtol=1e-5)        # legacy: mse + β·mse, β = 0.25
  np.testing.assert_allclose(o["qloss2"], o["qloss"], rtol=1e-6)
  np.testing.assert_allclose(o["q"].codebook_loss, mse, rtol=1e-5)
  np.testing.assert_allclose(o["q"].z_q, o["z_q"], atol=1e-6)


def test_actnorm_data_dependent_init():
  x = (3.0 + 2.0 * np.random.default_rng(0).standard_normal((4, 5, 5, 6))).astype(np.float32)
  x[..., 0] = 1.0                                     # a constant channel keeps scale 1
  y = np.asarray(jit_fast(lambda x: ActNorm().apply(ActNorm().init(jax.random.key(1), x), x), x)(x))
  np.testing.assert_allclose(y[..., 1:].reshape(-1, 5).mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(y[..., 1:].reshape(-1, 5).std(0, ddof=1), 1, atol=1e-4)
  np.testing.assert_allclose(y[..., 0], 0, atol=1e-6)


def test_config_errors():
  with pytest.raises(ConfigError, match="model.overrides.ch"):
    models.create("vqgan_tiny", ch=48)
  m = models.create("vqgan_tiny")
  with pytest.raises(ConfigError, match="in_channels"):
    jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1))))
  with pytest.raises(ConfigError, match="input_nc"):
    d = models.create("patchgan")
    jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((1, 64, 64, 1))))


def test_table_reference_numbers_are_the_tested_ones():
  from jaxgen.tables import vqgan as table

  assert {k: table.TAMING_PARAMS[k] for k in TAMING_COUNTS} == TAMING_COUNTS
  assert (table.TAMING_PARAMS["patchgan"], table.TAMING_PARAMS["patchgan_actnorm"]) == \
      (TAMING_PATCHGAN[False], TAMING_PATCHGAN[True])
  text = table.reconstruction().render()
  assert "7.94" in text and "4.98" in text and "not measured" in text
