"""Store file names: the convention, sanitising, fixed precision and the parse/format round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from video_interpreter.errors import StoreError
from video_interpreter.store import (
    ParsedName,
    best_name,
    checkpoint_name,
    format_value,
    model_name,
    parse_name,
    sanitize_metric,
    sanitize_name,
    sanitize_version,
)
from video_interpreter.store._naming import with_duplicate

# What a spec allows for name and version (the schema's SLUG), and what people call metrics.
SLUG = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,30}\Z")
ANY_TEXT = st.text(min_size=1, max_size=30)
VALUES = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


def _usable(text: str, sanitize: object) -> bool:
    try:
        sanitize(text)  # type: ignore[operator]
    except StoreError:
        return False
    return True


def test_the_documented_example_name() -> None:
    assert model_name("video_interpreter", "v1", "acc", 0.95) == "video_interpreter_v1_acc_0.95.pth"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.95, "0.95"),
        (0.951234, "0.9512"),
        (0.95125, "0.9513"),  # 0.95125 is stored as 0.951250000000000017...
        (1, "1.0"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (-0.5, "-0.5"),
        (0.00001, "0.0"),
        (12345.678901, "12345.6789"),
        (1.5e12, "1.5000e+12"),
    ],
)
def test_values_keep_four_decimals_without_trailing_zeros(value: float, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_cannot_name_a_file(value: float) -> None:
    with pytest.raises(StoreError, match="not finite"):
        format_value(value)


def test_checkpoint_and_best_names() -> None:
    assert checkpoint_name("video_interpreter", "v1", 7) == "video_interpreter_v1_epoch_0007.pth"
    assert checkpoint_name("m", "v1", 12345) == "m_v1_epoch_12345.pth"
    assert best_name("video_interpreter", "v1") == "video_interpreter_v1_best.pth"


def test_a_duplicate_gets_a_numbered_suffix_that_parses_back() -> None:
    name = with_duplicate("video_interpreter_v1_acc_0.95.pth", 2)
    assert name == "video_interpreter_v1_acc_0.95-2.pth"
    parsed = parse_name(name)
    assert parsed is not None
    assert (parsed.value, parsed.duplicate) == (0.95, 2)


def test_negative_values_and_duplicates_do_not_collide() -> None:
    parsed = parse_name("m_v1_delta_-0.5-3.pth")
    assert parsed == ParsedName("model", "m", "v1", metric="delta", value=-0.5, duplicate=3)


def test_slashes_spaces_and_underscores_are_sanitised() -> None:
    assert (
        model_name("my model/x", "v 1_0", "val_loss", 0.25) == "my-model-x_v-1-0_val-loss_0.25.pth"
    )
    assert sanitize_name("../../etc") == "etc"
    assert sanitize_name("video_interpreter") == "video_interpreter"


def test_a_name_with_nothing_usable_is_refused() -> None:
    with pytest.raises(StoreError, match="no character usable"):
        sanitize_version("___")


def test_overlong_names_are_refused() -> None:
    with pytest.raises(StoreError, match="shorter model name"):
        model_name("m" * 250, "v1", "acc", 0.5)


def test_negative_epochs_are_refused() -> None:
    with pytest.raises(StoreError, match="epoch must be an integer >= 0"):
        checkpoint_name("m", "v1", -1)


@pytest.mark.parametrize(
    "file",
    [
        "video_interpreter_v1_acc_0.9500.pth",  # not canonical: the store writes 0.95
        "video_interpreter_v1_acc_0.95-1.pth",  # the first file has no suffix
        "video_interpreter_v1_epoch_12.pth",  # epochs have 4 digits at least
        "video_interpreter_v1_acc_0.95.pt",
        "registry.sqlite",
        "notes.txt",
        ".video_interpreter_v1_acc_0.95.pth.abc.tmp",
    ],
)
def test_names_off_the_convention_do_not_parse(file: str) -> None:
    assert parse_name(file) is None


def test_names_with_underscores_parse_from_the_right() -> None:
    parsed = parse_name("r2plus1d_18_tv1_epoch_0012.pth")
    assert parsed == ParsedName("checkpoint", "r2plus1d_18", "tv1", epoch=12)
    assert parse_name("a_epoch_best.pth") == ParsedName("best", "a", "epoch")
    assert parse_name("a_best_epoch_1.0.pth") == ParsedName(
        "model", "a", "best", metric="epoch", value=1.0
    )


@given(name=SLUG, version=SLUG, metric=ANY_TEXT, value=VALUES, duplicate=st.integers(1, 999))
def test_model_names_round_trip(
    name: str, version: str, metric: str, value: float, duplicate: int
) -> None:
    assume(_usable(version, sanitize_version) and _usable(metric, sanitize_metric))
    assume(_usable(name, sanitize_name))
    file = with_duplicate(model_name(name, version, metric, value), duplicate)
    parsed = parse_name(file)
    assert parsed == ParsedName(
        "model",
        sanitize_name(name),
        sanitize_version(version),
        metric=sanitize_metric(metric),
        value=float(format_value(value)),
        duplicate=duplicate,
    )
    assert parsed.format() == file


@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_a_named_value_is_within_half_the_last_decimal(value: float) -> None:
    assert abs(float(format_value(value)) - value) <= 0.5e-4 + 1e-9 * abs(value)


@given(name=SLUG, version=SLUG, epoch=st.integers(0, 10**7), duplicate=st.integers(1, 99))
def test_checkpoint_names_round_trip(name: str, version: str, epoch: int, duplicate: int) -> None:
    assume(_usable(name, sanitize_name) and _usable(version, sanitize_version))
    file = with_duplicate(checkpoint_name(name, version, epoch), duplicate)
    parsed = parse_name(file)
    assert parsed is not None
    assert (parsed.kind, parsed.epoch, parsed.duplicate) == ("checkpoint", epoch, duplicate)
    assert parsed.format() == file


@given(text=ANY_TEXT)
def test_sanitised_tokens_are_safe_file_name_parts_and_stable(text: str) -> None:
    for sanitize in (sanitize_name, sanitize_version, sanitize_metric):
        assume(_usable(text, sanitize))
        token = sanitize(text)
        assert "/" not in token
        assert " " not in token
        assert not token.startswith((".", "-"))
        assert sanitize(token) == token
