"""Diffusion U-Nets: exact parameter counts (eval_shape only), tiny forward passes, mixed precision.

Reference counts: EDM's training/networks.py instantiated with train.py's --arch settings (docs/reference.md
§4 for DDPM++ and score_sde's continuous models); NCSN++, ADM and DDPM derived in the comments below.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgen.models as M
from jaxgen.models import unet_song
from tests.fixtures.fast_compile import jit_fast

COUNTS = [
    # docs/reference.md §4 (EDM DDPM++ CIFAR-10 as trained by EDM: cres 2,2,2, 4 blocks, attn 16).
    ("ddpmpp_cifar10", {}, 55_732_739),
    ("ddpmpp_cifar10", {"augment_dim": 9}, 55_733_891),        # + 9·128 map_augment (no bias)
    ("ddpmpp_cifar10", {"augment_dim": 9, "label_dim": 10}, 55_735_299),   # + 10·128 + 128 map_label
    # NCSN++ = DDPM++ + map_layer0 widened by 128·512 (noise channels 256) + the residual encoder's two
    # fused-down 3×3 convs (3→256: 7,168; 256→256: 590,080): 55,732,739 + 662,784. Fourier
    # frequencies are a buffer (EDM register_buffer), not counted.
    ("ncsnpp_cifar10", {}, 56_395_523),
    # docs/reference.md §4 (score_sde continuous CIFAR-10 models; NCSN++ deep excludes the stop-gradient W).
    ("ddpmpp_cifar10_scoresde", {}, 61_804_419),
    ("ddpmpp_deep_cifar10_scoresde", {}, 106_632_579),
    ("ncsnpp_deep_cifar10_scoresde", {}, 107_586_947),
    # ADM ImageNet-64 (EDM DhariwalUNet, 192 ch, mult 1,2,3,4, 3 blocks, attn 32/16/8, 1000 classes):
    # "≈295.9M" in docs/reference.md §4; the unconditional network is 295,131,267 (+1000·768 map_label).
    ("adm_imagenet64", {}, 295_899_267),
    ("adm_imagenet64", {"label_dim": 0}, 295_131_267),
    # Ho et al. CIFAR-10 (diffusion_tf unet.py, ch 128, mult 1,2,2,2, 2 blocks, attn 16): paper "35.7M".
    ("ddpm_cifar10", {}, 35_746_307),
]


@pytest.mark.parametrize("name,overrides,expected", COUNTS)
def test_param_counts(name, overrides, expected):
  assert M.count_params(M.param_shapes(name, **overrides)) == expected


def test_fourier_frequencies_are_not_params():
  shapes = M.param_shapes("ncsnpp_cifar10", **TINY)
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  assert not any("freq" in jax.tree_util.keystr(p) for p, _ in flat)


TINY = dict(img_resolution=8, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
CASES = {
    "ddpmpp_cond_aug": ("ddpmpp_cifar10", dict(TINY, label_dim=10, augment_dim=9)),
    "ncsnpp": ("ncsnpp_cifar10", dict(TINY)),
    "ncsnpp_skip": ("ncsnpp_cifar10", dict(TINY, encoder_type="skip", decoder_type="skip")),
    "adm": ("adm_imagenet64", dict(img_resolution=8, model_channels=64, channel_mult=(1, 2), num_blocks=1,
                                   attn_resolutions=(4,), label_dim=10, augment_dim=9)),
    "ddpm": ("ddpm_cifar10", dict(img_resolution=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,))),
}


def _args(name, kw, batch=2):
  args = M.example_inputs(name, batch=batch, **kw)
  x = jax.random.normal(jax.random.key(1), args[0].shape)
  rest = list(args[2:])
  if len(rest) >= 1 and rest[0] is not None:
    rest[0] = jnp.arange(batch, dtype=jnp.int32) % kw["label_dim"]
  if len(rest) == 2:
    rest[1] = jax.random.normal(jax.random.key(2), rest[1].shape)
  return (x, jnp.linspace(-1.0, 1.0, batch)) + tuple(rest)


def random_params(shapes, seed=0):
  """Random params of the given shapes (numpy, so no PRNG compilation): kernels N(0, 1/fan_in),
  norm scales 1 + N(0, 0.1²), biases N(0, 0.1²). Unlike the zero-initialised output layers of the real
  init, every layer then carries signal."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    leaf = jax.tree_util.keystr(path)
    if s.ndim >= 2:
      return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1])), jnp.float32)
    base = 1.0 if "scale" in leaf else 0.0
    return jnp.asarray(base + 0.1 * rng.normal(size=s.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


# Tiny programs compile with tests.fixtures.fast_compile.jit_fast (LLVM -O0, per program).
# Results differ from the default build by float32 rounding only; the bf16 tolerances below are ≥ 3e-2.


@functools.cache
def _setup(case):
  """(float32 module, bf16 module, random params, args)."""
  name, kw = CASES[case]
  args = _args(name, kw)
  params = random_params(M.param_shapes(name, **kw))
  return M.create(name, **kw), M.create(name, **kw, dtype="bfloat16"), params, args


@functools.cache
def _forward(case):
  net, _, params, args = _setup(case)
  return jit_fast(lambda p, *a: net.apply({"params": p}, *a), params, *args)(params, *args)


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_forward_finite_and_shape(case):
  y = _forward(case)
  _, _, _, args = _setup(case)
  assert y.shape == args[0].shape and y.dtype == jnp.float32
  assert bool(jnp.isfinite(y).all()) and float(jnp.abs(y).max()) > 0


@pytest.mark.parametrize("case", ["ncsnpp_skip", "adm"])   # DDPM++ bf16: the loss-curve test below
def test_bf16_matches_fp32(case):
  _, net_bf16, params, args = _setup(case)
  y = _forward(case)
  yb = jit_fast(lambda p, *a: net_bf16.apply({"params": p}, *a), params, *args)(params, *args)
  assert yb.dtype == jnp.float32
  rel = float(jnp.linalg.norm(yb - y) / jnp.linalg.norm(y))
  assert rel < 3e-2, rel   # bf16 has 8 mantissa bits (≈4e-3 per op); errors accumulate over the depth


def test_train_mode_dropout_and_label_dropout():
  name, kw = CASES["ddpmpp_cond_aug"]
  net = M.create(name, **dict(kw, dropout=0.5, label_dropout=0.5))
  _, _, params, args = _setup("ddpmpp_cond_aug")
  apply = jit_fast(lambda p, k, *a: net.apply({"params": p}, *a, train=True, rngs={"dropout": k}),
                   params, jax.random.key(0), *args)
  y1, y2 = apply(params, jax.random.key(0), *args), apply(params, jax.random.key(1), *args)
  assert bool(jnp.isfinite(y1).all()) and not np.allclose(y1, y2)
  # Inference ignores dropout: the same as the dropout-free network's output.
  np.testing.assert_allclose(jit_fast(lambda p, *a: net.apply({"params": p}, *a), params, *args)(params, *args),
                             _forward("ddpmpp_cond_aug"), rtol=1e-5, atol=1e-6)


def test_wrong_label_dim_is_a_clear_error():
  with pytest.raises(ValueError, match="label_dim"):
    unet_song.one_hot_labels(jnp.zeros((2, 5)), 10, 2)


def test_fir_resampling_preserves_constants_and_shapes():
  x = jnp.ones((1, 8, 8, 3))
  for f in [(1, 1), (1, 3, 3, 1)]:
    d = unet_song.fir_downsample(x, f)
    u = unet_song.fir_upsample(x, f)
    assert d.shape == (1, 4, 4, 3) and u.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(d[:, 1:-1, 1:-1], 1.0, rtol=1e-6)   # interior (zero padding at the border)
    np.testing.assert_allclose(u[:, 2:-2, 2:-2], 1.0, rtol=1e-6)


def _edm_loss_curve(dtype, steps=30):
  """EDM loss (P_mean −1.2, P_std 1.2, σ_d 0.5) of a tiny DDPM++ trained with Adam on fixed data."""
  kw = dict(TINY, dropout=0.0, dtype=dtype)
  net = M.create("ddpmpp_cifar10", **kw)
  data = jnp.asarray(np.tanh(np.random.default_rng(0).normal(size=(8, 8, 8, 3))), jnp.float32)
  params = random_params(M.param_shapes("ddpmpp_cifar10", **kw), seed=1)
  opt = optax.adam(2e-3)
  sd = 0.5

  def loss_fn(p, key):
    k1, k2 = jax.random.split(key)
    sigma = jnp.exp(-1.2 + 1.2 * jax.random.normal(k1, (8,)))
    s = sigma[:, None, None, None]
    y = data + s * jax.random.normal(k2, data.shape)
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / jnp.sqrt(s**2 + sd**2)
    c_in, c_noise = 1 / jnp.sqrt(s**2 + sd**2), jnp.log(sigma) / 4
    d = c_skip * y + c_out * net.apply({"params": p}, c_in * y, c_noise)
    w = (s**2 + sd**2) / (s * sd) ** 2
    return jnp.mean(w * (d - data) ** 2)

  def step(p, o, key):
    l, g = jax.value_and_grad(loss_fn)(p, key)
    u, o = opt.update(g, o, p)
    return optax.apply_updates(p, u), o, l

  o, losses = opt.init(params), []
  step = jit_fast(step, params, o, jax.random.key(0))
  for i in range(steps):
    params, o, l = step(params, o, jax.random.key(100 + i))
    losses.append(float(l))
  return np.array(losses)


def test_bf16_and_fp32_loss_curves_agree():
  a, b = _edm_loss_curve("float32"), _edm_loss_curve("bfloat16")
  assert np.isfinite(b).all()
  assert a[-5:].mean() < a[:5].mean()           # it learns
  np.testing.assert_allclose(b, a, rtol=0.05)  # same noise draws: bf16 tracks fp32 step by step


def _np_down(x, f):
  """torch conv2d(x, f⊗f/(Σf)², stride 2, padding (len f − 1)//2), depthwise, NHWC, float64."""
  f = np.asarray(f, np.float64) / np.sum(f)
  p = (len(f) - 1) // 2
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  n = (xp.shape[1] - len(f)) // 2 + 1
  out = np.zeros((x.shape[0], n, n, x.shape[3]))
  for i in range(n):
    for j in range(n):
      win = xp[:, 2 * i:2 * i + len(f), 2 * j:2 * j + len(f)]
      out[:, i, j] = np.einsum("bhwc,h,w->bc", win, f, f)
  return out


def _np_up(x, f):
  """torch conv_transpose2d(x, 4·f⊗f/(Σf)², stride 2, padding p): out[2i + a − p] += x[i]·k[a]."""
  f = 2 * np.asarray(f, np.float64) / np.sum(f)
  p = (len(f) - 1) // 2
  h = x.shape[1]
  full = np.zeros((x.shape[0], 2 * (h - 1) + len(f), 2 * (h - 1) + len(f), x.shape[3]))
  for i in range(h):
    for j in range(h):
      full[:, 2 * i:2 * i + len(f), 2 * j:2 * j + len(f)] += x[:, i:i + 1, j:j + 1] * np.outer(f, f)[None, :, :, None]
  return full[:, p:p + 2 * h, p:p + 2 * h]


@pytest.mark.parametrize("f", [(1, 1), (1, 3, 3, 1)])
def test_fir_resampling_matches_torch_semantics(f):
  x = np.random.default_rng(0).normal(size=(1, 6, 6, 2))
  np.testing.assert_allclose(unet_song.fir_downsample(jnp.asarray(x, jnp.float32), f), _np_down(x, f), atol=1e-5)
  np.testing.assert_allclose(unet_song.fir_upsample(jnp.asarray(x, jnp.float32), f), _np_up(x, f), atol=1e-5)
