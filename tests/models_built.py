"""Small real models that the tests build and save as a user would: a TorchScript classifier
and detector, and an ONNX classifier. Each computes its answer from the pixels, so a wrong
input pipeline gives wrong predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resources.inference.specs import SPEC_FILE, InputSpec

#: Both classifiers: class 0 "dark", class 1 "bright", by the image's mean brightness.
LABELS = ["dark", "bright"]
SMALL = InputSpec(size=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize="stretch")


def torchscript_classifier(path: Path) -> Path:
    import torch

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            level = x.mean(dim=(1, 2, 3)) - 0.5
            return torch.stack([-level, level], dim=1) * 20.0

    scripted = torch.jit.script(Brightness())
    torch.jit.save(scripted, str(path), _extra_files={SPEC_FILE: SMALL.to_json()})
    return path


def torchscript_detector(path: Path) -> Path:
    """Finds the bright rectangle in an image: one box (label 1) around pixels above 0.8."""
    import torch

    class BrightBox(torch.nn.Module):
        def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
            out: list[dict[str, torch.Tensor]] = []
            for image in images:
                mask = image.mean(dim=0) > 0.8
                ys = torch.nonzero(mask.any(dim=1)).flatten()
                xs = torch.nonzero(mask.any(dim=0)).flatten()
                if ys.numel() == 0:
                    out.append(
                        {
                            "boxes": torch.zeros((0, 4)),
                            "labels": torch.zeros((0,), dtype=torch.int64),
                            "scores": torch.zeros((0,)),
                        }
                    )
                    continue
                box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
                out.append(
                    {
                        "boxes": box.unsqueeze(0),
                        "labels": torch.ones((1,), dtype=torch.int64),
                        "scores": torch.full((1,), 0.9),
                    }
                )
            return out

    torch.jit.save(torch.jit.script(BrightBox()), str(path))
    return path


def onnx_classifier(path: Path) -> Path:
    """The brightness classifier as an ONNX graph: global average pool, flatten, a linear layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[-20 / 3] * 3, [20 / 3] * 3], dtype=np.float32)
    bias = np.array([10.0, -10.0], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        ],
        "brightness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {SPEC_FILE: SMALL.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
