"""The quality benchmark runs end to end at a small size and its figures agree with the references
(speed targets are only judged at full size by a person reading the table, never in a test)."""

from __future__ import annotations

import re

import pytest

from prefpipe.bench import quality


@pytest.mark.slow
def test_benchmark_runs_and_references_agree(capsys: pytest.CaptureFixture[str]) -> None:
    quality.main(["--pairs", "1500", "--annotators", "12", "--boot", "50"])
    out = capsys.readouterr().out
    assert "| Krippendorff alpha, ordinal (given Annotations) |" in out and "crowd-kit DawidSkene" in out
    diffs = [float(x) for x in re.findall(r"\|diff\| = ([0-9.e+-]+)", out)]
    assert len(diffs) == 3 and max(diffs) < 1e-9
    ours, theirs = re.search(r"accuracy ([0-9.]+) vs ([0-9.]+) \(majority", out).groups()
    assert abs(float(ours) - float(theirs)) < 1e-9
    assert "whole quality stage" in out
