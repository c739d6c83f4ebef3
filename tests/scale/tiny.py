"""Tiny data and experiment files shared by the search, Ray and tracking tests."""

from pathlib import Path

import numpy as np


def ratings_folder(folder: Path, *, n_users: int = 60, n_groups: int = 3, per_group: int = 12):
    """A MovieLens-style u.data: each user rated 8 items of its group (a learnable structure)."""
    rng = np.random.default_rng(0)
    rows, n = [], 0
    for u in range(1, n_users + 1):
        group = u % n_groups
        items = rng.choice(np.arange(1, per_group + 1) + group * per_group, 8, replace=False)
        for i in items:
            rows.append(f"{u}\t{i}\t5\t{1000 + n}")
            n += 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    return folder


def experiment_file(tmp_path: Path, body: str, *, name: str = "exp") -> Path:
    """An experiment file on the tiny data with ``body`` (models, [search]) appended."""
    data = ratings_folder(tmp_path / "data")
    path = tmp_path / f"{name}.toml"
    path.write_text(f'dataset = "{data}"\nk = [5]\nseed = 3\n' + body)
    return path
