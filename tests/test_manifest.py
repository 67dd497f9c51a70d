"""Batch manifests: JSONL and CSV parsing, whole-file validation, line numbers and field paths."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from akool_async import (
    FaceImage,
    FaceInfo,
    FaceMapping,
    ImageSwap,
    ModelStyle,
    PlusSwap,
    ProSwap,
    ValidationError,
    VideoSwap,
)
from akool_async.cli._manifest import (
    _PARSERS,
    KINDS,
    ManifestError,
    build_request,
    detect_format,
    fields_of,
    parse_csv,
    parse_jsonl,
    read_manifest,
)

OPTS = "1,2:3,4:5,6:7,8"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_request_field_has_a_parser() -> None:
    """Each field of each request class can be read from a manifest (a new field fails here)."""
    missing = {
        (kind, field) for kind in KINDS for field in fields_of(kind) if field not in _PARSERS
    }
    assert missing == set()


def test_jsonl_builds_each_kind() -> None:
    """A JSONL line per kind builds the matching request with the SDK's field names."""
    lines = [
        '{"kind": "plus", "source_url": "https://x/me.jpg", "target_url": "https://x/a.mp4",'
        ' "model_style": "beautify", "face_enhance": true, "ref": "r1"}',
        "",
        "# a comment",
        '{"kind": "pro", "source": ["https://x/s.jpg"], "target": [{"path": "https://x/t.jpg"}]}',
        f'{{"kind": "image", "source": ["https://x/s.jpg|{OPTS}"],'
        f' "target": [{{"path": "https://x/t.jpg", "opts": "{OPTS}"}}],'
        ' "modify_image": "https://x/g.jpg"}',
        '{"kind": "video", "source": ["https://x/s.jpg"], "target": ["https://x/t.jpg"],'
        ' "modify_video": "https://x/v.mp4", "webhook_url": null}',
    ]
    entries, problems = parse_jsonl(lines)
    assert problems == []
    assert [(e.line, e.kind, e.ref) for e in entries] == [
        (1, "plus", "r1"),
        (4, "pro", None),
        (5, "image", None),
        (6, "video", None),
    ]
    assert entries[0].request == PlusSwap(
        source_url="https://x/me.jpg",
        target_url="https://x/a.mp4",
        model_style=ModelStyle.BEAUTIFY,
        face_enhance=True,
    )
    assert entries[1].request == ProSwap(
        source=[FaceImage(path="https://x/s.jpg")], target=[FaceImage(path="https://x/t.jpg")]
    )
    assert entries[2].request == ImageSwap(
        source=[FaceImage(path="https://x/s.jpg", opts=OPTS)],
        target=[FaceImage(path="https://x/t.jpg", opts=OPTS)],
        modify_image="https://x/g.jpg",
    )
    assert isinstance(entries[3].request, VideoSwap)


def test_jsonl_face_mapping_objects_and_strings() -> None:
    """face_mapping items may be {source, target} objects or 'URL|bbox' strings."""
    line = (
        '{"kind": "plus", "source_url": "https://x/s.jpg", "target_url": "https://x/g.jpg",'
        ' "face_mapping": [{"source": {"face_url": "https://x/c0.png"},'
        ' "target": {"face_url": "https://x/g.jpg", "bbox": [1, 2, 30, 40]}},'
        ' {"source": "https://x/c1.png", "target": "https://x/g.jpg|5,6,70,80"}]}'
    )
    [entry], problems = parse_jsonl([line])
    assert problems == []
    assert isinstance(entry.request, PlusSwap)
    assert entry.request.face_mapping == (
        FaceMapping(
            source=FaceInfo(face_url="https://x/c0.png"),
            target=FaceInfo(face_url="https://x/g.jpg", bbox=(1, 2, 30, 40)),
        ),
        FaceMapping(
            source=FaceInfo(face_url="https://x/c1.png"),
            target=FaceInfo(face_url="https://x/g.jpg", bbox=(5, 6, 70, 80)),
        ),
    )


