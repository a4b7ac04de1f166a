"""Bad-input rows: subsets (DATA.VAL_SUBSET and DATA.TEST_SUBSET that are no fraction or count, or
larger than their split; a Kaggle submission predicted from part of the test split)."""
from pathlib import Path

from tests.bad_inputs.row import BadInput, quickstart_argv


def predict_on_a_test_subset(workspace: Path, finished_run: Path) -> list[str]:
    return ["--predict", "--resume", str(finished_run / "best.pth"), "--device", "cpu",
            "--opts", "DATA.NUM_WORKERS", "0", "DATA.TEST_SUBSET", "0.5"]


ROWS: list[BadInput] = [
    BadInput("predict-on-a-test-subset", predict_on_a_test_subset, ("DATA.TEST_SUBSET", "submission.csv")),
    BadInput("val-subset-not-a-fraction-or-count", lambda ws, run: quickstart_argv(ws, "DATA.VAL_SUBSET", "2.5"),
             ("DATA.VAL_SUBSET", "2.5")),
    BadInput("test-subset-larger-than-the-test-split",
             lambda ws, run: quickstart_argv(ws, "DATA.TEST_SUBSET", "5000"), ("DATA.TEST_SUBSET", "5000", "359")),
]
