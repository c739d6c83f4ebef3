"""Model tests: the shared contract (contract.py) plus each model's own checks."""
