"""Loaders of real file formats, on small fixtures written byte for byte like the real files."""

import gzip
import json
import sys
from pathlib import Path

import pytest

from genrec.data import (
    Dataset,
    load_amazon_2018,
    load_amazon_2023,
    load_movielens,
    load_recbole_atomic,
    load_table,
)
from genrec.errors import DataError, MissingExtraError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def attrs(table, external_id) -> dict:
    return table.row(int(table.vocab.index([external_id])[0]))


# ---- MovieLens-100K -----------------------------------------------------------------------------

GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def flags(*names):
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


def ml_100k(folder: Path, *, genre_file=True) -> Path:
    write(
        folder / "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
        "196\t1633\t5\t878887116\n1\t267\t1\t875693118\n",
    )
    write(
        folder / "u.item",
        f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|"
        f"{flags('Comedy')}\n"
        f"267|unknown||||{flags('unknown')}\n"
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?L%2EA%2E"
        f"%20Confidential%20(1997)|{flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}\n"
        f"1633|\u00c1 k\u00f6ldum klaka (Cold Fever) (1994)|08-Mar-1998||http://us.imdb.com/M/"
        f"title-exact?Kaldaljos%20(1994)|{flags('Comedy', 'Drama')}\n"
        f"1682|Scream of Stone (Schrei aus Stein) (1991)|08-Mar-1996||x|{flags('Drama')}\n",
        encoding="latin-1",
    )
    if genre_file:
        write(folder / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    write(
        folder / "u.user",
        "1|24|M|technician|85711\n186|39|F|executive|00000\n196|49|M|writer|55105\n",
    )
    return folder


def test_ml_100k_interactions_catalog_and_users(tmp_path):
    data = load_movielens(ml_100k(tmp_path / "ml-100k"))
    assert isinstance(data, Dataset) and data.name == "ml-100k"
    assert (data.n_users, data.n_items, len(data)) == (3, 4, 4)
    assert data.users.ids.tolist() == ["196", "186", "1"]
    assert data.items.ids.tolist() == ["242", "302", "1633", "267"]  # 1682 never rated: dropped
    assert data.value.tolist() == [3, 3, 5, 1]
    assert data.timestamp.tolist() == [881250949, 891717742, 878887116, 875693118]
    assert attrs(data.catalog, "1633") == {
        "title": "\u00c1 k\u00f6ldum klaka (Cold Fever)",
        "year": 1994.0,
        "genres": ("Comedy", "Drama"),
    }
    assert attrs(data.catalog, "302")["genres"] == ("Crime", "Film-Noir", "Mystery", "Thriller")
    unknown = attrs(data.catalog, "267")
    assert unknown["title"] == "unknown" and unknown["year"] is None
    assert attrs(data.user_table, "1") == {
        "age": 24.0,
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }
    assert attrs(data.user_table, "186")["zip_code"] == "00000"  # ids and zips stay strings


def test_ml_100k_without_genre_file_uses_the_standard_names(tmp_path):
    data = load_movielens(ml_100k(tmp_path / "ml", genre_file=False), name="x")
    assert data.name == "x"
    assert attrs(data.catalog, "242")["genres"] == ("Comedy",)


def test_ml_100k_ratings_only(tmp_path):
    write(tmp_path / "u.data", "1\t2\t4\t10\n")
    data = load_movielens(tmp_path)
    assert data.catalog is None and data.user_table is None and len(data) == 1


# ---- MovieLens-1M -------------------------------------------------------------------------------


def ml_1m(folder: Path) -> Path:
    write(
        folder / "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n"
        "2::1193::4::978298413\n3::3932::2::978297867\n",
    )
    write(
        folder / "movies.dat",
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        '3932::"Great Performances" Cats (1998)::Musical\n'
        "2::Mis\u00e9rables, Les (1995)::Drama|Musical\n",
        encoding="latin-1",
    )
    write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    return folder


def test_ml_1m(tmp_path):
    data = load_movielens(ml_1m(tmp_path / "ml-1m"))
    assert (data.n_users, data.n_items, len(data)) == (3, 3, 4)
    assert data.items.ids.tolist() == ["1193", "661", "3932"]
    assert attrs(data.catalog, "3932") == {
        "title": '"Great Performances" Cats',
        "year": 1998.0,
        "genres": ("Musical",),
    }
    assert attrs(data.catalog, "661")["genres"] == ("Animation", "Children's", "Musical")
    assert attrs(data.user_table, "1") == {
        "age": 1.0,
        "gender": "F",
        "occupation": "K-12 student",
        "zip_code": "48067",
    }
    assert attrs(data.user_table, "2")["occupation"] == "self-employed"


def test_ml_1m_latin1_title(tmp_path):
    folder = ml_1m(tmp_path / "ml-1m")
    write(folder / "ratings.dat", "1::2::5::978300760\n")
    assert attrs(load_movielens(folder).catalog, "2")["title"] == "Mis\u00e9rables, Les"


# ---- MovieLens-20M / 25M / latest ---------------------------------------------------------------


def ml_25m(folder: Path) -> Path:
    write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n"
        "1,11,3.5,1147868817\n2,296,4.0,1141415820\n"
        "2,208793,0.5,1574327479\n",
    )
    write(
        folder / "movies.csv",
        'movieId,title,genres\n11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "296,Pulp Fiction (1994),Comedy|Crime|Drama|Thriller\n"
        "208793,Babylon 5 (1994\u20131998),(no genres listed)\n"
        "209171,Women of Devil's Island (1962),Action|Adventure|Drama\n",
    )
    write(folder / "links.csv", "movieId,imdbId,tmdbId\n11,0112346,9087\n")
    write(folder / "tags.csv", 'userId,movieId,tag,timestamp\n1,296,"dark, funny",1\n')
    return folder


