"""bench/train.py: one row per model with the three rates, (a) the project's loop, (b) the model
alone and (c) the homework-style loop, and the two ratios computed from them."""
import importlib.util
import math
import os

import pytest

from config import get_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_bench_train():
    spec = importlib.util.spec_from_file_location("bench_train", os.path.join(REPO, "bench", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_train():
    return load_bench_train()


def table_rows(output: str) -> list[dict[str, str]]:
    """The markdown table of `output` as {column: cell} rows."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    header, body = lines[0], lines[2:]

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    return [dict(zip(cells(header), cells(line))) for line in body]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_one_run_prints_the_three_rates_and_their_ratios(bench_train, capsys):
    argv = ["--models", "lenet", "--img-size", "32", "--batch-size", "16", "--batches", "2", "--warmup", "1",
            "--workers", "0", "--device", "cpu"]
    assert bench_train.main(argv) == 0
    output = capsys.readouterr().out
    assert "python bench/train.py --models lenet --img-size 32" in output
    [row] = table_rows(output)
    assert (row["model"], row["img size"], row["batch"], row["device"], row["precision"]) == (
        "lenet", "32", "16", "cpu", "fp32")
    loop, model_alone, homework = (number(row[column]) for column in
                                   ("(a) loop", "(b) model alone", "(c) homework-style"))
    assert loop > 0 and model_alone > 0 and homework > 0
    # How fast this machine is says nothing here: the measurement is positive and finite, and
    # test_the_table_prints_whole_rates_and_ratios_of_the_unrounded_rates pins the arithmetic.
    ratios = [number(row["(a)/(b)"]), number(row["(a)/(c)"])]
    assert all(0 < ratio < math.inf for ratio in ratios)


def test_the_table_prints_whole_rates_and_ratios_of_the_unrounded_rates(bench_train):
    # 48.4 / 37.3 = 1.2976, printed 1.30; from the printed rates, 48 / 37, it would be 1.297.
    rates = {"(a) loop": 48.4, "(b) model alone": 37.3, "(c) homework-style": 1234.5}
    row = {"model": "lenet", "img size": 32, "batch": 16, "device": "cpu", "precision": "fp32", **rates,
           "(a)/(b)": 48.4 / 37.3, "(a)/(c)": 48.4 / 1234.5}
    [printed] = table_rows(bench_train.markdown_table([row]))
    assert (printed["(a) loop"], printed["(b) model alone"], printed["(c) homework-style"]) == ("48", "37", "1,234")
    assert (printed["(a)/(b)"], printed["(a)/(c)"]) == ("1.30", "0.04")


def test_a_model_too_small_for_the_size_gets_it_doubled_until_it_fits(bench_train):
    assert bench_train.fitting_image_size(get_config(None, ["MODEL.NAME", "alexnet", "DATA.IMG_SIZE", "32"])) == 64
    assert bench_train.fitting_image_size(get_config(None, ["MODEL.NAME", "lenet", "DATA.IMG_SIZE", "32"])) == 32


def test_a_split_too_small_for_the_batches_asked_for_is_one_error_line(bench_train, capsys):
    argv = ["--models", "lenet", "--batch-size", "64", "--batches", "20", "--warmup", "3", "--workers", "0",
            "--device", "cpu", "--opts", "DATA.TRAIN_SUBSET", "1000"]
    assert bench_train.main(argv) == 2
    assert capsys.readouterr().err == ("error: the 23 batches asked for (--warmup + --batches) need 1472 train images, "
                                       "but the train split has 1000; lower --batches, --warmup or --batch-size\n")
