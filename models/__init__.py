"""The model zoo. Importing a model module registers its constructors."""
from models import (  # noqa: F401  (importing a family registers its models)
    alexnet, convnext, densenet, efficientnet, googlenet, lenet, mobilenet_v2, resnet, vgg,
)
from models.build import build_model
from models.registry import create_model, list_models, register_model

__all__ = ["build_model", "create_model", "list_models", "register_model"]
