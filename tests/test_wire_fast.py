"""The fast listbyids decoder: exactly the converter's answer, or the converter's own path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akool_async import SwapResult, TransportError
from akool_async._endpoints import LIST_RESULTS
from akool_async._models import ResultPage
from akool_async._wire import _fast_result, _Unusual, converter, decode

ID = "6673ee8e0f0b4b5c8f3a2b1c"

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["", "https://x.test/r.jpg", "2024-06-27T08:27:48.006Z", ID]),
    st.lists(st.integers(), max_size=2),
)
_keys = st.sampled_from(
    [
        "_id", "faceswap_status", "url", "job_id", "createdAt", "faceswap_type",
        "faceswap_quality", "deduction_status", "image", "video_duration",
        "deduction_duration", "update_time", "userId", "uid", "extra",
    ]
)  # fmt: skip
_items = st.fixed_dictionaries(
    {"_id": st.sampled_from([ID, 5, None]), "faceswap_status": st.sampled_from([1, 2, 3, 4, 9])},
).flatmap(lambda base: st.dictionaries(_keys, _values, max_size=8).map(lambda d: {**base, **d}))


def _slow(item: Any) -> SwapResult | str:
    try:
        return converter.structure(item, SwapResult)
    except Exception as exc:
        return type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(_items)
def test_fast_decoder_agrees_with_the_converter_or_defers(item: dict[str, Any]) -> None:
    """Whatever the item, the fast decoder gives the converter's result or defers to it."""
    try:
        fast: SwapResult | str = _fast_result(item)
    except _Unusual:
        return  # the converter decodes (or explains) it
    assert fast == _slow(item)


def test_a_well_formed_page_is_decoded_without_the_converter() -> None:
    """A typical item (exact JSON types) is decoded by the fast path to the same model."""
    item = {
        "_id": ID,
        "faceswap_status": 3,
        "url": "https://x.test/r.jpg",
        "job_id": "20240627082748003-5746",
        "createdAt": "2024-06-27T08:27:48.006Z",
        "faceswap_type": 2,
        "video_duration": 3,
        "uid": 7,
    }
    assert _fast_result(item) == converter.structure(item, SwapResult)


@pytest.mark.parametrize(
    "item",
    [
        {"_id": ID, "faceswap_status": 3.0, "uid": 7.0},  # Go clients print integers as floats
        {"_id": ID, "faceswap_status": 2, "uid": 12.0},
    ],
)
def test_integral_floats_take_the_converter_path_and_decode(item: dict[str, Any]) -> None:
    """An integral float (which only the converter accepts) still decodes through ``decode``."""
    body = json.dumps({"code": 1000, "data": {"result": [item]}}).encode()
    with pytest.raises(_Unusual):
        _fast_result(item)
    page = decode(LIST_RESULTS, 200, {}, body)
    assert page == converter.structure({"result": [item]}, ResultPage)


def test_a_bad_item_is_explained_by_the_converter() -> None:
    """A wrong type in an item is the converter's malformed-answer error, naming the field."""
    body = json.dumps({"code": 1000, "data": {"result": [{"_id": ID, "faceswap_status": "x"}]}})
    with pytest.raises(TransportError, match="unexpected shape"):
        decode(LIST_RESULTS, 200, {}, body.encode())
