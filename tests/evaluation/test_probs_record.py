"""evaluation.probs_record: probs.json names the checkpoint relative to its folder, survives the
folder being moved, and a file that is not a record reads as none (never an error)."""
from __future__ import annotations

import json
import os
import shutil

from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.probs_record import PROBS_RECORD, ProbsRecord, read_probs_record, write_probs_record


def test_a_record_reads_back_with_the_checkpoint_as_an_absolute_path(tmp_path):
    run = tmp_path / "run"
    (run / "eval-1").mkdir(parents=True)
    write_probs_record(str(run), str(run / "best.pth"), "hflip", 1.25)
    write_probs_record(str(run / "eval-1"), str(run / "last.pth"), "none", 1.0)
    assert read_probs_record(str(run)) == ProbsRecord(str(run / "best.pth"), "hflip", 1.25)
    assert read_probs_record(str(run / "eval-1")) == ProbsRecord(str(run / "last.pth"), "none", 1.0)
    assert '"checkpoint": "../last.pth"' in (run / "eval-1" / PROBS_RECORD).read_text()


def test_a_moved_run_folder_still_names_its_own_checkpoint(tmp_path):
    (tmp_path / "old").mkdir()
    write_probs_record(str(tmp_path / "old"), str(tmp_path / "old" / "best.pth"), "none", 1.0)
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    assert read_probs_record(str(tmp_path / "new")).checkpoint == str(tmp_path / "new" / "best.pth")


def test_final_weights_are_recorded_as_no_checkpoint(tmp_path):
    write_probs_record(str(tmp_path), None, "five_crop", 0.8)
    assert read_probs_record(str(tmp_path)) == ProbsRecord(None, "five_crop", 0.8)


def test_no_record_reads_as_none(tmp_path):
    assert read_probs_record(str(tmp_path)) is None


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=10),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                  st.sampled_from(["checkpoint", "tta", "temperature", "x"]), inner, max_size=4),
                              max_leaves=8).map(lambda value: json.dumps(value).encode())))
def test_any_file_that_is_not_a_record_reads_as_none_or_a_well_typed_record(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("record")
    (folder / PROBS_RECORD).write_bytes(content)
    record = read_probs_record(str(folder))
    assert record is None or (isinstance(record.tta, str) and isinstance(record.temperature, float)
                              and (record.checkpoint is None or os.path.isabs(record.checkpoint)))
