"""The config system: defaults, precedence, BASE inheritance, round trip, and bad input."""
import pathlib
import re

import pytest
import yaml

import config
from config import get_config
from utils.errors import UserError


def write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file_are_frozen():
    cfg = get_config()
    assert cfg.MODEL.NAME == "lenet" and cfg.DATA.DATASET == "digits"
    assert cfg.is_frozen()


def test_every_default_key_has_a_comment_in_config_py():
    source = open(config.__file__).read().splitlines()
    for i, line in enumerate(source):
        if re.match(r"_C(\.\w+)+ = (?!CN\(\))", line):
            assert source[i - 1].lstrip().startswith("#"), f"{line} has no comment above it"


def test_precedence_defaults_base_file_flags_opts(tmp_path):
    write(tmp_path / "base.yaml", "TRAIN:\n  LR: 0.5\n  EPOCHS: 7\nDATA:\n  BATCH_SIZE: 16\n")
    cfg_file = write(tmp_path / "child.yaml", "BASE: [base.yaml]\nTRAIN:\n  LR: 0.25\nDATA:\n  BATCH_SIZE: 32\n")
    cfg = get_config(cfg_file, ["DATA.BATCH_SIZE", "64", "TRAIN.WARMUP_EPOCHS", "3"])
    assert cfg.TRAIN.EPOCHS == 7          # from BASE
    assert cfg.TRAIN.LR == 0.25           # file beats BASE
    assert cfg.DATA.BATCH_SIZE == 64      # opts beat the file
    assert cfg.TRAIN.WARMUP_EPOCHS == 3
    assert cfg.TRAIN.MIN_LR == 1e-5       # untouched default


def test_later_opts_win_over_earlier_ones_so_flags_placed_first_lose_to_opts():
    cfg = get_config(None, ["TAG", "'from-flag'", "TAG", "from-opts"])
    assert cfg.TAG == "from-opts"


def test_base_chain_of_three_levels_and_several_bases(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "grand.yaml", "SEED: 3\nTRAIN:\n  EPOCHS: 2\n")
    write(tmp_path / "sub" / "parent.yaml", "BASE: [grand.yaml]\nTRAIN:\n  EPOCHS: 4\n")
    write(tmp_path / "other.yaml", "PRINT_FREQ: 99\n")
    cfg = get_config(write(tmp_path / "child.yaml", "BASE: [sub/parent.yaml, other.yaml]\n"))
    assert (cfg.SEED, cfg.TRAIN.EPOCHS, cfg.PRINT_FREQ) == (3, 4, 99)


def test_legacy_homework_yaml_loads_unchanged(tmp_path):
    cfg = get_config(write(tmp_path / "hw.yaml", """
DATA:
  BATCH_SIZE: 256
  DATASET: medium_imagenet
  DATA_PATH: /data/medium-imagenet/medium-imagenet-nmep-96.hdf5
  IMG_SIZE: 96
  INTERPOLATION: bicubic
  PIN_MEMORY: True
  NUM_WORKERS: 8
MODEL:
  NAME: resnet18
  NUM_CLASSES: 200
  DROP_RATE: 0.1
  RESUME: ''
TRAIN:
  START_EPOCH: 0
  EPOCHS: 30
  WARMUP_EPOCHS: 5
  LR: 3e-4
  MIN_LR: 3e-5
  WARMUP_LR: 3e-5
  ACCUMULATION_STEPS: 0
  LR_SCHEDULER:
    NAME: cosine
  OPTIMIZER:
    NAME: adamw
    EPS: 1e-8
    BETAS: (0.9, 0.999)
    MOMENTUM: 0.9
AUG:
  COLOR_JITTER: 0.4
  RAND_AUGMENT: rand-m9-mstd0.5-inc1
TEST:
  CROP: True
  SEQUENTIAL: False
  SHUFFLE: False
OUTPUT: output
SAVE_FREQ: 1
PRINT_FREQ: 500
SEED: 0
EVAL_MODE: False
"""))
    assert cfg.TRAIN.LR == 3e-4 and isinstance(cfg.TRAIN.LR, float)
    assert cfg.TRAIN.OPTIMIZER.BETAS == (0.9, 0.999)
    assert cfg.DATA.INTERPOLATION == "bicubic" and cfg.MODEL.NUM_CLASSES == 200


def test_resolved_config_round_trips_through_its_dump(tmp_path):
    cfg = get_config(None, ["TRAIN.LR", "0.02", "TRAIN.OPTIMIZER.BETAS", "(0.8, 0.9)", "TAG", "x"])
    again = get_config(write(tmp_path / "config.yaml", cfg.dump()))
    assert again == cfg


