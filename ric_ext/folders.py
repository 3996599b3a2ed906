"""Folder-level encryption and decryption with a progress bar.

Outputs mirror the input tree as ``<output>/<relative path>.png``. Every file
is written atomically, and nothing that exists is ever overwritten: all output
paths are checked before any work starts (and again at each write).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch

from .batching import batch_slices
from .cipher import Cipher, Ciphertext
from .data import IMAGE_EXTENSIONS, load_image, save_image
from .fileformat import read_png, write_png

PathLike = Union[str, "os.PathLike[str]"]


def image_files(path: PathLike) -> List[str]:
    """``path`` itself if it is a file, else every image file below it (sorted)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"input not found: {path}")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
    return files


def plan_outputs(inp: PathLike, out: PathLike) -> List[Tuple[str, str]]:
    """(input, output) pairs; raises FileExistsError if any output exists already."""
    inp, out = os.fspath(inp), os.fspath(out)
    files = image_files(inp)
    base = inp if os.path.isdir(inp) else os.path.dirname(inp)
    outs = [os.path.join(out, os.path.splitext(os.path.relpath(f, base))[0] + ".png") for f in files]
    clash = [o for o in outs if os.path.exists(o)]
    if clash:
        raise FileExistsError(
            f"refusing to overwrite {len(clash)} existing file(s), e.g. {clash[0]}; choose an empty output folder"
        )
    if len(set(outs)) != len(outs):
        raise ValueError("two inputs map to the same output name (e.g. a.png and a.jpg); rename one")
    return list(zip(files, outs))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled)


def _groups(pairs: List[Tuple[str, str]], load: Callable, batch_size: int) -> Iterator[tuple]:
    """Chunks of up to ``batch_size`` files, loaded and grouped by image shape (so each group is one batch)."""
    for sl in batch_slices(len(pairs), batch_size):
        by_shape: Dict[tuple, list] = {}
        for f, o in pairs[sl]:
            item = load(f)
            by_shape.setdefault(tuple(_shape(item)), []).append((item, o))
        yield from by_shape.values()


def _shape(item) -> tuple:
    return tuple(item.shape) if isinstance(item, torch.Tensor) else (tuple(item.pixels.shape), repr(item.header))


def encrypt_folder(
    cipher: Cipher, inp: PathLike, out: PathLike, *, progress: bool = True, size: Optional[int] = None
) -> int:
    """Encrypt an image file or folder into ciphertext PNGs (batched by image size); returns the number of files.

    ``size`` centre-crops and resizes every image to size x size first (see :func:`ric_ext.data.load_image`).
    """
    pairs = plan_outputs(inp, out)
    with _progress(len(pairs), "encrypt", progress) as bar:
        for group in _groups(pairs, lambda f: load_image(f, cipher.channels, size), cipher.batch_size):
            ct = cipher.encrypt(torch.stack([x for x, _ in group]))
            for i, (_, o) in enumerate(group):
                write_png(o, ct[i], cipher.key)
            bar.update(len(group))
    return len(pairs)


def decrypt_folder(cipher: Cipher, inp: PathLike, out: PathLike, *, progress: bool = True) -> int:
    """Decrypt a ciphertext PNG or folder of them into 8-bit PNG images; returns the number of files.

    Every file is authenticated before anything is decrypted from its batch.
    """
    pairs = plan_outputs(inp, out)
    with _progress(len(pairs), "decrypt", progress) as bar:
        for group in _groups(pairs, lambda f: read_png(f, cipher.key), cipher.batch_size):
            x_hat = cipher.decrypt(Ciphertext.cat([ct for ct, _ in group]))
            for i, (_, o) in enumerate(group):
                save_image(o, x_hat[i])
            bar.update(len(group))
    return len(pairs)
