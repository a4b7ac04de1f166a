"""Write a CIFAR-10-shaped data set of random pixels (50,000 train and 10,000 test images) in the
real pickled-batch layout, for GPU benchmarks on a machine that cannot download CIFAR-10.

    python bench/fake_cifar10.py /tmp/cifar
    python main.py --cfg configs/resnet18_cifar10.yaml --opts DATA.DATA_PATH /tmp/cifar

It uses the test suite's fixture writer, so the files are exactly what the CIFAR loader reads.
Accuracy on it stays at chance (10%); only speed means anything.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.conftest import write_cifar10  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to hold cifar-10-batches-py")
    args = parser.parse_args()
    write_cifar10(args.root, per_batch=10000, num_test=10000)
    print(f"wrote {os.path.join(args.root, 'cifar-10-batches-py')}: 50,000 train and 10,000 test images")


if __name__ == "__main__":
    main()
