"""Networks: the RIC feature extractor / encoder / decoder and the plaintext classifiers."""

from .classifier_files import FileClassifier, load_classifier_file, save_classifier
from .classifiers import (
    CifarResNet,
    LFWNet,
    Normalized,
    SVHNNet,
    ZeroLogit,
    fingerprint,
    load_cifar_resnet,
    load_lfw_classifier,
    load_svhn_classifier,
)
from .networks import RIC, Decoder, Encoder, FeatureExtractor, Trunk
from .registry import bundled_model_path, load_classifier, load_ric, save_ric

__all__ = [
    "RIC",
    "Decoder",
    "Encoder",
    "FeatureExtractor",
    "Trunk",
    "CifarResNet",
    "Normalized",
    "SVHNNet",
    "ZeroLogit",
    "LFWNet",
    "load_lfw_classifier",
    "fingerprint",
    "load_cifar_resnet",
    "load_svhn_classifier",
    "load_classifier",
    "load_ric",
    "save_ric",
    "bundled_model_path",
    "FileClassifier",
    "load_classifier_file",
    "save_classifier",
]
