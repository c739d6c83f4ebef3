"""Generative models of the user-item interaction matrix: denoising and variational
auto-encoders, diffusion, adversarial training and slate generation."""
