"""Vector-quantisation library (VQ-VAE / VQGAN): quantisers, EMA codebooks, code usage, dead-code restarts,
and autoregressive sampling of code sequences (``jaxgen.vq.sampling``: top-k/top-p, KV cache, sliding window).

    from jaxgen import vq
    q = vq.quantize(z, codebook, beta=0.25)              # Quantized(z_q, indices, loss, ...)
    counts = vq.code_counts(q.indices, K, axis_name="data")
    metrics = dict(perplexity=vq.perplexity(counts), usage=vq.usage_fraction(counts))

Part of the pure core: ``import jaxgen.vq`` needs only jax and numpy (tests/test_packaging.py). The Flax
networks using it are ``jaxgen.models.vqgan``; the training task is ``jaxgen.tasks.vqgan`` (docs/vqgan.md).
"""

from jaxgen.vq.quantizers import (EmaState, Quantized, code_counts, ema_init, ema_reset_codes, ema_update,
                                  l2_normalize, lookup, nearest_code, perplexity, quantize,
                                  restart_dead_codes, usage_fraction)
from jaxgen.vq.sampling import (draw, filter_logits, filter_top_k, filter_top_p, sample_sliding_window,
                                sample_tokens, window_origin)

__all__ = ["EmaState", "Quantized", "code_counts", "ema_init", "ema_reset_codes", "ema_update",
           "l2_normalize", "lookup", "nearest_code", "perplexity", "quantize", "restart_dead_codes",
           "usage_fraction", "draw", "filter_logits", "filter_top_k", "filter_top_p", "sample_sliding_window",
           "sample_tokens", "window_origin"]
