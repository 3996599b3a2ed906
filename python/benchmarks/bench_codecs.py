"""Lossless codecs for the digits scheme's share: size and speed on real images.

JPEG-XL lossless (libjxl through imagecodecs) at efforts 1, 2, 3 and 7, and WebP lossless
(libwebp) at the settings ric_ext.codec uses, through Pillow and through imagecodecs, on
--n images each of SVHN, LFW at 64 px and CIFAR-10. For each: median / 99th percentile /
largest bits per subpixel, encode and decode milliseconds per image (one thread), and the
fraction that fits a share of base 51, 64, 85 and 128 (log2(base) bits per subpixel, less
the flag and length digits). Every round trip is checked to be exact. A benchmark, not a test.

    python python/benchmarks/bench_codecs.py --data ../shared/data --n 1000 --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time

import numpy as np
import torch

from ric_ext import data, payload

BASES = (51, 64, 85, 128)


def _pillow_webp(method: int, quality: int):
    from PIL import Image

    def enc(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "WEBP", lossless=True, quality=quality, method=method)
        return buf.getvalue()

    def dec(b):
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGB"))

    return enc, dec


def codecs() -> dict:
    import imagecodecs

    out = {}
    for e in (1, 2, 3, 7):
        out[f"jpeg-xl effort {e}"] = (
            lambda a, e=e: imagecodecs.jpegxl_encode(a, lossless=True, effort=e, numthreads=1),
            lambda b: imagecodecs.jpegxl_decode(b, numthreads=1),
        )
    for m, q in ((0, 0), (4, 75), (6, 100)):
        out[f"webp m{m} q{q} (Pillow)"] = _pillow_webp(m, q)
        out[f"webp m{m} q{q} (imagecodecs)"] = (
            lambda a, m=m, q=q: imagecodecs.webp_encode(a, lossless=True, level=q, method=m),
            imagecodecs.webp_decode,
        )
    return out


def load(name: str, folder, n: int) -> np.ndarray:
    if name == "svhn":
        x = data.svhn("test", folder).images[:n]
    elif name == "cifar10":
        x = data.cifar10(folder).images[:n]
    else:
        x = torch.cat([data.lfw(s, folder, size=64).images for s in ("test", "train")])[:n]
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for name in ("svhn", "lfw64", "cifar10"):
        imgs = load(name, args.data, args.n)
        sub = imgs.shape[1] * imgs.shape[2] * 3
        lays = {b: payload.layout(b, (3, imgs.shape[1], imgs.shape[2])) for b in BASES}
        for cname, (enc, dec) in codecs().items():
            t = time.perf_counter()
            blobs = [enc(a) for a in imgs]
            te = time.perf_counter() - t
            t = time.perf_counter()
            outs = [dec(b) for b in blobs]
            td = time.perf_counter() - t
            assert all(np.array_equal(o, a) for o, a in zip(outs, imgs)), cname
            bits = np.array([8 * len(b) / sub for b in blobs])
            row = {
                "data": name,
                "codec": cname,
                "bits_median": round(float(np.median(bits)), 3),
                "bits_p99": round(float(np.percentile(bits, 99)), 3),
                "bits_max": round(float(bits.max()), 3),
                "encode_ms": round(1e3 * te / len(imgs), 3),
                "decode_ms": round(1e3 * td / len(imgs), 3),
                "fits": {b: float(np.mean([len(x) <= lays[b].capacity for x in blobs])) for b in BASES},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        "\n| data | codec | bits/subpixel median / p99 / max | encode ms | decode ms "
        "| fits at base 51 / 64 / 85 / 128 |"
    )
    print("| --- | --- | --- | ---: | ---: | --- |")
    for r in rows:
        fits = " / ".join(f"{100 * r['fits'][b]:.1f}%" for b in BASES)
        print(f"| {r['data']} | {r['codec']} | {r['bits_median']:.2f} / {r['bits_p99']:.2f} / {r['bits_max']:.2f} | "
              f"{r['encode_ms']:.3f} | {r['decode_ms']:.3f} | {fits} |")  # fmt: skip
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"), "n": args.n}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
