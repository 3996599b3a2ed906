"""Datasets: SVHN / CIFAR-10 / LFW files with fixed splits (docs/data.md) and any
folder of images for users' own data.

Every dataset yields ``(image, label)`` with image a (C, H, W) float32 tensor
in [0, 1]. The data folder comes from the ``data`` argument, else the
``RIC_DATA`` environment variable; there is no default (the package never
assumes where a machine keeps data). Nothing in the package requires these files.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .checks import check_int

PathLike = Union[str, "os.PathLike[str]"]
SVHN_SPLITS = {"test": (0, 2000), "train": (2000, 10000), "paper": (1000, 1500)}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def data_dir(data: Optional[PathLike] = None) -> str:
    """The data folder: ``data``, else ``RIC_DATA``; FileNotFoundError when neither names an existing folder."""
    path = data or os.environ.get("RIC_DATA")
    if not path:
        raise FileNotFoundError("no data folder given: pass --data DIR (Python: data=DIR) or set RIC_DATA")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data folder not found: {path} (from {'--data' if data else 'RIC_DATA'})")
    return path


def _need(path: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file not found: {path} (set --data or RIC_DATA to the data folder)")
    return path


class ArrayDataset(Dataset):
    """(N, H, W, C) uint8 images + (N,) labels -> ((C, H, W) float in [0, 1], int)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        return self.images[i].float() / 255.0, int(self.labels[i])

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """All images as one (N, C, H, W) float tensor in [0, 1], and the labels."""
        return self.images.float() / 255.0, self.labels


def svhn(split: str = "train", data: Optional[PathLike] = None) -> ArrayDataset:
    """SVHN 32x32: split 'train' (indices 2000-9999), 'test' (0-1999) or 'paper' (1000-1499)."""
    if split not in SVHN_SPLITS:
        raise ValueError(f"SVHN split must be one of {sorted(SVHN_SPLITS)}, got {split!r}")
    d = np.load(_need(os.path.join(data_dir(data), "svhn_test10k.npz")))
    lo, hi = SVHN_SPLITS[split]
    return ArrayDataset(d["images"][lo:hi], d["labels"][lo:hi])


def class_interleaved(labels: np.ndarray) -> np.ndarray:
    """The order that deals the images out class by class: the k-th image of each class, then the (k+1)-th.

    A file sorted by class (CIFAR-10's is: 0-999 airplanes, ...) would make every index
    range one class; in this order any range of 10·m images holds m of each of 10 equally
    large classes. Stable and seed-free, so it cannot change with a library version.
    """
    labels = np.asarray(labels)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    return np.lexsort((labels, rank))  # primary key rank, then label


def cifar10(data: Optional[PathLike] = None) -> ArrayDataset:
    """The 10,000 CIFAR-10 test images (JPEG copy), classes interleaved (``class_interleaved``); evaluation only.

    The file is sorted by class, so index i here is the file's ``class_interleaved(labels)[i]``
    and label ``i % 10``.
    """
    d = np.load(_need(os.path.join(data_dir(data), "cifar10_jpeg_test.npz")))
    order = class_interleaved(d["labels"])
    return ArrayDataset(d["images"][order], d["labels"][order])


def _decode(data: bytes, size: Optional[int], channels: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB")
    if size is not None:
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != size:
            img = img.resize((size, size), Image.BICUBIC)
    arr = np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)
    return arr[..., None] if arr.ndim == 2 else arr


