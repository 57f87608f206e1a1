"""Model versions loaded for inference: TorchScript, a state dict for the built-in MobileNetV2,
or ONNX through onnxruntime, each behind one ``LoadedModel.run``. Imports torch."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from resources.errors import ConfigError
from resources.inference import imagenet
from resources.inference.mobilenet import Embedder, MobileNetV2
from resources.inference.pool_encoder import POOL_ENCODER, PoolEncoder
from resources.inference.specs import BUILTIN_MOBILENET, SPEC_FILE, InputSpec, ModelSpec

DETECTION_INPUT = InputSpec(resize="full", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@dataclass
class Outputs:
    """A batch's outputs: ``vectors`` (embedding), ``scores`` (classification, probabilities
    per label) or ``detections`` (per image: boxes xyxy in input pixels, labels, scores)."""

    vectors: np.ndarray[Any, Any] | None = None
    scores: np.ndarray[Any, Any] | None = None
    detections: list[dict[str, np.ndarray[Any, Any]]] | None = None


class LoadedModel:
    """A model ready to run on ``device``: ``run`` takes a float batch (or, for detectors, a
    list of images) already normalized as ``input`` says."""

    def __init__(self, spec: ModelSpec, input_spec: InputSpec, labels: tuple[str, ...]) -> None:
        self.spec = spec
        self.input = input_spec
        self.labels = labels

    def run(self, batch: Any) -> Outputs:
        raise NotImplementedError


class TorchModel(LoadedModel):
    def __init__(
        self,
        spec: ModelSpec,
        module: torch.nn.Module,
        input_spec: InputSpec,
        labels: tuple[str, ...],
        device: torch.device,
    ) -> None:
        super().__init__(spec, input_spec, labels)
        self.module = module.to(device).eval()
        self.device = device

    def run(self, batch: Any) -> Outputs:
        with torch.inference_mode():
            out = self.module(batch)
        task = self.spec.task
        if task == "detection":
            return Outputs(detections=[_detections(found) for found in out])
        if isinstance(out, tuple | list):
            out = out[0]
        if task == "embedding":
            return Outputs(vectors=out.float().flatten(1).cpu().numpy())
        return Outputs(scores=torch.softmax(out.float(), dim=1).cpu().numpy())


def _detections(found: dict[str, torch.Tensor]) -> dict[str, np.ndarray[Any, Any]]:
    missing = {"boxes", "labels", "scores"} - set(found)
    if missing:
        raise ConfigError(
            f"a detector must return, per image, a dict with boxes, labels and scores "
            f"(torchvision's form); this one lacks {', '.join(sorted(missing))}"
        )
    return {
        name: found[name].detach().float().cpu().numpy() for name in ("boxes", "labels", "scores")
    }


class OnnxModel(LoadedModel):
    def __init__(
        self, spec: ModelSpec, data: bytes, labels: tuple[str, ...], device: torch.device
    ) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ConfigError(
                f"model {spec.model} {spec.version} is ONNX ({spec.weights}); install the "
                "onnx extra (pip install 'bucketlake[onnx]') to run it"
            ) from exc
        if spec.task == "detection":
            raise ConfigError(
                f"model {spec.model} {spec.version}: ONNX detectors are not supported; export "
                "the detector as TorchScript"
            )
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(data, options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        shape = self.session.get_inputs()[0].shape
        default = InputSpec()
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            size = (int(shape[2]), int(shape[3]))
            default = InputSpec.grey(size) if shape[1] == 1 else InputSpec(size=size)
        super().__init__(spec, InputSpec.from_json(meta.get(SPEC_FILE, ""), default), labels)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: Any) -> Outputs:
        out = self.session.run(None, {self.input_name: batch.float().cpu().numpy()})[0]
        if self.spec.task == "embedding":
            return Outputs(vectors=np.asarray(out, np.float32).reshape(len(out), -1))
        return Outputs(
            scores=torch.softmax(torch.from_numpy(np.asarray(out, np.float32)), 1).numpy()
        )


def load_model(spec: ModelSpec, data: bytes | None, device: torch.device) -> LoadedModel:
    """``spec`` with its weights ``data`` (None for the built-in default)."""
    where = f"model {spec.model} {spec.version} ({spec.weights})"
    if spec.weights.startswith(BUILTIN_MOBILENET):
        return _builtin(spec, device)
    if data is None:
        raise ConfigError(f"{where}: no weights were read")
    if spec.weights.lower().endswith(".onnx"):
        return OnnxModel(spec, data, spec.labels, device)
    extra = {SPEC_FILE: ""}
    try:
        module: torch.nn.Module = torch.jit.load(  # type: ignore[no-untyped-call]
            io.BytesIO(data), map_location=device, _extra_files=extra
        )
    except RuntimeError:
        return _state_dict(spec, data, device, where)
    input_spec = InputSpec.from_json(
        extra[SPEC_FILE], DETECTION_INPUT if spec.task == "detection" else InputSpec()
    )
    return TorchModel(spec, module, input_spec, spec.labels, device)


def _builtin(spec: ModelSpec, device: torch.device) -> TorchModel:
    model = MobileNetV2()
    model.load_state_dict(
        torch.load(imagenet.weights_path(), map_location="cpu", weights_only=True)
    )
    if spec.task == "embedding":
        return TorchModel(spec, Embedder(model), InputSpec(), (), device)
    if spec.task == "classification":
        return TorchModel(
            spec, model, InputSpec(), spec.labels or imagenet.imagenet_labels(), device
        )
    raise ConfigError(f"model {spec.model} {spec.version}: the built-in MobileNetV2 is no detector")


def _state_dict(spec: ModelSpec, data: bytes, device: torch.device, where: str) -> TorchModel:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{where}: the weights are neither TorchScript nor a state dict torch can read "
            f"({type(exc).__name__}: {exc}); ONNX files must end in .onnx"
        ) from exc
    if isinstance(state, dict) and state.get("architecture") == POOL_ENCODER:
        return _pool_encoder(spec, state, device)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    head = state.get("classifier.1.weight") if isinstance(state, dict) else None
    if head is None:
        raise ConfigError(
            f"{where}: a state dict is loaded into the built-in architecture, MobileNetV2 "
            "(torchvision's layout, classifier.1.*); this one does not match it: save the "
            "model as TorchScript (torch.jit.script or trace, then save) instead"
        )
    model = MobileNetV2(num_classes=head.shape[0])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{where}: the state dict does not fit MobileNetV2: {exc}") from exc
    if spec.labels and len(spec.labels) != head.shape[0]:
        raise ConfigError(
            f"{where}: {len(spec.labels)} labels are registered but the model has "
            f"{head.shape[0]} classes"
        )
    labels = spec.labels or (imagenet.imagenet_labels() if head.shape[0] == 1000 else ())
    module = Embedder(model) if spec.task == "embedding" else model
    return TorchModel(spec, module, InputSpec(), labels, device)


def _pool_encoder(spec: ModelSpec, saved: dict[str, Any], device: torch.device) -> TorchModel:
    """An encoder trained on the pool (``training.simclr``), saved with its shape and input."""
    encoder = PoolEncoder(channels=int(saved["channels"]), width=int(saved["width"]))
    encoder.load_state_dict(saved["state_dict"])
    input_spec = InputSpec.from_json(saved["input"], InputSpec())
    return TorchModel(spec, encoder, input_spec, (), device)
