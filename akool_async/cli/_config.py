"""Stored credentials and shell completion for ``akool-async``: login, logout, completion.

Credentials live in one TOML file, ``$AKOOL_CONFIG``, else
``$XDG_CONFIG_HOME/akool-async/config.toml`` (``~/.config/akool-async/config.toml``), one
table per profile::

    [default]
    api_key = "..."

    [staging]
    api_key = "..."
    base_url = "https://staging.example"

The file is written atomically with mode 0600 in a 0700 directory, and a file that others can
read is reported. No keyring dependency: the file is what ``gh``, ``aws`` and AKOOL's own tool
do. Precedence, highest first: ``--api-key`` / ``--base-url``, then the ``AKOOL_*``
environment, then the profile (``--profile NAME``, else ``$AKOOL_PROFILE``, else ``default``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import stat
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from ._context import EXIT_OK, EXIT_USAGE, PROG, CliError, Context

__all__ = [
    "PROFILE_KEYS",
    "add_config_commands",
    "cmd_completion",
    "cmd_login",
    "cmd_logout",
    "config_path",
    "load_profile",
    "profile_name",
]

#: What a profile may hold.
PROFILE_KEYS: Final = ("api_key", "client_id", "client_secret", "base_url")
_SECRET_KEYS: Final = frozenset({"api_key", "client_secret"})
_ENV_CREDENTIALS: Final = ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET")


def config_path() -> Path:
    """Where the credentials file is (it may not exist)."""
    if explicit := os.environ.get("AKOOL_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "akool-async" / "config.toml"


def profile_name(args: argparse.Namespace) -> str:
    """The profile a command uses: ``--profile``, else ``$AKOOL_PROFILE``, else ``default``."""
    return getattr(args, "profile", None) or os.environ.get("AKOOL_PROFILE") or "default"


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(
            f"cannot read the credentials file {str(path)!r}: {exc}", EXIT_USAGE
        ) from None
    return {
        name: {k: v for k, v in table.items() if k in PROFILE_KEYS and isinstance(v, str)}
        for name, table in data.items()
        if isinstance(table, dict)
    }


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _write(path: Path, profiles: Mapping[str, Mapping[str, str]]) -> None:
    """Write ``profiles`` atomically, readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = ["# akool-async credentials (akool-async login); keep this file private.", ""]
    for name, table in profiles.items():
        lines.append(f"[{_toml_string(name)}]")
        lines.extend(f"{key} = {_toml_string(table[key])}" for key in PROFILE_KEYS if key in table)
        lines.append("")
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing temp file keeps its mode otherwise
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write("\n".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(temp, path)


def load_profile(args: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, str]:
    """The stored profile's settings that the arguments and environment leave unset.

    Raises ``CliError`` when ``--profile`` names a profile that does not exist.
    """
    path = config_path()
    name = profile_name(args)
    profiles = _read(path)
    profile = profiles.get(name)
    if profile is None:
        if getattr(args, "profile", None) or os.environ.get("AKOOL_PROFILE"):
            known = ", ".join(sorted(profiles)) or "none"
            raise CliError(
                f"no profile {name!r} in {str(path)!r} (profiles: {known}); "
                f"create it with: {PROG} login --profile {name}",
                EXIT_USAGE,
            )
        return {}
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"warning: {str(path)!r} can be read by others; run: chmod 600 {path}")
    chosen: dict[str, str] = {}
    has_credentials = args.api_key is not None or any(os.environ.get(n) for n in _ENV_CREDENTIALS)
    if not has_credentials:
        chosen |= {k: v for k, v in profile.items() if k != "base_url"}
    if args.base_url is None and not os.environ.get("AKOOL_BASE_URL") and "base_url" in profile:
        chosen["base_url"] = profile["base_url"]
    return chosen


def profile_secrets(args: argparse.Namespace) -> tuple[str, ...]:
    """The stored profile's secrets, for redaction (empty when there is none or it is bad)."""
    try:
        profile = _read(config_path()).get(profile_name(args), {})
    except CliError:
        return ()
    return tuple(v for k, v in profile.items() if k in _SECRET_KEYS)


# --------------------------------------------------------------------------------------------
# Commands


def _read_key(ctx: Context) -> str:
    if ctx.args.api_key:
        return str(ctx.args.api_key)
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        key = getpass.getpass("AKOOL API key (input hidden): ")
    else:
        key = stdin.readline() if stdin is not None else ""
    key = key.strip()
    if not key:
        raise CliError(
            "no API key given: type it at the prompt, pipe it in "
            f"(printenv KEY | {PROG} login) or pass --api-key",
            EXIT_USAGE,
        )
    return key


