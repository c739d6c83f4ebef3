"""Progress written to a file or a pipe is a few whole lines, never carriage-return frames.

A tqdm bar redraws itself with ``\\r`` several times a second; in a log file or a CI console
that became thousands of frames on one line. ``genrec.options.progress_bar`` is the one place
that decides: a bar on a terminal, plain lines (start, every 10%, end) elsewhere.
"""

import io

from genrec.build import build_model
from genrec.data.synthetic import planted_clusters
from genrec.options import RunOptions, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


class TestProgressNotATty:
    def test_a_file_gets_about_ten_lines_with_the_postfix(self):
        stream = io.StringIO()
        bar = progress_bar(range(1000), enabled=True, desc="fit", unit="epoch", file=stream)
        for step in bar:
            bar.set_postfix(loss=f"{1 / (step + 1):.3f}")
        lines = stream.getvalue().splitlines()
        assert "\r" not in stream.getvalue()
        assert lines[0] == "fit: 0/1000 epoch (0%)"
        assert [line.split()[1] for line in lines[1:-1]] == [
            f"{n}/1000" for n in range(100, 1000, 100)
        ]
        assert lines[-1].startswith("fit: 1000/1000 epoch (100%) in ") and lines[-1].endswith(
            "loss=0.001"
        )

    def test_leaving_the_loop_early_ends_with_a_line(self):
        stream = io.StringIO()
        for step in progress_bar(range(50), enabled=True, desc="fit", file=stream):
            if step == 7:
                break
        lines = stream.getvalue().splitlines()
        assert lines[-1].startswith("fit: 7/50 it (14%) in ")

    def test_an_unknown_total_gets_a_start_and_an_end(self):
        stream = io.StringIO()
        bar = progress_bar(iter(range(30)), enabled=True, desc="download", unit="MiB", file=stream)
        assert sum(1 for _ in bar) == 30
        bar.close()  # closing again after the end writes nothing more
        assert stream.getvalue().splitlines()[0] == "download: 0 MiB"
        assert stream.getvalue().splitlines()[1].startswith("download: 30 MiB in ")
        assert len(stream.getvalue().splitlines()) == 2

    def test_disabled_writes_nothing_and_a_terminal_gets_a_bar(self):
        silent = io.StringIO()
        bar = progress_bar(range(5), enabled=False, file=silent)
        for _ in bar:
            bar.set_postfix(loss="1")
        assert silent.getvalue() == ""
        terminal = Terminal()
        list(progress_bar(range(5), enabled=True, desc="fit", file=terminal))
        assert "\r" in terminal.getvalue()

    def test_training_with_progress_on_a_pipe(self, capsys):
        world = planted_clusters(n_users=24, n_items=16)
        model = build_model("bpr", {"dim": 8, "max_epochs": 30, "patience": 100})
        model.fit(
            world.split.train, valid=world.split.valid, options=RunOptions(threads=1, progress=True)
        )
        err = capsys.readouterr().err  # captured: not a terminal
        assert "\r" not in err
        lines = [line for line in err.splitlines() if line.startswith("bpr:")]
        assert 3 <= len(lines) <= 12 and "ndcg@10=" in lines[-1]
