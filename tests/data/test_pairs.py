"""Verification pairs (data/pairs.py): the pairs file's format and its refusals, one line naming file
and line, and pairs drawn from labels."""
import numpy as np
import pytest

from data.pairs import PairList, draw_pairs, read_pairs_file
from utils.errors import UserError

IMAGES = ["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"]


@pytest.fixture
def image_root(tmp_path):
    """A folder holding IMAGES as empty files (existence is all a pairs file is checked for)."""
    root = tmp_path / "images"
    for image in IMAGES:
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        (root / image).touch()
    return root


def write_pairs(tmp_path, text):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    return str(path)


def read_refused(path, image_root, labelled):
    """The message of the UserError that reading the pairs file raises, checked to be one line."""
    with pytest.raises(UserError) as refusal:
        read_pairs_file(path, str(image_root), labelled)
    message = str(refusal.value)
    assert "\n" not in message
    assert message.startswith(path)
    return message


# --- read_pairs_file -----------------------------------------------------------------------------

def test_a_labelled_file_gives_distinct_images_in_order_of_appearance_and_indices_labels_and_names(tmp_path,
                                                                                                   image_root):
    path = write_pairs(tmp_path, "a/1.jpg a/2.jpg 1\n\n  b/1.jpg\ta/1.jpg   0\nc/1.jpg b/1.jpg 0\n\n")
    pairs = read_pairs_file(path, str(image_root), labelled=True)
    assert isinstance(pairs, PairList)
    assert pairs.images == ["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"]
    assert pairs.first.dtype == pairs.second.dtype == np.int64
    assert pairs.first.tolist() == [0, 2, 3]
    assert pairs.second.tolist() == [1, 0, 2]
    assert pairs.same.dtype == bool and pairs.same.tolist() == [True, False, False]
    assert pairs.names == ["a/1.jpg a/2.jpg", "b/1.jpg a/1.jpg", "c/1.jpg b/1.jpg"]


def test_an_unlabelled_file_has_no_labels(tmp_path, image_root):
    pairs = read_pairs_file(write_pairs(tmp_path, "a/1.jpg a/2.jpg\nc/1.jpg b/1.jpg\n"), str(image_root), False)
    assert pairs.same is None
    assert pairs.first.tolist() == [0, 2] and pairs.second.tolist() == [1, 3]


def test_labels_in_a_file_read_as_unlabelled_are_ignored(tmp_path, image_root):
    pairs = read_pairs_file(write_pairs(tmp_path, "a/1.jpg a/2.jpg 1\nc/1.jpg b/1.jpg 0\n"), str(image_root), False)
    assert pairs.same is None
    assert pairs.names == ["a/1.jpg a/2.jpg", "c/1.jpg b/1.jpg"]


def test_a_missing_pairs_file_is_refused(tmp_path, image_root):
    message = read_refused(str(tmp_path / "nowhere.txt"), image_root, True)
    assert "does not exist" in message


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("line", ["a/1.jpg", "a/1.jpg a/2.jpg 1 extra"])
def test_a_line_of_other_than_2_or_3_fields_is_refused_with_its_line_number(tmp_path, image_root, line, labelled):
    path = write_pairs(tmp_path, f"a/1.jpg a/2.jpg 1\n\n{line}\n")
    assert ":3: malformed line" in read_refused(path, image_root, labelled)


@pytest.mark.parametrize("label", ["2", "yes", "-1", "1.0"])
def test_a_label_other_than_0_or_1_is_refused_and_quoted(tmp_path, image_root, label):
    path = write_pairs(tmp_path, f"a/1.jpg a/2.jpg 1\nc/1.jpg b/1.jpg {label}\n")
    assert f":2: unknown label value '{label}'" in read_refused(path, image_root, True)


def test_a_line_without_a_label_is_refused_in_a_labelled_file(tmp_path, image_root):
    path = write_pairs(tmp_path, "a/1.jpg a/2.jpg 1\nc/1.jpg b/1.jpg\n")
    message = read_refused(path, image_root, True)
    assert ":2: the pair has no 0/1 label; a labelled pairs file needs one on every line" in message


@pytest.mark.parametrize("text", ["a/1.jpg a/2.jpg\n\nc/1.jpg b/1.jpg 0\n", "a/1.jpg a/2.jpg 1\n\nc/1.jpg b/1.jpg\n"])
def test_an_unlabelled_file_mixing_lines_with_and_without_labels_names_the_first_line_that_differs(tmp_path,
                                                                                                   image_root, text):
    path = write_pairs(tmp_path, text + "a/2.jpg b/1.jpg\n")
    assert ":3: the line has" in read_refused(path, image_root, False)