async def cmd_login(ctx: Context) -> int:
    """``akool-async login [--profile NAME] [--base-url URL] [--no-verify]``."""
    args = ctx.args
    name = profile_name(args)
    key = _read_key(ctx)
    ctx.secrets = tuple(sorted({*ctx.secrets, key}, key=len, reverse=True))
    entry = {"api_key": key}
    if args.base_url:
        entry["base_url"] = args.base_url
    if args.verify:
        from akool_async._client import AsyncClient

        client = AsyncClient(api_key=key, base_url=entry.get("base_url"))
        async with ctx.connect(client):
            credit = await client.get_credit()
        ctx.progress(f"the key works: credit {credit:,g}")
    path = config_path()
    profiles = _read(path)
    profiles[name] = entry
    _write(path, profiles)
    if ctx.json:
        ctx.emit({"profile": name, "path": str(path)})
    else:
        ctx.say(f"saved profile {name!r} in {path} (mode 0600)")
    return EXIT_OK


async def cmd_logout(ctx: Context) -> int:
    """``akool-async logout [--profile NAME]``: forget a stored profile."""
    name = profile_name(ctx.args)
    path = config_path()
    profiles = _read(path)
    removed = profiles.pop(name, None) is not None
    if removed:
        _write(path, profiles)
    if ctx.json:
        ctx.emit({"profile": name, "removed": removed})
    else:
        ctx.say(f"removed profile {name!r}" if removed else f"no profile {name!r} was stored")
    return EXIT_OK


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Completion words: the top level's commands and options, and each (sub)command's."""
    table: dict[str, list[str]] = {}

    def walk(node: argparse.ArgumentParser, key: str) -> None:
        words: list[str] = []
        for action in node._actions:
            words.extend(o for o in action.option_strings if o.startswith("--") or len(o) == 2)
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    words.append(name)
                    walk(sub, f"{key} {name}".strip())
        table[key] = sorted(set(words))

    walk(parser, "")
    if "emulator" in table:  # its options live in the emulator's own parser
        from akool_async.testing._main import build_parser as emulator_parser

        walk(emulator_parser(), "emulator")
    return table


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    table = _commands(parser)
    if shell == "fish":
        lines = [f"# {PROG} completion for fish: {PROG} completion fish | source"]
        for key, words in table.items():
            path = key.split()
            if path:
                condition = " && ".join(f"__fish_seen_subcommand_from {w}" for w in path)
            else:
                condition = "not __fish_seen_subcommand_from " + " ".join(
                    w for w in words if not w.startswith("-")
                )
            for word in words:
                flag = (
                    f"-l {word[2:]}"
                    if word.startswith("--")
                    else (f"-s {word[1:]}" if word.startswith("-") else f"-f -a {word}")
                )
                lines.append(f"complete -c {PROG} -n '{condition}' {flag}")
        return "\n".join(lines) + "\n"
    cases = "\n".join(
        f'        "{key}") words="{" ".join(words)}" ;;' for key, words in table.items()
    )
    body = f"""\
_akool_async() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" word words i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        case " ${{path:+$path }}$word" in
{_case_lines(table)}
        esac
    done
    case "$path" in
{cases}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _akool_async {PROG}
"""
    if shell == "zsh":
        header = f"# {PROG} completion for zsh: source <({PROG} completion zsh)\n"
        return header + "autoload -U +X bashcompinit && bashcompinit\n" + body
    return f"# {PROG} completion for bash: source <({PROG} completion bash)\n" + body


def _case_lines(table: Mapping[str, Any]) -> str:
    """bash ``case`` arms that extend the command path with each known (sub)command word."""
    arms = [f'            " {key}") path="{key}" ;;' for key in table if key]
    return "\n".join(arms)


async def cmd_completion(ctx: Context) -> int:
    """``akool-async completion bash|zsh|fish``: print a shell completion script."""
    from ._parser import build_parser

    ctx.stdout.write(completion_script(ctx.args.shell, build_parser()))
    ctx.stdout.flush()
    return EXIT_OK


def add_config_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The ``login``, ``logout`` and ``completion`` commands (``add`` makes a subcommand)."""
    login = add(
        "login",
        "store an API key in a profile of the credentials file (mode 0600)",
        description="Store an API key for later commands, in a named profile (--profile, "
        f"default 'default') of {config_path()}, written with mode 0600. The key is read "
        "from a hidden prompt, from stdin, or from --api-key, and checked with one credit "
        "call unless --no-verify. Arguments and AKOOL_* variables still win over it.",
    )
    login.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check the key with one credit request first (default: on)",
    )
    login.set_defaults(handler="login")
    logout = add("logout", "forget a stored profile")
    logout.set_defaults(handler="logout")
    completion = add(
        "completion",
        "print a shell completion script (bash, zsh, fish)",
        description="Print a completion script: add 'source <(akool-async completion bash)' "
        "to ~/.bashrc (zsh: the same with zsh, in ~/.zshrc; fish: 'akool-async completion "
        "fish | source' in config.fish).",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(handler="completion")
