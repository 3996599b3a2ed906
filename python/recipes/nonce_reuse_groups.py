"""Under nonce reuse (security attack (b): one nonce for every image), images share the pad and,
when their label and step count match, the NAE too. How many do, under two NAE check settings?

    python python/recipes/nonce_reuse_groups.py --data DATA      # SVHN paper subset, the svhn classifier, pad scheme

docs/security.md (SVHN pad report, row (b)) cites its output.
"""

import argparse
import collections

import torch

from ric_ext import Cipher, Key, data, models
from ric_ext.nae import NAEConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the data folder (docs/data.md)")
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    clf = models.load_classifier("svhn")
    x, _ = data.stack(data.svhn("paper", args.data), range(args.n))
    nonces = torch.zeros(args.n, 12, dtype=torch.uint8)  # one nonce for all: what (b) measures
    for name, cfg, mb in (
        ("checks from kappa, micro-batch 32 (the first SVHN report)", NAEConfig(check_margin="kappa"), 32),
        ("checks from margin 2, micro-batch 8 (today's defaults)", NAEConfig(check_margin=2.0), 8),
    ):
        ct = Cipher.pad(clf, Key.generate(), nae=cfg, micro_batch=mb).encrypt(x, nonces, allow_nonce_reuse=True)
        groups = collections.Counter(zip(ct.labels.tolist(), ct.steps.tolist()))
        largest = collections.Counter()
        for (label, _), count in groups.items():
            largest[label] = max(largest[label], count)
        print(
            f"{name}: {len(groups)} (label, steps) groups; images in their label's largest group: "
            f"{sum(largest.values())}/{args.n}"
        )


if __name__ == "__main__":
    main()
