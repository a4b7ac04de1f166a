"""TrainingLoss (models/losses.py): CE plus ArcFace / CosFace / triplet terms, checked against the papers'
formulas on hand-made batches, and parse_loss_terms for TRAIN.LOSS / TRAIN.LOSS_WEIGHTS."""
import math

import pytest
import torch
from pytorch_metric_learning import miners
from torch import nn

from models.losses import TrainingLoss, build_triplet_miner, parse_loss_terms
from utils.errors import UserError

# Three embeddings of dimension 3 and one-hot class centres: W's column j is class j's centre.
EMBEDDINGS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, -1.0, 2.0]])
LABELS = torch.tensor([0, 1, 2])
CENTRES = torch.eye(3)


def margin_softmax_loss(target_logit) -> torch.Tensor:
    """Mean CE over logits s*cos(theta_j) for j != y and target_logit(cos(theta_y)) for the target,
    with cos(theta_j) computed by hand from EMBEDDINGS and CENTRES."""
    losses = []
    for embedding, label in zip(EMBEDDINGS.tolist(), LABELS.tolist()):
        norm = math.sqrt(sum(x * x for x in embedding))
        cosines = [sum(e * c for e, c in zip(embedding, centre)) / norm for centre in CENTRES.t().tolist()]
        logits = [target_logit(cos) if j == label else 64.0 * cos for j, cos in enumerate(cosines)]
        losses.append(math.log(sum(math.exp(z) for z in logits)) - logits[label])
    return torch.tensor(sum(losses) / len(losses))


def loss_with_centres(term: str, **kwargs) -> TrainingLoss:
    loss = TrainingLoss([(term, 1.0)], num_classes=3, embedding_size=3, **kwargs)
    with torch.no_grad():
        getattr(loss, term).W.copy_(CENTRES)
    return loss


def test_arcface_matches_the_papers_additive_angular_margin_on_a_hand_made_batch():
    expected = margin_softmax_loss(lambda cos: 64.0 * math.cos(math.acos(cos) + 0.5))
    loss = loss_with_centres("arcface", arcface_margin=0.5, arcface_scale=64.0)
    # Zero logits make the linear-probe CE exactly log(3).
    total = loss(torch.zeros(3, 3), LABELS, EMBEDDINGS)
    torch.testing.assert_close(loss.arcface(EMBEDDINGS, LABELS), expected)
    torch.testing.assert_close(total - math.log(3), expected)


def test_cosface_matches_the_papers_additive_cosine_margin_on_a_hand_made_batch():
    expected = margin_softmax_loss(lambda cos: 64.0 * (cos - 0.35))
    loss = loss_with_centres("cosface", cosface_margin=0.35, cosface_scale=64.0)
    total = loss(torch.zeros(3, 3), LABELS, EMBEDDINGS)
    torch.testing.assert_close(loss.cosface(EMBEDDINGS, LABELS), expected)
    torch.testing.assert_close(total - math.log(3), expected)


def test_paper_margins_are_the_defaults():
    expected = margin_softmax_loss(lambda cos: 64.0 * math.cos(math.acos(cos) + 0.5))
    torch.testing.assert_close(loss_with_centres("arcface").arcface(EMBEDDINGS, LABELS), expected)
    expected = margin_softmax_loss(lambda cos: 64.0 * (cos - 0.35))
    torch.testing.assert_close(loss_with_centres("cosface").cosface(EMBEDDINGS, LABELS), expected)


def test_triplet_batch_hard_averages_the_nonzero_hardest_triplet_losses_on_normalised_embeddings():
    # Unit points p0 = (1, 0), p1 = (.6, .8) of class 0 and p2 = (0, 1), p3 = (-.6, .8) of class 1; p1 and
    # p2 are given other lengths, which the L2 normalisation removes. Euclidean distances:
    # d01 = sqrt(.8), d02 = sqrt(2), d03 = sqrt(3.2), d12 = sqrt(.4), d13 = 1.2, d23 = sqrt(.4).
    # Hardest positive, hardest negative, relu(d_ap - d_an + .2) per anchor:
    # p0: sqrt(.8), sqrt(2) -> 0; p1: sqrt(.8), sqrt(.4) -> .4620; p2: sqrt(.4), sqrt(.4) -> .2;
    # p3: sqrt(.4), 1.2 -> 0.
    # PML's AvgNonZeroReducer averages the two non-zero losses.
    features = torch.tensor([[1.0, 0.0], [1.8, 2.4], [0.0, 0.5], [-0.6, 0.8]])
    targets = torch.tensor([0, 0, 1, 1])
    expected = ((math.sqrt(0.8) - math.sqrt(0.4) + 0.2) + 0.2) / 2
    loss = TrainingLoss([("triplet", 1.0)], num_classes=2, embedding_size=2, triplet_miner="batch_hard")
    total = loss(torch.zeros(4, 2), targets, features)
    torch.testing.assert_close(total - math.log(2), torch.tensor(expected))


