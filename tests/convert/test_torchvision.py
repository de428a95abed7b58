"""torchvision MobileNetV2/V3, ShuffleNetV2 and GoogLeNet state dicts → jaxgen's registry networks: equal logits.

tests/fixtures/torchvision_nets.npz (scripts/make_torchvision_fixture.py, torch 2.13 / torchvision 0.29.1)
holds torchvision's own eval-mode logits of its default full-size networks (1000 classes; GoogLeNet with aux
heads and ``transform_input=True``) on two 72² images, with weights drawn by
``jaxgen.convert.torchvision.synthetic_state_dict`` (random convs, linears and BatchNorm running statistics):
the test rebuilds the same state dict from the stored shapes (its checksum guards that) and converts it.
No torch here. tests/fixtures/torchvision_pth.npz holds the bytes of a real ``torch.save`` file for the
torch-free reader.

Tolerance: max |Δlogit| ≤ 3e-5 · max |logit|, for the logits and for their difference between the two
images. Both sides compute in float32 with the same weights; what remains is the order of float32
accumulation over ~50 layers (measured 1e-7 … 4e-6 relative). The defects it guards against are ≥ 200×
larger (docs/convert.md: a BatchNorm ε of 1e-3 for 1e-5 or back 0.7–2.6%, no input normalization 34%, the
unpermuted ShuffleNet case below O(1)).
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen.models as M
from jaxgen.convert import torchvision as tvc
from jaxgen.convert._common import unflatten
from jaxgen.errors import ConfigError
from jaxgen.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD, normalize_input
from tests.fixtures.fast_compile import jit_fast

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")
NAMES = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
         "googlenet"]
RTOL = 3e-5


@functools.cache
def _fixture():
  with np.load(os.path.join(FIX, "torchvision_nets.npz")) as z:
    return {k: z[k] for k in z.files}


def _images():
  return jnp.asarray(_fixture()["images"].astype(np.float32) / 127.5 - 1.0)   # jaxgen.data.images.to_float


@functools.cache
def _state_dict(name):
  z = _fixture()
  shapes = json.loads(str(z[f"{name}/shapes"]))
  sd = tvc.synthetic_state_dict(shapes, json.loads(str(z["meta"]))["seed"])
  checksum = sum(float(np.abs(v.astype(np.float64)).sum()) for v in sd.values())
  assert checksum == pytest.approx(float(z[f"{name}/checksum"]), rel=1e-12), "not the fixture's weights"
  return sd


@functools.cache
def _forward(name, overrides_json):
  """The network's inference logits, compiled once per network (variables are arguments)."""
  net = M.create(name, **json.loads(overrides_json))
  like = jax.eval_shape(lambda: net.init(jax.random.key(0), _images()))
  return jit_fast(lambda v, x: net.apply(v, x), like, _images())


def _logits(name, flat, meta):
  return np.asarray(_forward(name, json.dumps(meta["overrides"], sort_keys=True))(unflatten(flat), _images()))


def _close(got, want):
  scale = float(np.abs(want).max())
  assert scale > 0.5, "degenerate fixture"
  err = float(np.abs(got - want).max())
  err_diff = float(np.abs((got[0] - got[1]) - (want[0] - want[1])).max())
  assert err <= RTOL * scale and err_diff <= RTOL * scale, (err / scale, err_diff / scale)


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_torchvision(name):
  flat, meta = tvc.convert(_state_dict(name), name)
  assert meta["overrides"]["input_norm"] == ("none" if name == "googlenet" else "imagenet")
  want = _fixture()[f"{name}/logits"]
  _close(_logits(name, flat, meta), want)
  # released layout: the parameter count is torchvision's (docs/reference.md §4; GoogLeNet without aux heads)
  n = sum(v.size for k, v in flat.items() if k.startswith("params/"))
  assert n == {"mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
               "shufflenet_v2_x0_5": 1_366_792, "shufflenet_v2_x1_0": 2_278_604, "googlenet": 6_624_904}[name]


def test_shufflenet_needs_the_channel_relabelling(monkeypatch):
  """Without the permutations (jaxgen's even/odd split fed torchvision's channel order) the logits are wrong."""
  name = "shufflenet_v2_x0_5"
  orig = tvc.shufflenet_permutations
  ident = lambda n, units: {k: np.arange(len(v)) for k, v in orig(n, units).items()}
  monkeypatch.setattr(tvc, "shufflenet_permutations", ident)
  flat, meta = tvc.convert(_state_dict(name), name)
  got, want = _logits(name, flat, meta), _fixture()[f"{name}/logits"]
  assert float(np.abs(got - want).max()) > 0.1 * float(np.abs(want).max())


