"""The README's library example runs as written (with the test session's dataset cache)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(ml100k_cache, capsys):
    code = re.search(r"## Library in ten lines\s+```python\n(.*?)```", README.read_text(), re.S)[1]
    assert len([line for line in code.splitlines() if line.strip()]) <= 12
    code = code.replace('Path.home() / ".cache" / "genrec"', repr(str(ml100k_cache)))
    exec(compile(code, "README.md", "exec"), {})
    ndcg, recall = (float(x) for x in capsys.readouterr().out.splitlines()[0].split())
    assert ndcg > 0.3 and recall > 0.25


def test_generative_example_runs(ml100k_cache, capsys):
    text = README.read_text()
    library = re.search(r"## Library in ten lines\s+```python\n(.*?)```", text, re.S)[1]
    library = library.replace('Path.home() / ".cache" / "genrec"', repr(str(ml100k_cache)))
    sampling = re.search(r"## Generative models of interactions.*?```python\n(.*?)```", text, re.S)[
        1
    ]
    namespace: dict = {}
    exec(compile(library + sampling, "README.md", "exec"), namespace)
    synthetic, augmented, split = namespace["synthetic"], namespace["augmented"], namespace["split"]
    assert synthetic.shape == (500, split.train.n_items)
    assert augmented.n_users == split.train.n_users + 500
    assert len(augmented) == len(split.train) + synthetic.nnz


def test_language_example_runs(ml100k_cache, capsys):
    """The language snippet, with the fake language model standing in for Gemma (speed)."""
    text = README.read_text()
    library = re.search(r"## Library in ten lines\s+```python\n(.*?)```", text, re.S)[1]
    library = library.replace('Path.home() / ".cache" / "genrec"', repr(str(ml100k_cache)))
    language = re.search(r"## Language: .*?```python\n(.*?)```", text, re.S)[1]
    assert language.count("transformers:gemma-3-270m") == 2
    language = language.replace("transformers:gemma-3-270m", "fake")
    exec(compile(library + language, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()[-3:]
    assert lines[0].startswith("[") and lines[0].count("'") >= 6  # three titles
    assert all(0.0 <= float(x) <= 1.0 for x in lines[1:])