def test_triplet_margin_defaults_to_facenets_alpha():
    loss = TrainingLoss([("triplet", 1.0)], num_classes=2, embedding_size=2)
    assert loss.triplet.margin == 0.2 and isinstance(loss.triplet_miner, miners.BatchHardMiner)


def test_triplet_miner_names_map_to_pml_miners_and_an_unknown_one_is_a_value_error():
    assert isinstance(build_triplet_miner("batch_hard", 0.2), miners.BatchHardMiner)
    semihard = build_triplet_miner("semihard", 0.3)
    assert isinstance(semihard, miners.TripletMarginMiner)
    assert (semihard.margin, semihard.type_of_triplets) == (0.3, "semihard")
    assert build_triplet_miner("all", 0.2) is None
    with pytest.raises(ValueError, match="unknown triplet miner 'hardest'"):
        TrainingLoss([("ce", 1.0)], num_classes=2, embedding_size=2, triplet_miner="hardest")


@pytest.mark.parametrize("miner", ["batch_hard", "semihard", "all"])
def test_every_triplet_miner_gives_a_loss_that_moves_the_features(miner):
    torch.manual_seed(0)
    features, targets = torch.randn(8, 5, requires_grad=True), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = TrainingLoss([("ce", 0.0), ("triplet", 1.0)], num_classes=4, embedding_size=5, triplet_miner=miner)
    total = loss(torch.zeros(8, 4), targets, features)
    total.backward()
    assert total > 0 and features.grad.abs().sum() > 0


def test_each_term_is_scaled_by_its_weight_in_the_sum():
    torch.manual_seed(0)
    logits, features, targets = torch.randn(6, 4), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = TrainingLoss([("ce", 1.0), ("arcface", 0.5)], num_classes=4, embedding_size=5)
    expected = nn.functional.cross_entropy(logits, targets) + 0.5 * loss.arcface(features, targets)
    torch.testing.assert_close(loss(logits, targets, features), expected)


def test_linear_probe_ce_is_added_only_without_a_ce_term():
    torch.manual_seed(0)
    logits, features, targets = torch.randn(6, 4), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 0, 1])
    metric_only = TrainingLoss([("cosface", 2.0)], num_classes=4, embedding_size=5)
    probe = nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(metric_only(logits, targets, features),
                               2.0 * metric_only.cosface(features, targets) + probe)
    with_ce = TrainingLoss([("ce", 0.0), ("cosface", 2.0)], num_classes=4, embedding_size=5)
    with_ce.load_state_dict(metric_only.state_dict())
    torch.testing.assert_close(with_ce(logits, targets, features), 2.0 * with_ce.cosface(features, targets))


def test_linear_probe_ce_moves_only_the_logits_and_the_metric_term_alone_moves_the_features():
    torch.manual_seed(0)
    features = torch.randn(6, 5, requires_grad=True)
    head = nn.Linear(5, 4)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = TrainingLoss([("arcface", 1.0)], num_classes=4, embedding_size=5)
    loss(head(features.detach()), targets, features).backward()
    expected_features_grad, = torch.autograd.grad(loss.arcface(features, targets), features)
    torch.testing.assert_close(features.grad, expected_features_grad)
    probe_head = nn.Linear(5, 4)
    probe_head.load_state_dict(head.state_dict())
    nn.functional.cross_entropy(probe_head(features.detach()), targets).backward()
    torch.testing.assert_close(head.weight.grad, probe_head.weight.grad)


def test_class_centres_are_parameters_in_the_state_dict_and_receive_gradients():
    terms = [("ce", 1.0), ("arcface", 1.0), ("cosface", 1.0), ("triplet", 1.0)]
    loss = TrainingLoss(terms, num_classes=4, embedding_size=5)
    assert sorted(loss.state_dict()) == ["arcface.W", "cosface.W"]
    assert loss.state_dict()["arcface.W"].shape == (5, 4)
    assert {id(p) for p in loss.parameters()} == {id(loss.arcface.W), id(loss.cosface.W)}
    torch.manual_seed(0)
    loss(torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1]), torch.randn(6, 5)).backward()
    assert loss.arcface.W.grad.abs().sum() > 0 and loss.cosface.W.grad.abs().sum() > 0


def test_load_state_dict_restores_the_class_centres_exactly():
    torch.manual_seed(0)
    saved = TrainingLoss([("arcface", 1.0), ("cosface", 1.0)], num_classes=4, embedding_size=5)
    restored = TrainingLoss([("arcface", 1.0), ("cosface", 1.0)], num_classes=4, embedding_size=5)
    assert not torch.equal(saved.arcface.W, restored.arcface.W)
    restored.load_state_dict(saved.state_dict())
    assert torch.equal(restored.arcface.W, saved.arcface.W) and torch.equal(restored.cosface.W, saved.cosface.W)


