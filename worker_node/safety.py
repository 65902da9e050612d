"""The NSFW check a worker runs on its own images before it hands them in.

A job whose payload says ``use_nsfw_censor`` (the horde sets it for a request with ``nsfw: false``
and ``censor_nsfw: true``) must not come back with an NSFW picture. The horde's own workers run a
CLIP-based check (``horde-safety``); this worker instead takes any transformers image-classification
model from a local folder (``[worker] safety_model``, safetensors weights only, never fetched from a
hub), for example an NSFW detector whose labels include ``nsfw``. An image is flagged when the
summed probability of the labels in ``NSFW_LABELS`` reaches the threshold; the worker then submits
it as ``censored`` with a black image of the same size in its place.

Without a classifier the worker cannot keep that promise, and the horde protocol gives it no pop
flag to say so: ``nsfw: false`` on the pop only filters NSFW *requests*, and a worker with
``nsfw: false`` still receives censor jobs. So the loop refuses those jobs at once (``faulted``
with the reason, before any download or inference) and the horde gives them to another worker;
it says so at start. See ``loop.py``.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, UnidentifiedImageError

from worker_node.pipelines import heavy

log = logging.getLogger(__name__)

#: Labels counted as NSFW, compared case-insensitively (the common NSFW-detector vocabularies).
NSFW_LABELS: frozenset[str] = frozenset({"nsfw", "porn", "hentai", "sexy", "explicit", "nude"})
DEFAULT_THRESHOLD = 0.5


class SafetyModelError(Exception):
    """The configured safety model cannot be loaded; the message says what to change."""


class SafetyCheck(Protocol):
    """Decides whether one finished image must be withheld. Blocking: call it in a thread."""

    def is_nsfw(self, webp: bytes) -> bool:
        """Whether the image is NSFW."""
        ...


class ImageClassifierSafety:
    """An image-classification model (transformers, local folder) used as an NSFW check.

    ``threshold`` is compared with the summed probability of the NSFW labels. Calls are serialised:
    one model instance is not safe to share between threads.
    """

    def __init__(self, processor: Any, model: Any, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        labels = {int(k): str(v) for k, v in dict(model.config.id2label).items()}
        self._nsfw = sorted(i for i, name in labels.items() if name.strip().lower() in NSFW_LABELS)
        if not self._nsfw:
            raise SafetyModelError(
                f"the safety model's labels {sorted(labels.values())} include none of "
                f"{sorted(NSFW_LABELS)}; use an NSFW image classifier"
            )
        self._processor = processor
        self._model = model
        self._threshold = threshold
        self._multi_label = getattr(model.config, "problem_type", None) == (
            "multi_label_classification"
        )
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, folder: str | Path, threshold: float = DEFAULT_THRESHOLD, device: str = "cpu"
    ) -> ImageClassifierSafety:
        """Load a classifier folder from local disk (safetensors weights only)."""
        path = Path(folder)
        if not path.is_dir() or not (path / "config.json").is_file():
            raise SafetyModelError(
                f"safety model {path} is not a transformers model folder (no config.json); "
                "point worker.safety_model at a local image-classification model"
            )
        transformers = heavy("transformers")
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(
                str(path), local_files_only=True
            )
            model = transformers.AutoModelForImageClassification.from_pretrained(
                str(path), local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SafetyModelError(f"safety model {path} does not load: {first}") from None
        model.to(device).eval()
        return cls(processor, model, threshold)

    def score(self, webp: bytes) -> float:
        """The image's NSFW probability (summed over the NSFW labels)."""
        import torch

        try:
            with Image.open(io.BytesIO(webp)) as opened:
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"not an image: {exc}") from None
        with self._lock, torch.inference_mode():
            inputs = self._processor(images=image, return_tensors="pt")
            inputs = {k: v.to(self._model.device) for k, v in inputs.items()}
            logits = self._model(**inputs).logits[0].float()
            probs = logits.sigmoid() if self._multi_label else logits.softmax(-1)
            return float(sum(probs[i] for i in self._nsfw))

    def is_nsfw(self, webp: bytes) -> bool:
        """Whether the image reaches the threshold."""
        return self.score(webp) >= self._threshold
