"""A small training job that keeps Stoker's checkpoint contract: run it as a command job.

    stoker command run --model tiny-llama -- python examples/commands/train_regression.py \
        --steps 2000

It fits a two-layer network to a fixed random regression task with torch, on the accelerator
its runner lends (``cuda`` when one is visible, else the CPU). It resumes from
``$STOKER_CHECKPOINT_DIR/state.pt`` when a checkpoint is there, saves one every
``--save-every`` steps, and on SIGTERM (its runner is reclaimed for online work) saves at once
and exits 0; Stoker requeues it and the next run carries on from that step.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import torch


def main() -> int:
    """Train, checkpointing as the contract asks; 0 when done or checkpointed on SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--pace-s", type=float, default=0.0,
                        help="pause after each step (to watch a reclaim in a demonstration)")
    args = parser.parse_args()
    checkpoint = Path(os.environ.get("STOKER_CHECKPOINT_DIR", ".")) / "state.pt"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    inputs = torch.randn(512, 16, device=device)
    targets = inputs @ torch.randn(16, 1, device=device) + 0.1 * torch.randn(512, 1,
                                                                              device=device)
    model = torch.nn.Sequential(torch.nn.Linear(16, args.width), torch.nn.ReLU(),
                                torch.nn.Linear(args.width, 1)).to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = int(state["step"])
        print(f"resumed from step {step}", flush=True)
    else:
        print(f"starting on {device}", flush=True)

    stop = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_sigterm)

    def save() -> None:
        partial = checkpoint.with_suffix(".part")
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "step": step}, partial)
        partial.replace(checkpoint)  # a run killed mid-save leaves the last good one

    while step < args.steps:
        if stop:
            save()
            print(f"checkpointed at step {step} on SIGTERM", flush=True)
            return 0
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % args.save_every == 0:
            save()
            print(f"step {step} loss {loss.item():.4f}", flush=True)
        if args.pace_s:
            time.sleep(args.pace_s)
    save()
    with torch.no_grad():
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
    print(f"done at step {step} loss {loss.item():.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