def test_ml_25m_csv(tmp_path):
    data = load_movielens(ml_25m(tmp_path / "ml-25m"))
    assert (data.n_users, data.n_items, len(data)) == (2, 3, 4)
    assert data.value.tolist() == [5.0, 3.5, 4.0, 0.5]
    assert attrs(data.catalog, "11") == {
        "title": "American President, The",
        "year": 1995.0,
        "genres": ("Comedy", "Drama", "Romance"),
    }
    assert attrs(data.catalog, "208793") == {"title": "Babylon 5", "year": 1994.0, "genres": ()}
    assert data.user_table is None


def test_title_without_year_keeps_title_and_nan_year(tmp_path):
    folder = ml_25m(tmp_path / "ml")
    write(folder / "movies.csv", "movieId,title,genres\n296,Pulp Fiction,Crime\n")
    row = attrs(load_movielens(folder).catalog, "296")
    assert row["title"] == "Pulp Fiction" and row["year"] is None


# ---- RecBole atomic files -----------------------------------------------------------------------


def recbole(folder: Path, stem="ml-100k") -> Path:
    write(
        folder / f"{stem}.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n1\t267\t1\t875693118\n",
    )
    write(
        folder / f"{stem}.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n267\tunkonwn\tunkonwn\tunknown\n"
        "1005\tDouble vie de V\u00e9ronique, La\t1991\tDrama\n",
    )
    write(
        folder / f"{stem}.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\t"
        "zip_code:token\n1\t24\tM\ttechnician\t85711\n"
        "196\t49\tM\twriter\t05201\n",
    )
    return folder


def test_recbole_atomic_maps_fields(tmp_path):
    data = load_recbole_atomic(recbole(tmp_path / "rb"))
    assert data.name == "ml-100k" and (data.n_users, data.n_items, len(data)) == (2, 2, 2)
    assert data.timestamp.tolist() == [881250949, 875693118]
    assert attrs(data.catalog, "242") == {"title": "Kolya", "year": 1996.0, "genres": ("Comedy",)}
    assert attrs(data.catalog, "267")["year"] is None  # "unkonwn" in the real file
    assert attrs(data.user_table, "196") == {
        "age": 49.0,
        "gender": "M",
        "occupation": "writer",
        "zip_code": "05201",
    }


def test_recbole_other_fields_keep_their_names_and_types(tmp_path):
    write(tmp_path / "d.inter", "user_id:token\titem_id:token\n1\ta\n2\tb\n")
    write(
        tmp_path / "d.item",
        "item_id:token\ttitle:token_seq\tcategories:token_seq\t"
        "price:float\tbrand:token\temb:float_seq\n"
        "a\tRed shoe\tShoes Kids\t9.5\tAcme\t0.5 1\nb\tCap\t\t\t\t\n",
    )
    data = load_recbole_atomic(tmp_path / "d.inter")
    assert data.value.tolist() == [1.0, 1.0] and data.timestamp.tolist() == [0, 0]
    assert attrs(data.catalog, "a") == {
        "title": "Red shoe",
        "genres": ("Shoes", "Kids"),
        "price": 9.5,
        "brand": "Acme",
        "emb": (0.5, 1.0),
    }
    b = attrs(data.catalog, "b")
    assert b["genres"] == () and b["brand"] is None and b["price"] is None
    assert data.user_table is None


