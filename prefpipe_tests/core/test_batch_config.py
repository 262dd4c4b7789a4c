"""batch.json: every setting has one type, and a wrong one names the field instead of being
turned into text."""

from __future__ import annotations

import pytest

from prefpipe.core.batches import BatchConfig, BatchInputError, load_batch_config


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"external_judge": ["a", "b"]}', "external_judge"),
        ('{"description": {"x": 1}}', "description"),
        ('{"imported_guideline_version": 3}', "imported_guideline_version"),
        ('{"external_judge": ""}', "external_judge"),
        ('{"description": "half \\ud800 a pair"}', "description"),
    ],
)
def test_a_setting_of_the_wrong_type_names_the_file_and_field(tmp_path, text, field):
    (tmp_path / "batch.json").write_text(text, encoding="utf-8")
    with pytest.raises(BatchInputError) as err:
        load_batch_config(tmp_path)
    assert err.value.field == field and str(tmp_path / "batch.json") in str(err.value)


def test_a_bom_is_read_and_a_bad_byte_names_its_line(tmp_path):
    path = tmp_path / "batch.json"
    path.write_bytes(b'\xef\xbb\xbf{"external_judge": "gpt-4o",\n "closed": true}')
    cfg = load_batch_config(tmp_path)
    assert cfg == BatchConfig(external_judge="gpt-4o", closed=True)
    assert (cfg.label_map, cfg.imported_guideline_version, cfg.human_budget, cfg.description) == ({}, "imported", None, "")
    path.write_bytes(b'{"external_judge": "gpt-4o",\n "description": "caf\xe9"}')
    with pytest.raises(BatchInputError, match=r"batch.json, line 2: not valid UTF-8"):
        load_batch_config(tmp_path)
