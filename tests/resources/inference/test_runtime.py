"""The inference runtime on the real default model (torchvision's ImageNet MobileNetV2, read
from its wheel) and real photos streamed from a store through the loader."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from resources.errors import ConfigError
from resources.inference.decode import ItemRef
from resources.inference.mobilenet import MobileNetV2
from resources.inference.runtime import InferenceRuntime
from resources.inference.specs import BUILTIN_MOBILENET, ModelSpec
from resources.stores.local import LocalFolderStore
from tests.images import write_photo

CLASSIFIER = ModelSpec("mobilenet_v2", "imagenet", "classification", BUILTIN_MOBILENET)
COFFEE_LIKE = {"espresso", "cup", "coffee mug", "tea cup", "consomme", "eggnog", "espresso machine"}


def top(
    runtime: InferenceRuntime, spec: ModelSpec, folder: Path, names: list[str]
) -> dict[str, list[str]]:
    model = runtime.model(spec)
    refs = [ItemRef(name, f"{name}.jpg") for name in names]
    found: dict[str, list[str]] = {}
    for batch in runtime.run(model, refs, functools.partial(LocalFolderStore, folder)):
        assert batch.outputs is not None and batch.outputs.scores is not None
        for index, scores in zip(batch.indices, batch.outputs.scores, strict=True):
            found[names[index]] = [model.labels[i] for i in np.argsort(-scores)[:3]]
    return found


def test_the_default_classifier_knows_coffee_and_a_cat(tmp_path: Path) -> None:
    for name in ("coffee", "chelsea"):
        write_photo(tmp_path / f"{name}.jpg", name)
    found = top(InferenceRuntime(num_workers=0), CLASSIFIER, tmp_path, ["coffee", "chelsea"])
    assert found["coffee"][0] in COFFEE_LIKE
    assert any("cat" in label or label == "Egyptian Mau" for label in found["chelsea"][:2])


def test_loader_workers_give_the_same_answers_in_the_same_order(tmp_path: Path) -> None:
    names = [f"p{i}" for i in range(10)]
    photos = ["coffee", "chelsea", "astronaut", "rocket", "camera"]
    for index, name in enumerate(names):
        write_photo(tmp_path / f"{name}.jpg", photos[index % 5], brighten=1 + index / 50)
    inline = top(InferenceRuntime(num_workers=0, batch_size=3), CLASSIFIER, tmp_path, names)
    parallel = top(InferenceRuntime(num_workers=2, batch_size=3), CLASSIFIER, tmp_path, names)
    assert parallel == inline and list(parallel) == names


def test_an_object_that_is_gone_or_broken_is_that_items_error(tmp_path: Path) -> None:
    write_photo(tmp_path / "coffee.jpg", "coffee")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    runtime = InferenceRuntime(num_workers=0)
    model = runtime.model(CLASSIFIER)
    refs = [ItemRef("a", "coffee.jpg"), ItemRef("b", "broken.jpg"), ItemRef("c", "gone.jpg")]
    (batch,) = runtime.run(model, refs, functools.partial(LocalFolderStore, tmp_path))
    assert batch.indices == [0]
    errors = dict(batch.errors)
    assert errors[1].startswith("corrupt: ") and errors[2].startswith("missing: ")


def test_a_state_dict_loads_into_the_built_in_architecture(tmp_path: Path) -> None:
    model = MobileNetV2(num_classes=3)
    path = tmp_path / "three.pth"
    torch.save(model.state_dict(), path)
    spec = ModelSpec("three", "1", "classification", str(path), ("a", "b", "c"))
    loaded = InferenceRuntime(num_workers=0).model(spec, path.read_bytes)
    assert loaded.labels == ("a", "b", "c")

    wrong = ModelSpec("three", "2", "classification", str(path), ("a", "b"))
    with pytest.raises(ConfigError, match="2 labels are registered but the model has 3 classes"):
        InferenceRuntime(num_workers=0).model(wrong, path.read_bytes)


def test_weights_that_are_no_model_are_refused_naming_the_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(b"not weights at all")
    spec = ModelSpec("mystery", "1", "classification", str(path))
    with pytest.raises(
        ConfigError, match=r"model mystery 1 .*neither TorchScript nor a state dict"
    ):
        InferenceRuntime(num_workers=0).model(spec, path.read_bytes)


def test_bf16_autocast_gives_nearly_the_fp32_embedding(tmp_path: Path) -> None:
    write_photo(tmp_path / "coffee.jpg", "coffee")
    spec = ModelSpec("mobilenet_v2", "imagenet", "embedding", BUILTIN_MOBILENET)
    vectors = []
    for precision in ("fp32", "bf16"):
        runtime = InferenceRuntime(num_workers=0, precision=precision)
        (batch,) = runtime.run(
            runtime.model(spec),
            [ItemRef("c", "coffee.jpg")],
            functools.partial(LocalFolderStore, tmp_path),
        )
        assert batch.outputs is not None and batch.outputs.vectors is not None
        vectors.append(batch.outputs.vectors[0])
    full, half = vectors
    assert full.dtype == np.float32 and half.dtype == np.float32
    assert not np.array_equal(full, half)  # bf16 did run
    assert float(full @ half / np.linalg.norm(full) / np.linalg.norm(half)) > 0.98