def test_csv_builds_rows_with_list_cells() -> None:
    """CSV rows use ';'-separated or JSON list cells, true/false booleans and empty cells."""
    text = (
        "kind,source_url,target_url,source,target,modify_image,face_mapping,face_enhance,ref\n"
        "plus,https://x/s.jpg,https://x/a.mp4,,,,,yes,a\n"
        'plus,https://x/s.jpg,https://x/g.jpg,,,,"https://x/c0.png>https://x/g.jpg|1,2,3,4;'
        'https://x/c1.png>https://x/t1.png",,b\n'
        "\n"
        f'image,,,"https://x/s0.jpg|{OPTS};https://x/s1.jpg|{OPTS}",'
        f'"[""https://x/t0.jpg|{OPTS}"", '
        f'{{""path"": ""https://x/t1.jpg"", ""opts"": ""{OPTS}""}}]",'
        "https://x/g.jpg,,0,\n"
    )
    entries, problems = parse_csv(text)
    assert problems == []
    assert [(e.line, e.kind, e.ref) for e in entries] == [
        (2, "plus", "a"),
        (3, "plus", "b"),
        (5, "image", None),
    ]
    first, second, third = (e.request for e in entries)
    assert first == PlusSwap(
        source_url="https://x/s.jpg", target_url="https://x/a.mp4", face_enhance=True
    )
    assert isinstance(second, PlusSwap)
    assert second.face_mapping == (
        FaceMapping(
            source=FaceInfo(face_url="https://x/c0.png"),
            target=FaceInfo(face_url="https://x/g.jpg", bbox=(1, 2, 3, 4)),
        ),
        FaceMapping(
            source=FaceInfo(face_url="https://x/c1.png"),
            target=FaceInfo(face_url="https://x/t1.png"),
        ),
    )
    assert third == ImageSwap(
        source=[
            FaceImage(path="https://x/s0.jpg", opts=OPTS),
            FaceImage(path="https://x/s1.jpg", opts=OPTS),
        ],
        target=[
            FaceImage(path="https://x/t0.jpg", opts=OPTS),
            FaceImage(path="https://x/t1.jpg", opts=OPTS),
        ],
        modify_image="https://x/g.jpg",
    )


def test_csv_line_numbers_count_quoted_newlines() -> None:
    """A CSV row's line number is the physical line it starts on, even after multi-line cells."""
    text = (
        "kind,source_url,target_url,ref\n"
        'plus,https://x/s.jpg,https://x/t.jpg,"two\nlines"\n'
        "plus,https://x/s.jpg,not-a-url,c\n"
    )
    entries, problems = parse_csv(text)
    assert [(p.line, p.field) for p in problems] == [(4, "target_url")]
    assert entries[0].ref == "two\nlines"


PLUS = {"kind": "plus", "source_url": "https://x/s", "target_url": "https://x/t"}
IMAGE = {"kind": "image", "source": ["https://x/a"], "target": ["https://x/c"]}


@pytest.mark.parametrize(
    ("record", "field", "reason_part"),
    [
        ({"kind": "plus", "target_url": "https://x/t"}, "source_url", "is required"),
        ({**PLUS, "source_url": "ftp://x"}, "source_url", "http(s)"),
        ({**PLUS, "sourceurl": 1}, "sourceurl", "unknown field"),
        ({**PLUS, "modify_image": "https://z"}, "modify_image", "another kind"),
        ({"kind": "swap"}, "kind", "must be one of plus, pro, image, video"),
        ({"source_url": "https://x"}, "kind", "is required"),
        ({**PLUS, "face_enhance": "yes"}, "face_enhance", "true or false"),
        (
            {"kind": "pro", "source": ["https://x/a", "https://x/b"], "target": ["https://x/c"]},
            "source[0].opts",
            "is required",
        ),
        (
            {**IMAGE, "source": ["https://x/a|bad"], "modify_image": "https://x/m"},
            "source[0].opts",
            "landmark",
        ),
        (
            {**PLUS, "face_mapping": [{"source": "https://x/s", "target": "https://x/t|1,2,0,4"}]},
            "face_mapping[0].target.bbox",
            "x2 > x1",
        ),
        (
            {**PLUS, "face_mapping": [{"source": {"bbox": [1, 2, 3, 4]}, "target": "https://x"}]},
            "face_mapping[0].source.face_url",
            "required",
        ),
        (
            {"kind": "video", "source": [], "target": ["https://x/c"], "modify_video": "https://x"},
            "source",
            "at least one",
        ),
        ({**PLUS, "ref": {"a": 1}}, "ref", "must be text"),
    ],
)
def test_jsonl_problems_name_line_and_field(
    record: dict[str, object], field: str, reason_part: str
) -> None:
    """Each kind of mistake is reported with its line number and the offending field's path."""
    entries, problems = parse_jsonl([json.dumps(PLUS), json.dumps(record)])
    assert len(entries) == 1
    assert [(p.line, p.field) for p in problems] == [(2, field)]
    assert reason_part in problems[0].reason