def test_movielens_detects_a_recbole_folder(tmp_path):
    data = load_movielens(recbole(tmp_path / "ml-100k"))
    assert len(data) == 2 and "title" in data.catalog


def test_recbole_picks_the_named_inter_file(tmp_path):
    recbole(tmp_path, "a")
    recbole(tmp_path, "b")
    with pytest.raises(DataError, match="several .inter files.*name="):
        load_recbole_atomic(tmp_path)
    assert load_recbole_atomic(tmp_path, name="b").name == "b"


def test_real_ml_100k_atomic_files_from_the_recbole_wheel(ml100k_cache):
    """The atomic files the ml100k fixture copied out of the pinned recbole wheel."""
    data = load_movielens(ml100k_cache / "ml-100k")
    assert (data.n_users, data.n_items, len(data)) == (943, 1682, 100000)
    user = attrs(data.user_table, "1")
    assert user["age"] == 24 and user["gender"] == "M"
    assert attrs(data.catalog, "1") == {
        "title": "Toy Story",
        "year": 1995.0,
        "genres": ("Animation", "Children's", "Comedy"),
    }


# ---- Amazon -------------------------------------------------------------------------------------


def jsonl(path: Path, records, *, gz=False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


REVIEWS_2018 = [
    {
        "overall": 5.0,
        "verified": True,
        "reviewTime": "09 13, 2009",
        "reviewerID": "A3HVRXV0LVJN7",
        "asin": "0078764343",
        "reviewerName": "LO",
        "reviewText": "Great game.",
        "summary": "Five Stars",
        "unixReviewTime": 1252800000,
    },
    {
        "overall": 2.0,
        "reviewerID": "A1",
        "asin": "B000",
        "unixReviewTime": 1252800100,
        "reviewText": "Meh",
        "style": {"Format:": " Video Game"},
    },
    {
        "overall": 4.0,
        "reviewerID": "A3HVRXV0LVJN7",
        "asin": "B000",
        "summary": "ok",
        "unixReviewTime": 1252800200,
    },
]


def test_amazon_2018_reviews_meta_and_review_text(tmp_path):
    meta = jsonl(
        tmp_path / "meta_Video_Games.json.gz",
        [
            {
                "asin": "0078764343",
                "title": "Medal of Honor",
                "category": ["Video Games", "PC"],
                "description": ["A war game.", "For PC."],
                "brand": "EA",
                "price": "$1,299.00",
                "imageURL": ["http://img/small.jpg"],
                "imageURLHighRes": ["http://img/big.jpg"],
            },
            # the 2014 dumps: Python literals, categories as lists of lists, a float price, imUrl
            "{'asin': 'B000', 'title': 'Zelda', 'categories': [['Video Games', 'Nintendo'], "
            "['Video Games', 'Games']], 'price': 19.99, 'imUrl': 'http://img/z.jpg', "
            "'description': \"Link's quest\"}",
            {"asin": "0078764343", "title": "a repeated asin keeps its first line"},
            {"asin": "NEVER", "title": "never reviewed"},
        ],
        gz=True,
    )
    reviews = jsonl(tmp_path / "Video_Games.json.gz", REVIEWS_2018, gz=True)
    data = load_amazon_2018(reviews, meta)
    assert data.name == "Video_Games" and (data.n_users, data.n_items, len(data)) == (2, 2, 3)
    assert data.value.tolist() == [5.0, 2.0, 4.0]
    assert data.timestamp.tolist() == [1252800000, 1252800100, 1252800200]
    assert attrs(data.catalog, "0078764343") == {
        "title": "Medal of Honor",
        "description": "A war game. For PC.",
        "genres": ("Video Games", "PC"),
        "brand": "EA",
        "price": 1299.0,
        "image": "http://img/big.jpg",
    }
    zelda = attrs(data.catalog, "B000")
    assert zelda["genres"] == ("Video Games", "Nintendo", "Games") and zelda["price"] == 19.99
    assert zelda["image"] == "http://img/z.jpg" and zelda["description"] == "Link's quest"
    assert zelda["brand"] is None
    assert data.extras["review_text"].tolist() == ["Great game.", "Meh", ""]
    assert data.extras["review_summary"].tolist() == ["Five Stars", "", "ok"]
    assert data.subset([2, 0]).extras["review_text"].tolist() == ["", "Great game."]
    assert "description" in data.catalog.text_fields


def test_amazon_2018_without_meta(tmp_path):
    data = load_amazon_2018(jsonl(tmp_path / "r.json", REVIEWS_2018), name="vg")
    assert data.name == "vg" and data.catalog is None and len(data.extras["review_text"]) == 3


def test_amazon_2023(tmp_path):
    reviews = jsonl(
        tmp_path / "All_Beauty.jsonl",
        [
            {
                "rating": 5.0,
                "title": "Such a lovely scent",
                "text": "This spray is really nice.",
                "images": [],
                "asin": "B00YQ6X8EO",
                "parent_asin": "B00YQ6X8EO",
                "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
                "timestamp": 1588687728923,
                "helpful_vote": 0,
                "verified_purchase": True,
            },
            {
                "rating": 1,
                "title": "",
                "text": "bad",
                "asin": "B081TJ8YS3",
                "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
                "timestamp": 1588615855070,
            },
        ],
    )
    meta = jsonl(
        tmp_path / "meta_All_Beauty.jsonl",
        [
            {
                "main_category": "All Beauty",
                "title": "Howard LC0008 Leather Conditioner",
                "average_rating": 4.8,
                "rating_number": 10,
                "features": ["Soft", "8 oz"],
                "description": [],
                "price": None,
                "store": "Howard Products",
                "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "MAIN", "hi_res": None}],
                "categories": [],
                "details": {"Brand": "Howard"},
                "parent_asin": "B00YQ6X8EO",
            },
        ],
    )
    data = load_amazon_2023(reviews, meta)
    assert data.items.ids.tolist() == ["B00YQ6X8EO", "B081TJ8YS3"]  # asin when no parent_asin
    assert data.timestamp.tolist() == [1588687728, 1588615855]
    assert data.extras["review_summary"].tolist() == ["Such a lovely scent", ""]
    row = attrs(data.catalog, "B00YQ6X8EO")
    assert row.pop("price") is None
    assert row == {
        "title": "Howard LC0008 Leather Conditioner",
        "description": None,
        "features": "Soft 8 oz",
        "genres": (),
        "store": "Howard Products",
        "image": "l.jpg",
    }
    assert attrs(data.catalog, "B081TJ8YS3")["title"] is None


# ---- generic tables -----------------------------------------------------------------------------


def test_load_table_csv_with_item_table(tmp_path):
    log = write(
        tmp_path / "log.csv",
        "uid,iid,stars,when\nu1,007,4,2020-01-01T00:00:00Z\n"
        "u2,007,5,2020-01-02 00:00:00\nu1,42,3,2020-01-01\n",
    )
    items = write(
        tmp_path / "items.tsv",
        "code\tmovie_name\tyear\tjunk\n007\tGoldeneye\t1995\tx\n42\tHitchhiker\t\ty\n",
    )
    data = load_table(
        log,
        user="uid",
        item="iid",
        rating="stars",
        timestamp="when",
        items_path=items,
        item_key="code",
        item_columns={"title": "movie_name", "year": "year"},
    )
    assert data.name == "log" and data.items.ids.tolist() == ["007", "42"]
    assert data.value.tolist() == [4, 5, 3]
    assert data.timestamp.tolist() == [1577836800, 1577923200, 1577836800]
    assert attrs(data.catalog, "007") == {"title": "Goldeneye", "year": 1995.0}
    assert attrs(data.catalog, "42")["year"] is None and "junk" not in data.catalog


def test_load_table_tsv_implicit_and_explicit_sep(tmp_path):
    data = load_table(write(tmp_path / "a.tsv", "u\ti\n1\t2\n"), user="u", item="i")
    assert data.value.tolist() == [1.0] and data.timestamp.tolist() == [0]
    data = load_table(
        write(tmp_path / "a.txt", "u;i;t\n1;2;99\n"), user="u", item="i", timestamp="t", sep=";"
    )
    assert data.timestamp.tolist() == [99]


def test_load_table_item_table_defaults_to_every_column(tmp_path):
    log = write(tmp_path / "log.csv", "u,i\n1,a\n")
    items = write(tmp_path / "items.csv", "i,title,price\na,Shoe,3.5\nb,Hat,1\n")
    data = load_table(log, user="u", item="i", items_path=items)
    assert attrs(data.catalog, "a") == {"title": "Shoe", "price": 3.5}


def test_load_table_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "log.parquet"
    pd.DataFrame({"u": [1, 2], "i": ["x", "y"], "r": [1.0, 2.0]}).to_parquet(path)
    data = load_table(path, user="u", item="i", rating="r")
    assert data.users.ids.tolist() == ["1", "2"] and data.value.tolist() == [1.0, 2.0]


def test_load_table_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(MissingExtraError, match=r"genrec\[parquet\]"):
        load_table(tmp_path / "log.parquet", user="u", item="i")


# ---- errors: each names the file, the line or column, and the fix -------------------------------


@pytest.mark.parametrize(
    "files, match",
    [
        ({}, r"holds no MovieLens ratings.*u\.data"),
        ({"u.data": ""}, r"u\.data is empty; expected user<TAB>item"),
        ({"u.data": "1\t2\t3\t4\n1\t2\t3\t4\t5\n"}, r"u\.data: line 2 has 5 fields"),
        ({"u.data": "1\t2\t3\n"}, r"u\.data, line 1: 3 fields separated by '\\t', expected 4"),
        (
            {"u.data": "1\t2\t3\t4\n1\t2\n"},
            r"u\.data, line 2: 2 fields separated by '\\t', "
            r"expected 4: user<TAB>item",
        ),
        (
            {"ratings.dat": "1::2::3\n"},
            r"ratings\.dat, line 1: 3 fields separated by '::', expected 4",
        ),
        (
            {"ratings.dat": "1::2::3::4\n1::2::3::1e30\n"},
            r"ratings\.dat, line 2: timestamp is '1e30', outside the int64 range",
        ),
        ({"u.data": "1\t2\t3\t4\n1\t2\t3\tinf\n"}, r"line 2: timestamp is infinite \('inf'\)"),
        (
            {"u.data": "1\t2\t3\t4\n", "u.user": "1|24|M|x|85711\n2|30|F\n"},
            r"u\.user, line 2: 3 fields separated by '\|', expected 5",
        ),
        (
            {"u.data": "1\t2\t3\t4\nNA\t2\t3\t4\n"},
            r"line 2: the 'user' id is 'NA', which is read as a missing value",
        ),
        ({"u.data": "1\t2\t3\t4\n\n1\t2\tfive\t4\n"}, r"u\.data, line 3: rating is 'five', not a"),
        (
            {"u.data": "1\t2\t3\t4\n1\t2\tnan\t4\n"},
            r"u\.data, line 2: rating is NaN \(not a number\)",
        ),
        ({"u.data": "1\t2\t3\t4\n1\t2\t\t4\n"}, r"u\.data, line 2: rating is empty"),
        ({"u.data": "1\t2\t3\t4\n\t2\t3\t4\n"}, r"u\.data, line 2: the 'user' id is empty"),
        ({"u.data": "1\t2\t3\t4\n", "u.item": "1|x|||\n"}, r"u\.item, line 1: 5 fields"),
        (
            {"ratings.dat": "1::2::3::4\n1::2::3\n"},
            r"ratings\.dat, line 2: 3 fields separated by '::', expected 4: UserID::MovieID",
        ),
        (
            {"ratings.csv": "user,movieId,rating,timestamp\n1,2,3,4\n"},
            r"ratings\.csv has no column 'userId'; its columns are \['user'",
        ),
        ({"ratings.csv": "userId,movieId,rating,timestamp\n"}, r"ratings\.csv has a header but no"),
        (
            {"x.inter": "user_id:token\titem_id:tok\n"},
            r"x\.inter, line 1: bad header field "
            r"'item_id:tok'",
        ),
        ({"x.inter": "user_id:token\trating:float\n1\t2\n"}, r"x\.inter has no column 'item_id'"),
        (
            {"x.inter": "user_id:token\titem_id:token\n1\ta\n", "x.item": "name:token\nb\n"},
            r"x\.item has no column 'item_id'.*item_id:token",
        ),
    ],
)
def test_malformed_movielens_and_recbole_files(tmp_path, files, match):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(DataError, match=match):
        load_movielens(tmp_path)


def test_movielens_path_must_be_a_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_movielens(tmp_path / "missing")


def test_recbole_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_recbole_atomic(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no .inter file"):
        load_recbole_atomic(tmp_path)
    with pytest.raises(DataError, match="x.inter is empty"):
        load_recbole_atomic(write(tmp_path / "x.inter", ""))


@pytest.mark.parametrize(
    "records, match",
    [
        (["{not json"], r"line 1: neither JSON nor a Python dict literal"),
        (["[1, 2]"], r"line 1: expected one object"),
        ([{"reviewerID": "a", "overall": 5, "unixReviewTime": 1}], r"line 1: no 'asin' field"),
        (
            [REVIEWS_2018[0], {**REVIEWS_2018[0], "overall": "great"}],
            r"line 2: overall 'great' is not a finite number",
        ),
        ([{**REVIEWS_2018[0], "overall": float("nan")}], r"line 1: overall nan is not a finite"),
        ([], r"holds no reviews"),
    ],
)
def test_malformed_amazon_reviews(tmp_path, records, match):
    path = jsonl(tmp_path / "r.json", records)
    with pytest.raises(DataError, match=match) as err:
        load_amazon_2018(path)
    assert "r.json" in str(err.value)


def test_malformed_amazon_meta_and_missing_files(tmp_path):
    reviews = jsonl(
        tmp_path / "r.jsonl", [{"user_id": "u", "parent_asin": "p", "rating": 3, "timestamp": 1000}]
    )
    with pytest.raises(DataError, match=r"m\.jsonl, line 2: no 'parent_asin' or 'asin'"):
        load_amazon_2023(
            reviews, jsonl(tmp_path / "m.jsonl", [{"parent_asin": "p"}, {"title": "no id"}])
        )
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        load_amazon_2023(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"line 1: no 'timestamp' field"):
        load_amazon_2023(jsonl(tmp_path / "t.jsonl", [{"user_id": "u", "asin": "a", "rating": 1}]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"user": "who"},
            r"log\.csv has no column 'who'; its columns are \['u', 'i', 'r'\]; "
            r"pass user=<one of them>",
        ),
        ({"rating": "stars"}, r"no column 'stars'.*pass rating="),
        (
            {"rating": "r", "items_path": "items.csv", "item_key": "id"},
            r"items\.csv has no column 'id'.*pass item_key=",
        ),
        (
            {"items_path": "items.csv", "item_columns": {"title": "name"}},
            r"items\.csv has no column 'name'.*item_columns",
        ),
    ],
)
def test_load_table_missing_columns(tmp_path, kwargs, match):
    write(tmp_path / "log.csv", "u,i,r\n1,a,5\n")
    write(tmp_path / "items.csv", "i,title\na,A\n")
    kwargs = {"user": "u", "item": "i", **kwargs}
    if "items_path" in kwargs:
        kwargs["items_path"] = tmp_path / kwargs["items_path"]
    with pytest.raises(DataError, match=match):
        load_table(tmp_path / "log.csv", **kwargs)


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        (
            "u,i,r,t\n1,a,5,10\n2,b,,11\n",
            {"rating": "r"},
            r"log\.csv, line 3: rating column 'r' is empty",
        ),
        (
            "u,i,r,t\n1,a,5,10\n2,b,NaN,11\n",
            {"rating": "r"},
            r"log\.csv, line 3: rating column 'r' is NaN \(not a number\)",
        ),
        (
            "u,i,r,t\n1,a,5,10\n2,b,4,yesterday-ish\n",
            {"timestamp": "t"},
            r"log\.csv, line 3: timestamp column 't' is 'yesterday-ish'",
        ),
    ],
)
def test_load_table_bad_values(tmp_path, text, kwargs, match):
    write(tmp_path / "log.csv", text)
    with pytest.raises(DataError, match=match):
        load_table(tmp_path / "log.csv", user="u", item="i", **kwargs)


