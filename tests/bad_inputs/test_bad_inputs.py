"""Every bad input of the matrix gives exit 2, exactly one stderr line naming what is wrong, and
leaves every file that was on disk before exactly as it was."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import main
from tests.bad_inputs import (checkpoint_rows, config_rows, data_rows, ensemble_rows, fold_rows, metric_rows,
                               resume_rows, run_rows, search_rows, submission_rows, subset_rows)
from tests.bad_inputs.row import BadInput, command_main, quickstart_argv

ROWS: list[BadInput] = [*config_rows.ROWS, *data_rows.ROWS, *checkpoint_rows.ROWS, *run_rows.ROWS,
                        *resume_rows.ROWS, *subset_rows.ROWS, *metric_rows.ROWS, *fold_rows.ROWS,
                        *submission_rows.ROWS, *ensemble_rows.ROWS, *search_rows.ROWS]


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished_run_template(tmp_path_factory) -> Path:
    """A finished one-epoch quickstart run (best.pth, config.yaml, metrics, submission), copied into
    each row's workspace."""
    root = tmp_path_factory.mktemp("finished")
    assert main.main(quickstart_argv(root, "DATA.TRAIN_SUBSET", "128", tag="done")) == 0
    return root / "out"


def test_the_matrix_rows_have_unique_ids_and_name_what_is_wrong():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    assert all(row.names for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_input_is_one_line_exit_2_and_changes_nothing_on_disk(row, tmp_path, finished_run_template, capsys,
                                                                     monkeypatch):
    workspace = tmp_path / "workspace"
    shutil.copytree(finished_run_template, workspace / "out")
    finished_run = workspace / "out" / "lenet_digits" / "done"
    monkeypatch.chdir(workspace)
    argv = row.prepare(workspace, finished_run)
    before = checksums(workspace)
    capsys.readouterr()

    try:
        code = command_main(row.command)(argv)
    except SystemExit as e:  # the command-line parser's refusals
        code = e.code

    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for name in row.names:
        assert name in lines[0]
    after = checksums(workspace)
    assert {path: after.get(path) for path in before} == before