@pytest.mark.parametrize("size", ["x0_5", "x1_0", "x1_5", "x2_0"])
def test_shufflenet_permutations_for_every_width(size):
  """Every stage of every torchvision width has a relabelling; each is a bijection, and it routes each channel
  from the same producing conv to the same reading conv as torchvision (checked by following positions)."""
  from jaxgen.models.shufflenet import V2_CONFIGS
  for c, units in zip(V2_CONFIGS[size][0], (4, 8, 4)):
    n = c // 2
    perms = tvc.shufflenet_permutations(n, units)
    assert all(sorted(p.tolist()) == list(range(len(p))) for p in perms.values())
    tv = dict(tvc._stage_routes(n, units, "torchvision"))
    for (branch, u, j), (cu, ci) in tvc._stage_routes(n, units, "jaxgen"):
      consumer = ("end", perms["end"][ci]) if cu == "end" else (cu, perms[("in", cu)][ci])
      assert tv[(branch, u, int(perms[(branch, u)][j]))] == consumer


def _write_safetensors(path, sd):
  header, chunks, off = {}, [], 0
  for k, v in sd.items():
    a = np.ascontiguousarray(v)
    dt = {"float32": "F32", "int64": "I64"}[str(a.dtype)]
    header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
    chunks.append(a.tobytes())
    off += a.nbytes
  h = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def test_cli_and_classification_init_from(tmp_path):
  """``python -m jaxgen.convert.torchvision IN OUT --model NAME`` on a .safetensors file, then what
  ``--config.model.init_from=OUT`` does (train._init_from → load_into) for a classification task configured
  with the printed model.name / model.overrides: every variable is the converted one."""
  from jaxgen import configs
  from jaxgen.tasks import classification

  name = "mobilenet_v3_small"
  src, out = tmp_path / "w.safetensors", tmp_path / "w.npz"
  _write_safetensors(src, {f"module.{k}": v for k, v in _state_dict(name).items()})   # DDP prefix dropped
  assert tvc.main([str(src), str(out), "--model", name]) == 0
  variables, meta = tvc.load(str(out))
  flat, _ = tvc.convert(_state_dict(name), name)
  c = configs.base_config()
  c.task.name = "classification"
  c.model.name = meta["model"]
  c.model.overrides.update(meta["overrides"])
  task = classification.Task(c)
  like = jax.eval_shape(lambda: task.init_variables(jax.random.key(0), {"image": _images(), "label": np.zeros(2)}))
  filled = tvc.load_into(str(out), like)
  assert set(filled) == {"params", "batch_stats"}
  got = {"/".join(str(getattr(p, "key", p)) for p in path): np.asarray(a)
         for path, a in jax.tree_util.tree_flatten_with_path(filled)[0]}
  assert got.keys() == flat.keys() and all(np.array_equal(got[k], flat[k]) for k in flat)
  assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(filled)
  # a network built without the converter's overrides is refused with the fix
  c.model.overrides.num_classes = 10
  wrong = jax.eval_shape(lambda: classification.Task(c).init_variables(jax.random.key(0), {"image": _images(),
                                                                                         "label": np.zeros(2)}))
  with pytest.raises(ConfigError, match="model.overrides"):
    tvc.load_into(str(out), wrong)


def test_check_network_refuses_what_shapes_cannot_show():
  """An ε or an input normalization leaves every shape alone: check_network compares the module fields."""
  meta = {"model": "mobilenet_v2", "overrides": {"input_norm": "imagenet", "num_classes": 1000}}
  tvc.check_network(meta, "mobilenet_v2", {"input_norm": "imagenet", "dropout": 0.0, "bn_momentum": 0.99})
  with pytest.raises(ConfigError, match="bn_eps=0.001"):        # experiments/mobilenet's TF recipe value
    tvc.check_network(meta, "mobilenet_v2", {"input_norm": "imagenet", "bn_eps": 1e-3})
  with pytest.raises(ConfigError, match="input_norm='none'"):
    tvc.check_network(meta, "mobilenet_v2", {})
  with pytest.raises(ConfigError, match="model.name"):
    tvc.check_network(meta, "mobilenet_v3_small", {"input_norm": "imagenet"})
  shuffle = {"model": "shufflenet_v2_x0_5", "overrides": {"downsample": "torchvision", "stage_channels": [48, 96, 192],
                                                          "input_norm": "imagenet"}}
  tvc.check_network(shuffle, "shufflenet_v2_x0_5", {"downsample": "torchvision", "stage_channels": (48, 96, 192),
                                                    "input_norm": "imagenet"})


