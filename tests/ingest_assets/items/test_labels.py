"""Label strategies (Edge Impulse's data sources) and the deterministic train/test split."""

from __future__ import annotations

import pytest

from ingest_assets.items.identity import item_id
from ingest_assets.items.labels import deterministic_split, label_and_split
from resources.config import LabelStrategy

STRATEGIES: list[LabelStrategy] = ["folder", "split-folders", "filename", "none"]


def label(key: str, strategy: LabelStrategy) -> str | None:
    return label_and_split(key, strategy, item_id=item_id("inbox", key), test_fraction=0.2)[0]


def split(key: str, strategy: LabelStrategy, test_fraction: float = 0.2) -> str:
    return label_and_split(
        key, strategy, item_id=item_id("inbox", key), test_fraction=test_fraction
    )[1]


# -- folder -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cars/cars.01741.jpg", "cars"),
        ("unknown/unknown.test_2547.jpg", "unknown"),
        # The folder that holds the file, however deep.
        ("2024/site-a/cars/cars.01741.jpg", "cars"),
        ("café photos/naïve 1.jpg", "café photos"),
        ("x..y/a..b.jpg", "x..y"),
        # Files at the root have no folder: unlabeled.
        ("cars.01741.jpg", None),
        # The unlabeled/ folder keeps its items unlabeled.
        ("unlabeled/cars.02066.jpg", None),
        ("unlabeled/cars/cars.02066.jpg", None),
        ("cars/unlabeled/cars.02066.jpg", None),
    ],
)
def test_folder_strategy_labels_with_the_folder_holding_the_file(
    key: str, expected: str | None
) -> None:
    assert label(key, "folder") == expected


def test_folder_strategy_only_treats_the_exact_unlabeled_folder_name_specially() -> None:
    assert label("unlabeled_cars/x.jpg", "folder") == "unlabeled_cars"
    assert label("cars/unlabeled.jpg", "folder") == "cars"


def test_folder_strategy_draws_the_split_from_the_item_id() -> None:
    key = "cars/cars.01741.jpg"
    iid = item_id("inbox", key)
    for fraction in (0.0, 0.2, 0.5, 1.0):
        got = label_and_split(key, "folder", item_id=iid, test_fraction=fraction)
        assert got == ("cars", deterministic_split(iid, fraction))


def test_folder_strategy_ignores_split_folder_names() -> None:
    # Only split-folders reads training/ and testing/; for folder they are just folders.
    assert label("testing/cars/x.jpg", "folder") == "cars"
    assert split("testing/cars/x.jpg", "folder", test_fraction=0.0) == "train"
    assert label("training/x.jpg", "folder") == "training"
    assert split("training/x.jpg", "folder", test_fraction=1.0) == "test"


# -- split-folders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("training/cars/cars.00006.jpg", ("cars", "train")),
        ("training/unknown/unknown.test_46.jpg", ("unknown", "train")),
        ("testing/cars/cars.00012.jpg", ("cars", "test")),
        ("testing/unknown/unknown.test_1012.jpg", ("unknown", "test")),
        # Unlabeled inside a split folder: the split folder still decides the split.
        ("testing/unlabeled/cars.02068.jpg", (None, "test")),
        ("training/unlabeled/cars.02068.jpg", (None, "train")),
        # A file right inside a split folder has a split but no label folder.
        ("testing/cars.00012.jpg", (None, "test")),
        ("training/cars.00006.jpg", (None, "train")),
    ],
)
def test_split_folders_set_label_and_split(key: str, expected: tuple[str | None, str]) -> None:
    # The folder decides the split, whatever the test fraction says.
    for fraction in (0.0, 0.2, 1.0):
        got = label_and_split(
            key, "split-folders", item_id=item_id("inbox", key), test_fraction=fraction
        )
        assert got == expected


def test_split_folders_keep_the_unlabeled_folder_unlabeled() -> None:
    keys = [f"unlabeled/cars.{n:05d}.jpg" for n in range(2066, 2080)]
    for key in keys:
        assert label(key, "split-folders") is None
    # Unlabeled items still get a split, drawn like any other item's.
    for key in keys:
        iid = item_id("inbox", key)
        got = label_and_split(key, "split-folders", item_id=iid, test_fraction=0.5)
        assert got == (None, deterministic_split(iid, 0.5))


