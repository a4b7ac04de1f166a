"""Bad-input rows: submission formats (SUBMISSION.FORMAT, SUBMISSION.TOPK, TEST.TEMPERATURE) and a
submission.csv that differs from the competition's sample submission (--sample-submission): a
missing id, a wrong order, a wrong header, a sample file that is not there; and
scripts/sample_submission.py given an existing file, an unknown format or a test subset."""
from pathlib import Path

from tests.bad_inputs.row import QUICKSTART, BadInput, quickstart_argv, write

NUM_TEST = 359  # the digits' test images, which --predict on the finished quickstart run writes


def predict_against(sample_text: str):
    """A row's prepare: --predict from the finished run, checked against a sample holding `sample_text`."""
    def prepare(workspace: Path, finished_run: Path) -> list[str]:
        sample = write(workspace / "sample_submission.csv", sample_text)
        return ["--predict", "--resume", str(finished_run / "best.pth"), "--device", "cpu",
                "--sample-submission", str(sample), "--opts", "DATA.NUM_WORKERS", "0"]
    return prepare


def rows_text(header: str, ids) -> str:
    return header + "\n" + "".join(f"{image_id},0\n" for image_id in ids)


ROWS: list[BadInput] = [
    BadInput("sample-submission-has-an-id-the-submission-lacks",
             predict_against(rows_text("Id,Category", [*range(NUM_TEST), "extra_7"])),
             ("sample_submission.csv", "'extra_7'")),
    BadInput("sample-submission-in-another-order",
             predict_against(rows_text("Id,Category", [1, 0, *range(2, NUM_TEST)])), ("row 1", "'0'", "'1'")),
    BadInput("sample-submission-with-another-header",
             predict_against(rows_text("ImageId,Label", range(NUM_TEST))), ("Id,Category", "ImageId,Label")),
    BadInput("sample-submission-not-there",
             lambda ws, run: ["--predict", "--resume", str(run / "best.pth"), "--device", "cpu",
                              "--sample-submission", str(ws / "nosuch.csv")], ("nosuch.csv",)),
    BadInput("submission-format-unknown", lambda ws, run: quickstart_argv(ws, "SUBMISSION.FORMAT", "top5"),
             ("SUBMISSION.FORMAT", "top5")),
    BadInput("submission-topk-zero", lambda ws, run: quickstart_argv(ws, "SUBMISSION.TOPK", "0"),
             ("SUBMISSION.TOPK", "0")),
    BadInput("submission-topk-above-the-classes",
             lambda ws, run: quickstart_argv(ws, "SUBMISSION.FORMAT", "topk", "SUBMISSION.TOPK", "11"),
             ("SUBMISSION.TOPK", "11", "10")),
    BadInput("test-temperature-not-positive", lambda ws, run: quickstart_argv(ws, "TEST.TEMPERATURE", "0"),
             ("TEST.TEMPERATURE", "'0'")),
    BadInput("test-temperature-not-a-number", lambda ws, run: quickstart_argv(ws, "TEST.TEMPERATURE", "hot"),
             ("TEST.TEMPERATURE", "'hot'")),
]


SAMPLE_SCRIPT = "scripts/sample_submission.py"


def sample_argv(workspace: Path, *opts: str, out: str = "sample_submission.csv") -> list[str]:
    """scripts/sample_submission.py on the quickstart config into `workspace`/`out`, with `opts`."""
    return ["--cfg", QUICKSTART, "--out", str(workspace / out), "--opts", *opts]


ROWS += [
    BadInput("sample-submission-over-an-existing-file",
             lambda ws, run: sample_argv(ws, out=str(write(ws / "sample_submission.csv", "mine\n"))),
             ("sample_submission.csv", "exists"), command=SAMPLE_SCRIPT),
    BadInput("sample-submission-of-an-unknown-format", lambda ws, run: sample_argv(ws, "SUBMISSION.FORMAT", "csv"),
             ("SUBMISSION.FORMAT", "probs"), command=SAMPLE_SCRIPT),
    BadInput("sample-submission-of-a-test-subset", lambda ws, run: sample_argv(ws, "DATA.TEST_SUBSET", "10"),
             ("DATA.TEST_SUBSET",), command=SAMPLE_SCRIPT),
]
