"""genrec: generative recommender systems, strong baselines, one evaluation protocol."""

__version__ = "0.1.0"
