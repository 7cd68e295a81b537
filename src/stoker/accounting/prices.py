"""The shipped runner classes and their prices: a default, meant to be overridden in config.

Source: AWS EC2 on-demand list prices, us-east-1, Linux, as published through 2025
(https://aws.amazon.com/ec2/pricing/on-demand/); table dated 2025-12. A multi-GPU instance is
priced per GPU (instance price divided by its GPUs). Prices differ by provider, region and
commitment and change often: set ``runner_classes`` in the config to what you pay.
"""

from __future__ import annotations

from stoker.core.accounting import RunnerClass

PRICE_TABLE_DATE = "2025-12"
PRICE_TABLE_SOURCE = ("AWS EC2 on-demand, us-east-1, Linux "
                      "(https://aws.amazon.com/ec2/pricing/on-demand/); per GPU")

DEFAULT_RUNNER_CLASSES: tuple[RunnerClass, ...] = (
    # c7i.2xlarge: 8 vCPU, 16 GiB — the class of a CPU-only runner such as the tiny model's.
    RunnerClass("cpu", "CPU", 16.0, 0.357),
    # g6.xlarge: 1 x NVIDIA L4 24 GB.
    RunnerClass("l4", "L4", 24.0, 0.8048),
    # g5.xlarge: 1 x NVIDIA A10G 24 GB.
    RunnerClass("a10g", "A10G", 24.0, 1.006),
    # p4de.24xlarge: 8 x NVIDIA A100 80 GB at $40.96/h.
    RunnerClass("a100-80gb", "A100", 80.0, 5.12),
    # p5.48xlarge: 8 x NVIDIA H100 80 GB at $98.32/h.
    RunnerClass("h100-80gb", "H100", 80.0, 12.29),
)
