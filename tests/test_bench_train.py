"""bench/train.py: one row per model with the three rates, (a) the project's loop, (b) the model
alone and (c) the homework-style loop, and the two ratios computed from them."""
import importlib.util
import os

import pytest

from config import get_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    # The rates print as whole numbers and the ratios to 0.01, from the unrounded rates.
    assert number(row["(a)/(b)"]) == pytest.approx(loop / model_alone, abs=0.006)
    assert number(row["(a)/(c)"]) == pytest.approx(loop / homework, abs=0.006)


def test_a_model_too_small_for_the_size_gets_it_doubled_until_it_fits(bench_train):
    assert bench_train.fitting_image_size(get_config(None, ["MODEL.NAME", "alexnet", "DATA.IMG_SIZE", "32"])) == 64
    assert bench_train.fitting_image_size(get_config(None, ["MODEL.NAME", "lenet", "DATA.IMG_SIZE", "32"])) == 32


def test_a_split_too_small_for_the_batches_asked_for_is_one_error_line(bench_train, capsys):
    argv = ["--models", "lenet", "--batch-size", "64", "--batches", "20", "--warmup", "3", "--workers", "0",
            "--device", "cpu", "--opts", "DATA.TRAIN_SUBSET", "1000"]
    assert bench_train.main(argv) == 2
    assert capsys.readouterr().err == ("error: the 23 batches asked for (--warmup + --batches) need 1472 train images, "
                                       "but the train split has 1000; lower --batches, --warmup or --batch-size\n")
