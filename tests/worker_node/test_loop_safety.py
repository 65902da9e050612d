"""The NSFW classifier the loop runs on censor jobs: loaded from local disk only, or refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.worker_node.test_loop import classifier
from worker_node.safety import ImageClassifierSafety, SafetyModelError


def webp(colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, "WEBP")
    return buffer.getvalue()


def test_the_verdict_follows_the_nsfw_label_and_the_threshold(tmp_path: Path) -> None:
    firing = ImageClassifierSafety.load(classifier(tmp_path / "fires", fires=True))
    calm = ImageClassifierSafety.load(classifier(tmp_path / "calm", fires=False))
    assert firing.score(webp()) > 0.99
    assert firing.is_nsfw(webp())
    assert calm.score(webp()) < 0.01
    assert not calm.is_nsfw(webp())
    strict = ImageClassifierSafety.load(classifier(tmp_path / "fires2", fires=True), threshold=1.0)
    assert not strict.is_nsfw(webp())


def test_a_folder_without_a_model_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SafetyModelError, match=r"no config\.json") as refused:
        ImageClassifierSafety.load(tmp_path)
    assert "\n" not in str(refused.value)


def test_a_classifier_without_nsfw_labels_is_refused(tmp_path: Path) -> None:
    folder = classifier(tmp_path / "cats", fires=True)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "cat", "1": "dog"}
    config["label2id"] = {"cat": 0, "dog": 1}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SafetyModelError, match="include none of"):
        ImageClassifierSafety.load(folder)


def test_pickled_weights_are_never_loaded(tmp_path: Path) -> None:
    folder = classifier(tmp_path / "pickled", fires=True)
    weights = folder / "model.safetensors"
    weights.rename(folder / "pytorch_model.bin")
    with pytest.raises(SafetyModelError, match="does not load") as refused:
        ImageClassifierSafety.load(folder)
    assert "\n" not in str(refused.value)


def test_an_unreadable_image_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    safety = ImageClassifierSafety.load(classifier(tmp_path / "c", fires=False))
    with pytest.raises(ValueError, match="not an image"):
        safety.is_nsfw(b"not a picture")
