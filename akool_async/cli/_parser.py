"""The ``akool-async`` argument parser (argparse): commands, options and their help."""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any, Final, NoReturn

from akool_async._models import MediaType, ModelStyle
from akool_async._storage import is_store_url

from ._config import add_config_commands
from ._context import EXIT_USAGE, PROG, CliError

__all__ = ["BATCH_EPILOG", "build_parser", "command_parser", "manifest_doc"]


def manifest_doc() -> Path:
    """The manifest format's full description: inside the installed package, else the checkout's."""
    here = Path(__file__).resolve().parent.parent  # the akool_async package
    installed = here / "docs" / "manifest.md"
    return installed if installed.is_file() else here.parent / "docs" / "manifest.md"


BATCH_EPILOG: Final = """\
manifest format (full description: MANIFEST_DOC):
  one swap per line; 'kind' is plus | pro | image | video, the other fields are that
  request's fields with the SDK's snake_case names, plus an optional free-text 'ref'.
  JSONL: {"kind": "plus", "source_url": "https://...", "target_url": "https://.../a.mp4"}
         {"kind": "pro", "source": ["https://..."], "target": ["https://...|x,y:x,y:x,y:x,y"]}
         {"kind": "image", "source": [...], "target": [...], "modify_image": "https://..."}
  CSV:   a header of field names, one row per swap, empty cell = not given, lists as JSON
         or ';'-separated (faces: URL or URL|opts; face_mapping: SRC>TGT with each side
         URL or URL|x1,y1,x2,y2).

report (DIR/report.jsonl, one JSON object per manifest line, in line order):
  line, ref, kind, status (ok | failed | error), id (the record _id), job_id (AKOOL's
  job id), result_url, file, sha256, error_type, error_message, resumed

exit codes:
  0 every swap succeeded; 1 at least one failed or errored (see the report);
  2 bad manifest or usage (nothing submitted); 130 interrupted (143 on SIGTERM): run the
  same command again to resume from the journal.""".replace("MANIFEST_DOC", str(manifest_doc()))


_INVALID_CHOICE = re.compile(r"invalid choice: '?([^' ]+)'? \(choose from (.*)\)")


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _options_of(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and its subcommands."""
    found: list[str] = []
    for action in parser._actions:
        found.extend(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_options_of(sub))
    return sorted(set(found))


def command_parser(parser: argparse.ArgumentParser, *path: str | None) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``path`` (``"swap", "plus"``), as deep as it exists."""
    for name in path:
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if name is None or not subcommands or name not in subcommands[0].choices:
            break
        parser = subcommands[0].choices[name]
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a one-line ``CliError`` (exit 2) instead of usage text.

    A mistyped command or option gets a "did you mean" (argparse's own ``suggest_on_error``
    only exists from Python 3.14).
    """

    def error(self, message: str) -> NoReturn:
        hint = ""
        if match := _INVALID_CHOICE.search(message):
            choices = [c.strip().strip("'") for c in match.group(2).split(",")]
            hint = _did_you_mean(match.group(1), choices)
        elif message.startswith("unrecognized arguments: "):
            first = message.removeprefix("unrecognized arguments: ").split()[0]
            if first.startswith("--"):
                hint = _did_you_mean(first.split("=", 1)[0], _options_of(self))
        raise CliError(f"{message}{hint} (see '{self.prog} --help')", EXIT_USAGE)


# --------------------------------------------------------------------------------------------
# Parsing


def _version() -> str:
    try:
        return importlib.metadata.version("akool-async")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _destination(text: str) -> Path | str:
    """A download destination: an object-store URL (``s3://bucket/results/``) or a directory."""
    return text if is_store_url(text) else Path(text)


def _storage_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as JSON when it is JSON (numbers, booleans, objects)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected requests per second, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number per second, got {text}")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes; on subcommands they default to "not given"."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=default(None),
        help="API key (default: $AKOOL_API_KEY, else $AKOOL_CLIENT_ID + $AKOOL_CLIENT_SECRET, "
        "else the stored profile); prefer those: arguments show up in process lists",
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        default=default(None),
        help="stored credentials to use (see 'login'; default: $AKOOL_PROFILE, else default)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="API host (default: $AKOOL_BASE_URL, else https://openapi.akool.com)",
    )
    group.add_argument(
        "--upload-to",
        metavar="URL",
        default=default(None),
        help="object-store prefix (s3://bucket/prefix/) where local media files are uploaded "
        "(once per content hash) and sent as presigned URLs (the storage extra)",
    )
    group.add_argument(
        "--storage-option",
        metavar="KEY=VALUE",
        type=_storage_option,
        action="append",
        default=default(None),
        help="an fsspec option of the object stores (endpoint_url=..., anon=false; JSON "
        "values are decoded); repeatable. Prefer the environment for credentials",
    )
    group.add_argument(
        "--rate-limit",
        type=_rate,
        metavar="R",
        default=default(None),
        help="the account's request limit in requests per second, if known: every request is "
        "paced to it, so AKOOL never answers 1005 (default: discovered from its 1005s)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine-readable output on stdout (JSON; JSON Lines for batch)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log to stderr (-v: batches, retries and throttling; -vv: every request)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress bars or commentary on stderr; errors still show",
    )


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_seconds,
        metavar="S",
        help="first (and shortest) wait between status checks of a job; later checks back "
        "off from it (default: 2 for images, 10 for videos)",
    )


def _face_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="URL[|OPTS]",
        help="a new face (repeat in order); OPTS is the 4-point landmark string x,y:x,y:x,y:x,y",
    )
    parser.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="URL[|OPTS]",
        help="the face to replace, paired with --source by position (repeat)",
    )