def test_jsonl_syntax_errors_are_problems() -> None:
    """Invalid JSON and non-object lines are reported with their line numbers."""
    entries, problems = parse_jsonl(['{"kind": ', "[1, 2]"])
    assert entries == []
    assert [(p.line, p.field) for p in problems] == [(1, None), (2, None)]


def test_csv_header_problems() -> None:
    """Unknown columns and a missing kind column are reported on line 1, before any row."""
    _, problems = parse_csv("kindd,source_url\nplus,https://x\n")
    assert [(p.line, p.field) for p in problems] == [(1, "kindd"), (1, "kind")]


def test_csv_row_with_wrong_cell_count() -> None:
    """A row with more cells than the header is a problem of its line."""
    _, problems = parse_csv("kind,source_url,target_url\nplus,https://x,https://y,extra\n")
    assert [(p.line, p.reason) for p in problems] == [
        (2, "has 4 cells but the header has 3 columns")
    ]


def test_read_manifest_reports_every_problem(tmp_path: Path) -> None:
    """read_manifest checks the whole file and lists every problem as FILE:LINE: FIELD: reason."""
    path = write(
        tmp_path,
        "swaps.jsonl",
        '{"kind": "plus", "source_url": "https://x", "target_url": "https://y"}\n'
        '{"kind": "plus", "source_url": "nope", "target_url": "https://y"}\n'
        '{"kind": "pro"}\n',
    )
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    assert str(caught.value).splitlines() == [
        f"{path}:2: source_url: no such file: {str(tmp_path / 'nope')!r}",
        f"{path}:3: source: is required for a 'pro' swap",
    ]
    assert caught.value.field == "source_url"
    assert isinstance(caught.value, ValidationError)


def test_read_manifest_caps_the_listed_problems(tmp_path: Path) -> None:
    """Past 20 problems the message summarises the rest; all are kept in .problems."""
    path = write(tmp_path, "m.jsonl", '{"kind": "nope"}\n' * 25)
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    lines = str(caught.value).splitlines()
    assert (len(lines), lines[-1], len(caught.value.problems)) == (
        21,
        "... and 5 more problems",
        25,
    )


def test_empty_manifest_is_an_error(tmp_path: Path) -> None:
    """A manifest without a single swap is refused."""
    path = write(tmp_path, "m.csv", "kind,source_url,target_url\n")
    with pytest.raises(ManifestError, match="holds no swap"):
        read_manifest(path)


def test_format_detection(tmp_path: Path) -> None:
    """The format comes from the extension, else from the first character."""
    assert [
        detect_format("a.jsonl", ""),
        detect_format("a.ndjson", ""),
        detect_format("a.CSV", "{"),
        detect_format("a.txt", '  {"kind": 1}'),
        detect_format("a.txt", "kind,source_url"),
    ] == ["jsonl", "jsonl", "csv", "jsonl", "csv"]
    path = write(tmp_path, "swaps.txt", "kind,source_url,target_url\nplus,https://x,https://y\n")
    assert [e.kind for e in read_manifest(path)] == ["plus"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A CSV saved by a spreadsheet with a UTF-8 BOM reads fine."""
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffkind,source_url,target_url\nplus,https://x,https://y\n".encode())
    assert [e.line for e in read_manifest(path)] == [2]


def test_build_request_text_mode() -> None:
    """build_request reads CLI-style text values and names the field on errors."""
    request = build_request(
        "pro",
        {"source": [f"https://x/a|{OPTS}"], "target": ["https://x/b"], "face_enhance": "1"},
        text=True,
    )
    assert attrs.asdict(request, recurse=False)["face_enhance"] is True
    with pytest.raises(ValidationError) as caught:
        build_request(
            "plus",
            {"source_url": "https://x", "target_url": "https://y", "face_mapping": "a-b"},
            text=True,
        )
    assert caught.value.field == "face_mapping[0]"


def test_documented_examples_are_valid(tmp_path: Path) -> None:
    """The JSONL and CSV examples in docs/manifest.md parse without a problem."""
    text = (Path(__file__).parent.parent / "docs" / "manifest.md").read_text()
    blocks = {}
    for fence in ("json", "csv"):
        start = text.index(f"```{fence}\n") + len(fence) + 4
        blocks[fence] = text[start : text.index("```", start)]
    jsonl = read_manifest(write(tmp_path, "a.jsonl", blocks["json"]))
    csv_entries = read_manifest(write(tmp_path, "a.csv", blocks["csv"]))
    assert [e.kind for e in jsonl] == ["plus", "plus", "pro", "image", "video"]
    assert [e.kind for e in csv_entries] == ["plus", "plus", "pro", "image"]
