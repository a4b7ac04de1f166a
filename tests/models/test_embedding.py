"""MODEL.EMBED_DIM: a BatchNorm-ed projection between any model's backbone and its classifier, the
model's forward with its embedding, and which val metric picks the best checkpoint."""
from __future__ import annotations

import pytest
import torch

from config import get_config
from engine.checkpoint import capture_rng_state
from evaluation.selection import BestSoFar, best_of
from models import build_model
from models.embedding import EmbeddingClassifier
from utils.checkpoint_io import load_checkpoint, save_checkpoint


def cfg_for(*opts: str):
    return get_config(opts=["DATA.DATASET", "digits", "DATA.IMG_SIZE", "32", *opts])


@pytest.mark.parametrize("name, features", [("lenet", 84), ("resnet18", 512), ("vgg11", 4096), ("mobilenet_v2", 1280)])
def test_embed_dim_puts_a_projection_of_that_width_between_the_backbone_and_the_classifier(name, features):
    model = build_model(cfg_for("MODEL.NAME", name, "MODEL.EMBED_DIM", "32")).eval()
    assert isinstance(model, EmbeddingClassifier)
    # The backbone's own head is the projection: it maps the pooled features to the embedding.
    assert model.backbone.get_classifier().in_features == features
    assert model.backbone.get_classifier().out_features == 32
    assert model.get_classifier().in_features == 32 and model.get_classifier().out_features == 10
    images = torch.randn(3, 3, 32, 32)
    features, logits = model(images, return_features=True)
    assert features.shape == (3, 32) and logits.shape == (3, 10)
    torch.testing.assert_close(logits, model(images))
    torch.testing.assert_close(features, model.forward_features(images))


def test_without_embed_dim_the_embedding_is_the_pooled_features():
    model = build_model(cfg_for("MODEL.NAME", "lenet")).eval()
    features, logits = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert not isinstance(model, EmbeddingClassifier) and features.shape == (2, 84) and logits.shape == (2, 10)


def test_a_detached_head_learns_without_its_gradient_reaching_the_backbone():
    model = build_model(cfg_for("MODEL.NAME", "lenet", "MODEL.EMBED_DIM", "16"))
    _, logits = model(torch.randn(4, 3, 32, 32), return_features=True, detach_head=True)
    logits.sum().backward()
    assert model.get_classifier().weight.grad is not None
    assert all(parameter.grad is None for parameter in model.backbone.parameters())


def test_a_plain_checkpoint_starts_the_backbone_of_an_embedding_model(tmp_path):
    plain = build_model(cfg_for("MODEL.NAME", "lenet"))
    path = tmp_path / "plain.pth"
    torch.save(plain.state_dict(), path)
    model = build_model(cfg_for("MODEL.NAME", "lenet", "MODEL.EMBED_DIM", "16", "MODEL.PRETRAINED", str(path)))
    loaded = model.backbone.state_dict()
    for key, value in plain.state_dict().items():
        if not key.startswith("fc."):  # the head became the 16-wide projection, which starts afresh
            assert torch.equal(loaded[key], value), key
    assert loaded["fc.weight"].shape == (16, 84)


def test_aux_logits_with_embed_dim_is_refused_in_one_line():
    with pytest.raises(Exception, match="MODEL.AUX_LOGITS cannot be combined with MODEL.EMBED_DIM"):
        cfg_for("MODEL.NAME", "googlenet", "MODEL.AUX_LOGITS", "True", "MODEL.EMBED_DIM", "16")


def test_verify_eer_selects_the_lowest_error_and_verify_auc_the_highest():
    scores = {"model": {"acc1": 90.0, "verify_auc": 0.80, "verify_eer": 0.20},
              "ema": {"acc1": 85.0, "verify_auc": 0.90, "verify_eer": 0.10}}
    assert best_of(scores, None, "val_acc1") == ("model", True)
    assert best_of(scores, None, "verify_auc") == ("ema", True)
    assert best_of(scores, 0.05, "verify_eer") == ("ema", False)
    best = BestSoFar("verify_eer")
    assert best.record(scores) and best.score == 0.10 and best.weights == "ema"
    assert not best.record({"model": {"acc1": 99.0, "verify_auc": 0.99, "verify_eer": 0.10}})  # a tie is not better
    assert best.epochs_since == 1 and best.describe(with_label=True) == "verify EER 10.00%"


def test_a_checkpoint_from_before_select_metric_loads_with_its_best_acc1_as_the_best_score(tmp_path):
    path = str(tmp_path / "old.pth")
    save_checkpoint(path, {"model": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 3,
                           "best_acc1": 91.5, "config": get_config(None, []).dump(), "rng": capture_rng_state(),
                           "wandb_id": None})
    best = BestSoFar.from_checkpoint(load_checkpoint(path))
    assert (best.metric, best.score) == ("val_acc1", 91.5)