def test_metric_terms_run_in_float32_under_bf16_autocast_and_leave_the_centres_float32():
    torch.manual_seed(0)
    loss = TrainingLoss([("arcface", 1.0), ("cosface", 1.0), ("triplet", 1.0)], num_classes=4, embedding_size=5)
    features, targets = torch.randn(6, 5).bfloat16(), torch.tensor([0, 1, 2, 3, 0, 1])
    logits = torch.randn(6, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(logits, targets, features)
    assert loss.arcface.W.dtype == torch.float32 and loss.cosface.W.dtype == torch.float32
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, loss(logits, targets, features.float()))


def test_metric_terms_refuse_soft_targets_and_ce_alone_takes_them():
    soft = torch.softmax(torch.randn(4, 3), dim=1)
    metric = TrainingLoss([("ce", 1.0), ("arcface", 1.0)], num_classes=3, embedding_size=5)
    with pytest.raises(ValueError, match="metric losses need hard labels; turn off mixup/cutmix"):
        metric(torch.randn(4, 3), soft, torch.randn(4, 5))
    ce = TrainingLoss([("ce", 1.0)], num_classes=3, embedding_size=5)
    logits = torch.randn(4, 3)
    torch.testing.assert_close(ce(logits, soft), nn.functional.cross_entropy(logits, soft))


def test_metric_terms_need_features():
    loss = TrainingLoss([("ce", 1.0), ("triplet", 1.0)], num_classes=3, embedding_size=5)
    with pytest.raises(ValueError, match="needs the backbone's features"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_label_smoothing_applies_to_the_ce_term_only():
    torch.manual_seed(0)
    logits, features, targets = torch.randn(6, 4), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 0, 1])
    ce = TrainingLoss([("ce", 1.0)], num_classes=4, embedding_size=5, label_smoothing=0.1)
    torch.testing.assert_close(ce(logits, targets), nn.functional.cross_entropy(logits, targets, label_smoothing=0.1))
    probe = TrainingLoss([("arcface", 1.0)], num_classes=4, embedding_size=5, label_smoothing=0.1)
    torch.testing.assert_close(probe(logits, targets, features),
                               probe.arcface(features, targets) + nn.functional.cross_entropy(logits, targets))


@pytest.mark.parametrize("terms, needs_features, trains_through_head", [
    ([("ce", 1.0)], False, True),
    ([("ce", 1.0), ("triplet", 0.5)], True, True),
    ([("arcface", 1.0)], True, False),
])
def test_flags_say_whether_features_are_needed_and_whether_ce_trains_through_the_head(
        terms, needs_features, trains_through_head):
    loss = TrainingLoss(terms, num_classes=3, embedding_size=5)
    assert (loss.needs_features, loss.trains_through_head) == (needs_features, trains_through_head)


def test_describe_names_each_term_its_weight_and_settings():
    loss = TrainingLoss([("ce", 1.0), ("arcface", 0.5)], num_classes=3, embedding_size=5)
    assert loss.describe() == "ce 1 + arcface 0.5 (m 0.5 rad, s 64)"
    loss = TrainingLoss([("cosface", 1.0), ("triplet", 2.0)], num_classes=3, embedding_size=5, triplet_miner="all")
    assert loss.describe() == ("cosface 1 (m 0.35, s 64) + triplet 2 (margin 0.2, all miner)"
                               " + linear-probe ce on detached features")


@pytest.mark.parametrize("spec, weights, expected", [
    ("ce", [], [("ce", 1.0)]),
    ("ce+arcface", [1.0, 0.5], [("ce", 1.0), ("arcface", 0.5)]),
    (" CE + ArcFace ", [], [("ce", 1.0), ("arcface", 1.0)]),
    ("cosface+triplet", [2, 0], [("cosface", 2.0), ("triplet", 0.0)]),
])
def test_parse_loss_terms_reads_terms_and_weights(spec, weights, expected):
    assert parse_loss_terms(spec, weights) == expected


@pytest.mark.parametrize("spec, weights, message", [
    ("arcfcae", [], "TRAIN.LOSS 'arcfcae' has an unknown term 'arcfcae'; valid terms: ce, arcface, cosface, "
                    "triplet, joined with + as in ce+arcface"),
    ("ce+CE", [], "TRAIN.LOSS 'ce+CE' repeats the term 'ce'"),
    ("", [], "TRAIN.LOSS is empty"),
    ("ce+", [], "TRAIN.LOSS 'ce+' has an empty term"),
    ("ce+arcface", [1.0, 0.5, 2.0], "TRAIN.LOSS_WEIGHTS has 3 weights for 2 terms"),
    ("ce+arcface", [1.0], "TRAIN.LOSS_WEIGHTS has 1 weight for 2 terms"),
    ("ce+arcface", [1.0, -0.5], "TRAIN.LOSS_WEIGHTS gives the term 'arcface' the weight -0.5"),
    ("ce", [float("nan")], "TRAIN.LOSS_WEIGHTS gives the term 'ce' the weight nan"),
])
def test_parse_loss_terms_refuses_mistakes_in_one_line(spec, weights, message):
    with pytest.raises(UserError) as error:
        parse_loss_terms(spec, weights)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
