"""The vector index: unit-length passage embeddings in one float32 matrix (row = passage
id), searched by cosine similarity, which for unit vectors is a dot product."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def model_slug(model: str) -> str:
    """An embedding model's name as a blob key part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "model"


def save_vectors(vectors: np.ndarray, path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, vectors.astype(np.float32), allow_pickle=False)


def load_vectors(path: Path) -> np.ndarray:
    """Memory-mapped: a large index is paged in as it is searched, not read whole."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The `k` rows most similar to the unit vector `query`: (row, cosine), best first."""
    if len(vectors) == 0 or k <= 0:
        return []
    if query.shape[-1] != vectors.shape[1]:
        raise ValueError(f"query has {query.shape[-1]} dimensions, the index {vectors.shape[1]}: rebuild it for this model")
    scores = vectors @ query.reshape(-1)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    ranked = top[np.lexsort((top, -scores[top]))]
    return [(int(i), float(scores[i])) for i in ranked]