def test_load_table_bad_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_table(tmp_path / "nope.csv", user="u", item="i")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        load_table(write(tmp_path / "empty.csv", ""), user="u", item="i")
    with pytest.raises(DataError, match=r"separator of .*log\.txt.*pass sep="):
        load_table(write(tmp_path / "log.txt", "u i\n"), user="u", item="i")


def test_load_table_corrupt_or_mislabelled_compressed_files(tmp_path):
    plain = write(tmp_path / "o.csv.gz", "u,i\n1,a\n")  # plain text under a .gz name
    with pytest.raises(DataError, match=r"o\.csv\.gz: not a valid compressed file.*rename it"):
        load_table(plain, user="u", item="i")
    whole = gzip.compress(b"u,i\n" + b"1,a\n" * 5000)
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])  # truncated download
    with pytest.raises(DataError, match=r"cut\.csv\.gz: not a valid compressed file"):
        load_table(tmp_path / "cut.csv.gz", user="u", item="i")
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"bad\.json\.gz: not a valid compressed file"):
        load_amazon_2018(tmp_path / "bad.json.gz")
    write(tmp_path / "latin.csv", "u,i\n1,caf\u00e9\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv: byte .* not utf-8 text; re-encode"):
        load_table(tmp_path / "latin.csv", user="u", item="i")


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "u,i,t\n1,a,10\n2,b,1e30\n",
            r"log\.csv, line 3: timestamp column 't' is '1e30', outside the "
            r"int64 range",
        ),
        ("u,i,t\n1,a,10\n2,b,-1e19\n", r"line 3: .* outside the int64 range"),
        (
            "u,i,t\n1,a,2020-01-01\n2,b,2020-01-02\n3,c,soon\n4,d,2020-01-04\n",
            r"log\.csv, line 4: timestamp column 't' is 'soon', neither a number nor a date",
        ),
        ("u,i,t\n1,a,2020-01-01\n2,b,\n", r"line 3: timestamp column 't' is empty"),
        (
            "u,i,t\n1,a,2020-01-01\n2,b,1577836800\n",
            r"line 3: timestamp column 't' is a number \(1\.5778.e\+09\) but .*line 2 holds a date",
        ),
        ("u,i,t\n1,a\n", r"log\.csv, line 2: 2 fields separated by ',', expected 3"),
    ],
)
def test_load_table_bad_timestamps(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_table(write(tmp_path / "log.csv", text), user="u", item="i", timestamp="t")


def test_load_table_dates_and_huge_but_valid_seconds(tmp_path):
    data = load_table(
        write(tmp_path / "log.csv", "u,i,t\n1,a,1970-01-02\n2,b,2020-01-01\n"),
        user="u",
        item="i",
        timestamp="t",
    )
    assert data.timestamp.tolist() == [86400, 1577836800]
    data = load_table(
        write(tmp_path / "log.csv", "u,i,t\n1,a,1e18\n2,b,-5.5\n"),
        user="u",
        item="i",
        timestamp="t",
    )
    assert data.timestamp.tolist() == [10**18, -6]


def test_load_table_rejects_repeated_header_names(tmp_path):
    write(tmp_path / "log.csv", "u,u,i\n1,2,a\n")
    with pytest.raises(
        DataError,
        match=r"log\.csv, line 1: the header repeats the column "
        r"name\(s\) \['u'\]; give every column a distinct name",
    ):
        load_table(tmp_path / "log.csv", user="u", item="i")
    write(tmp_path / "items.csv", "i,title,title\na,A,B\n")
    write(tmp_path / "log.csv", "u,i\n1,a\n")
    with pytest.raises(DataError, match=r"items\.csv, line 1: the header repeats.*'title'"):
        load_table(tmp_path / "log.csv", user="u", item="i", items_path=tmp_path / "items.csv")
    # a real column that merely looks like pandas' renaming is fine
    data = load_table(write(tmp_path / "ok.csv", "u,u.1,i\n1,2,a\n"), user="u.1", item="i")
    assert data.users.ids.tolist() == ["2"]


def test_load_table_item_table_repeated_id_keeps_the_first_row(tmp_path):
    write(tmp_path / "log.csv", "u,i\n1,a\n2,b\n")
    write(tmp_path / "items.csv", "i,title\na,First\nb,Bee\na,Second\n")
    data = load_table(tmp_path / "log.csv", user="u", item="i", items_path=tmp_path / "items.csv")
    assert attrs(data.catalog, "a")["title"] == "First"
    assert attrs(data.catalog, "b")["title"] == "Bee"


def test_amazon_timestamp_outside_int64(tmp_path):
    path = jsonl(tmp_path / "r.json", [{**REVIEWS_2018[0], "unixReviewTime": 1e30}])
    with pytest.raises(DataError, match=r"r\.json, line 1: unixReviewTime 1e\+30 is outside"):
        load_amazon_2018(path)
