"""diffusers' DDPM UNet2DModel (google/ddpm-cifar10-32 layout, safetensors) → ``ddpm_cifar10``: equal outputs.

tests/fixtures/ddpm holds a tiny UNet2DModel in google/ddpm-cifar10-32's configuration with random weights,
saved by the safetensors library (F16), and the official network's ε̂ on three timesteps, both written by
scripts/make_ddpm_fixture.py. No torch here: jaxgen.convert.ddpm parses the file with numpy.

Tolerance 1e-5·(1 + |ε̂|): float32 on both sides with the same (float16-representable) weights; the
difference is the order of float32 accumulation. A wrong layout, level order, padding or embedding is O(1).
"""

from __future__ import annotations

import functools
import json
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as M
from jaxgen.convert import ddpm
from tests.fixtures.fast_compile import jit_fast

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ddpm")
ST = os.path.join(FIX, "diffusion_pytorch_model.safetensors")


@functools.cache
def _converted():
  sd, _ = ddpm.read_safetensors(ST)
  flat, meta = ddpm.convert_state_dict(sd, resolution=16)
  return sd, flat, meta


def test_config_inferred():
  _, _, meta = _converted()
  o = meta["overrides"]
  assert (o["ch"], o["ch_mult"], o["num_res_blocks"], o["attn_resolutions"]) == (32, [1, 2], 1, [8])
  assert meta["precond"]["name"] == "ddpm" and meta["precond"]["prediction"] == "eps"


def test_eps_matches_diffusers():
  _, flat, meta = _converted()
  params = ddpm.unflatten(flat)["params"]
  net = M.create(meta["model"], **meta["overrides"])
  z = np.load(os.path.join(FIX, "io.npz"))
  x, t = jnp.asarray(z["x"].transpose(0, 2, 3, 1)), jnp.asarray(z["t"], jnp.float32)
  fn = jit_fast(lambda p, x, t: net.apply({"params": p}, x, t), params, x, t)
  got = np.asarray(fn(params, x, t)).transpose(0, 3, 1, 2)
  want = z["eps"]
  assert float(np.abs(want).max()) > 0.5
  err = np.abs(got - want) / (1 + np.abs(want))
  assert float(err.max()) <= 1e-5, float(err.max())


def test_original_attention_names_convert_identically():
  """diffusers' first conversion named the attention layers query/key/value/proj_attn."""
  sd, flat, _ = _converted()
  old = {k.replace("to_q.", "query.").replace("to_k.", "key.").replace("to_v.", "value.")
         .replace("to_out.0.", "proj_attn."): v for k, v in sd.items()}
  assert old.keys() != sd.keys()
  flat_old, _ = ddpm.convert_state_dict(old, resolution=16)
  assert flat_old.keys() == flat.keys() and all(np.array_equal(flat_old[k], flat[k]) for k in flat)


def _write_safetensors(path, tensors):
  header, blobs, off = {}, [], 0
  for name, (dt, a) in tensors.items():
    b = a.tobytes()
    header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
  h = json.dumps(header).encode()
  path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_safetensors_dtypes(tmp_path):
  a = np.array([[1.5, -2.25], [3.0, 1e-3]], np.float32)
  bf16 = (a.view(np.uint32) >> 16).astype("<u2")   # exact for these values but 1e-3 (truncated)
  path = tmp_path / "t.safetensors"
  _write_safetensors(path, {"f32": ("F32", a), "f16": ("F16", a.astype("<f2")), "bf16": ("BF16", bf16),
                            "i64": ("I64", np.arange(3, dtype="<i8"))})
  sd, _ = ddpm.read_safetensors(path)
  np.testing.assert_array_equal(sd["f32"], a)
  np.testing.assert_array_equal(sd["f16"], a.astype(np.float16).astype(np.float32))
  np.testing.assert_array_equal(sd["bf16"], (bf16.astype(np.uint32) << 16).view(np.float32))
  assert sd["bf16"][0, 0] == 1.5 and sd["i64"].tolist() == [0, 1, 2]


def test_cli_and_errors(tmp_path):
  out = tmp_path / "ddpm.npz"
  assert ddpm.main([ST, str(out)]) == 0   # resolution 16 from the config.json beside the weights
  variables, meta = ddpm.load(str(out))
  assert M.count_params(variables["params"]) == 702_499   # the diffusers module's parameter count
  assert meta["overrides"]["attn_resolutions"] == [8]
  bad = tmp_path / "bad.safetensors"
  bad.write_bytes(b"\xff" * 16)
  assert ddpm.main([str(bad), str(out)]) == 2
  with pytest.raises(ddpm.DdpmConvertError, match="UNet2DModel"):
    ddpm.convert_state_dict({"x.weight": np.zeros((1,), np.float32)})


def test_released_layout():
  """The full google/ddpm-cifar10-32 state dict (shapes of diffusers' module in its config, from
  scripts/make_ddpm_fixture.py) maps onto the default ``ddpm_cifar10`` (35,746,307 parameters)."""
  with open(os.path.join(FIX, "released_shapes.json")) as f:
    row = json.load(f)
  sd = {k: np.broadcast_to(np.float32(0), s) for k, s in row["shapes"].items()}
  flat, meta = ddpm.convert_state_dict(sd)
  o = meta["overrides"]
  assert (o["ch"], o["ch_mult"], o["num_res_blocks"], o["attn_resolutions"]) == (128, [1, 2, 2, 2], 2, [16])
  assert sum(v.size for v in flat.values()) == row["num_params"] == 35_746_307


def test_config_checked(tmp_path):
  with open(os.path.join(FIX, "config.json")) as f:
    cfg = json.load(f)
  assert ddpm.check_config(cfg) == 16
  for key, value in (("flip_sin_to_cos", True), ("downsample_padding", 1), ("norm_num_groups", 16)):
    with pytest.raises(ddpm.DdpmConvertError, match=key):
      ddpm.check_config({**cfg, key: value})
  with pytest.raises(ddpm.DdpmConvertError, match="CrossAttnDownBlock2D"):
    ddpm.check_config({**cfg, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"]})
  bad = tmp_path / "config.json"
  bad.write_text(json.dumps({**cfg, "freq_shift": 0}))
  assert ddpm.main([ST, str(tmp_path / "x.npz"), "--config", str(bad)]) == 2
