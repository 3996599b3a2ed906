"""Remote classification throughput on localhost: `ric-ext serve` (KServe v2 REST) and the
v2 client of `classify --url`, at request batches of 1 and 64, against the same classifier
run locally in this process.

    python python/benchmarks/bench_serve.py --classifier svhn --n 512
    python python/benchmarks/bench_serve.py --classifier lfw --n 256

The server runs in a subprocess on 127.0.0.1 with the same torch thread count; images are
random uint8 ciphertext-like pixels of the classifier's size (the server cannot tell).
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request

import torch

from ric_ext.models import load_classifier
from ric_ext.serve import remote_classify


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", default="svhn")
    p.add_argument("--n", type=int, default=512, help="images per measurement")
    p.add_argument("--batches", default="1,64", help="request batch sizes")
    args = p.parse_args()
    clf = load_classifier(args.classifier)
    size, channels = clf.input_size, clf.channels
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.n, channels, size, size), generator=g, dtype=torch.uint8).float() / 255
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "ric_ext", "serve", "--classifier", args.classifier, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(url + "/v2/health/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        images = [(str(i), x[i]) for i in range(args.n)]
        remote_classify(images[:8], url, args.classifier, 8)  # warm-up
        with torch.no_grad():
            t = time.perf_counter()
            local = torch.cat([clf(x[i : i + 64]).argmax(1) for i in range(0, args.n, 64)])
            local_s = time.perf_counter() - t
        print(f"{args.classifier}: {args.n} images {channels}x{size}x{size}, torch threads {torch.get_num_threads()}")
        print("| path | request batch | images/s |")
        print("| --- | ---: | ---: |")
        print(f"| local, in process | 64 | {args.n / local_s:.0f} |")
        for b in (int(v) for v in args.batches.split(",")):
            n = args.n if b > 1 else min(args.n, 256)
            t = time.perf_counter()
            labels = remote_classify(images[:n], url, args.classifier, b)
            dt = time.perf_counter() - t
            assert [lab for _, lab in labels] == local[:n].tolist(), "remote and local labels differ"
            print(f"| remote, KServe v2 REST on localhost | {b} | {n / dt:.0f} |")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
