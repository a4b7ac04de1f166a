"""Test-time augmentation: the views, the averaged probabilities, evaluate/predict, TEST.TTA and --eval/--predict."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import evaluation.evaluate
import models
from config import get_config
from data.normalize import Normalize
from evaluation.tta import TTA_MODES, num_views, tta_log_probs, tta_views
from utils.device import DeviceSetup
from utils.errors import UserError

SIDE = 32
CROP = 28  # round(32 * 0.875)
CPU = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
NORMALIZE = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture
def lenet():
    """A LeNet in eval mode: its convolutions are not mirror-symmetric, so a flipped image scores differently."""
    torch.manual_seed(0)
    return models.create_model("lenet", num_classes=10).eval().requires_grad_(False)


def mirror_symmetric(images: torch.Tensor) -> torch.Tensor:
    return (images + images.flip(-1)) / 2


def resized(crop: torch.Tensor) -> torch.Tensor:
    return F.interpolate(crop, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)


def test_the_lenet_used_here_is_not_flip_invariant(lenet):
    images = torch.randn(4, 3, SIDE, SIDE)
    assert not torch.allclose(lenet(images), lenet(images.flip(-1)), atol=1e-4)


@pytest.mark.parametrize("mode, count", [("none", 1), ("hflip", 2), ("five_crop", 5), ("ten_crop", 10)])
def test_each_mode_makes_its_number_of_views_at_the_input_size(mode, count):
    images = torch.randn(3, 3, SIDE, SIDE)
    views = tta_views(images, mode)
    assert len(views) == count == num_views(mode)
    assert all(view.shape == images.shape for view in views)


def test_hflip_views_are_the_image_and_its_mirror():
    images = torch.randn(2, 3, SIDE, SIDE)
    original, mirrored = tta_views(images, "hflip")
    assert torch.equal(original, images) and torch.equal(mirrored, images.flip(-1))


def test_five_crop_views_are_the_corners_and_centre_resized_back_to_the_full_side():
    images = torch.randn(2, 3, SIDE, SIDE)
    views = tta_views(images, "five_crop")
    offset, end = (SIDE - CROP) // 2, SIDE - CROP
    crops = [images[..., :CROP, :CROP], images[..., :CROP, end:], images[..., end:, :CROP], images[..., end:, end:],
             images[..., offset:offset + CROP, offset:offset + CROP]]
    for view, crop in zip(views, crops):
        torch.testing.assert_close(view, resized(crop))


def test_ten_crop_adds_the_mirrors_of_the_five_crops():
    images = torch.randn(2, 3, SIDE, SIDE)
    views = tta_views(images, "ten_crop")
    for view, five_crop_view in zip(views, tta_views(images, "five_crop")):
        assert torch.equal(view, five_crop_view)
    # The mirror of the top-left crop is the top-right crop of the mirrored image, and so on.
    for mirrored, original in zip(views[5:], [views[i] for i in (1, 0, 3, 2, 4)]):
        torch.testing.assert_close(mirrored, original.flip(-1))


def test_views_keep_the_channels_last_memory_format():
    images = torch.randn(2, 3, SIDE, SIDE).contiguous(memory_format=torch.channels_last)
    for mode in TTA_MODES:
        assert all(view.is_contiguous(memory_format=torch.channels_last) for view in tta_views(images, mode))


@pytest.mark.parametrize("mode", TTA_MODES)
def test_tta_averages_the_softmax_of_every_view(lenet, mode):
    images = torch.randn(4, 3, SIDE, SIDE)
    by_hand = torch.stack([lenet(view).softmax(dim=1) for view in tta_views(images, mode)]).mean(dim=0)
    torch.testing.assert_close(tta_log_probs(lenet, images, mode).exp(), by_hand)


def test_no_tta_ranks_the_classes_as_the_logits_do(lenet):
    images = torch.randn(8, 3, SIDE, SIDE)
    assert torch.equal(tta_log_probs(lenet, images, "none").argmax(dim=1), lenet(images).argmax(dim=1))


def test_hflip_of_a_mirror_symmetric_image_equals_no_tta(lenet):
    images = mirror_symmetric(torch.randn(4, 3, SIDE, SIDE))
    torch.testing.assert_close(tta_log_probs(lenet, images, "hflip"), lenet(images).log_softmax(dim=1))


def batches(images: torch.Tensor, targets: torch.Tensor, batch_size: int = 5) -> list:
    return list(zip(images.split(batch_size), targets.split(batch_size)))


def uint8_images(count: int, symmetric: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, SIDE, SIDE // 2 if symmetric else SIDE), dtype=torch.uint8,
                           generator=generator)
    return torch.cat([images, images.flip(-1)], dim=-1) if symmetric else images


def test_evaluate_without_tta_gives_the_plain_loss_and_accuracy(lenet):
    images, targets = uint8_images(12), torch.arange(12) % 10
    metrics = evaluation.evaluate.evaluate(lenet, NORMALIZE, batches(images, targets), nn.CrossEntropyLoss(), CPU, tta="none")
    logits = lenet(NORMALIZE(images))
    top5 = logits.topk(5, dim=1).indices
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    assert metrics["acc1"] == pytest.approx(100 * (logits.argmax(dim=1) == targets).float().mean().item())
    assert metrics["acc5"] == pytest.approx(100 * (top5 == targets[:, None]).any(dim=1).float().mean().item())


def test_evaluate_with_tta_scores_the_averaged_probabilities(lenet):
    images, targets = uint8_images(12), torch.arange(12) % 10
    metrics = evaluation.evaluate.evaluate(lenet, NORMALIZE, batches(images, targets), nn.CrossEntropyLoss(), CPU,
                            keep_predictions=True, tta="five_crop")
    probabilities = tta_log_probs(lenet, NORMALIZE(images), "five_crop").exp()
    assert metrics["loss"] == pytest.approx(-probabilities[torch.arange(12), targets].log().mean().item(), rel=1e-5)
    assert metrics["acc1"] == pytest.approx(100 * (probabilities.argmax(dim=1) == targets).float().mean().item())
    confidence, predicted = probabilities.max(dim=1)
    assert metrics["predictions"].predicted.tolist() == predicted.tolist()
    assert metrics["predictions"].confidence == pytest.approx(confidence.numpy(), rel=1e-5)


def test_evaluate_and_predict_with_hflip_on_mirror_symmetric_images_equal_no_tta(lenet):
    images, targets = uint8_images(12, symmetric=True), torch.arange(12) % 10
    loader = batches(images, targets)
    plain = evaluation.evaluate.evaluate(lenet, NORMALIZE, loader, nn.CrossEntropyLoss(), CPU, tta="none")
    flipped = evaluation.evaluate.evaluate(lenet, NORMALIZE, loader, nn.CrossEntropyLoss(), CPU, tta="hflip")
    assert flipped["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert (flipped["acc1"], flipped["acc5"]) == (plain["acc1"], plain["acc5"])
    assert evaluation.evaluate.predict(lenet, NORMALIZE, loader, CPU, tta="hflip") == evaluation.evaluate.predict(lenet, NORMALIZE, loader, CPU)


@pytest.mark.parametrize("typed, name", [("none", "none"), ("hflip", "hflip"), ("five_crop", "five_crop"),
                                         ("ten_crop", "ten_crop"), ("HFlip", "hflip")])
def test_test_tta_accepts_the_four_modes_in_any_case(typed, name):
    assert get_config(None, ["TEST.TTA", typed]).TEST.TTA == name


def test_an_unknown_test_tta_is_one_line_naming_the_modes():
    with pytest.raises(UserError) as error:
        get_config(None, ["TEST.TTA", "flip"])
    assert str(error.value) == ("unknown TEST.TTA 'flip'; did you mean hflip? "
                                "choose one of: none, hflip, five_crop, ten_crop")


