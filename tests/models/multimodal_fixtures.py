"""The procedural multimodal world the multimodal model tests share (written once per run)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile

# raw pixels and hashed text: no weights, deterministic and fast
FAST = {
    "image_encoder": "pixels-16",
    "image_cache": "off",
    "text_encoder": "hashing",
    "text_cache": "off",
}


@functools.cache
def shared_world(n_users: int = 120, n_items: int = 96, seed: int = 0):
    """A :func:`~genrec.data.synthetic_multimodal.multimodal_world` in a temporary folder that
    is removed when the test process ends."""
    from genrec.data.synthetic_multimodal import multimodal_world

    folder = tempfile.mkdtemp(prefix="genrec-mmworld-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return multimodal_world(folder, n_users=n_users, n_items=n_items, seed=seed)
