"""EDM's augmentation pipe (jaxgen.diffusion.augment) and its wiring into the diffusion task.

Semantics from the official NVlabs/edm ``training/augment.py``; the geometric resampling is checked
against a literal step-by-step numpy transcription of EDM's algorithm (reflect padding by the batch's
margin, zero-insertion + sym6 convolution, affine_grid/grid_sample with align_corners=False, stride-2
sym6 convolution, crop), written below for this test."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion as dfn
from jaxgen.diffusion import augment

# EDM config F (CIFAR-10): training/train.py augment_kwargs with --augment=0.12.
CIFAR = dict(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)


def _smooth(h, w, c=3, y=None, x=None):
  """A smooth test image in [-1, 1] (low frequencies only), optionally at pixel coordinates (y, x)."""
  if y is None:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
  y, x = y / max(h, w), x / max(h, w)
  chans = [np.sin(2.0 * x + 1.0 * y), np.cos(1.5 * y - x), np.tanh(x * y - 0.2)]
  return np.stack(chans[:c], -1).astype(np.float32)


def _random(n, h, w, c=3, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)).astype(np.float32)


# --- EDM's geometric step, transcribed literally (float64 numpy, NHWC) ---------------------------

def _t(tx, ty):
  return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def _s(sx, sy):
  return np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], np.float64)


def _edm_reference(images, g_invs):
  hz = np.asarray(augment.SYM6)
  hz_pad = len(hz) // 4
  n, h, w, c = images.shape
  cx, cy = (w - 1) / 2, (h - 1) / 2
  corners = np.einsum("bij,jk->bik", g_invs, np.array([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]]).T)
  flat = corners[:, :2].transpose(1, 0, 2).reshape(2, -1)
  margin = np.concatenate([-flat, flat]).max(axis=1) + np.array([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2)
  mx0, my0, mx1, my1 = np.ceil(np.minimum(np.maximum(margin, 0), [w - 1, h - 1] * 2)).astype(int)
  x = np.pad(images.astype(np.float64), ((0, 0), (my0, my1), (mx0, mx1), (0, 0)), mode="reflect")
  g = np.einsum("ij,bjk->bik", _t((mx0 - mx1) / 2, (my0 - my1) / 2), g_invs)

  def up(a, axis):  # zero insertion, then conv2d(weight=h[::-1], padding=6)
    a = np.moveaxis(a, axis, -1)
    z = np.zeros(a.shape[:-1] + (2 * a.shape[-1] - 1,))
    z[..., ::2] = a
    full = np.apply_along_axis(lambda r: np.convolve(r, hz, "full"), -1, z)
    return np.moveaxis(full[..., 5:5 + 2 * a.shape[-1]], -1, axis)

  x = up(up(x, 2), 1)
  g = np.einsum("ij,bjk,kl->bil", _t(-0.5, -0.5), np.einsum("ij,bjk,kl->bil", _s(2, 2), g, _s(0.5, 0.5)),
                _t(0.5, 0.5))
  ho, wo, hu, wu = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2, x.shape[1], x.shape[2]
  theta = np.einsum("ij,bjk,kl->bil", _s(2 / wu, 2 / hu), g, _s(wo / 2, ho / 2))  # affine_grid's theta
  xn, yn = (2 * np.arange(wo) + 1) / wo - 1, (2 * np.arange(ho) + 1) / ho - 1
  out = np.zeros((n, ho, wo, c))
  for b in range(n):  # grid_sample(bilinear, zeros, align_corners=False)
    px = ((theta[b, 0, 0] * xn[None] + theta[b, 0, 1] * yn[:, None] + theta[b, 0, 2] + 1) * wu - 1) / 2
    py = ((theta[b, 1, 0] * xn[None] + theta[b, 1, 1] * yn[:, None] + theta[b, 1, 2] + 1) * hu - 1) / 2
    for yi in (np.floor(py).astype(int), np.floor(py).astype(int) + 1):
      for xi in (np.floor(px).astype(int), np.floor(px).astype(int) + 1):
        wgt = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi)) * ((xi >= 0) & (xi < wu) & (yi >= 0) & (yi < hu))
        out[b] += wgt[..., None] * x[b, np.clip(yi, 0, hu - 1), np.clip(xi, 0, wu - 1)]

  def down(a, axis):  # conv2d(weight=h, stride=2, padding=5), then crop hz_pad
    a = np.moveaxis(a, axis, -1)
    ap = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(5, 5)])
    k = (a.shape[-1] - 2) // 2 + 1
    d = sum(hz[j] * ap[..., j:j + 2 * k:2][..., :k] for j in range(12))
    return np.moveaxis(d[..., hz_pad:-hz_pad], -1, axis)

  return down(down(out, 2), 1)


# --- tests ---------------------------------------------------------------------------------------

def test_label_dim_and_order():
  assert dfn.AugmentPipe is augment.AugmentPipe
  pipe = augment.AugmentPipe(**CIFAR)
  assert pipe.label_dim == 9  # EDM config F networks have augment_dim=9
  assert pipe.label_names == ("xflip", "yflip", "scale", "rotate_frac_cos", "rotate_frac_sin", "aniso_cos",
                              "aniso_sin", "translate_frac_x", "translate_frac_y")
  every = augment.AugmentPipe(**{op: 1 for op in augment.OPS})
  assert every.label_dim == 19 and every.label_names[2:6] == ("rotate_int_x", "rotate_int_y", "translate_int_x",
                                                              "translate_int_y")
  assert every.label_names[-6:] == ("brightness", "contrast", "lumaflip", "hue_cos", "hue_sin", "saturation")
  assert augment.AugmentPipe().label_dim == 0 and not augment.AugmentPipe().active
  assert hash(pipe) == hash(augment.AugmentPipe.from_config(CIFAR))


def test_bad_input_is_one_clear_error():
  with pytest.raises(ValueError, match="p=-0.1"):
    augment.AugmentPipe(p=-0.1)
  with pytest.raises(ValueError, match="'rotate' is unknown"):
    augment.AugmentPipe.from_config({"p": 0.1, "rotate": 1})
  pipe = augment.AugmentPipe(**CIFAR)
  with pytest.raises(ValueError, match="NCHW"):
    pipe(jax.random.key(0), jnp.zeros((2, 3, 8, 8)))
  with pytest.raises(ValueError, match="NHWC"):
    pipe(jax.random.key(0), jnp.zeros((8, 8, 3)))


def test_sym6_resampling_is_identity_and_matches_edm():
  h = np.asarray(augment.SYM6, np.float64)
  np.testing.assert_allclose(h.sum(), np.sqrt(2), atol=1e-12)
  np.testing.assert_allclose([h[:12 - 2 * n] @ h[2 * n:] for n in range(6)], np.eye(6)[0], atol=1e-11)
  x = _random(4, 12, 16)
  # Random EDM config-F transforms (all four geometric ops firing) on a non-square image, and G⁻¹ = I.
  pipe = augment.AugmentPipe(p=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)

  @jax.jit
  def run(key, images):
    g = jax.vmap(lambda q: pipe._geometric_matrix(q, (12, 16)))(pipe.sample_params(key, 4))
    g = jnp.concatenate([jnp.broadcast_to(jnp.eye(3), (4, 3, 3)), g])
    return g[4:], jax.vmap(augment.resample_one)(jnp.concatenate([images, images]), g)

  g, out = run(jax.random.key(3), jnp.asarray(x))
  ident, ours = np.asarray(out[:4]), np.asarray(out[4:])
  np.testing.assert_allclose(ident, x, atol=2e-6)  # measured max error 2.4e-7 (float32 rounding)
  ref = _edm_reference(x, np.asarray(g, np.float64))
  np.testing.assert_allclose(ours, ref, atol=2e-5)  # measured ≤ 2.3e-6


def test_p0_gives_zero_labels_and_the_input():
  # EDM runs the resampling whenever a geometric op is enabled, with G⁻¹ = I for examples where none
  # fires (identity up to rounding, see above); the pipe returns those examples unchanged.
  x = _random(8, 8, 8)
  out, labels = augment.AugmentPipe(**{**CIFAR, "p": 0.0})(jax.random.key(1), jnp.asarray(x))
  assert labels.shape == (8, 9) and not np.any(np.asarray(labels))
  np.testing.assert_array_equal(np.asarray(out), x)


def test_forced_xflip_mirrors_exactly_and_labels():
  x = _random(64, 8, 8)
  out, labels = augment.AugmentPipe(p=0.12, xflip=1e8)(jax.random.key(2), jnp.asarray(x))
  out, flip = np.asarray(out), np.asarray(labels)[:, 0]
  assert set(np.unique(flip)) == {0.0, 1.0} and 16 <= flip.sum() <= 48  # a fair coin: Binomial(64, ½)
  np.testing.assert_array_equal(out[flip == 1], x[flip == 1][:, :, ::-1])
  np.testing.assert_array_equal(out[flip == 0], x[flip == 0])


def test_quarter_turn_and_integer_shift_through_the_fractional_ops():
  pipe = augment.AugmentPipe(p=1, rotate_frac=1, translate_frac=1)
  img = np.stack([_smooth(32, 32)] * 3)
  std = pipe.translate_frac_std * 32
  params = {"rotate_frac": jnp.asarray([np.pi / 2, 0.0, -np.pi], jnp.float32),
            "translate_frac": jnp.asarray([[0.0, 0.0], [3 / std, -2 / std], [0.0, 0.0]], jnp.float32)}
  out, labels = pipe.apply(jnp.asarray(img), params)
  out, labels = np.asarray(out), np.asarray(labels)
  np.testing.assert_allclose(labels[0], [-1, 1, 0, 0], atol=1e-6)   # [cos θ − 1, sin θ, a, b]
  np.testing.assert_allclose(labels[1], [0, 0, 3 / std, -2 / std], atol=1e-6)
  inner = (slice(6, -6), slice(6, -6))
  # G⁻¹ = R(θ) maps output pixels to input pixels: θ = +90° is np.rot90 over (H, W). Along a reversed
  # axis the asymmetric sym6 filter's delays add instead of cancelling: EDM's quarter turn reads the
  # source δ = Σk·h_k/Σh_k − 5 = 0.098 px off (a linear ramp measures 0.0983), so compare with the
  # smooth image evaluated at the shifted source coordinates (measured max error 1e-5) and with
  # np.rot90 itself at the looser bound that shift implies.
  delta = float(np.arange(12) @ np.asarray(augment.SYM6) / np.sqrt(2)) - 5.0
  i, j = np.mgrid[0:32, 0:32].astype(np.float64)
  np.testing.assert_allclose(out[0][inner], _smooth(32, 32, y=j, x=31 - i - delta)[inner], atol=5e-5)
  np.testing.assert_allclose(out[2][inner], _smooth(32, 32, y=31 - i - delta, x=31 - j - delta)[inner], atol=5e-5)
  np.testing.assert_allclose(out[0][inner], np.rot90(img[0])[inner], atol=1e-2)
  # translate_frac (3, −2) px: out(x, y) = in(x − 3, y + 2), exact (an even shift at 2×).
  np.testing.assert_allclose(out[1][6:-6, 6:-6], img[1][8:-4, 3:-9], atol=2e-6)


def test_fire_rates_are_p_times_strength():
  n = 4000
  pipe = augment.AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=0.5, translate_frac=1,
                             brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
  labels = np.asarray(pipe.labels(pipe.sample_params(jax.random.key(5), n)))
  names = pipe.label_names
  rate = lambda *cols: np.mean(np.any(labels[:, [names.index(c) for c in cols]] != 0, axis=1))
  # coin-flip ops label 1 half the time they fire
  expected = {("xflip",): 0.5, ("yflip",): 0.06, ("scale",): 0.12, ("rotate_frac_cos", "rotate_frac_sin"): 0.12,
              ("aniso_cos", "aniso_sin"): 0.06, ("translate_frac_x", "translate_frac_y"): 0.12,
              ("brightness",): 0.12, ("contrast",): 0.12, ("lumaflip",): 0.06, ("hue_cos", "hue_sin"): 0.12,
              ("saturation",): 0.12}
  for cols, q in expected.items():
    assert abs(rate(*cols) - q) < 5 * np.sqrt(q * (1 - q) / n), (cols, rate(*cols), q)
  w = labels[:, names.index("scale")]
  w = w[w != 0]
  assert abs(np.mean(w)) < 0.25 and 0.8 < np.std(w) < 1.2  # N(0, 1) draws, ≈480 of them
  # aniso frame rotated with probability aniso_rotate_prob = ½ among the fired examples
  fired = labels[:, names.index("aniso_cos")] != 0
  assert abs(np.mean(labels[fired, names.index("aniso_sin")] != 0) - 0.5) < 0.16


def test_examples_are_independent_of_the_batch_and_of_sharding():
  pipe = augment.AugmentPipe(**{**CIFAR, "p": 0.5})
  x = jnp.asarray(_random(16, 8, 8, seed=3))
  key = jax.random.key(11)
  out, labels = pipe(key, x)
  out8, labels8 = pipe(key, x[:8])
  np.testing.assert_array_equal(np.asarray(labels8), np.asarray(labels)[:8])
  np.testing.assert_allclose(np.asarray(out8), np.asarray(out)[:8], atol=1e-6)
  assert not np.allclose(np.asarray(out)[:8], np.asarray(out)[8:])
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  out_s, labels_s = pipe(key, jax.device_put(x, sharding))
  np.testing.assert_array_equal(np.asarray(labels_s), np.asarray(labels))
  np.testing.assert_allclose(np.asarray(out_s), np.asarray(out), atol=1e-6)


def _task_config(model, **overrides):
  from jaxgen import configs  # noqa: PLC0415

  c = configs.base_config()
  c.data.name = "cifar10"
  c.model.name = model
  c.model.overrides = overrides
  c.task.name = "diffusion"
  c.task.augment = dict(CIFAR)
  return c


def test_diffusion_task_trains_through_the_pipe():
  from jaxgen.tasks import diffusion  # noqa: PLC0415

  c = _task_config("small_unet", resolution=8, in_channels=3, channels=8, channel_mult=(1,), num_blocks=1,
                   dropout=0.0)
  c.task.augment.p = 0.5
  task = diffusion.Task(c)
  assert task.augment.label_dim == 9 and task.model.augment_dim == 9
  x = jnp.asarray(_random(8, 8, 8, seed=4))
  variables = task.init_variables(jax.random.key(0), {"image": x})
  params, ms = variables.pop("params"), variables
  # the output conv is zero-initialized (no gradient reaches the embedding at step 0): perturb it
  params = jax.tree_util.tree_map(lambda p: p + 0.01, params)
  loss_fn = lambda p: task.loss(p, ms, {"image": x}, jax.random.key(1), True)[0]
  loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
  g_aug = np.asarray(grads["embed"]["augment"]["kernel"])
  assert np.isfinite(float(loss)) and g_aug.shape == (9, 8) and np.all(np.isfinite(g_aug))
  assert np.abs(g_aug).max() > 0
  # off: absent, None or p=0 gives no pipe and no augment_dim (today's behaviour)
  for aug in (None, dict(CIFAR, p=0.0)):
    c.task.augment = aug
    assert diffusion.Task(c).augment is None and diffusion.Task(c).model.augment_dim == 0
  c.task.augment = dict(CIFAR)
  c.model.overrides.augment_dim = 4
  with pytest.raises(ValueError, match="augment_dim=4"):
    diffusion.Task(c)


def test_ddpmpp_cifar10_with_the_cifar_pipe_has_edm_params():
  from jaxgen import models  # noqa: PLC0415
  from jaxgen.tasks import diffusion  # noqa: PLC0415

  task = diffusion.Task(_task_config("ddpmpp_cifar10"))
  shapes = jax.eval_shape(task.init_variables, jax.random.key(0), {"image": jnp.zeros((1, 32, 32, 3))})
  # EDM config F DDPM++ with augment_dim=9, unconditional (official train.py network): 55,733,891.
  assert models.count_params(shapes["params"]) == 55_733_891
