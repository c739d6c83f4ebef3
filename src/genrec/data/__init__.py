"""Data model, loaders, filters, sources, splitters and synthetic worlds."""

from genrec.data.amazon import load_amazon_2018, load_amazon_2023
from genrec.data.atomic import load_recbole_atomic
from genrec.data.dataset import (
    Dataset,
    ItemCatalog,
    Split,
    Table,
    as_history_matrix,
    history_sequences,
)
from genrec.data.filters import drop_duplicates, filter_rating, k_core
from genrec.data.history import UserHistory
from genrec.data.movielens import load_movielens
from genrec.data.tables import load_table
from genrec.data.vocabulary import Vocabulary

__all__ = [
    "Dataset",
    "ItemCatalog",
    "Split",
    "Table",
    "UserHistory",
    "Vocabulary",
    "as_history_matrix",
    "history_sequences",
    "drop_duplicates",
    "filter_rating",
    "k_core",
    "load_amazon_2018",
    "load_amazon_2023",
    "load_movielens",
    "load_recbole_atomic",
    "load_table",
]
