"""Bad input: every invalid request or manifest is a typed error naming the field, sent nowhere.

Property tests (hypothesis) throw valid values, junk of every type and near-misses at each
request model and at the manifest reader. The only acceptable failures are ``ValidationError``
whose ``field`` names one of the model's fields, and ``ManifestError`` whose problems carry a
real line number; a TypeError, KeyError, AttributeError or bare ValueError from deep inside
fails the test. Through an open client, an invalid request never reaches the emulator.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akool_async import (
    Client,
    DetectFaces,
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    LegacyDetect,
    PlusSwap,
    ProSwap,
    ValidationError,
    VideoSwap,
)
from akool_async.cli._manifest import (
    KINDS,
    ManifestEntry,
    ManifestError,
    fields_of,
    parse_csv,
    read_manifest,
)
from akool_async.testing import EmulatorThread

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OPTS = "1,2:3,4:5,6:7,8"
URL = "https://example.com/face.png"

junk_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=10)
    | st.sampled_from(
        ["", " ", "http://", "ftp://x/y", "https://", "http://[::1", "https://x/y", OPTS, "1,2"]
    )
)
junk = st.recursive(
    junk_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
        | st.tuples(children, children)
    ),
    max_leaves=6,
)
urls = st.sampled_from([URL, "https://example.com/t.mp4", "http://cdn.example.com/a.jpg"])
face_images = st.builds(FaceImage, path=urls, opts=st.none() | st.just(OPTS))
face_infos = st.builds(FaceInfo, face_url=urls, bbox=st.none() | st.just((1.0, 2.0, 30.0, 40.0)))
face_mappings = st.builds(FaceMapping, source=face_infos, target=face_infos)

#: For each model: a plausible value strategy per field (mixed with junk by ``kwargs_for``).
GOOD: dict[type[Any], dict[str, st.SearchStrategy[Any]]] = {
    PlusSwap: {
        "source_url": urls,
        "target_url": urls,
        "single_face_mode": st.none() | st.booleans(),
        "face_enhance": st.booleans(),
        "model_style": st.sampled_from(["realistic", "beautify", "lossless"]),
        "face_mapping": st.none() | st.lists(face_mappings, max_size=3),
        "webhook_url": st.none() | urls,
    },
    ProSwap: {
        "source": st.lists(face_images, max_size=3),
        "target": st.lists(face_images, max_size=3),
        "face_enhance": st.booleans(),
        "single_face_mode": st.none() | st.booleans(),
        "model_name": st.sampled_from(["akool_faceswap_image_hq", ""]),
        "webhook_url": st.none() | urls,
    },
    ImageSwap: {
        "source": st.lists(face_images, max_size=3),
        "target": st.lists(face_images, max_size=3),
        "modify_image": urls,
        "face_enhance": st.booleans(),
        "webhook_url": st.none() | urls,
    },
    VideoSwap: {
        "source": st.lists(face_images, max_size=3),
        "target": st.lists(face_images, max_size=3),
        "modify_video": urls,
        "face_enhance": st.booleans(),
        "webhook_url": st.none() | urls,
    },
    FaceImage: {"path": urls, "opts": st.none() | st.just(OPTS)},
    FaceInfo: {"face_url": st.none() | urls, "bbox": st.none() | st.just([1, 2, 30, 40])},
    FaceMapping: {"source": face_infos, "target": face_infos},
    DetectFaces: {
        "url": st.none() | urls,
        "img": st.none() | st.just(b"\x89PNG\r\n\x1a\n"),
        "num_frames": st.integers(min_value=-2, max_value=105),
        "return_face_url": st.booleans(),
        "single_face": st.booleans(),
    },
    LegacyDetect: {
        "image_url": st.none() | urls,
        "img": st.none() | st.just(b"\x89PNG\r\n\x1a\n"),
        "single_face": st.booleans(),
    },
}
MODELS = list(GOOD)
#: One valid value per field of each request the client test sends.
VALID: dict[type[Any], dict[str, Any]] = {
    PlusSwap: {"source_url": URL, "target_url": URL},
    ProSwap: {"source": [FaceImage(path=URL)], "target": [FaceImage(path=URL)]},
    ImageSwap: {
        "source": [FaceImage(path=URL)],
        "target": [FaceImage(path=URL)],
        "modify_image": URL,
    },
    VideoSwap: {
        "source": [FaceImage(path=URL)],
        "target": [FaceImage(path=URL)],
        "modify_video": URL,
    },
    DetectFaces: {"url": URL},
}


@st.composite
def kwargs_for(draw: st.DrawFn, model: type[Any]) -> dict[str, Any]:
    """Keyword arguments for ``model``: each field valid, junk, or left out."""
    kwargs: dict[str, Any] = {}
    optional = {f.name for f in attrs.fields(model) if f.default is not attrs.NOTHING}
    for name, good in GOOD[model].items():
        # Leaving out a required argument is Python's own TypeError, not ours to test.
        choices = ["good", "good", "junk", "omit"] if name in optional else ["good", "junk"]
        choice = draw(st.sampled_from(choices))
        if choice == "good":
            kwargs[name] = draw(good)
        elif choice == "junk":
            kwargs[name] = draw(junk)
    return kwargs


def field_root(field: str) -> str:
    """``"source[3].opts"`` -> ``"source"``."""
    return re.split(r"[.\[]", field, maxsplit=1)[0]


def build_or_error(model: type[Any], kwargs: dict[str, Any]) -> Any:
    """The model, or the ValidationError it raised (any other exception propagates)."""
    try:
        return model(**kwargs)
    except ValidationError as exc:
        return exc


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_models_raise_only_validation_errors_naming_a_field(model: type[Any]) -> None:
    """Any keyword arguments build the model or raise ValidationError naming one of its fields."""
    names = {field.name for field in attrs.fields(model)}

    @PROPERTY
    @given(kwargs_for(model))
    def check(kwargs: dict[str, Any]) -> None:
        result = build_or_error(model, kwargs)
        if isinstance(result, ValidationError):
            assert result.field is not None, str(result)
            assert field_root(result.field) in names, result.field
        else:
            assert type(result) is model

    check()


@pytest.mark.parametrize(
    ("model", "kwargs", "field"),
    [
        (ProSwap, {"source": 5, "target": [FaceImage(path=URL)]}, "source"),
        (ProSwap, {"source": [FaceImage(path=URL)], "target": "https://x/y"}, "target"),
        (VideoSwap, {"source": None, "target": None, "modify_video": URL}, "source"),
        (PlusSwap, {"source_url": URL, "target_url": URL, "face_mapping": 5}, "face_mapping"),
        (FaceInfo, {"face_url": URL, "bbox": 5}, "bbox"),
        (FaceInfo, {"face_url": URL, "bbox": iter([1, 2, 3, 4])}, "bbox"),
        (PlusSwap, {"source_url": "http://[::1", "target_url": URL}, "source_url"),
    ],
)
def test_regressions_non_iterables_and_broken_urls(
    model: type[Any], kwargs: dict[str, Any], field: str
) -> None:
    """Non-iterable lists, non-sequence bboxes and unparsable URLs name their field."""
    with pytest.raises(ValidationError) as info:
        model(**kwargs)
    assert info.value.field == field


@pytest.fixture
def emulator(akool_emulator_thread: EmulatorThread) -> EmulatorThread:
    """A running emulator in a background thread."""
    return akool_emulator_thread


def test_invalid_requests_never_reach_the_server(emulator: EmulatorThread) -> None:
    """An invalid swap or detect call raises ValidationError and the emulator sees 0 requests."""
    operations = {
        PlusSwap: "faceswap_plus",
        ProSwap: "faceswap_pro",
        ImageSwap: "faceswap_image",
        VideoSwap: "faceswap_video",
        DetectFaces: "detect_faces",
    }
    seen = {"invalid": 0, "valid": 0}
    with Client(api_key=emulator.emulator.api_key, base_url=emulator.base_url) as client:

        @settings(PROPERTY, max_examples=60)
        @given(st.sampled_from(list(operations)).flatmap(lambda m: st.tuples(st.just(m), junk)))
        def check(case: tuple[type[Any], Any]) -> None:
            model, value = case
            method = getattr(client, operations[model])
            first = next(iter(GOOD[model]))
            kwargs = dict(VALID[model])
            kwargs[first] = value
            with contextlib.suppress(ValidationError):
                method(**kwargs)
                seen["valid"] += 1  # the junk happened to be valid: one request was sent
                return
            seen["invalid"] += 1

        check()
    requests = sum(emulator.emulator.stats.requests.values())
    assert (requests, seen["invalid"] > 0) == (seen["valid"], True)


# --------------------------------------------------------------------------------------------
# Manifests

manifest_values = junk | urls | face_images.map(lambda f: f.path) | st.just([f"{URL}|{OPTS}"])


@st.composite
def manifest_records(draw: st.DrawFn) -> dict[str, Any]:
    """A JSONL record: a kind (or junk) and some of its fields (valid-ish or junk)."""
    kind = draw(st.sampled_from([*KINDS, "PLUS", "", "bogus"]) | junk)
    record: dict[str, Any] = {"kind": kind}
    names = fields_of(kind) if isinstance(kind, str) and kind in KINDS else ("source_url",)
    for name in draw(st.lists(st.sampled_from([*names, "ref", "extra"]), max_size=5)):
        record[name] = draw(manifest_values)
    return record


def jsonl_line(value: Any) -> str:
    """One JSONL line (bytes become text; NaN stays as Python writes it)."""
    return json.dumps(value, default=lambda v: v.decode("latin-1"))


def read_or_error(path: Path) -> list[ManifestEntry] | ManifestError:
    """The manifest's entries, or the ManifestError it raised (anything else propagates)."""
    try:
        return read_manifest(path)
    except ManifestError as exc:
        return exc