def test_integers_are_accepted_for_float_keys_and_lists_for_tuples():
    cfg = get_config(None, ["TRAIN.LR", "1", "TRAIN.OPTIMIZER.BETAS", "[0.5, 0.6]"])
    assert cfg.TRAIN.LR == 1.0 and isinstance(cfg.TRAIN.LR, float)
    assert cfg.TRAIN.OPTIMIZER.BETAS == (0.5, 0.6)


@pytest.mark.parametrize("opts, message", [
    (["TRAIN.LRR", "1"], "unknown config key TRAIN.LRR; did you mean TRAIN.LR?"),
    (["DATA.BATCHSIZE", "1"], "did you mean DATA.BATCH_SIZE?"),
    (["TRAIN.LR", "abc"], "TRAIN.LR expects a number"),
    (["TRAIN.EPOCHS", "2.5"], "TRAIN.EPOCHS expects an integer"),
    (["DATA.PIN_MEMORY", "yes"], "DATA.PIN_MEMORY expects a boolean"),
    (["TRAIN.OPTIMIZER.BETAS", "0.9"], "TRAIN.OPTIMIZER.BETAS expects a list"),
    (["TRAIN.LR"], "--opts takes KEY VALUE pairs"),
    (["TRAIN", "1"], "TRAIN is a section"),
    (["WANDB.MODE", "sometimes"], "unknown WANDB.MODE 'sometimes'; choose one of: auto, online, offline, disabled"),
    (["MODEL.NAME", "resnet19"], "unknown MODEL.NAME 'resnet19'; did you mean resnet18? choose one of: alexnet,"),
    (["DATA.DATASET", "cifar"], "unknown DATA.DATASET 'cifar'; did you mean cifar10?"),
    (["SAVE.CHECKPOINTS", "all"], "unknown SAVE.CHECKPOINTS 'all'; choose one of: best_and_last, best, last, none"),
    (["DATA.TRAIN_SUBSET", "2.5"], "DATA.TRAIN_SUBSET must be a fraction in (0, 1), a whole number of images"),
    (["TRAIN.MAX_STEPS_PER_EPOCH", "-1"], "TRAIN.MAX_STEPS_PER_EPOCH must be 0"),
    (["TRAIN.LR.X", "1"], "TRAIN.LR is a key, not a section"),
    (["DEVICE", "gpu"], "DEVICE must be auto, cpu, cuda or cuda:N"),
])
def test_bad_opts_raise_one_line_user_errors(opts, message):
    with pytest.raises(UserError) as error:
        get_config(None, opts)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_key_in_a_file_names_the_key_and_suggests(tmp_path):
    with pytest.raises(UserError, match=r"unknown config key TRAIN\.WARMUP_EPOCH; did you mean TRAIN\.WARMUP_EPOCHS\?"):
        get_config(write(tmp_path / "typo.yaml", "TRAIN:\n  WARMUP_EPOCH: 3\n"))


def test_missing_file_and_missing_base_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config file not found: .*nope.yaml"):
        get_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(UserError, match="config file not found: .*gone.yaml"):
        get_config(write(tmp_path / "a.yaml", "BASE: [gone.yaml]\n"))


def test_invalid_yaml_and_base_cycles_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"bad.yaml is not valid YAML at line \d+"):
        get_config(write(tmp_path / "bad.yaml", "TRAIN:\n  LR: [1, 2\n"))
    write(tmp_path / "loop_b.yaml", "BASE: [loop_a.yaml]\n")
    with pytest.raises(UserError, match="inherits from itself"):
        get_config(write(tmp_path / "loop_a.yaml", "BASE: [loop_b.yaml]\n"))


