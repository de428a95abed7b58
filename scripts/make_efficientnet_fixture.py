"""Writes tests/fixtures/efficientnet/tiny_efficientnet.npz: a tiny random EfficientNet from torchvision and
from Keras, saved in their own file formats, with their outputs.

    /work/torchenv/bin/python scripts/make_efficientnet_fixture.py      # torch, torchvision, keras, h5py

Both networks are the libraries' own EfficientNet classes with width 0.1 and depth 0.5 (the B0 block
table, so every code path of B0 runs: expand ratio 1 and 6, kernels 3 and 5, strides 1 and 2, identity
skips in the repeated blocks), 10 classes, at 32×32 — even at every stride-2 conv, where TF "SAME"
padding and PyTorch's symmetric padding differ:

  * torchvision: ``torchvision.models.efficientnet.EfficientNet(_efficientnet_conf('efficientnet_b0',
    width_mult=0.1, depth_mult=0.5), dropout=0.2, num_classes=10)`` (BatchNorm ε 1e-5 as for B0–B4).
  * Keras 3 (torch backend): ``keras.src.applications.efficientnet.EfficientNet(0.1, 0.5, 32,
    weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)`` (logits).

Random weights: the libraries' initializers, then random BatchNorm γ, β, running means and running
variances in [0.01, 2] (so ε 1e-3 vs 1e-5 changes the output visibly), random SE/classifier biases and,
in Keras, a random input ``Normalization`` mean/variance. Eval mode.

Saved: ``tv_pth`` / ``tv_safetensors`` (the bytes of ``torch.save(state_dict)`` and of
``safetensors.torch.save_file``), ``tv_x`` [2, 32, 32, 3] NHWC network input, ``tv_logits`` [2, 10];
``keras_weights_h5`` (``model.save_weights``, Keras 3 format), ``keras_legacy_h5`` (Keras 2 layout:
a group per layer with ``weight_names``), ``keras_x`` [2, 32, 32, 3] pixels in [0, 255] (Keras' model
rescales and normalizes them itself), ``keras_logits`` [2, 10]; ``versions`` (JSON).
"""

import io
import json
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import save as safetensors_save  # noqa: E402
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
                   "efficientnet", "tiny_efficientnet.npz")
WIDTH, DEPTH, RES, CLASSES = 0.1, 0.5, 32, 10


def torchvision_part(rng):
  torch.manual_seed(0)
  setting, last = _efficientnet_conf("efficientnet_b0", width_mult=WIDTH, depth_mult=DEPTH)
  net = EfficientNet(setting, dropout=0.2, last_channel=last, num_classes=CLASSES).eval()
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        c = m.num_features
        m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
        m.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, c).astype(np.float32)))
        m.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.2, c).astype(np.float32)))
        m.running_var.copy_(torch.from_numpy(rng.uniform(0.01, 2.0, c).astype(np.float32)))
        m.num_batches_tracked.fill_(7)
      elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
        m.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, m.bias.shape).astype(np.float32)))
  x = rng.normal(size=(2, RES, RES, 3)).astype(np.float32)
  with torch.no_grad():
    logits = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  sd = net.state_dict()
  buf = io.BytesIO()
  torch.save(sd, buf)
  st = safetensors_save({k: v.contiguous() for k, v in sd.items()})
  return {"tv_pth": np.frombuffer(buf.getvalue(), np.uint8), "tv_safetensors": np.frombuffer(st, np.uint8),
          "tv_x": x, "tv_logits": logits.astype(np.float32)}


def keras_part(rng):
  import keras
  from keras.src.applications.efficientnet import EfficientNet as KerasEfficientNet
  from keras.src.legacy.saving import legacy_h5_format

  keras.utils.set_random_seed(0)
  net = KerasEfficientNet(WIDTH, DEPTH, RES, weights=None, input_shape=(RES, RES, 3), classes=CLASSES,
                          classifier_activation=None)
  for layer in net.layers:
    name = type(layer).__name__
    w = layer.get_weights()
    if name == "BatchNormalization":
      c = w[0].shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                         rng.uniform(0.01, 2.0, c)])
    elif name == "Normalization":
      layer.set_weights([rng.uniform(0.3, 0.6, 3), rng.uniform(0.04, 0.09, 3), np.asarray(5, w[2].dtype)])
    elif name in ("Conv2D", "Dense") and len(w) == 2:
      layer.set_weights([w[0], rng.normal(0, 0.2, w[1].shape)])
  x = rng.uniform(0, 255, size=(2, RES, RES, 3)).astype(np.float32)
  logits = np.asarray(keras.ops.convert_to_numpy(net(x, training=False)), np.float32)
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "tiny.weights.h5")
    net.save_weights(path)
    with open(path, "rb") as f:
      new = f.read()
    legacy = os.path.join(d, "tiny_legacy.h5")
    with h5py.File(legacy, "w") as f:
      legacy_h5_format.save_weights_to_hdf5_group(f, net)
    with open(legacy, "rb") as f:
      old = f.read()
  return {"keras_weights_h5": np.frombuffer(new, np.uint8), "keras_legacy_h5": np.frombuffer(old, np.uint8),
          "keras_x": x, "keras_logits": logits}, keras.__version__


def main():
  rng = np.random.default_rng(0)
  out = torchvision_part(rng)
  k, keras_version = keras_part(rng)
  out.update(k)
  out["versions"] = np.asarray(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                                           "keras": keras_version, "keras_backend": os.environ["KERAS_BACKEND"],
                                           "width": WIDTH, "depth": DEPTH, "resolution": RES,
                                           "num_classes": CLASSES}))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, **out)
  print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e3:.0f} kB); logits std tv {out['tv_logits'].std():.3f}, "
        f"keras {out['keras_logits'].std():.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
