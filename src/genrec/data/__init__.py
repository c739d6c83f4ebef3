"""Data model, loaders, sources, splitters and synthetic worlds."""

from genrec.data.dataset import Dataset, ItemCatalog, Split, Table, as_history_matrix
from genrec.data.vocabulary import Vocabulary

__all__ = ["Dataset", "ItemCatalog", "Split", "Table", "Vocabulary", "as_history_matrix"]
