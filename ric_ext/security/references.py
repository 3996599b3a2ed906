"""Reference "reconstructions" every attack is compared with.

SVHN images are smooth, so guesses that know nothing about an image already
score well: the training-set mean image, each image's own mean grey (which
needs one number per image), and the mean training image of the label the
cloud sees (the label is public). An attack only shows leakage where it beats
these.
"""

from __future__ import annotations

from typing import Dict

import torch


def reference_guesses(
    x: torch.Tensor, labels: torch.Tensor, train_x: torch.Tensor, train_labels: torch.Tensor
) -> Dict[str, torch.Tensor]:
    """Guesses for images ``x`` (B, C, H, W) with public ``labels`` (B,), from training images and labels."""
    if train_x.shape[0] == 0:
        raise ValueError("reference guesses need training images")
    mean_img = train_x.mean(0, keepdim=True)
    own_grey = x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    class_means = {}
    for k in labels.unique().tolist():
        sel = train_labels == k
        class_means[k] = train_x[sel].mean(0) if bool(sel.any()) else mean_img[0]
    class_img = torch.stack([class_means[int(k)] for k in labels]) if len(labels) else x.clone()
    return {"training-set mean image": mean_img.expand_as(x), "own mean grey": own_grey, "class-mean image": class_img}
