"""Where face-verification pairs come from: a pairs file (the homework format), or pairs drawn from
class labels.

A pairs file holds one pair per line, whitespace-separated, blank lines skipped:

    person_a/1.jpg person_a/2.jpg 1      same person
    person_a/1.jpg person_b/7.jpg 0      different people
    test/0001.jpg test/0042.jpg          unlabelled (a test file to predict)

Image paths are relative to an image root and must lead to a file inside it (no absolute path, and
no `..` or link out of it). In a labelled file, a pair of an image with itself and a pair that
repeats another (in either order) are refused, since either would inflate the scores measured on
it; an unlabelled file is a list of pairs to predict, every one of which the submission answers.
Every mistake in the file is refused in one line that names the file and line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from data.image_files import path_inside
from utils.errors import UserError

PAIR_FORMAT = "'img_a img_b [0|1]'"


@dataclass
class PairList:
    """The pairs of a pairs file, as indices into its distinct images."""
    images: list[str]  # the distinct image paths, as written in the file, in order of first appearance
    first: np.ndarray  # int64 (M,): index into images
    second: np.ndarray  # int64 (M,)
    same: np.ndarray | None  # bool (M,): True for one person; None for an unlabelled file
    names: list[str]  # per pair "img_a img_b", the two paths as written joined by one space (a submission's id)


@dataclass
class VerificationPairs:
    """Pairs to score, as indices into the images of one split of the loaders (from a pairs file or drawn)."""
    split: str  # the split whose images first and second index
    first: np.ndarray  # int64 (M,)
    second: np.ndarray  # int64 (M,)
    same: np.ndarray | None  # bool (M,): True for one person; None for unlabelled pairs
    names: list[str] | None  # per pair "img_a img_b" from a pairs file; None for drawn pairs


def parse_pair_line(fields: list[str], location: str, labelled: bool, label_width: int | None) -> bool | None:
    """The label of one pair line split into `fields` (None when the line has none or `labelled` is
    False); `label_width` is the field count of the file's first pair line, None on that line itself."""
    if len(fields) not in (2, 3):
        raise UserError(f"{location}: malformed line with {len(fields)} fields; write one pair per line as "
                        f"{PAIR_FORMAT}, separated by whitespace, with no spaces inside image paths")
    if labelled:
        if len(fields) == 2:
            raise UserError(f"{location}: the pair has no 0/1 label; a labelled pairs file needs one on every line")
        if fields[2] not in ("0", "1"):
            raise UserError(f"{location}: unknown label value {fields[2]!r}; write 1 for the same person, "
                            f"0 for different people")
        return fields[2] == "1"
    # Unlabelled: a label column may be there (a Kaggle file with placeholder labels) and is not read, but a
    # file that has it on some lines only is probably two files run together or a half-edited one.
    if label_width is not None and len(fields) != label_width:
        raise UserError(f"{location}: the line has {len(fields)} fields where the first pair line has "
                        f"{label_width}; write a label on every line or on none")
    return None


