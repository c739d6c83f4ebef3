"""`genrec audit` with bad arguments: one line naming the bad value and the choices, exit 2."""

import pytest

from genrec.cli import main


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--scenarios", "exposure,toxicity"], ["toxicity", "exposure", "shilling"]),
        (["--models", "pop,easy"], ["easy", "ease"]),
        (["--k", "0"], ["k must be a positive integer"]),
        (["--users", "1"], ["users must be an integer >= 2"]),
        (["--lm-rounds", "0"], ["lm_rounds must be a positive integer", "got 0"]),
        (["--tune-steps", "0"], ["tune_steps must be a positive integer", "got 0"]),
        (["--backdoor-rates", "0.01,5%"], ["--backdoor-rates", "'0.01,5%'", "0.05"]),
        (["--backdoor-rates", "0.01,1.5"], ["backdoor_rates", "got 1.5", "between 0 and 1"]),
        (["--backdoor-rates", "0.05,0.05"], ["backdoor_rates", "each rate once"]),
        (["--set", "ease.regg=3"], ["regg"]),
        (["--rewrite-lm", "gpt9:big"], ["gpt9", "transformers"]),
        (["--rewrite-encoder", "nope"], ["nope", "minilm"]),
    ],
)
def test_bad_arguments_fail_in_one_line(capsys, argv, words):
    code = main(["audit", "--fast", "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    for word in words:
        assert word in err
