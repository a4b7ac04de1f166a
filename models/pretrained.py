"""Start a model from existing weights: a checkpoint of this project, a torchvision state_dict
file, or torchvision's published ImageNet weights (downloaded only when asked for)."""
from __future__ import annotations

import logging

import torch
from torch import nn

from models.embedding import EmbeddingClassifier
from utils.checkpoint_io import eval_weights, load_user_file
from utils.errors import UserError

logger = logging.getLogger(__name__)

# Architectures whose names and weights torchvision publishes under the same name.
TORCHVISION_ARCHITECTURES = (
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "googlenet",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
    "densenet121", "densenet169", "mobilenet_v2", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The weights in `path`: those of a vision-zoo checkpoint that scored best on val, or a
    plain state_dict."""
    state = load_user_file(path, "MODEL.PRETRAINED file", "pass a checkpoint or a state_dict file")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state, _ = eval_weights(state)  # a checkpoint's best-scoring weights: trained, EMA or SWA
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"MODEL.PRETRAINED {path} holds no state_dict (a mapping of names to tensors)")
    return state


def download_torchvision_weights(model_name: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights for `model_name`, from its published URL (cached by torch.hub)."""
    if model_name not in TORCHVISION_ARCHITECTURES:
        raise UserError(f"torchvision publishes no weights for {model_name}; it does for: "
                        f"{', '.join(TORCHVISION_ARCHITECTURES)}")
    from torchvision.models import get_model_weights

    url = get_model_weights(model_name).DEFAULT.url
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True)
    except OSError as e:
        raise UserError(f"could not download {url} ({e}); download it elsewhere and pass the file as "
                        f"MODEL.PRETRAINED") from None


def load_pretrained(model: nn.Module, model_name: str, source: str) -> None:
    """Load weights from `source` ("torchvision" or a file) into `model`.

    A classifier whose number of classes differs is left freshly initialised, and the log says
    so; any other mismatch is a UserError.
    """
    state_dict = download_torchvision_weights(model_name) if source == "torchvision" else read_state_dict(source)
    if isinstance(model, EmbeddingClassifier) and not any(key.startswith("backbone.") for key in state_dict):
        # Weights of the plain architecture: they fit the backbone, whose head is the projection.
        model = model.backbone
    classifier_prefix = next(name for name, module in model.named_modules() if module is model.get_classifier())
    own = model.state_dict()
    replaced = [key for key in state_dict if key.startswith(classifier_prefix + ".") and key in own
                and state_dict[key].shape != own[key].shape]
    if replaced:
        pretrained_classes = state_dict[f"{classifier_prefix}.weight"].shape[0]
        state_dict = {key: value for key, value in state_dict.items() if key not in replaced}
        logger.info("pretrained weights have %d classes and this model %d: the classifier starts afresh",
                    pretrained_classes, own[f"{classifier_prefix}.weight"].shape[0])
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        raise UserError(f"weights in {source} do not fit {model_name} ({str(e).splitlines()[-1].strip()}); "
                        f"MODEL.STEM and the other architecture options must match the weights' "
                        f"(ImageNet weights need MODEL.STEM imagenet)") from None
    missing = [key for key in missing if key not in replaced]
    if missing or unexpected:
        examples = ", ".join((missing + unexpected)[:3])
        raise UserError(f"weights in {source} do not fit {model_name}: {len(missing)} missing and {len(unexpected)} "
                        f"unexpected tensors (e.g. {examples}); is it the same architecture?")
