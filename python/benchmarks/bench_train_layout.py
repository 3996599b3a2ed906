"""Training-step time in channels-last vs contiguous layout, measured interleaved.

Two trainers (SVHN, width 32, batch 32, bf16 autocast, fresh adaptive NAEs,
CPU) take turns step by step, so drift of the machine (clock, neighbours)
hits both alike; the first 5 rounds are warm-up. Prints the median seconds
per step, and without the NAE attack (the networks' share).

    python python/benchmarks/bench_train_layout.py [ROUNDS]      # default 45 rounds, ~1 minute on 2 cores
"""

import statistics
import sys
import tempfile

from ric_ext.training import TrainConfig, Trainer


def main(rounds: int = 45) -> None:
    trainers, rec = {}, {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for cl in (True, False):
            cfg = TrainConfig(
                width=32,
                batch_size=32,
                amp="bf16",
                steps=10**6,
                channels_last=cl,
                device="cpu",
                out=f"{tmp}/{cl}",
                log_every=10**6,
                ckpt_every=10**6,
                grid_every=10**6,
            )
            trainers[cl] = Trainer(cfg, progress=False)
        for i in range(rounds):
            for cl in (True, False) if i % 2 else (False, True):
                r = trainers[cl].train_step()
                if i >= 5:
                    rec[cl].append((r["step_s"], r["step_s"] - r["nae_s"]))
    for cl in (True, False):
        print(
            f"{'channels-last' if cl else 'contiguous':>13}: step {statistics.median(a for a, _ in rec[cl]):.3f} s, "
            f"networks {statistics.median(b for _, b in rec[cl]):.3f} s (median of {len(rec[cl])})"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 45)
