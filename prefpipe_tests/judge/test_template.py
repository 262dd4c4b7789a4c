"""Versioned template files."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefpipe.judge.judge import PAIR_PLACEHOLDERS
from prefpipe.judge.template import TemplateError, load_template


def test_packaged_template_renders_and_has_a_content_version() -> None:
    template = load_template("judge_v1")
    assert template.version.startswith("judge_v1@") and len(template.version) == len("judge_v1@") + 12
    messages = template.messages(guidelines="G", rubric="R", prompt="P {braces} $dollar", response_a="RA", response_b="RB")
    assert [role for role, _ in messages] == ["system", "user"]
    assert "P {braces} $dollar" in messages[1][1] and "<response_a>\nRA\n</response_a>" in messages[1][1]
    assert "VERDICT" in template.reminder


def test_editing_a_template_changes_its_version(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("[user]\n$prompt $response_a $response_b\n[reminder]\nVERDICT please\n")
    before = load_template(path).version
    path.write_text("[user]\nPlease: $prompt $response_a $response_b\n[reminder]\nVERDICT please\n")
    after = load_template(path).version
    assert before != after and before.startswith("mine@")


def test_bad_templates_name_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("[user]\n$prompt $response_a $response_b $nonsense\n[reminder]\nx\n")
    with pytest.raises(TemplateError, match=r"bad.txt: unknown placeholder\(s\) nonsense"):
        load_template(path, allowed=PAIR_PLACEHOLDERS)
    path.write_text("[user]\n$prompt\n")
    with pytest.raises(TemplateError, match=r"section \[reminder\] is missing"):
        load_template(path)
    with pytest.raises(TemplateError, match="template not found"):
        load_template("judge_v999")
