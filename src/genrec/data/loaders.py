"""The file loaders, one module per source, gathered under one name.

* :func:`~genrec.data.movielens.load_movielens`: MovieLens folders (100K, 1M/10M, 20M and later).
* :func:`~genrec.data.atomic.load_recbole_atomic`: RecBole atomic files.
* :func:`~genrec.data.amazon.load_amazon_2018`, :func:`~genrec.data.amazon.load_amazon_2023`:
  Amazon review dumps.
* :func:`~genrec.data.tables.load_table`: any CSV, TSV or Parquet file, by column names.

Every loader handles compression (told by the file's first bytes) and a UTF-8 byte-order mark
the same way (:mod:`~genrec.data.textfiles`) and reports a malformed line by file and number
(:mod:`~genrec.data.delimited`).
"""

from genrec.data.amazon import load_amazon_2018, load_amazon_2023
from genrec.data.atomic import load_recbole_atomic
from genrec.data.movielens import load_movielens
from genrec.data.tables import load_table

__all__ = [
    "load_amazon_2018",
    "load_amazon_2023",
    "load_movielens",
    "load_recbole_atomic",
    "load_table",
]
