"""Evaluation metrics: Fréchet distances (FID and the digits FD), IS, KID, bits/dim, accuracy, AP."""
