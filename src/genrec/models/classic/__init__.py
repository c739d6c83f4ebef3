"""Classic baselines: popularity, ItemKNN, EASE, BPR-MF. A generative model is worth its cost
only where it beats these under the same protocol."""
