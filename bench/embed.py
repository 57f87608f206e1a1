"""The ``embeddings`` asset against a bare forward loop of the same model, and the embeddings
trained on the pool against ImageNet features and raw pixels.

**Throughput** (``bench/ingest.py``'s corpus: N real-looking JPEGs up to 1024 px). A fresh
project ingests the corpus as one batch first (not timed). Then, each in a process of its own,
rounds in rotating order, wall time and peak RSS:

- *bare forward*: the same MobileNetV2 with the same weights and threads, ``embed`` in batches
  of 32 under ``torch.inference_mode`` over tensors decoded and normalized beforehand (the
  decoding is not timed): the fastest the model can go here;
- *bare forward, allocator untuned*: the same without the ``mallopt`` settings the runtime
  makes (to show what they are worth);
- *ours*: ``materialize([embeddings])`` on the ingested batch (the default config: loader
  workers fetch and decode from the source while the model runs), the ``embeddings`` step's
  seconds from the event log;
- with ``--s3``, *ours* again with the corpus on a real S3 server (SeaweedFS).

**Quality** (``--pool``): leave-one-out 5-NN accuracy on scikit-learn's 1,797 digits (32x32)
of raw pixels, of the ImageNet MobileNetV2 features, and of the pool encoder trained by
``pool_embedding_model``'s code with its default settings (or ``--epochs``/``--width``).

    .venv/bin/python bench/embed.py [N] [--rounds 3] [--s3] [--pool] [--epochs 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from _corpus import corpus_files, make_corpus  # noqa: E402
from _meter import measure_command  # noqa: E402

BARE = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1]]
import numpy as np, torch
from resources.inference import imagenet
from resources.inference.decode import decode
from resources.inference.mobilenet import MobileNetV2
from resources.inference.runtime import _tune_allocator
from resources.inference.specs import InputSpec
files, tuned = json.loads(open(sys.argv[2]).read()), sys.argv[3] == "tuned"
if tuned:
    _tune_allocator()
torch.set_num_threads(__import__("os").cpu_count())
spec = InputSpec()
arrays = np.stack([decode(open(f, "rb").read(), spec) for f in files])
x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(255)
x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
model = MobileNetV2()
model.load_state_dict(torch.load(imagenet.weights_path(), weights_only=True))
model.eval()
started = time.perf_counter()
with torch.inference_mode():
    for first in range(0, len(x), 32):
        model.embed(x[first : first + 32])
seconds = time.perf_counter() - started
print(json.dumps({"items": len(x), "seconds": seconds}))
"""

OURS = r"""
import json, os, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
os.environ["DAGSTER_HOME"] = sys.argv[3]
from dagster import DagsterInstance, materialize
from ingest_assets.assets.embeddings import build_embeddings
from resources.config import load_config
from resources.project import project_resources
from _contenders import _step_seconds
from pathlib import Path
config = load_config(Path(sys.argv[2]))
with DagsterInstance.get() as instance:
    result = materialize(
        [build_embeddings(config.embeddings)], partition_key=sys.argv[4],
        resources=project_resources(config), instance=instance,
    )
    seconds, _ = _step_seconds(instance, result.run_id, "embeddings")
event = result.get_asset_materialization_events()[0].materialization
print(json.dumps({"items": event.metadata["dagster/row_count"].value, "seconds": seconds}))
"""


