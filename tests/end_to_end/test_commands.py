"""Every command a user types prints its help from a fresh interpreter: main.py, the scripts and
the training benchmark import only what exists in the package layout."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


COMMANDS = {
    "main.py": ["--eval", "--predict", "--export-embeddings", "--throughput", "--lr-find", "--list-models"],
    "scripts/sweep.py": ["--grid", "--name"],
    "scripts/compare.py": ["--metric"],
    "scripts/to_hdf5.py": ["--layout"],
    "scripts/show_augmentations.py": ["--cfg"],
    "bench/train.py": ["--models", "--batch-size"],
    # Every format, the whole description, and the main.py command that trains on each format.
    "bench/fake_data.py": ["cifar10", "cifar100", "medium-imagenet", "image-folder", "kaggle-csv", "faces",
                           "the command that trains on what it wrote",
                           "python main.py --cfg configs/recipes/face_arcface.yaml"],
}

# Runs each command as `python COMMAND --help` would (as __main__, with its own sys.argv and its
# folder first on sys.path), one after another in one interpreter so that torch is imported once,
# and prints {command: [exit code, stdout]} as JSON.
RUN_EACH_HELP = """
import contextlib, io, json, os, runpy, sys
results = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    sys.path[0] = os.path.dirname(path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code or 0
    results[path] = [code, out.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    # From another folder, as a user may run them: each command finds the project by itself.
    paths = [os.path.join(REPO, command) for command in COMMANDS]
    result = subprocess.run([sys.executable, "-c", RUN_EACH_HELP, *paths], cwd=tmp_path_factory.mktemp("elsewhere"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {os.path.relpath(path, REPO): output for path, output in json.loads(result.stdout).items()}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_prints_its_help_from_a_fresh_interpreter(helps, command):
    code, stdout = helps[command]
    assert code == 0
    assert stdout.startswith("usage: ")
    assert all(flag in stdout for flag in COMMANDS[command])