def test_split_folders_fall_back_to_folder_labels_and_drawn_splits() -> None:
    key = "cars/cars.01741.jpg"
    iid = item_id("inbox", key)
    assert label_and_split(key, "split-folders", item_id=iid, test_fraction=0.3) == (
        "cars",
        deterministic_split(iid, 0.3),
    )
    assert label("cars.01741.jpg", "split-folders") is None


def test_split_folders_must_be_at_the_top() -> None:
    # A split folder deeper down is an ordinary folder.
    assert split("data/testing/cars/x.jpg", "split-folders", test_fraction=0.0) == "train"
    assert label("data/testing/cars/x.jpg", "split-folders") == "cars"


# -- filename ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cars.01741.jpg", "cars"),
        ("cars/cars.01741.jpg", "cars"),
        # The file name decides, not the folder.
        ("unknown/cars.01741.jpg", "cars"),
        ("unknown.test_2547.jpg", "unknown"),
        # Up to the FIRST dot.
        ("a..b.jpg", "a"),
        ("x..y/dog.1.2.3.png", "dog"),
        ("café photos/naïve 1.jpg", "naïve 1"),
        ("README", "README"),
        # Nothing before the first dot: no label rather than an empty one.
        (".hidden.jpg", None),
        ("unlabeled/cars.02066.jpg", None),
    ],
)
def test_filename_strategy_labels_with_the_name_up_to_the_first_dot(
    key: str, expected: str | None
) -> None:
    assert label(key, "filename") == expected


# -- none -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["cars/cars.01741.jpg", "training/cars/x.jpg", "cars.01741.jpg", "unlabeled/x.jpg"]
)
def test_none_strategy_leaves_every_item_unlabeled_but_split(key: str) -> None:
    iid = item_id("inbox", key)
    assert label_and_split(key, "none", item_id=iid, test_fraction=0.5) == (
        None,
        deterministic_split(iid, 0.5),
    )


# -- every strategy ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_strategy_ever_gives_an_empty_label(strategy: LabelStrategy) -> None:
    for key in ["a.jpg", ".jpg", "a/.jpg", "cars/x.jpg", "training/x.jpg", "unlabeled/x.jpg"]:
        assert label(key, strategy) != ""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_same_item_gets_the_same_label_and_split_every_time(strategy: LabelStrategy) -> None:
    keys = [f"{folder}/cars.{n:05d}.jpg" for folder in ("cars", "testing/cars") for n in range(50)]
    first = [label_and_split(k, strategy, item_id=item_id("s", k), test_fraction=0.3) for k in keys]
    again = [label_and_split(k, strategy, item_id=item_id("s", k), test_fraction=0.3) for k in keys]
    assert first == again


# -- deterministic split ----------------------------------------------------------------------

IDS = [item_id("inbox", f"images/{n:05d}.jpg") for n in range(10_000)]


def test_the_split_of_an_item_never_changes() -> None:
    first = [deterministic_split(i, 0.2) for i in IDS[:500]]
    assert first == [deterministic_split(i, 0.2) for i in IDS[:500]]


def test_the_split_depends_on_the_item_id_not_on_the_order() -> None:
    forward = {i: deterministic_split(i, 0.2) for i in IDS[:500]}
    backward = {i: deterministic_split(i, 0.2) for i in reversed(IDS[:500])}
    assert forward == backward


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_the_test_share_is_close_to_the_test_fraction(fraction: float) -> None:
    share = sum(deterministic_split(i, fraction) == "test" for i in IDS) / len(IDS)
    # Binomial standard deviation for 10,000 draws is at most 0.005: 0.02 is four of them.
    assert abs(share - fraction) < 0.02


def test_a_zero_test_fraction_puts_everything_in_train() -> None:
    assert {deterministic_split(i, 0.0) for i in IDS} == {"train"}


def test_a_test_fraction_of_one_puts_everything_in_test() -> None:
    assert {deterministic_split(i, 1.0) for i in IDS} == {"test"}


def test_raising_the_test_fraction_only_moves_items_from_train_to_test() -> None:
    # A user who raises test_fraction must not see test items leak back into train.
    low = {i for i in IDS if deterministic_split(i, 0.2) == "test"}
    high = {i for i in IDS if deterministic_split(i, 0.5) == "test"}
    assert low < high


def test_the_split_is_not_the_same_for_every_item() -> None:
    assert {deterministic_split(i, 0.5) for i in IDS[:100]} == {"train", "test"}