def _swap_parsers(swap: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    after = _Parser(add_help=False)
    group = after.add_argument_group("waiting")
    group.add_argument("--wait", action="store_true", help="wait for the job to finish")
    group.add_argument(
        "--download",
        metavar="DIR",
        type=_destination,
        help="wait, then download the result into DIR or an object-store URL such as "
        "s3://bucket/results/ (verified; implies --wait)",
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=1800.0,
        metavar="S",
        help="seconds to wait for the job (default: 1800)",
    )
    _poll_option(after)
    webhook = _Parser(add_help=False)
    webhook.add_argument("--webhook-url", metavar="URL", help="where AKOOL posts status callbacks")
    parents = [common, webhook, after]

    plus = swap.add_parser(
        "plus",
        parents=parents,
        help="Face Swap Plus, image or video target (POST /api/open/v4/faceswap/"
        "faceswapPlusByImage)",
        description="Face Swap Plus (POST /api/open/v4/faceswap/faceswapPlusByImage, the SDK's "
        "faceswap_plus): swap the face in --source-url into --target-url (an image or a "
        ".mp4/.mov/.avi/.webm video).",
    )
    plus.add_argument("--source-url", required=True, metavar="URL", help="the new face")
    plus.add_argument("--target-url", required=True, metavar="URL", help="image or video")
    plus.add_argument(
        "--face-mapping",
        metavar="PAIRS",
        help="multi-face mode: 'SRC>TGT;SRC>TGT' (each side URL or URL|x1,y1,x2,y2) or JSON",
    )
    plus.add_argument(
        "--single-face-mode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="single-face mode (default: on without --face-mapping, off with it)",
    )
    plus.add_argument("--face-enhance", action="store_true", help="enhance the swapped faces")
    plus.add_argument(
        "--model-style", choices=[style.value for style in ModelStyle], help="default: realistic"
    )
    plus.set_defaults(kind="plus")

    pro = swap.add_parser(
        "pro",
        parents=parents,
        help="Face Swap Pro, AKOOL's 'faceswap image' (POST /api/open/v4/faceswap/faceswapByImage)",
        description="Face Swap Pro (POST /api/open/v4/faceswap/faceswapByImage, the SDK's "
        "faceswap_pro; what AKOOL's own akool-cli calls 'faceswap image'): 1 to 50 "
        "--source/--target pairs.",
    )
    _face_options(pro)
    pro.add_argument("--face-enhance", action="store_true", help="enhance the swapped faces")
    pro.add_argument(
        "--single-face-mode", action=argparse.BooleanOptionalAction, default=None, help="sent as is"
    )
    pro.add_argument("--model-name", metavar="NAME", help="default: akool_faceswap_image_hq")
    pro.set_defaults(kind="pro")

    for kind, media in (("image", "image"), ("video", "video")):
        sub = swap.add_parser(
            kind,
            parents=parents,
            help=f"V3 {kind} swap{', legacy' if kind == 'video' else ''} "
            f"(POST /api/open/v3/faceswap/highquality/specify{kind})",
            description=f"Faceswap V3 (POST /api/open/v3/faceswap/highquality/specify{kind}, "
            f"the SDK's faceswap_{kind}; not the same endpoint as AKOOL akool-cli's "
            f"'faceswap {kind}'): replace the --target faces found in --modify-{media} with "
            "the --source faces.",
        )
        _face_options(sub)
        sub.add_argument(
            f"--modify-{media}", required=True, metavar="URL", help=f"the {media} to change"
        )
        sub.add_argument(
            "--face-enhance", action="store_true", help="the HD model (face_enhance=1)"
        )
        sub.set_defaults(kind=kind)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``akool-async`` command line."""
    parser = _Parser(
        prog=PROG,
        description="Command line of akool-async, the async SDK for the AKOOL Face Swap API.",
        epilog="Exit codes: 0 success, 1 API/job failure, 2 usage or validation error, "
        "130 interrupted. Start with: akool-async demo",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(parser, suppress=False)
    common = _Parser(add_help=False, allow_abbrev=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            parents=[common],
            help=help,
            description=kwargs.pop("description", help),
            allow_abbrev=False,
            **kwargs,
        )
        return sub

    demo = add(
        "demo",
        "run a few hundred swaps on a built-in local emulator (no account needed)",
        description="Start the local AKOOL emulator in-process, run a batch of mixed swaps "
        "through swap_many with a live progress bar, download the results and print a "
        "summary. Needs no credentials and no network; a few failed swaps are part of the "
        "show (the exit code is still 0).",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("akool-demo-output"),
        metavar="DIR",
        help="where the results go (default: ./akool-demo-output)",
    )
    demo.add_argument(
        "--jobs", type=_positive_int, default=300, metavar="N", help="swaps (default: 300)"
    )
    demo.add_argument("--seed", type=int, default=7, metavar="N", help="emulator seed (default: 7)")
    demo.set_defaults(handler="demo")

    batch = add(
        "batch",
        "run the swaps of a JSONL or CSV manifest (resumable)",
        description="Validate a whole manifest, then submit every swap, wait for all of "
        "them, download the results into --out and write a JSON Lines report. Interrupted "
        "or crashed? Run the same command again: the journal resumes without paying twice.",
        epilog=BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument(
        "manifest", type=Path, nargs="?", metavar="MANIFEST", help="JSONL or CSV file"
    )
    batch.add_argument(
        "--out",
        type=_destination,
        metavar="DIR",
        help="download directory (required), or an object-store URL (s3://bucket/results/); "
        "with a URL the journal and report default to files next to the manifest",
    )
    batch.add_argument(
        "--journal",
        metavar="FILE|URL",
        help="resume journal (default: DIR/.akool-journal.sqlite), or postgresql://... for "
        "a batch shared by many workers (with --batch-id)",
    )
    batch.add_argument(
        "--batch-id",
        metavar="NAME",
        help="the shared batch's name: run the same command on every worker",
    )
    batch.add_argument(
        "--worker-id", metavar="NAME", help="this worker's name (default: host:pid:random)"
    )
    batch.add_argument(
        "--lease",
        type=_seconds,
        metavar="S",
        help="seconds before a dead worker's swaps go to the others (default: 30)",
    )
    batch.add_argument(
        "--status",
        action="store_true",
        help="show a shared batch's progress (every worker's) and exit",
    )
    batch.add_argument(
        "--report", type=Path, metavar="FILE", help="JSONL report (default: DIR/report.jsonl)"
    )
    batch.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="submits in flight (default: 64)",
    )
    batch.add_argument(
        "--job-timeout",
        type=_seconds,
        default=3 * 3600.0,
        metavar="S",
        help="seconds a job may take (default: 10800)",
    )
    batch.add_argument(
        "--download-timeout",
        type=_seconds,
        default=3600.0,
        metavar="S",
        help="seconds one result's download may take, retries included (default: 3600)",
    )
    batch.add_argument(
        "--deadline",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds for the whole batch: then nothing more is submitted, and what is "
        "still running is reported (and resumed by the next run)",
    )
    _poll_option(batch)
    batch.add_argument(
        "--format", choices=("jsonl", "csv"), help="manifest format (default: from the name)"
    )
    batch.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="on resume, submit again swaps whose earlier submit may have reached AKOOL "
        "(may pay twice)",
    )
    batch.set_defaults(handler="batch")

    report = add(
        "report",
        "(re)build the HTML gallery of a batch: DIR/report.html",
        description="Build DIR/report.html from what a batch left in DIR (its journal, "
        "report.jsonl and the downloaded files); works at any time, also while the batch "
        "runs. One self-contained page: open it in a browser, offline, or share the folder.",
    )
    report.add_argument("dir", type=Path, metavar="DIR", help="the batch's --out directory")
    report.add_argument(
        "--journal", type=Path, metavar="FILE", help="the batch journal (default: the batch's)"
    )
    report.add_argument(
        "--output", type=Path, metavar="FILE", help="the page (default: DIR/report.html)"
    )
    report.add_argument(
        "--inputs",
        choices=("link", "fetch", "none"),
        default="link",
        help="source and target pictures: loaded from their URLs (link, the default), "
        "downloaded into DIR/report-files now (fetch: the page needs nothing outside DIR), "
        "or only named (none)",
    )
    report.add_argument(
        "--no-thumbnails",
        dest="thumbnails",
        action="store_false",
        help="show the full images (default: thumbnails, with Pillow installed)",
    )
    report.set_defaults(handler="report")

    swap = add(
        "swap",
        "submit one swap (plus, pro, image, video)",
        description="Submit one face swap. Which AKOOL endpoint each kind calls: plus = Face "
        "Swap Plus (v4 faceswapPlusByImage), pro = Face Swap Pro (v4 faceswapByImage, AKOOL "
        "akool-cli's 'faceswap image'), image / video = Faceswap V3 (v3 specifyimage / "
        "specifyvideo).",
    )
    swap_kinds = swap.add_subparsers(dest="kind", metavar="KIND", required=True)
    _swap_parsers(swap_kinds, common)
    swap.set_defaults(handler="swap")

    status = add("status", "show the current state of jobs")
    status.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    status.set_defaults(handler="status")

    wait = add("wait", "wait for jobs to finish")
    wait.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    wait.add_argument("--timeout", type=_seconds, default=1800.0, metavar="S", help="default: 1800")
    wait.add_argument(
        "--media",
        choices=[media.value for media in MediaType],
        default="image",
        help="polling pace: videos are polled less often (default: image)",
    )
    _poll_option(wait)
    wait.set_defaults(handler="wait")

    delete = add("delete", "delete job records (permanent)")
    delete.add_argument("ids", nargs="+", metavar="ID", help="record _id (24 hex digits)")
    delete.set_defaults(handler="delete")

    credit = add("credit", "show the account's credit balance")
    credit.set_defaults(handler="credit")

    detect = add("detect", "detect faces in an image or video (URL or local image file)")
    detect.add_argument(
        "media",
        metavar="URL_OR_FILE",
        nargs="+",
        help="http(s) URL, or an image file (with --analyze: several frame image URLs)",
    )
    detect.add_argument("--single-face", action="store_true", help="only the largest face")
    detect.add_argument(
        "--frames", type=_positive_int, metavar="N", help="video frames to sample (default: 5)"
    )
    detect.add_argument(
        "--face-urls", action="store_true", help="also return face crops (URL, region, opts)"
    )
    detect.add_argument(
        "--legacy", action="store_true", help="use the legacy detector (sg3.akool.com/detect)"
    )
    detect.add_argument(
        "--analyze",
        action="store_true",
        help="Analyze Frames: match the people across frame images (one entry per person)",
    )
    detect.add_argument(
        "--timestamps", metavar="S,S,...", help="with --analyze: seconds of each frame"
    )
    detect.add_argument(
        "--expand-ratio",
        type=float,
        metavar="R",
        help="with --analyze: face crop expansion, 0 to 1 (default: 0.3)",
    )
    detect.set_defaults(handler="detect")

    add_config_commands(add)

    emulator = commands.add_parser(
        "emulator",
        add_help=False,
        help="run the local AKOOL emulator until Ctrl-C (see 'akool-async emulator --help')",
        description="Run the local AKOOL emulator (python -m akool_async.testing).",
    )
    emulator.set_defaults(handler="emulator")
    return parser
