"""Each model family can learn: a fixed batch of 32 digits reaches 100% train accuracy within 200 steps."""
import pytest
import torch

from data.digits import MEAN, STD, load_digits_arrays
from data.normalize import Normalize
from models import create_model

MAX_STEPS = 200
# Up to 200 training steps of a whole model each: `make test` runs them, `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_batch():
    images, labels = load_digits_arrays(32)
    generator = torch.Generator().manual_seed(0)
    chosen = torch.randperm(len(images), generator=generator)[:32]
    normalized = Normalize(MEAN, STD)(torch.from_numpy(images[chosen.numpy()]))
    return normalized, torch.from_numpy(labels[chosen.numpy()])


def steps_to_memorise(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float) -> int:
    """Adam steps until every image of the batch is classified correctly (MAX_STEPS + 1 if never)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(1, MAX_STEPS + 1):
        logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (logits.argmax(1) == labels).all():
            return step
    return MAX_STEPS + 1


@pytest.mark.parametrize("name, kwargs, lr", [
    ("lenet", {}, 3e-3),
    ("resnet18", {"stem": "cifar"}, 1e-3),
    ("mobilenet_v2", {"stem": "cifar"}, 1e-3),
    ("convnextv2_atto", {"stem": "cifar"}, 1e-3),
])
def test_model_memorises_a_fixed_batch_of_digits(digits_batch, name, kwargs, lr):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **kwargs)
    assert steps_to_memorise(model, *digits_batch, lr=lr) <= MAX_STEPS
