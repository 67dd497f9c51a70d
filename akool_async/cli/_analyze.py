"""``akool-async detect --analyze URL...``: Analyze Frames from the command line.

Prints the people found across the frames, one row (or JSON object) per person, with the
cropped face URL and bbox that a Plus ``face_mapping`` takes.
"""

from __future__ import annotations

from typing import Any

from akool_async._frames import AnalyzeFrames, FrameAnalysis

from ._context import EXIT_OK, EXIT_USAGE, CliError, Context

__all__ = ["cmd_analyze"]

#: ``detect`` options that belong to the face detectors, not to Analyze Frames.
_DETECTOR_ONLY = (
    ("single_face", "--single-face"),
    ("frames", "--frames"),
    ("face_urls", "--face-urls"),
    ("legacy", "--legacy"),
)


def _timestamps(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise CliError(
            f"--timestamps takes comma-separated seconds (0,1.5,3), got {text!r}", EXIT_USAGE
        ) from None


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _box(box: tuple[float, float, float, float] | None) -> list[float | int] | None:
    return None if box is None else [_number(v) for v in box]


def _records(found: FrameAnalysis) -> list[dict[str, Any]]:
    return [
        {
            "person_id": person.person_id,
            "index": person.index,
            "face_url": person.face_url,
            "bbox": _box(person.bbox),
            "confidence": person.confidence,
            "first_seen": person.first_seen,
            "last_seen": person.last_seen,
            "frames": list(person.frames),
            "appearances": [
                {"frame": seen.frame_index, "timestamp": seen.timestamp, "bbox": _box(seen.bbox)}
                for seen in person.appearances
            ],
        }
        for person in found.persons
    ]


def _seen(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return ""
    return f"{first:g}-{last:g}s"


async def cmd_analyze(ctx: Context) -> int:
    """Analyze the frame URLs given to ``detect --analyze``; print one entry per person."""
    args = ctx.args
    given = [flag for name, flag in _DETECTOR_ONLY if getattr(args, name, None)]
    if given:
        raise CliError(f"{', '.join(given)} cannot be used with --analyze", EXIT_USAGE)
    request = AnalyzeFrames(
        frame_urls=args.media,
        timestamps=_timestamps(args.timestamps),
        expand_ratio=args.expand_ratio,
    )
    async with ctx.connect() as client:
        found = await client.analyze_frames(request)
    persons = _records(found)
    if ctx.json:
        ctx.emit(
            {
                "frame_urls": list(request.frame_urls),
                "frame_count": found.frame_count,
                "persons": persons,
            }
        )
        return EXIT_OK
    frames = len(request.frame_urls)
    plural = "s" if len(persons) != 1 else ""
    ctx.say(f"{len(persons)} person{plural} in {frames} frame{'s' if frames != 1 else ''}")
    if persons:
        rows = [["PERSON", "INDEX", "BBOX x1,y1,x2,y2", "SEEN", "FRAMES", "FACE"]]
        rows += [
            [
                person["person_id"],
                str(person["index"]),
                ",".join(str(v) for v in person["bbox"] or ()),
                _seen(person["first_seen"], person["last_seen"]),
                ",".join(str(f) for f in person["frames"]),
                person["face_url"] or "",
            ]
            for person in persons
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            ctx.say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK
