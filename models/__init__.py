"""The model zoo, its shared layers and its losses; importing a model module registers its
constructors. Imports utils and data (models/build.py asks the data for its class count)."""
from models import (  # noqa: F401  (importing a family registers its models)
    alexnet, convnext, densenet, efficientnet, googlenet, lenet, mobilenet_v2, resnet, vgg,
)
from models.build import build_model
from models.registry import create_model, list_models, register_model

__all__ = ["build_model", "create_model", "list_models", "register_model"]