def read_pairs_file(path: str, image_root: str, labelled: bool) -> PairList:
    """The PairList of the pairs file at `path`, whose image paths are relative to `image_root`; with
    `labelled`, every line must end in a 0/1 label, else labels are ignored and `same` is None.
    Raises UserError, in one line, for a missing or empty file, a malformed line, a bad or missing
    label, an image that is not a file inside `image_root`, and, in a labelled file, a pair of an
    image with itself or a pair already on another line."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: the pairs file does not exist; check its path")
    index: dict[str, int] = {}
    real_paths: list[str] = []  # per distinct image: its file, links followed, so two spellings are one image
    line_of_pair: dict[frozenset[str], int] = {}
    first, second, same, names = [], [], [], []
    label_width = None
    with open(path, encoding="utf-8") as lines:
        try:
            for line_number, line in enumerate(lines, start=1):
                fields = line.split()
                if not fields:
                    continue
                location = f"{path}:{line_number}"
                label = parse_pair_line(fields, location, labelled, label_width)
                label_width = label_width or len(fields)
                for image, indices in zip(fields[:2], (first, second)):
                    if image not in index:
                        real_paths.append(os.path.realpath(image_file(image, image_root, location)))
                        index[image] = len(index)
                    indices.append(index[image])
                if labelled:
                    check_pair_is_new(real_paths[first[-1]], real_paths[second[-1]], fields, line_number,
                                      location, line_of_pair)
                same.append(label)
                names.append(f"{fields[0]} {fields[1]}")
        except UnicodeDecodeError as error:
            raise UserError(f"{path}: not a UTF-8 text file ({error.reason}); a pairs file is plain text, "
                            f"{PAIR_FORMAT} per line") from error
    if not names:
        raise UserError(f"{path}: the pairs file holds no pairs; write one pair per line as {PAIR_FORMAT}")
    return PairList(images=list(index), first=np.array(first, dtype=np.int64), second=np.array(second, dtype=np.int64),
                    same=np.array(same, dtype=bool) if labelled else None, names=names)


def image_file(image: str, image_root: str, location: str) -> str:
    """`image_root`/`image`; UserError naming the image when that leads outside `image_root` or is
    not a file, naming the path looked for."""
    looked_for = path_inside(image_root, image)
    if looked_for is None:
        raise UserError(f"{location}: image {image!r} is outside the image root {image_root}; write paths relative "
                        f"to it, with no absolute path and no '..' or link leading out of it")
    if not os.path.isfile(looked_for):
        raise UserError(f"{location}: image {image!r} not found, looked for {looked_for}; check the image root "
                        f"and the path in the pairs file (relative to the image root)")
    return looked_for


def check_pair_is_new(first_file: str, second_file: str, fields: list[str], line_number: int, location: str,
                      line_of_pair: dict[frozenset[str], int]) -> None:
    """UserError when the pair of `first_file` and `second_file` (as written in `fields`) is one image
    twice, or a pair of `line_of_pair` in either order; else it is added there, at `line_number`."""
    if first_file == second_file:
        raise UserError(f"{location}: the pair {fields[0]!r} {fields[1]!r} is one image with itself, which any model "
                        f"scores as the same person; remove the line")
    pair = frozenset((first_file, second_file))
    if pair in line_of_pair:
        raise UserError(f"{location}: the pair {fields[0]!r} {fields[1]!r} repeats the pair of line "
                        f"{line_of_pair[pair]} (lines {line_of_pair[pair]} and {line_number}), which would count it "
                        f"twice; keep one of them")
    line_of_pair[pair] = line_number


def draw_pairs(labels: np.ndarray, num_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, same): int64, int64 and bool arrays of length `num_pairs`, indices into `labels`,
    in shuffled order. ceil(num_pairs / 2) pairs are two distinct images of one label (same True),
    the rest two images of different labels; the same seed draws the same pairs, and a pair may repeat.

    Each pair starts from an anchor image drawn uniformly (among images whose label has another image,
    for same pairs), then a partner uniformly among the images that qualify. So a label is drawn in
    proportion to its image count: the pairs look like the images they come from, and no image of a
    large class is rarer than one of a small class. Raises ValueError when no label has two images or
    every image has one label."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}")
    if num_pairs < 0:
        raise ValueError(f"num_pairs must be 0 or more, got {num_pairs}")
    _, label_index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if not (counts >= 2).any():
        raise ValueError("no label has two images, so no same-label pair can be drawn")
    if len(counts) < 2:
        raise ValueError("every image has the same label, so no different-label pair can be drawn")
    # Images sorted by label: label k's images are by_label[starts[k]:starts[k] + counts[k]].
    by_label = np.argsort(label_index, kind="stable")
    starts = np.cumsum(counts) - counts
    position = np.empty(len(labels), dtype=np.int64)
    position[by_label] = np.arange(len(labels)) - starts[label_index[by_label]]
    rng = np.random.default_rng(seed)
    num_same = (num_pairs + 1) // 2
    same_first, same_second = draw_same_label(rng, num_same, label_index, counts, starts, by_label, position)
    different_first, different_second = draw_different_label(rng, num_pairs - num_same, label_index, counts, starts,
                                                             by_label)
    order = rng.permutation(num_pairs)
    first = np.concatenate([same_first, different_first])[order]
    second = np.concatenate([same_second, different_second])[order]
    same = np.repeat([True, False], [num_same, num_pairs - num_same])[order]
    return first.astype(np.int64), second.astype(np.int64), same


def draw_same_label(rng: np.random.Generator, count: int, label_index: np.ndarray, counts: np.ndarray,
                    starts: np.ndarray, by_label: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, partners) of `count` pairs: an anchor uniform among images whose label has >= 2 images,
    its partner uniform among the other images of that label."""
    eligible = np.flatnonzero(counts[label_index] >= 2)
    anchors = eligible[rng.integers(0, len(eligible), count)]
    label = label_index[anchors]
    # Draw a rank among the label's other images, then step over the anchor's own rank so it never pairs itself.
    rank = rng.integers(0, counts[label] - 1)
    rank += rank >= position[anchors]
    return anchors, by_label[starts[label] + rank]


def draw_different_label(rng: np.random.Generator, count: int, label_index: np.ndarray, counts: np.ndarray,
                         starts: np.ndarray, by_label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, partners) of `count` pairs: an anchor uniform among all images, its partner uniform
    among the images of other labels."""
    anchors = rng.integers(0, len(label_index), count)
    label = label_index[anchors]
    # A slot among the images of other labels, in label order: the anchor's label block is stepped over.
    slot = rng.integers(0, len(label_index) - counts[label])
    slot += np.where(slot >= starts[label], counts[label], 0)
    return anchors, by_label[slot]