@PROPERTY
@given(
    st.lists(
        manifest_records().map(jsonl_line)
        | junk.map(jsonl_line)
        | st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t),
        min_size=1,
        max_size=6,
    )
)
def test_jsonl_manifests_give_entries_or_a_manifest_error(lines: list[str]) -> None:
    """A random JSONL manifest reads to entries, or a ManifestError with real line numbers."""
    text = "\n".join(lines) + "\n"
    count = len(text.splitlines())
    path = Path(f"/tmp/akool-bad-input-{abs(hash(text))}.jsonl")
    path.write_text(text, encoding="utf-8")
    try:
        result = read_or_error(path)
    finally:
        path.unlink()
    if isinstance(result, ManifestError):
        problems = result.problems
        assert [1 <= p.line <= count for p in problems] == [True] * len(problems)
        assert (problems != (), str(result).startswith(str(path))) == (True, True)
    else:
        assert [type(e.request) in KINDS.values() for e in result] == [True] * len(result)


@PROPERTY
@given(
    st.text(
        alphabet=st.sampled_from(list('kindsourceurl_targe,;"|>[]{}\n\r1:.htps/ x')), max_size=120
    )
)
def test_csv_manifests_never_crash(text: str) -> None:
    """Random CSV text parses to entries and problems, never an exception."""
    entries, problems = parse_csv("kind,source_url,target_url,source,target,ref\n" + text)
    lines = text.count("\n") + text.count("\r") + 2
    assert [1 <= p.line <= lines for p in problems] == [True] * len(problems)
    assert [type(e.request) in KINDS.values() for e in entries] == [True] * len(entries)


def test_manifest_error_names_line_and_field(tmp_path: Path) -> None:
    """A bad field on line 3 is reported as FILE:3: FIELD: reason."""
    path = tmp_path / "m.jsonl"
    good = {"kind": "plus", "source_url": URL, "target_url": URL}
    bad = {"kind": "pro", "source": 5, "target": [URL]}
    path.write_text("\n".join(json.dumps(r) for r in (good, good, bad)) + "\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    [problem] = info.value.problems
    assert (problem.line, problem.field) == (3, "source")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.jsonl", '{"kind": "plus", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        ("m.csv", "kind,source,target\npro," + "[" * 100_000 + "]" * 100_000 + ",[]\n"),
    ],
)
def test_deeply_nested_json_is_a_manifest_error(tmp_path: Path, name: str, text: str) -> None:
    """JSON nested 100,000 deep is a ManifestError on line 1 or 2, not a RecursionError."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert [p.line for p in info.value.problems][:1] == [text.count("\n")]