def test_an_image_not_under_the_image_root_is_refused_with_the_path_looked_for(tmp_path, image_root):
    path = write_pairs(tmp_path, "a/1.jpg a/2.jpg 1\na/1.jpg d/9.jpg 0\n")
    message = read_refused(path, image_root, True)
    assert ":2: image 'd/9.jpg' not found" in message
    assert str(image_root / "d" / "9.jpg") in message


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("image", ["../outside.jpg", "a/../../outside.jpg", "ABSOLUTE", "a/link.jpg"])
def test_an_image_outside_the_image_root_is_refused_naming_it_and_its_line(tmp_path, image_root, image, labelled):
    (tmp_path / "outside.jpg").touch()
    (image_root / "a" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    if image == "ABSOLUTE":
        image = str(tmp_path / "outside.jpg")
    path = write_pairs(tmp_path, f"a/1.jpg a/2.jpg 1\nb/1.jpg {image} 0\n")
    assert f":2: image {image!r} is outside the image root" in read_refused(path, image_root, labelled)


@pytest.mark.parametrize("pair", ["a/1.jpg a/1.jpg", "a/1.jpg a/./1.jpg"])
def test_an_image_paired_with_itself_is_refused_in_a_labelled_file(tmp_path, image_root, pair):
    path = write_pairs(tmp_path, f"a/1.jpg a/2.jpg 1\nb/1.jpg c/1.jpg 0\n{pair} 1\n")
    assert ":3: the pair" in read_refused(path, image_root, True)


@pytest.mark.parametrize("repeat", ["a/1.jpg a/2.jpg 1", "a/2.jpg a/1.jpg 1", "a/2.jpg a/1.jpg 0"])
def test_a_repeated_pair_in_either_order_is_refused_with_both_line_numbers(tmp_path, image_root, repeat):
    path = write_pairs(tmp_path, f"a/1.jpg a/2.jpg 1\n\nb/1.jpg c/1.jpg 0\n{repeat}\n")
    message = read_refused(path, image_root, True)
    assert ":4: " in message and "lines 1 and 4" in message


def test_an_unlabelled_file_keeps_every_pair_it_lists_since_the_submission_answers_each(tmp_path, image_root):
    pairs = read_pairs_file(write_pairs(tmp_path, "a/1.jpg a/2.jpg\na/2.jpg a/1.jpg\nb/1.jpg b/1.jpg\n"),
                            str(image_root), False)
    assert pairs.names == ["a/1.jpg a/2.jpg", "a/2.jpg a/1.jpg", "b/1.jpg b/1.jpg"]


@pytest.mark.parametrize("text", ["", "\n  \n\t\n"])
def test_a_file_without_pairs_is_refused(tmp_path, image_root, text):
    assert "holds no pairs" in read_refused(write_pairs(tmp_path, text), image_root, True)


def test_a_file_that_is_not_text_is_refused(tmp_path, image_root):
    path = tmp_path / "pairs.txt"
    path.write_bytes(b"a/1.jpg a/2.jpg 1\n\xff\xfe\x00binary\n")
    assert "not a UTF-8 text file" in read_refused(str(path), image_root, True)


# --- draw_pairs ------------------------------------------------------------------------------------------

LABELS = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4])  # label 2 and 4 have one image each


@pytest.mark.parametrize("num_pairs", [0, 1, 7, 1000])
def test_draw_pairs_draws_half_same_label_pairs_rounded_up_and_the_rest_different(num_pairs):
    first, second, same = draw_pairs(LABELS, num_pairs, seed=0)
    assert first.dtype == second.dtype == np.int64 and same.dtype == bool
    assert len(first) == len(second) == len(same) == num_pairs
    assert same.sum() == (num_pairs + 1) // 2


def test_same_pairs_share_a_label_different_pairs_do_not_and_no_image_pairs_itself():
    first, second, same = draw_pairs(LABELS, 5000, seed=1)
    assert (LABELS[first[same]] == LABELS[second[same]]).all()
    assert (LABELS[first[~same]] != LABELS[second[~same]]).all()
    assert (first != second).all()


def test_draw_pairs_reach_every_image_that_can_pair_and_mix_the_two_kinds():
    first, second, same = draw_pairs(LABELS, 5000, seed=2)
    assert set(np.concatenate([first[same], second[same]])) == set(np.flatnonzero(~np.isin(LABELS, [2, 4])))
    assert set(np.concatenate([first[~same], second[~same]])) == set(range(len(LABELS)))
    assert 0 < same[:100].sum() < 100  # shuffled, not all same pairs first


def test_draw_pairs_is_deterministic_per_seed():
    drawn = [draw_pairs(LABELS, 200, seed=seed) for seed in (7, 7, 8)]
    for a, b in zip(drawn[0], drawn[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(drawn[0][0], drawn[2][0])


def test_draw_pairs_takes_any_label_values_and_many_images():
    labels = np.random.default_rng(0).integers(0, 20_000, 100_000).astype(str)
    first, second, same = draw_pairs(labels, 100_000, seed=3)
    assert (labels[first[same]] == labels[second[same]]).all()
    assert (labels[first[~same]] != labels[second[~same]]).all()
    assert (first != second).all()


def test_draw_pairs_refuses_labels_without_two_images_of_one_label():
    with pytest.raises(ValueError, match="no label has two images"):
        draw_pairs(np.array([0, 1, 2, 3]), 10, seed=0)


def test_draw_pairs_refuses_labels_that_are_all_one():
    with pytest.raises(ValueError, match="every image has the same label"):
        draw_pairs(np.array([5, 5, 5]), 10, seed=0)
