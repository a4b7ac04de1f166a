"""Property: whatever a pairs file holds (images inside or outside the root, missing ones, self-pairs,
repeats, labels, whitespace), reading it either gives the pairs written there, each image as written,
or refuses it with a UserError in one line. Never another exception, never a silent change of meaning."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from data.pairs import read_pairs_file
from utils.errors import UserError

IMAGES = [f"{person}/{number}.jpg" for person in "abcd" for number in (1, 2, 3)]
# Other spellings of an image above, and images outside the root or missing.
ALIASES = ["a/./1.jpg", "b/../a/2.jpg"]
BAD_NAMES = ["../outside.jpg", "ABSOLUTE", "link.jpg", "d/9.jpg", "a/../../outside.jpg"]
LABELS = ["1", "0"] * 6 + ["", "2", "yes"]
SEPARATORS = [" ", "\t", "  ", " \t "]


@pytest.fixture(scope="module")
def image_root():
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        for image in IMAGES:
            (root / image).parent.mkdir(parents=True, exist_ok=True)
            (root / image).touch()
        (Path(folder) / "outside.jpg").touch()
        (root / "link.jpg").symlink_to(Path(folder) / "outside.jpg")
        yield root


# Mostly images that can be read (repeats weigh an entry), so that most examples check pairs, not a refusal.
names = st.sampled_from(IMAGES * 4 + ALIASES + BAD_NAMES)
pair_line = st.tuples(names, names, st.sampled_from(LABELS), st.sampled_from(SEPARATORS))
lines = st.lists(st.one_of(pair_line, pair_line, pair_line, st.just(None)),  # None: a blank line
                 min_size=1, max_size=6)


def file_of(image_root: Path, name: str) -> str:
    return os.path.realpath(os.path.join(image_root, name))


def expected_refusal(image_root: Path, pairs: list[tuple[str, str, str]], labelled: bool) -> bool:
    """Whether the pairs must be refused: none at all, an image outside the root or missing, a label that
    is not 0/1 in a labelled file, a line without one among lines with one; for a labelled file, an image
    with itself or a pair twice."""
    if not pairs:
        return True
    inside = os.path.realpath(image_root) + os.sep
    files = [file_of(image_root, name) for first, second, _ in pairs for name in (first, second)]
    if any(not path.startswith(inside) or not os.path.isfile(path) for path in files):
        return True
    if not labelled:
        return len({bool(label) for _, _, label in pairs}) > 1
    if any(label not in ("0", "1") for _, _, label in pairs):
        return True
    keys = [frozenset((file_of(image_root, first), file_of(image_root, second))) for first, second, _ in pairs]
    return any(len(key) == 1 for key in keys) or len(set(keys)) < len(keys)


@settings(max_examples=200, deadline=None)
@given(lines=lines, labelled=st.booleans())
def test_a_pairs_file_gives_the_pairs_written_or_is_refused_in_one_line(image_root, lines, labelled):
    lines = [line if line is None else tuple(str(image_root.parent / "outside.jpg") if name == "ABSOLUTE" else name
                                             for name in line[:2]) + line[2:] for line in lines]
    text = "".join("\n" if line is None else line[3].join(filter(None, line[:3])) + "\n" for line in lines)
    path = image_root.parent / "pairs.txt"
    path.write_text(text)
    pairs = [line[:3] for line in lines if line is not None]
    try:
        read = read_pairs_file(str(path), str(image_root), labelled)
    except UserError as refusal:
        event("refused")
        assert "\n" not in str(refusal) and str(path) in str(refusal)
        assert expected_refusal(image_root, pairs, labelled)
        return
    assert not expected_refusal(image_root, pairs, labelled)
    assert read.names == [f"{first} {second}" for first, second, _ in pairs]
    assert [(read.images[a], read.images[b]) for a, b in zip(read.first, read.second)] == \
        [(first, second) for first, second, _ in pairs]
    assert len(set(read.images)) == len(read.images)
    if labelled:
        assert read.same.tolist() == [label == "1" for _, _, label in pairs]
    else:
        assert read.same is None
