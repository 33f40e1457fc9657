"""Runs every golden file (see ``tests/providers/golden.py``)."""

from __future__ import annotations

import os

import pytest

from tests.providers.golden import golden_files, load, make_call, make_provider, run_case, run_stream, save

UPDATE = os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1"
FILES = golden_files()


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_golden(path):
    case = load(path)
    produced = run_case(case)
    raw = produced.pop("_stream_raw", None)
    if UPDATE:
        case.update(produced)
        save(path, case)
        return
    assert produced["upstream_request"] == case.get("upstream_request"), "upstream request changed"
    if "client_response" in produced:
        assert produced["client_response"] == case.get("client_response"), "client response changed"
    if raw is not None:
        whole = produced["client_response"]
        for cut in range(1, len(raw)):
            translator = make_provider(case["provider"]).stream_translator(make_call(case))
            split = run_stream(translator, [raw[:cut], raw[cut:]])
            assert split["frames"] == whole["frames"] and split["error"] == whole["error"], f"split at byte {cut}"
