"""Would torch.compile speed up the digits scheme's classifier forwards on this machine?

The classifier's float32 forward in chunks of 32 rows (as the digits scheme runs its label
and check forwards), eager against ``torch.compile`` (inductor), on 256 images of SVHN and of
LFW at 64 px: compile time, throughput (median of 5) and the largest logit difference. A
benchmark, not a test.

    python python/benchmarks/bench_compile.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ric_ext import data
from ric_ext.batching import fast_layout, run_chunked
from ric_ext.models import load_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--chunk", type=int, default=32)
    args = p.parse_args()
    sets = {
        "svhn": lambda: data.svhn("test", args.data).images[:256],
        "lfw": lambda: data.lfw("test", args.data, size=64).images[:256],
    }
    for name, load in sets.items():
        clf = load_classifier(name)
        x = load().float() / 255
        comp = torch.compile(clf, dynamic=False)
        with torch.no_grad():
            t = time.perf_counter()
            run_chunked(lambda b: comp(fast_layout(b)), (x,), args.chunk)
            compile_s = time.perf_counter() - t

            def rate(f) -> float:
                ts = []
                for _ in range(5):
                    t = time.perf_counter()
                    run_chunked(f, (x,), args.chunk)
                    ts.append(time.perf_counter() - t)
                return len(x) / statistics.median(ts)

            eager, compiled = rate(lambda b: clf(fast_layout(b))), rate(lambda b: comp(fast_layout(b)))
            d = (clf(fast_layout(x[: args.chunk])) - comp(fast_layout(x[: args.chunk]))).abs().max()
        print(json.dumps({"data": name, "compile_s": round(compile_s, 1), "eager_img_s": round(eager),
                          "compiled_img_s": round(compiled), "speedup": round(compiled / eager, 2),
                          "max_logit_diff": float(d)}))  # fmt: skip


if __name__ == "__main__":
    main()
