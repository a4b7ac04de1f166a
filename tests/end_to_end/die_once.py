"""main.py under torchrun, except that rank 1 of the group's first attempt dies (os._exit, like
a SIGKILL) as epoch 2 starts: for the --max-restarts test in test_distributed.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import main  # noqa: E402

real_train_one_epoch = main.train_one_epoch


def train_one_epoch(*args, **kwargs):
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_attempt and os.environ["RANK"] == "1" and args[3] == 1:  # args[3] is the epoch
        os._exit(9)
    return real_train_one_epoch(*args, **kwargs)


main.train_one_epoch = train_one_epoch
sys.exit(main.main())
