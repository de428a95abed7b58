"""Offline converters of published weights into jaxgen's ``.npz`` layouts (torch is optional).

- ``python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth inception_fid.npz``
- ``python -m jaxgen.convert.taming last.ckpt vqgan.npz`` (taming-transformers VQGAN / PatchGAN /
  Net2NetTransformer checkpoints; docs/vqgan.md)
"""
