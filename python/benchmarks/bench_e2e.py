"""End-to-end encryption/decryption throughput, label agreement and recovery, against the
classifier's own batched inference on the same images (ratios in one run).

Paths (any subset, in one run so that ratios compare like with like):
  inference    the unmodified classifier's batched float32 inference (batches of --batch-size)
  inference:C  the same in chunks of C rows (as the digits scheme's own forwards run; on this CPU 32 rows
               is faster than 256: the ratios are taken against the faster of the inference paths)
  digits       the default digits scheme (format 4): bank start, float32 check, exact decryption
  digits:noise the same, every attack started from the keyed noise instead of the bank
  digits[:noise]:P  ... with the attack steps at precision P (fp32 or bf16; default auto)
  eager        an eager loop written the way the authors' code does it:
               torch.optim.Adam over tanh-space w, C&W margin in plain torch,
               batch-level early stop (the whole batch stops when its summed
               cost rose at a check), plain-torch masking; decryption reruns it.
  fixed        ric_ext with NAEConfig(stop="fixed"): fixed steps + per-sample early stop.
  margin:M     ric_ext adaptive, stop when the NAE's margin reaches kappa + M.
  ciphertext:M:K[:G]  ric_ext adaptive, stop when the ciphertext's margin reaches M, checked every K steps
               once the NAE's own margin has reached G (default kappa; "none": from the start)
               (ciphertext:1:2 is NAEConfig's default).
  own          ric_ext with the settings the model (pad: the classifier) carries.
  pad:RULE     the same rule under the format-3 pad scheme (no networks), e.g. pad:ciphertext:1:2, pad:own.
  RULE@B       a replayed path at micro-batch B instead of --micro-batch, e.g. ciphertext:1:2@8;
  RULE%LR      ... at NAE lr LR instead of the data set's (digits: DIGITS_NAE's), e.g. digits:noise%0.01.

    python python/benchmarks/bench_e2e.py --dataset svhn --n 256 --paths inference,inference:32,digits,eager --repeat 3
    python python/benchmarks/bench_e2e.py --dataset lfw --n 128 --paths inference,inference:32,digits,eager --repeat 3
    python python/benchmarks/bench_e2e.py --dataset lfw160 --n 128 --paths inference,inference:32,digits --repeat 3
    python python/benchmarks/bench_e2e.py --dataset svhn --n 256 --rss          # peak RSS: inference vs encryption
    python python/benchmarks/bench_e2e.py --device cuda --n 1024 --batch-size 1024 \
        --paths inference,inference:256,digits

--rss measures each of inference and digits encryption at --batch-size in a fresh process
(ru_maxrss: the peak resident set, interpreter and torch included). The RIC model of the
replayed paths is the data set's bundled one (svhn; faces for LFW) unless --model says
otherwise. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from typing import Optional

import torch
import torch.nn.functional as F

from ric_ext import Key, data, metrics, ops
from ric_ext.batching import DEFAULT_MICRO_BATCH, batch_slices, fast_layout, run_chunked
from ric_ext.cipher import DIGITS_NAE, Cipher
from ric_ext.models import load_classifier, load_ric
from ric_ext.nae import NAEConfig

# Each data set at its model's own settings (ric_ext/assets/model_settings.json): faces run at NAE lr 0.05.
SETTINGS = {
    "svhn": dict(classifier="svhn", split="paper", steps=100, kappa=5.0, lr=0.01, model="svhn", size=None),
    "cifar10": dict(
        classifier="cifar10-resnet56", split="test", steps=150, kappa=5.0, lr=0.01, model="svhn", size=None
    ),
    "lfw": dict(classifier="lfw", split="test", steps=100, kappa=5.0, lr=0.05, model="faces", size=64),
    # the paper's face size; the faces RIC (64x64) is only loaded, never run: use the digits paths
    "lfw160": dict(
        classifier="lfw160", split="test", steps=100, kappa=5.0, lr=0.05, model="faces", size=160, data="lfw"
    ),
}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# -- the eager, authors-style baseline -------------------------------------------------------------
def eager_nae(clf, key: bytes, nonces, labels, shape, c: float, kappa: float, steps: int, lr: float):
    z0 = ops.keyed_uniform(key, nonces, shape)
    w = torch.atanh((2 * z0 - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    onehot = F.one_hot(labels, clf(z0[:1]).shape[1]).bool()
    prev = float("inf")
    check = max(steps // 10, 1)
    for step in range(steps):
        z = (torch.tanh(w) + 1) / 2
        logits = clf(z)
        real = logits[onehot]
        other = logits.masked_fill(onehot, float("-inf")).max(1).values
        cost = (c * torch.clamp(other - real, min=-kappa)).sum()
        opt.zero_grad()
        cost.backward()
        opt.step()
        if step % check == 0:
            if cost.item() > prev:
                break
            prev = cost.item()
    return ((torch.tanh(w) + 1) / 2).detach()


class EagerPath:
    def __init__(self, model, clf, key: Key, cfg: NAEConfig, batch_size: int):
        self.model, self.clf, self.key, self.cfg, self.bs = model, clf, key, cfg, batch_size

    def _nae(self, nonces, labels, shape):
        c = self.cfg
        with torch.enable_grad():
            return eager_nae(self.clf, self.key.noise_key, nonces, labels, shape, c.c, c.kappa, c.steps, c.lr)

    @torch.no_grad()
    def encrypt(self, x):
        dev = next(self.model.parameters()).device
        nonces = torch.randint(0, 256, (x.shape[0], 12), dtype=torch.uint8)
        labels = self.clf(x.to(dev)).argmax(1)
        pix = []
        for i in range(0, x.shape[0], self.bs):
            xb, yb = x[i : i + self.bs].to(dev), labels[i : i + self.bs]
            z = self._nae(nonces[i : i + self.bs].to(dev), yb, xb.shape[1:])
            e = self.model.encoder(self.model.feature((xb - 0.5) / 0.5), z)
            lam = self.model.lam
            pix.append(torch.round(((1 - lam) * e + lam * z).clamp(0, 1) * 255).to(torch.uint8))
        return torch.cat(pix), nonces, labels

    @torch.no_grad()
    def decrypt(self, ct):
        pix, nonces, labels = ct
        dev = pix.device
        out = []
        lam = self.model.lam
        for i in range(0, pix.shape[0], self.bs):
            p = pix[i : i + self.bs]
            z = self._nae(nonces[i : i + self.bs].to(dev), labels[i : i + self.bs], p.shape[1:])
            r = (p.float() / 255 - lam * z) / (1 - lam)
            out.append(self.model.decoder(r).clamp(0, 1))
        return torch.cat(out)

    def classify(self, ct):
        with torch.no_grad():
            return self.clf(ct[0].float() / 255).argmax(1)

    @staticmethod
    def labels(ct):
        return ct[2]

    @staticmethod
    def steps(ct):
        return None


class InferencePath:
    """The classifier's own batched inference: what the ratios are measured against. ``chunk``: in
    chunks of that many rows (what the digits scheme's own forwards do), else whole batches."""

    def __init__(self, clf, batch_size: int, chunk: Optional[int] = None):
        self.clf, self.bs, self.chunk = clf, batch_size, chunk

    @torch.no_grad()
    def encrypt(self, x):
        dev = next(self.clf.parameters()).device
        f = lambda p: self.clf(fast_layout(p)).argmax(1)  # noqa: E731
        return torch.cat([run_chunked(f, (x[sl].to(dev),), self.chunk) for sl in batch_slices(len(x), self.bs)])

    def decrypt(self, ct):
        return None


class LibPath:
    def __init__(
        self, model, clf, key: Key, cfg, batch_size: int, micro_batch, scheme="paper", bank="auto", precision="auto"
    ):
        kw = dict(model=model, nae=cfg, batch_size=batch_size, micro_batch=micro_batch, bank=bank, precision=precision)
        self.cipher = Cipher.for_scheme(scheme, clf, key, **kw)

    def encrypt(self, x):
        return self.cipher.encrypt(x)

    def decrypt(self, ct):
        return self.cipher.decrypt(ct)

    def classify(self, ct):
        return self.cipher.classify(ct)

    @staticmethod
    def labels(ct):
        return ct.labels

    @staticmethod
    def steps(ct):
        return ct.steps


def parse_path(name: str, steps: int, kappa: float, lr: float) -> Optional[NAEConfig]:
    kind, *args = name.removeprefix("pad:").split(":")
    if kind in ("own", "digits", "inference"):
        return None
    base = dict(steps=steps, kappa=kappa, lr=lr)
    if kind in ("eager", "fixed"):
        return NAEConfig(stop="fixed", **base)
    if kind == "margin":
        return NAEConfig(stop="margin", extra_margin=float(args[0]) if args else 1.0, **base)
    if kind == "ciphertext":
        return NAEConfig(
            stop="ciphertext",
            ct_margin=float(args[0]) if args else 1.0,
            check_every=int(args[1]) if len(args) > 1 else 2,
            check_margin=(None if args[2] == "none" else float(args[2])) if len(args) > 2 else "kappa",
            **base,
        )
    raise SystemExit(f"unknown path {name!r}")


def histogram(steps: torch.Tensor, bound: int) -> dict:
    edges = [0, 5, 10, 20, 50, bound, bound + 1]
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        label = f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}"
        out[label] = int(((steps >= lo) & (steps < hi)).sum())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="svhn", choices=sorted(SETTINGS))
    p.add_argument("--n", type=int, default=500, help="images from the start of the split (svhn: the paper subset)")
    p.add_argument("--paths", default="eager,fixed,ciphertext:1:2", help="comma-separated, see above")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=DEFAULT_MICRO_BATCH, help="ric_ext paths; 0 = whole batches")
    p.add_argument("--repeat", type=int, default=1, help="round-robin repeats; medians are reported")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--model", default=None, help="RIC weights (default: bundled)")
    p.add_argument("--data", default=None)
    p.add_argument("--models", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--rss", action="store_true", help="peak RSS of inference and of digits encryption instead")
    p.add_argument("--rss-child", default=None, choices=("inference", "encrypt"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss:
        return measure_rss(args)
    if args.rss_child:
        return rss_child(args)
    s = SETTINGS[args.dataset]
    dev = torch.device(args.device)
    ds = data.dataset(s.get("data", args.dataset), s["split"], args.data, s["size"])
    x, _ = data.stack(ds, list(range(min(args.n, len(ds)))))
    model = load_ric(args.model or s["model"]).to(dev)
    clf = load_classifier(s["classifier"], args.models).to(dev).requires_grad_(False)
    key = Key.generate()
    rows = []
    print(
        f"{args.dataset}: {x.shape[0]} images, classifier {s['classifier']}, bound {s['steps']} steps, lr {s['lr']}, "
        f"device {args.device}, threads {torch.get_num_threads()}",
        flush=True,
    )
    paths = {}
    for name in args.paths.split(","):
        name_lr, _, lr = name.partition("%")
        rule, _, mb = name_lr.partition("@")
        cfg = parse_path(rule, s["steps"], s["kappa"], float(lr) if lr else s["lr"])
        scheme = "pad" if rule.startswith("pad:") else "digits" if rule.startswith("digits") else "paper"
        micro = int(mb) if mb else args.micro_batch
        if rule.startswith("inference"):
            path = InferencePath(clf, args.batch_size, int(rule.split(":")[1]) if ":" in rule else None)
        elif name == "eager":
            path = EagerPath(model, clf, key, cfg, args.batch_size)
        else:
            if scheme == "digits" and lr:
                cfg = dataclasses.replace(DIGITS_NAE, lr=float(lr))
            bank = None if rule.startswith("digits:noise") else "auto"
            precision = rule.split(":")[-1] if rule.endswith(("fp32", "bf16")) else "auto"
            path = LibPath(model, clf, key, cfg, args.batch_size, micro or None, scheme, bank, precision)
        path.decrypt(path.encrypt(x[:4]))  # warm-up: library init, oneDNN primitives, CUDA graphs, banks
        paths[name] = path
    runs = {name: [] for name in paths}
    # Round-robin repeats: on a shared machine, load changes over minutes; interleaving the paths
    # exposes them to the same conditions, and the median of the repeats is reported.
    for rep in range(args.repeat):
        for name, path in paths.items():
            sync(dev)
            t0 = time.perf_counter()
            ct = path.encrypt(x)
            sync(dev)
            t1 = time.perf_counter()
            x_hat = path.decrypt(ct)
            sync(dev)
            t2 = time.perf_counter()
            if name.startswith("inference"):
                row = {"path": name, "repeat": rep, "encrypt_img_s": x.shape[0] / (t1 - t0)}
                runs[name].append(row)
                print(json.dumps(row), flush=True)
                continue
            agree = float((path.classify(ct).cpu() == path.labels(ct).cpu()).float().mean())
            row = {
                "path": name,
                "repeat": rep,
                "encrypt_img_s": x.shape[0] / (t1 - t0),
                "decrypt_img_s": x.shape[0] / (t2 - t1),
                "agreement": agree,
                "psnr": metrics.mean_psnr(metrics.psnr(x_hat.cpu(), x)),
                "exact": int((torch.round(x_hat.cpu() * 255) == torch.round(x * 255)).flatten(1).all(1).sum()),
            }
            st = path.steps(ct)
            if st is not None:
                row.update(
                    steps_mean=float(st.float().mean()),
                    steps_median=float(st.float().median()),
                    steps_max=int(st.max()),
                    steps_hist=histogram(st, s["steps"]),
                )
            runs[name].append(row)
            print(json.dumps(row), flush=True)
    rows = []
    for rs in runs.values():
        row = dict(rs[len(rs) // 2])  # agreement/PSNR/steps of one repeat (they vary only with the key's nonces)
        for k in ("encrypt_img_s", "decrypt_img_s"):
            if k in row:
                row[k] = statistics.median(r[k] for r in rs)
                row[k + "_all"] = [round(r[k], 2) for r in rs]
        if "agreement" in row:
            row["agreement"] = min(r["agreement"] for r in rs)
        rows.append(row)
    base = next((r for r in rows if r["path"] == "eager"), None)
    infs = [r for r in rows if r["path"].startswith("inference")]
    inf = max(infs, key=lambda r: r["encrypt_img_s"]) if infs else None  # the ratios are against the faster
    print(f"\nmedians of {args.repeat} repeat(s); agreement: the lowest over repeats")
    for r in infs:
        print(f"classifier inference ({r['path']}): {r['encrypt_img_s']:.1f} img/s")
    print(
        "| path | encrypt img/s | decrypt img/s | x inference (enc / dec) | x eager (enc / dec) | agreement "
        "| PSNR dB | exact | steps mean / median / max |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if r["path"].startswith("inference"):
            continue

        def ratio(to):
            if not to:
                return "-"
            dec = (
                r["decrypt_img_s"] / to["decrypt_img_s"]
                if "decrypt_img_s" in to
                else r["decrypt_img_s"] / to["encrypt_img_s"]
            )
            return f"{r['encrypt_img_s'] / to['encrypt_img_s']:.2f} / {dec:.2f}"

        st = f"{r['steps_mean']:.1f} / {r['steps_median']:.0f} / {r['steps_max']}" if "steps_mean" in r else "-"
        r["x_inference"] = ratio(inf)
        print(
            f"| {r['path']} | {r['encrypt_img_s']:.1f} | {r['decrypt_img_s']:.1f} | {ratio(inf)} | {ratio(base)} | "
            f"{100 * r['agreement']:.2f}% | {r['psnr']:.2f} | {r.get('exact', '-')}/{x.shape[0]} | {st} |"
        )
    if args.json:
        meta = {
            "dataset": args.dataset,
            "n": int(x.shape[0]),
            "device": args.device,
            "cpu": platform.processor(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "batch_size": args.batch_size,
            "micro_batch": args.micro_batch,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


def _data(args):
    s = SETTINGS[args.dataset]
    ds = data.dataset(s.get("data", args.dataset), s["split"], args.data, s["size"])
    x, _ = data.stack(ds, list(range(min(args.n, len(ds)))))
    return s, x


def rss_child(args) -> None:
    """One measurement in this (fresh) process: load, run once, report ru_maxrss in MiB."""
    import resource

    s, x = _data(args)
    clf = load_classifier(s["classifier"], args.models).requires_grad_(False)
    x = x[: args.batch_size]
    if args.rss_child == "inference":
        InferencePath(clf, args.batch_size).encrypt(x)
    else:
        Cipher(clf, Key.generate(), batch_size=args.batch_size).encrypt(x)
    print(json.dumps({"what": args.rss_child, "n": int(x.shape[0]),
                      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))  # fmt: skip


def measure_rss(args) -> None:
    import subprocess
    import sys

    out = {}
    for what in ("inference", "encrypt"):
        cmd = [sys.executable, __file__, "--dataset", args.dataset, "--n", str(args.n), "--batch-size",
               str(args.batch_size), "--rss-child", what]  # fmt: skip
        if args.data:
            cmd += ["--data", args.data]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[what] = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps(out[what]), flush=True)
    ratio = out["encrypt"]["max_rss_mib"] / out["inference"]["max_rss_mib"]
    print(f"peak RSS: inference {out['inference']['max_rss_mib']:.0f} MiB, encryption "
          f"{out['encrypt']['max_rss_mib']:.0f} MiB at batch {args.batch_size}: {ratio:.2f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rss": out, "ratio": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
