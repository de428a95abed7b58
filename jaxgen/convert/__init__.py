"""Offline converters of published weights into jaxgen's ``.npz`` layouts (torch is optional).

- ``python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth inception_fid.npz``
- ``python -m jaxgen.convert.taming last.ckpt vqgan.npz`` (taming-transformers VQGAN / PatchGAN /
  Net2NetTransformer checkpoints; docs/vqgan.md)
- ``python -m jaxgen.convert.edm edm-cifar10-32x32-cond-vp.pkl edm.npz [--model NAME]`` (EDM network pickles,
  read by a restricted unpickler that never runs their embedded source; DDPM++/NCSN++/ADM, VP/VE/EDM/iDDPM)
- ``python -m jaxgen.convert.ddpm diffusion_pytorch_model.safetensors ddpm.npz`` (google/ddpm-cifar10-32,
  diffusers safetensors parsed with numpy)

A converted file starts a run through ``--config.model.init_from=OUT`` (diffusion and classification tasks;
the converter prints the model.name / model.overrides / task.precond to use).
"""