def test_wrong_model_and_googlenet_aux_heads(tmp_path, capsys):
  src = tmp_path / "v2.npz"
  np.savez(src, **_state_dict("mobilenet_v2"))
  assert tvc.main([str(src), str(tmp_path / "o.npz"), "--model", "mobilenet_v3_large"]) == 2
  assert "torchvision" in capsys.readouterr().err
  assert tvc.main([str(tmp_path / "missing.pth"), str(tmp_path / "o.npz"), "--model", "googlenet"]) == 2
  sd = _state_dict("googlenet")
  flat, meta = tvc.convert(sd, "googlenet")                      # aux heads dropped (untrained in torchvision)
  assert not any("aux" in k for k in flat) and "aux_logits" not in meta["overrides"]
  flat, meta = tvc.convert(sd, "googlenet", aux_logits=True, transform_input=False)
  assert meta["overrides"]["aux_logits"] is True and meta["overrides"]["input_norm"] == "imagenet"
  np.testing.assert_array_equal(flat["params/aux2/fc2/kernel"], sd["aux2.fc2.weight"].T)
  np.testing.assert_array_equal(flat["batch_stats/aux1/conv/bn/var"], sd["aux1.conv.bn.running_var"])


def test_googlenet_aux_heads_match_torchvision():
  """--aux_logits: torchvision's InceptionAux (adaptive 4×4 average pool, 1×1 conv, flatten in NCHW order,
  fc1, fc2) on feature maps of side 14 (the 224² network: overlapping pooling cells), 9 and 8."""
  from jaxgen.models.googlenet import AuxHead
  variables = unflatten(tvc.convert(_state_dict("googlenet"), "googlenet", aux_logits=True)[0])
  z = _fixture()
  seed = json.loads(str(z["meta"]))["seed"]
  for key, (c, n) in {"aux1_14": (512, 14), "aux1_9": (512, 9), "aux2_8": (528, 8)}.items():
    head = key.split("_")[0]
    feat = tvc.synthetic_array(seed, f"googlenet/{key}", (2, c, n, n), 0.0, 2.0).transpose(0, 2, 3, 1)
    v = {col: variables[col][head] for col in ("params", "batch_stats")}
    got = np.asarray(jit_fast(lambda v, x: AuxHead(1000).apply(v, x), v, feat)(v, feat))
    _close(got, z[f"googlenet/{key}"])


def test_input_normalization():
  """'imagenet' is torchvision's Normalize of u8/255 for jaxgen's u8/127.5 − 1 images; 'none' is identity."""
  u8 = np.array([0, 37, 128, 255], np.float32)
  x = jnp.asarray(np.stack([u8] * 3, -1)[None, None] / 127.5 - 1.0)
  got = np.asarray(normalize_input(x, "imagenet"))[0, 0]
  want = (u8[:, None] / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  assert normalize_input(x, "none") is x
  with pytest.raises(ValueError, match="input_norm"):
    normalize_input(x, "caffe")


@pytest.mark.parametrize("fmt", ["pth", "pth_legacy"])
def test_torch_free_pth_reader(tmp_path, fmt):
  """A real torch.save file, zip or legacy format (float32/16, bfloat16, int64, bool, a transposed view, two
  views of one storage), reads back exactly without torch; a pickle asking for any other global is refused
  before it runs."""
  with np.load(os.path.join(FIX, "torchvision_pth.npz")) as z:
    path = tmp_path / "sd.pth"
    path.write_bytes(z[fmt].tobytes())
    refs = {k[len("ref/"):]: z[k] for k in z.files if k.startswith("ref/")}
  for got in (tvc.read_pth(str(path)), tvc.read_state_dict(str(path))):   # the latter: torch absent here
    assert list(got) == list(refs)
    for k, want in refs.items():
      a = np.asarray(got[k])
      assert a.shape == want.shape and np.array_equal(a.astype(want.dtype), want), k
  evil = tmp_path / "evil.pth"
  with zipfile.ZipFile(evil, "w") as zf:
    zf.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo hacked'\ntR.")
  with pytest.raises(tvc.TorchvisionConvertError, match="os.system"):
    tvc.read_pth(str(evil))
  evil_legacy = tmp_path / "evil_legacy.pth"
  evil_legacy.write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
  with pytest.raises(tvc.TorchvisionConvertError, match="os.system"):
    tvc.read_pth(str(evil_legacy))
  plain = tmp_path / "plain.pth"
  plain.write_bytes(pickle.dumps({"a": 1}))
  with pytest.raises(tvc.TorchvisionConvertError, match="not a torch.save file"):
    tvc.read_pth(str(plain))