def lfw(split: str = "train", data: Optional[PathLike] = None, size: int = 160, crop: int = 160) -> ArrayDataset:
    """LFW deep-funneled faces, 62 identities: labels by sorted name, first 80% of each identity's files train.

    Each 250x250 image is centre-cropped to ``crop`` and resized to ``size``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"LFW split must be 'train' or 'test', got {split!r}")
    path = _need(os.path.join(data_dir(data), "lfw_min20.tar"))
    by_person: dict = {}
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")]
        for m in members:
            by_person.setdefault(m.name.split("/")[-2], []).append(m)
        names = sorted(by_person)
        images, labels = [], []
        for label, name in enumerate(names):
            files = sorted(by_person[name], key=lambda m: m.name)
            cut = int(len(files) * 0.8)
            for m in files[:cut] if split == "train" else files[cut:]:
                raw = tar.extractfile(m).read()
                arr = _decode(raw, None, 3)
                h, w = arr.shape[:2]
                top, left = (h - crop) // 2, (w - crop) // 2
                arr = arr[top : top + crop, left : left + crop]
                if size != crop:
                    from PIL import Image

                    arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
                images.append(arr)
                labels.append(label)
    return ArrayDataset(np.stack(images), np.array(labels))


class ImageFolder(Dataset):
    """Users' own images: every image file under ``root`` (recursively, sorted).

    Labels: the index of the first-level sub-folder (sorted), or 0 for files at
    the top. ``size`` centre-crops and resizes to size x size (needed to batch
    images of different sizes).
    """

    def __init__(self, root: PathLike, size: Optional[int] = None, channels: int = 3):
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder not found: {root}")
        self.root, self.size, self.channels = root, size, channels
        self.files: List[str] = []
        for dirpath, _, files in os.walk(root):
            self.files += [os.path.join(dirpath, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        self.files.sort()
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
        classes = sorted(
            {os.path.relpath(f, root).split(os.sep)[0] for f in self.files if os.sep in os.path.relpath(f, root)}
        )
        self.class_index = {c: i for i, c in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        with open(self.files[i], "rb") as f:
            arr = _decode(f.read(), self.size, self.channels)
        rel = os.path.relpath(self.files[i], self.root)
        label = self.class_index.get(rel.split(os.sep)[0], 0) if os.sep in rel else 0
        return torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0, label


class EncryptedImageFolder(Dataset):
    """A folder of ciphertext PNGs as a training set: decrypted on the fly, with the key alone.

    Yields ``(transform(image), label)``: image (C, H, W) float32 in [0, 1], the plaintext exactly
    (format 4: bit for bit where it travelled losslessly; every image is checked against its keyed
    digest, so a changed file raises IntegrityError or TamperedError, never another image). The
    label is the class folder's index when the files sit in class folders (``classes``: the sorted
    first-level folder names, as torchvision's ImageFolder), else the label in the file's header
    (what the classifier said about the plaintext).

    ``key`` is a :class:`~ric_ext.keys.Key` or the path of a key file. With a path, the dataset
    holds no secret and pickles, so ``DataLoader`` workers started by spawn (macOS, Windows) load
    the key themselves; a Key object works with fork (Linux's default) and refuses to pickle.
    ``models`` is where formats 1-3 find their classifier (default: RIC_MODELS and the store).
    """

    def __init__(
        self,
        root: PathLike,
        key,
        transform=None,
        target_transform=None,
        *,
        models: Optional[PathLike] = None,
    ):
        from .keys import Key

        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ciphertext folder not found: {root}")
        if not isinstance(key, (Key, str, os.PathLike)):
            raise TypeError(f"key must be a ric_ext Key or a key file's path, got {type(key).__name__}")
        self.root, self.transform, self.target_transform, self.models = root, transform, target_transform, models
        self._key = key if isinstance(key, Key) else None
        self._key_path = None if isinstance(key, Key) else os.fspath(key)
        if self._key_path is not None:
            Key.load(self._key_path)  # a bad key file fails here, not in a worker
        self.files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(".png"))
        if not self.files:
            raise FileNotFoundError(f"no ciphertext PNGs under {root}")
        rels = [os.path.relpath(f, root) for f in self.files]
        self.classes = sorted({r.split(os.sep)[0] for r in rels if os.sep in r})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self._ciphers: list = []

    @property
    def key(self):
        if self._key is None:
            from .keys import Key

            self._key = Key.load(self._key_path)
        return self._key

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        if self._key_path is None:
            raise TypeError(
                "this EncryptedImageFolder holds a Key object, which never pickles; pass the key file's path "
                "(EncryptedImageFolder(root, 'key.json')) for DataLoader workers started by spawn"
            )
        state = dict(self.__dict__)
        state["_key"], state["_ciphers"] = None, []  # each worker loads the key and makes its ciphers
        return state

    def _cipher(self, header: dict):
        from .cipher import Cipher

        for h, c in self._ciphers:  # one job's files share one header: a short list, compared as dicts
            if h == header:
                return c
        c = Cipher.from_ciphertext(header, self.key, models=self.models, batch_size=256)
        self._ciphers.append((header, c))
        return c

    def __getitem__(self, i: int) -> Tuple[object, int]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> List[Tuple[object, int]]:
        """A batch at once (``DataLoader`` calls this when it exists): the files that share a header
        are decrypted in one call, which costs far less per image than one at a time."""
        from .ciphertext import Ciphertext
        from .fileformat import read_png

        cts = [read_png(self.files[i], self.key) for i in indices]
        images: List[Optional[torch.Tensor]] = [None] * len(cts)
        todo = list(range(len(cts)))
        while todo:
            header = cts[todo[0]].header
            shape = cts[todo[0]].pixels.shape
            same = [k for k in todo if cts[k].header == header and cts[k].pixels.shape == shape]
            x8, _ = self._cipher(header).decrypt_uint8(Ciphertext.cat([cts[k] for k in same]))
            for j, k in enumerate(same):
                images[k] = x8[j]
            todo = [k for k in todo if k not in same]
        out = []
        for k, i in enumerate(indices):
            image = images[k].float() / 255.0
            rel = os.path.relpath(self.files[i], self.root)
            label = self.class_to_idx[rel.split(os.sep)[0]] if os.sep in rel else int(cts[k].labels[0])
            if self.transform is not None:
                image = self.transform(image)
            if self.target_transform is not None:
                label = self.target_transform(label)
            out.append((image, label))
        return out


def load_image(path: PathLike, channels: int = 3, size: Optional[int] = None) -> torch.Tensor:
    """One image file (any mode: grey, RGB, RGBA, palette) -> (C, H, W) float32 in [0, 1].

    ``size`` centre-crops to a square and resizes to size x size (bicubic), as the datasets do.
    """
    if size is not None:
        check_int("size", size, 1)
    with open(path, "rb") as f:
        arr = _decode(f.read(), size, channels)
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0


def save_image(path: PathLike, image: torch.Tensor, *, overwrite: bool = False) -> None:
    """(C, H, W) float in [0, 1] (rounded to 8 bits) or uint8 -> 8-bit PNG, written atomically."""
    from PIL import Image

    from .io_utils import atomic_write

    if image.dtype == torch.uint8:
        arr = image.detach().cpu().numpy()
    else:
        arr = torch.clamp(torch.round(image.detach().float().cpu() * 255), 0, 255).to(torch.uint8).numpy()
    img = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"), overwrite=overwrite)


def dataset(name: str, split: str = "train", data: Optional[PathLike] = None, size: Optional[int] = None):
    """Dataset by name: 'svhn', 'cifar10', 'lfw', or a path to an image folder."""
    if name == "svhn":
        return svhn(split, data)
    if name == "cifar10":
        return cifar10(data)
    if name == "lfw":
        return lfw(split, data, size=size or 160)
    if os.path.isdir(name):
        return ImageFolder(name, size=size)
    raise ValueError(f"dataset must be 'svhn', 'cifar10', 'lfw' or an image folder, got {name!r}")


def stack(ds: Dataset, indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Items ``indices`` of a dataset as one (N, C, H, W) image tensor and an int64 label tensor."""
    items = [ds[i] for i in indices]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)