def test_yaml_is_loaded_safely(tmp_path):
    payload = write(tmp_path / "evil.yaml", "TAG: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        get_config(payload)


def test_strings_that_look_like_code_stay_strings():
    cfg = get_config(None, ["TAG", "__import__('os').getcwd()"])
    assert cfg.TAG == "__import__('os').getcwd()"


def test_every_config_key_is_read_outside_config_py():
    root = pathlib.Path(config.__file__).parent
    code = "\n".join(p.read_text() for p in root.rglob("*.py")
                     if not {".venv", "tests"} & set(p.parts) and p.name != "config.py")
    leaves = [key for key in config._all_keys(config._C) if not isinstance(_lookup(key), config.CN)]
    # BASE is consumed by the config loader itself.
    unread = [key for key in leaves if key != "BASE" and not re.search(rf"\.{key.split('.')[-1]}\b", code)]
    assert unread == []


def _lookup(key):
    node = config._C
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("path", sorted(pathlib.Path(config.__file__).parent.glob("configs/*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads_and_builds_its_model(path):
    from models import build_model
    cfg = get_config(str(path))
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_keys_and_names_match_in_any_case_when_unambiguous():
    cfg = get_config(None, ["train.lr", "0.1", "Model.Name", "AlexNet", "data.dataset", "CIFAR10",
                            "TRAIN.OPTIMIZER.NAME", "SGD", "save.checkpoints", "BEST"])
    assert cfg.TRAIN.LR == 0.1 and cfg.MODEL.NAME == "alexnet" and cfg.DATA.DATASET == "cifar10"
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and cfg.SAVE.CHECKPOINTS == "best"


def test_a_stored_config_is_the_base_that_file_and_opts_override(tmp_path):
    stored = get_config(None, ["MODEL.NAME", "resnet18", "TRAIN.LR", "0.5", "TRAIN.EPOCHS", "7"]).dump()
    cfg = get_config(write(tmp_path / "a.yaml", "TRAIN:\n  EPOCHS: 9\n"), ["TRAIN.LR", "0.25"], base_yaml=stored)
    assert (cfg.MODEL.NAME, cfg.TRAIN.EPOCHS, cfg.TRAIN.LR) == ("resnet18", 9, 0.25)


def test_changed_from_defaults_lists_only_the_differing_leaves():
    cfg = get_config(None, ["TRAIN.LR", "0.5", "MODEL.NAME", "alexnet", "TRAIN.EPOCHS", "30"])
    assert config.changed_from_defaults(cfg) == {"TRAIN.LR": 0.5, "MODEL.NAME": "alexnet"}


def test_a_base_shared_by_two_bases_is_merged_once_and_cannot_undo_what_they_set(tmp_path):
    write(tmp_path / "base.yaml", "TRAIN:\n  EPOCHS: 50\n  LR: 0.1\n")
    write(tmp_path / "a.yaml", "BASE: [base.yaml]\nTRAIN:\n  EPOCHS: 100\n")
    write(tmp_path / "b.yaml", "BASE: [base.yaml]\nTRAIN:\n  WEIGHT_DECAY: 0.5\n")
    cfg = get_config(write(tmp_path / "run.yaml", "BASE: [a.yaml, b.yaml]\n"))
    assert (cfg.TRAIN.EPOCHS, cfg.TRAIN.LR, cfg.TRAIN.WEIGHT_DECAY) == (100, 0.1, 0.5)


def test_text_keys_keep_number_like_text_as_typed(tmp_path):
    cfg = get_config(None, ["TAG", "1e3", "WANDB.PROJECT", "0.10"])
    assert (cfg.TAG, cfg.WANDB.PROJECT) == ("1e3", "0.10")
    cfg = get_config(write(tmp_path / "quoted.yaml", "TAG: \"1e3\"\nWANDB:\n  PROJECT: '0.10'\n"))
    assert (cfg.TAG, cfg.WANDB.PROJECT) == ("1e3", "0.10")


@pytest.mark.parametrize("text, names", [
    ("BASE: 5\n", ["bad.yaml", "BASE"]),
    ("BASE: [1]\n", ["bad.yaml", "BASE"]),
    ("BASE: {a: b.yaml}\n", ["bad.yaml", "BASE"]),
    (b"TAG: caf\xe9\n", ["bad.yaml", "UTF-8", "line 1"]),
    (b"SEED: 0\nTAG: \xff\xfe\n", ["bad.yaml", "UTF-8", "line 2"]),
    ("a: &a [1, *a]\n", ["bad.yaml", "line 1"]),
    ("TRAIN:\n  LR_SCHEDULER:\n    MILESTONES: [a]\n", ["TRAIN.LR_SCHEDULER.MILESTONES"]),
    ("TRAIN:\n  OPTIMIZER:\n    BETAS: [a, b]\n", ["TRAIN.OPTIMIZER.BETAS"]),
])
def test_a_malformed_config_file_is_one_line_naming_what_is_wrong(tmp_path, text, names):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError) as error:
        get_config(str(path))
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_a_yaml_alias_bomb_inside_a_list_key_is_refused_before_it_is_built(tmp_path):
    from tests.bad_inputs.config_rows import ALIAS_BOMB
    assert len(ALIAS_BOMB) < 500
    with pytest.raises(UserError, match=r"bomb.yaml .*line \d+.*aliases"):
        get_config(write(tmp_path / "bomb.yaml", ALIAS_BOMB))


@pytest.mark.parametrize("key, value", [
    ("TRAIN.LR_SCHEDULER.MILESTONES", "('a',)"),
    ("TRAIN.LR_SCHEDULER.MILESTONES", "(30.5, 60)"),
    ("TRAIN.LR_SCHEDULER.MILESTONES", "(True, 60)"),
    ("TRAIN.OPTIMIZER.BETAS", "('a', 'b')"),
    ("TRAIN.OPTIMIZER.BETAS", "(0.9, None)"),
    ("TRAIN.OPTIMIZER.BETAS", "(0.9, 1.5)"),
    ("TRAIN.OPTIMIZER.BETAS", "(-0.1, 0.9)"),
    ("TRAIN.LOSS_WEIGHTS", "('1',)"),
    ("AUG.RRC_SCALE", "((0.1,), 1.0)"),
    ("AUG.BLUR_SIGMA", "(0.1, '2')"),
    ("AUG.ERASE_SCALE", "(False, 0.3)"),
    ("DATA.HOLDOUT_CLASSES", "[[7], 8]"),
    ("DATA.HOLDOUT_CLASSES", "[None]"),
    ("TRAIN.LR", "1" + "0" * 400),  # an integer too large for a float
])
def test_list_items_of_the_wrong_type_are_one_line_naming_the_key(key, value):
    with pytest.raises(UserError) as error:
        get_config(None, [key, value])
    assert key in str(error.value) and "\n" not in str(error.value)


def test_list_items_keep_their_meaning_with_numbers_as_floats():
    cfg = get_config(None, ["TRAIN.LR_SCHEDULER.MILESTONES", "[10, 20]", "TRAIN.OPTIMIZER.BETAS", "(0, 0.5)",
                            "DATA.HOLDOUT_CLASSES", "[7, 'bob', 2.5]", "TRAIN.LOSS_WEIGHTS", "(1,)"])
    assert cfg.TRAIN.LR_SCHEDULER.MILESTONES == (10, 20)
    assert cfg.TRAIN.OPTIMIZER.BETAS == (0.0, 0.5) and all(type(b) is float for b in cfg.TRAIN.OPTIMIZER.BETAS)
    assert cfg.DATA.HOLDOUT_CLASSES == [7, "bob", 2.5]
    assert cfg.TRAIN.LOSS_WEIGHTS == (1.0,) and type(cfg.TRAIN.LOSS_WEIGHTS[0]) is float


def test_every_list_key_says_what_its_items_may_be():
    list_keys = {key for key, value in config.flatten(config._C).items() if isinstance(value, (list, tuple))}
    assert list_keys == set(config._ITEM_TYPES)


def test_an_integer_that_no_float_equals_is_refused_for_a_number_key():
    assert get_config(None, ["AUG.CUTMIX", str(2 ** 53)]).AUG.CUTMIX == float(2 ** 53)
    with pytest.raises(UserError, match="AUG.CUTMIX"):
        get_config(None, ["AUG.CUTMIX", str(2 ** 53 + 1)])  # would silently become 2 ** 53


def test_line_breaks_in_a_typed_key_path_or_name_are_escaped_onto_one_line(tmp_path):
    for opts in (["TRAIN.\nLR", "1"], ["TRAIN.LOSS", "ce\n"]):
        with pytest.raises(UserError) as error:
            get_config(None, opts)
        assert "\n" not in str(error.value)
    with pytest.raises(UserError) as error:
        get_config(write(tmp_path / "a.yaml", "BASE: ['\\n\\n']\n"))
    assert "\n" not in str(error.value) and "config file not found" in str(error.value)


@pytest.mark.parametrize("text", [
    "SEED: " + "9" * 5000 + "\n",               # more digits than Python converts
    "TAG: 2024-13-45\n",                        # a date that does not exist
    "TAG: " + "[" * 5000 + "]" * 5000 + "\n",   # nested deeper than the recursion limit
])
def test_yaml_values_pyyaml_cannot_build_are_one_line(tmp_path, text):
    with pytest.raises(UserError, match="bad.yaml is not valid YAML") as error:
        get_config(write(tmp_path / "bad.yaml", text))
    assert "\n" not in str(error.value)


def test_a_device_index_must_be_ascii_digits():
    assert get_config(None, ["DEVICE", "cuda:1"]).DEVICE == "cuda:1"
    with pytest.raises(UserError, match="DEVICE"):
        get_config(None, ["DEVICE", "cuda:²"])
