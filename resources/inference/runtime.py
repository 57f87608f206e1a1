"""``InferenceRuntime``: the Dagster resource that runs models over items (DESIGN §6).

Items stream from their objects through a torch ``DataLoader`` whose workers fetch and decode
in parallel while the model runs on the previous batch, so at most a few batches of images are
in memory whatever the size of the table. Models are loaded on first use in a step and released
at its end; torch is imported only then, so that the code location loads fast."""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from resources.inference.decode import ItemImages, ItemRef, collate
from resources.inference.specs import InputSpec, ModelSpec
from resources.stores.base import NO_LIMITS, ObjectStore, ReadLimits

if TYPE_CHECKING:
    import torch

    from resources.inference.models import LoadedModel, Outputs

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16"]


@dataclass
class Batch:
    """One batch's results: ``indices`` into the items that gave ``outputs`` (in that order),
    and ``(index, error)`` for those that could not be read or decoded."""

    indices: list[int]
    outputs: Outputs | None
    errors: list[tuple[int, str]] = field(default_factory=list)


class InferenceRuntime(ConfigurableResource):  # type: ignore[type-arg]
    """Runs embedding, classification and detection models on items, on CPU or CUDA."""

    device: Device = Field("auto", description="auto: CUDA where torch finds it, else the CPU")
    batch_size: int | None = Field(
        None, ge=1, description="images per forward pass (default: 32 on CPU, 128 on CUDA)"
    )
    num_workers: int | None = Field(
        None,
        ge=0,
        description="DataLoader processes that fetch and decode (0: threads of the step "
        "itself; default 0 on CPU, up to 4 beside a GPU)",
    )
    threads: int | None = Field(None, ge=1, description="torch's CPU threads (default: every core)")
    precision: Precision = Field(
        "fp32", description="fp16 or bf16 run the forward pass under autocast"
    )

    _models: dict[str, Any] = PrivateAttr(default_factory=dict)
    _device: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._models.clear()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.release()

    def release(self) -> None:
        """Drop every loaded model (and CUDA's cached memory)."""
        self._models.clear()
        if self._device is not None and self._device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    @property
    def workers(self) -> int:
        """Loader processes: by default none on CPU, where threads of the step's process
        fetch and decode ahead of the model (measured faster than worker processes on two
        cores: no start-up, no copies between processes, no core taken from torch's threads),
        and up to four beside a GPU."""
        if self.num_workers is not None:
            return self.num_workers
        if self.torch_device().type == "cpu":
            return 0
        return max(1, min(4, (os.cpu_count() or 1) // 2))

    def torch_device(self) -> torch.device:
        if self._device is None:
            import torch

            _tune_allocator()
            if self.device == "cuda" and not torch.cuda.is_available():
                from resources.errors import ConfigError

                raise ConfigError(
                    "inference device is cuda but torch finds no CUDA device; set device: auto "
                    "or cpu"
                )
            use_cuda = self.device != "cpu" and torch.cuda.is_available()
            self._device = torch.device("cuda" if use_cuda else "cpu")
            if not use_cuda:
                # Every core: the loaders mostly wait on reads, and decoding at the model's
                # size costs a fraction of a forward pass.
                torch.set_num_threads(self.threads or os.cpu_count() or 1)
        device: torch.device = self._device
        return device

    @property
    def resolved_batch_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 128 if self.torch_device().type == "cuda" else 32

    def model(
        self, spec: ModelSpec, read_weights: Callable[[], bytes] | None = None
    ) -> LoadedModel:
        """``spec`` loaded (once per step); ``read_weights`` gives its file's bytes."""
        if spec.key not in self._models:
            from resources.inference.models import load_model

            data = read_weights() if read_weights is not None else None
            self._models[spec.key] = load_model(spec, data, self.torch_device())
        loaded: LoadedModel = self._models[spec.key]
        return loaded

    def images(
        self,
        items: Sequence[ItemRef],
        open_store: Callable[[], ObjectStore],
        spec: InputSpec,
        limits: ReadLimits = NO_LIMITS,
    ) -> Iterator[tuple[list[int], list[Any], list[tuple[int, str]]]]:
        """``items`` decoded as ``spec`` says, a batch at a time: the indices and uint8 arrays
        of those decoded, and ``(index, error)`` of the others, in order."""
        return _loader_batches(self, items, open_store, spec, limits)

    def embedding_dim(self, model: LoadedModel) -> int:
        """The length of ``model``'s vectors (from one blank image)."""
        import numpy as np

        height, width = model.input.size
        shape = (height, width, 3) if model.input.channels == 3 else (height, width)
        blank = to_input([np.zeros(shape, np.uint8)], model, self.torch_device())
        vectors = model.run(blank).vectors
        assert vectors is not None, f"{model.spec.key} gives no vectors"
        return int(vectors.shape[1])

    def run(
        self,
        model: LoadedModel,
        items: Sequence[ItemRef],
        open_store: Callable[[], ObjectStore],
        limits: ReadLimits = NO_LIMITS,
    ) -> Iterator[Batch]:
        """``model`` over ``items`` in order, one ``Batch`` at a time."""
        import torch

        device = self.torch_device()
        cast = (
            torch.autocast(
                device.type, dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16
            )
            if self.precision != "fp32"
            else nullcontext()
        )
        for indices, arrays, errors in self.images(items, open_store, model.input, limits):
            if not arrays:
                yield Batch([], None, errors)
                continue
            batch = to_input(arrays, model, device)
            with cast:
                outputs = model.run(batch)
            yield Batch(indices, outputs, errors)


def _loader_batches(
    runtime: InferenceRuntime,
    items: Sequence[ItemRef],
    open_store: Callable[[], ObjectStore],
    spec: InputSpec,
    limits: ReadLimits,
) -> Iterator[tuple[list[int], list[Any], list[tuple[int, str]]]]:
    from torch.utils.data import DataLoader

    batch_size = runtime.resolved_batch_size
    workers = min(runtime.workers, max(0, len(items) // batch_size))
    dataset = ItemImages(items, open_store, spec, limits)
    if workers == 0:
        yield from _threaded_batches(dataset, batch_size)
        return
    loader: DataLoader[Any] = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        # spawn: a worker starts from this process's environment as it is now (credentials
        # included), not from a server process started earlier.
        multiprocessing_context="spawn" if workers else None,
        prefetch_factor=2 if workers else None,
    )  # batches are numpy arrays: ``to_input`` pins the stacked tensor for CUDA
    yield from loader


#: Threads that fetch and decode in the step's own process (``num_workers: 0``), and how many
#: batches ahead of the model they work.
FETCH_THREADS = 4
LOOKAHEAD_BATCHES = 2


def _threaded_batches(
    dataset: ItemImages, batch_size: int
) -> Iterator[tuple[list[int], list[Any], list[tuple[int, str]]]]:
    """The dataset's batches in order, fetched and decoded by threads while the model runs on
    the batch before (decoding and the forward pass both release the GIL)."""
    dataset.connect()
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        starts = iter(range(0, len(dataset), batch_size))
        pending: deque[list[Future[Any]]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                stop = min(start + batch_size, len(dataset))
                pending.append([pool.submit(dataset.__getitem__, i) for i in range(start, stop)])

        for _ in range(LOOKAHEAD_BATCHES):
            submit()
        while pending:
            futures = pending.popleft()
            submit()
            yield collate([future.result() for future in futures])


def to_input(arrays: list[Any], model: LoadedModel, device: torch.device) -> Any:
    """Decoded uint8 arrays as the model's input on ``device``: a normalized NCHW batch, or
    (for detectors) a list of CHW images in [0, 1]."""
    import numpy as np
    import torch

    spec = model.input
    mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
    if spec.resize == "full":
        return [
            _chw(torch.from_numpy(array), device).float().div_(255).sub_(mean[0]).div_(std[0])
            for array in arrays
        ]
    stacked = torch.from_numpy(np.stack(arrays))
    if device.type == "cuda":
        stacked = stacked.pin_memory()
    batch = _nchw(stacked.to(device, non_blocking=True))
    return batch.float().div_(255).sub_(mean).div_(std)


def _chw(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    image = image.to(device)
    return image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)


def _nchw(batch: torch.Tensor) -> torch.Tensor:
    return batch.unsqueeze(1) if batch.ndim == 3 else batch.permute(0, 3, 1, 2)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _tune_allocator() -> None:
    """glibc returns the forward pass's large buffers to the system after every batch, and
    maps them again for the next (three times slower on CPU here); keep them instead."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
