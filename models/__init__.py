"""The model zoo. Importing a model module registers its constructors."""
from models import alexnet, lenet, resnet  # noqa: F401  (registration side effect)
from models.build import build_model
from models.registry import create_model, list_models, register_model

__all__ = ["build_model", "create_model", "list_models", "register_model"]