def prepare(root: Path, source_uri: str, count: int) -> tuple[Path, Path, str]:
    """A project whose one batch holds the corpus, ingested (raw_items, dataset_items)."""
    import yaml
    from dagster import DagsterInstance, materialize

    from ingest_assets.assets.dataset_items import dataset_items
    from ingest_assets.assets.raw_items import raw_items
    from ingest_assets.claiming.claim import Claimer
    from ingest_assets.cli.instance import ensure_dagster_home
    from resources.config import load_config
    from resources.project import project_resources
    from resources.stores.local import LocalFolderStore
    from resources.stores.open import open_source_store

    root.mkdir(parents=True, exist_ok=True)
    os.environ.pop("DAGSTER_HOME", None)
    path = root / "bucketlake.yaml"
    body = {
        "lake": str(root / "lake"),
        "dagster_home": str(root / "home"),
        "sources": [{"name": "inbox", "uri": source_uri, "batch_size": count}],
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    config = load_config(path)
    home = ensure_dagster_home(config)
    source = config.source("inbox")
    claim = Claimer(
        source, open_source_store(source), LocalFolderStore(root / "lake"), claimer="bench"
    ).claim(registered=set(), close_all=True)
    (batch,) = claim.new_batches
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("batches", [batch])
        result = materialize(
            [raw_items, dataset_items],
            partition_key=batch,
            resources=project_resources(config),
            instance=instance,
        )
        assert result.success
    return path, home, batch


def throughput(args: argparse.Namespace) -> None:
    corpus = make_corpus(BENCH / ".data" / f"jpegs-{args.count}-7", args.count)
    files = [str(f) for f in corpus_files(corpus)]
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        root = Path(tmp)
        listing = root / "files.json"
        listing.write_text(json.dumps(files))
        projects = {"ours": prepare(root / "local", str(corpus), args.count)}
        server = None
        if args.s3:
            from tests.servers.seaweed import SeaweedS3

            server = SeaweedS3(root / "weed", root / "weed.log")
            server.start()
            bucket = server.create_bucket("bench-embed")
            client = server.client()
            for path in corpus_files(corpus):
                key = f"corpus/{path.relative_to(corpus).as_posix()}"
                client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            os.environ.update(server.env())
            projects["ours, S3"] = prepare(root / "s3", f"s3://{bucket}/corpus", args.count)
        commands = {
            "bare forward": [sys.executable, "-c", BARE, str(REPO), str(listing), "tuned"],
            "bare forward, allocator untuned": [
                sys.executable,
                "-c",
                BARE,
                str(REPO),
                str(listing),
                "untuned",
            ],
        }
        for name, (path, home, batch) in projects.items():
            commands[name] = [sys.executable, "-c", OURS, str(REPO), str(path), str(home), batch]
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
        names = list(commands)
        try:
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    measured = measure_command(commands[name], REPO)
                    said = json.loads(measured["said"])
                    results[name].append({**measured, **said})
                    rate = said["items"] / said["seconds"]
                    print(
                        f"  round {r + 1} {name:32} {rate:6.1f} items/s, "
                        f"peak RSS {measured['rss_mib']:.0f} MiB"
                    )
        finally:
            if server is not None:
                server.stop()
    print(f"\n== embeddings: {args.count} JPEGs, {args.rounds} rounds, {os.cpu_count()} cores ==")
    base = statistics.median(x["items"] / x["seconds"] for x in results["bare forward"])
    for name, runs in results.items():
        rate = statistics.median(x["items"] / x["seconds"] for x in runs)
        rss = statistics.median(x["rss_mib"] for x in runs)
        print(f"{name:32} {rate:6.1f} items/s  {rate / base:5.2f}x bare  peak RSS {rss:.0f} MiB")


def quality(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from sklearn.datasets import load_digits

    from ingest_assets.embeddings.knn import knn_accuracy
    from ingest_assets.training.augment import Augmentations
    from ingest_assets.training.simclr import SimCLRSettings, embed_pool, train_simclr
    from resources.inference import imagenet
    from resources.inference.decode import decode
    from resources.inference.mobilenet import MobileNetV2
    from resources.inference.runtime import _tune_allocator
    from resources.inference.specs import InputSpec

    _tune_allocator()
    torch.set_num_threads(os.cpu_count() or 1)
    digits = load_digits()
    labels = [str(t) for t in digits.target]
    small = [
        Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((32, 32), Image.Resampling.NEAREST)
        for im in digits.images
    ]
    pngs = []
    for image in small:
        out = __import__("io").BytesIO()
        image.save(out, "PNG")
        pngs.append(out.getvalue())
    pool_spec = InputSpec(size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), resize="stretch")
    pixels = np.stack([decode(p, pool_spec) for p in pngs])
    print(f"raw pixels (8x8):          {knn_accuracy(digits.data, labels):.3f}")
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    print(f"raw pixels (32x32):        {knn_accuracy(flat, labels):.3f}")
    model = MobileNetV2()
    model.load_state_dict(torch.load(imagenet.weights_path(), weights_only=True))
    model.eval()
    spec = InputSpec()
    features = []
    with torch.inference_mode():
        for first in range(0, len(pngs), 64):
            arrays = np.stack([decode(p, spec) for p in pngs[first : first + 64]])
            x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(255)
            x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(
                1, 3, 1, 1
            )
            features.append(model.embed(x).numpy())
    print(f"ImageNet MobileNetV2:      {knn_accuracy(np.concatenate(features), labels):.3f}")
    settings = SimCLRSettings(
        epochs=args.epochs, width=args.width, augment=Augmentations(flip=args.flip)
    )
    started = time.perf_counter()
    trained = train_simclr(pixels, settings, lambda line: None)
    seconds = time.perf_counter() - started
    vectors = embed_pool(trained.encoder, pixels)
    print(
        f"trained on the pool:       {knn_accuracy(vectors, labels):.3f}  "
        f"({args.epochs} epochs, width {args.width}, flip {args.flip}, {seconds:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also with the corpus on SeaweedFS")
    parser.add_argument("--pool", action="store_true", help="the quality comparison only")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--flip", type=float, default=0.5)
    args = parser.parse_args()
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    if args.pool:
        quality(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
