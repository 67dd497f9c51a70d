"""Secrets never print: API key, client secret and tokens stay out of logs, reprs, errors and CLI.

Every code path we can reach runs with logging captured at DEBUG (all loggers): each client
operation with an API key and with getToken auth (including a token expired mid-way), refused
credentials, retries, an ambiguous submit, a batch with events, the blocking ``Client``, the
CLI with ``-vv``, webhook verification failures, and the reprs of every object holding a
secret. The texts collected (log messages and tracebacks, reprs, exception messages, args,
causes and formatted tracebacks, CLI stdout and stderr) must not contain any secret value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiohttp
import pytest

from akool_async import (
    AkoolError,
    AsyncClient,
    BatchEvent,
    Client,
    FaceImage,
    PlusSwap,
    PollConfig,
    ProSwap,
    RetryPolicy,
    Timeout,
)
from akool_async._models import TokenRequest
from akool_async._receiver import WebhookReceiver
from akool_async._webhooks import WebhookVerifier
from akool_async.cli import main
from akool_async.testing import Emulator, EmulatorConfig, EmulatorThread

API_KEY = "SECRETapiKEYq7Z3x9W2v4T6"
#: The AES key, so 32 bytes; also accepted as the API key of the token-mode emulator.
CLIENT_SECRET = "SECRETclientSECRETk8J5m1N0p2R4s6"
WRONG_KEY = "SECRETwrongKEYh3G7f1D9c5B"
WRONG_SECRET = "SECRETwrongSECRETy6U4i2O8p0A1s3D"
CLIENT_ID = "chaos-client-id-0123456"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002, jitter=False)
POLL = PollConfig(image_first=0.02, image_max=0.05, retry_delay=0.02)
URL = "https://example.com/face.png"


class Collector(logging.Handler):
    """Every record, formatted with its traceback, and its raw args."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))


_tokens: set[str] = set()


@contextlib.contextmanager
def swept(secrets_of: Callable[[], Iterable[str]]) -> Iterator[list[str]]:
    """DEBUG records of every logger, in the yielded list; at the end none holds a secret."""
    handler = Collector()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        yield texts
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    texts.extend(handler.texts)
    values = set(secrets_of())
    leaks = [text for text in texts if any(secret in text for secret in values)]
    assert leaks == []


@pytest.fixture
def collected() -> Iterator[list[str]]:
    """Texts to check: log records at DEBUG from every logger, plus what tests add."""
    with swept(lambda: secrets([])) as texts:
        yield texts


def secrets(_: list[str]) -> set[str]:
    """Every secret value used by the tests, tokens issued included."""
    return {API_KEY, CLIENT_SECRET, WRONG_KEY, WRONG_SECRET} | _tokens


def describe(exc: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, args, attributes, causes, traceback."""
    texts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
    texts.append("".join(traceback.format_exception(exc)))
    if exc.__cause__ is not None:
        texts += describe(exc.__cause__)
    return texts


async def expect_error(texts: list[str], call: Callable[[], Any]) -> None:
    """Await ``call()``, which must raise an AkoolError; collect what the error shows."""
    with pytest.raises(AkoolError) as info:
        await call()
    texts.extend(describe(info.value))


def remember_tokens(emu: Emulator) -> None:
    """Add every bearer token the emulator has issued so far to the secrets."""
    _tokens.update(emu._state.tokens._expiry)


@pytest.mark.anyio
async def test_async_client_paths_leak_nothing(collected: list[str]) -> None:
    """Every AsyncClient path (key and token auth, errors, retries, batches) hides secrets."""
    texts = collected
    config = EmulatorConfig(latency_scale=0.01, queue_seconds=(0, 0.1))
    swap = PlusSwap(source_url=URL, target_url="https://example.com/t.png")
    async with Emulator(
        api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, config=config
    ) as emu:
        _tokens.add(emu.issue_token())
        client = AsyncClient(api_key=API_KEY, base_url=emu.base_url, retry=FAST)
        client.poll_config = POLL
        texts.append(repr(client))
        async with client:
            texts += [repr(client), repr(client.with_options(retry=FAST)), str(client)]
            texts.append(repr(client.statistics()))
            await client.get_credit()
            job = await client.faceswap_plus(swap)
            texts += [repr(job), repr(await client.wait(job, timeout=5))]
            texts.append(repr(await client.get_results([job.id])))
            texts.append(repr(await client.detect_faces(url=URL)))
            await client.delete_results([job.id])
            emu.faults.inject("quota", "http_500")  # retried
            await client.get_credit()
            emu.faults.inject("quota", "http_500", times=3)  # retries exhausted
            await expect_error(texts, client.get_credit)
            emu.faults.inject("faceswap_pro", "drop_after")  # ambiguous submit
            pro = ProSwap(source=[FaceImage(path=URL)], target=[FaceImage(path=URL)])
            await expect_error(texts, lambda: client.faceswap_pro(pro))
            await expect_error(texts, lambda: client.wait("0" * 24, timeout=0.2))

            def on_event(event: BatchEvent) -> None:
                texts.append(repr(event))

            async with client.swap_many([swap, swap], on_event=on_event) as batch:
                texts += [repr(outcome) async for outcome in batch]
                texts.append(repr(batch.statistics()))
        async with AsyncClient(api_key=WRONG_KEY, base_url=emu.base_url, retry=FAST) as wrong:
            texts.append(repr(wrong))
            await expect_error(texts, wrong.get_credit)

        token_client = AsyncClient(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=emu.base_url, retry=FAST
        )
        async with token_client:
            await token_client.get_credit()
            remember_tokens(emu)
            emu.expire_tokens()  # 1101, then a new token, replayed
            await token_client.get_credit()
            remember_tokens(emu)
            texts += [repr(token_client), repr(token_client._shared)]
        async with AsyncClient(
            client_id=CLIENT_ID, client_secret=WRONG_SECRET, base_url=emu.base_url, retry=FAST
        ) as refused:
            await expect_error(texts, refused.get_credit)
    texts += [
        repr(TokenRequest(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)),
        repr(Timeout()),
        repr(FAST),
    ]
    assert len(_tokens) >= 3  # the test saw real tokens to look for


@pytest.mark.anyio
async def test_webhook_failures_leak_nothing(collected: list[str]) -> None:
    """Webhook verification failures (direct and through the receiver) never show the secret."""
    texts = collected
    verifier = WebhookVerifier(CLIENT_ID, CLIENT_SECRET)
    texts.append(repr(verifier))
    bodies: list[Any] = [
        b"",
        b"not json",
        {"signature": "x", "dataEncrypt": "AAAA", "timestamp": 1, "nonce": "1"},
        json.dumps({"signature": "0" * 40, "dataEncrypt": CLIENT_SECRET, "nonce": 1}),
    ]
    for body in bodies:
        with pytest.raises(AkoolError) as info:
            verifier.verify(body)
        texts.extend(describe(info.value))
    with pytest.raises(AkoolError) as bad_key:
        WebhookVerifier(CLIENT_ID, CLIENT_SECRET + "x")
    texts.extend(describe(bad_key.value))
    async with WebhookReceiver(verifier, lambda event: None) as receiver:
        texts.append(repr(receiver))
        async with aiohttp.ClientSession() as session:
            for body in bodies[1:]:
                data = body if isinstance(body, bytes | str) else json.dumps(body)
                async with session.post(receiver.url, data=data) as response:
                    texts.append(await response.text())


@pytest.fixture
def token_emulator() -> Iterator[EmulatorThread]:
    """An emulator thread with the test's credentials."""
    config = EmulatorConfig(latency_scale=0.01, queue_seconds=(0, 0.1))
    with EmulatorThread(
        api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, config=config
    ) as runner:
        yield runner


def test_blocking_client_and_cli_leak_nothing(
    collected: list[str],
    token_emulator: EmulatorThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blocking Client and the CLI with -vv (success and refusal) hide every secret."""
    texts = collected
    base = token_emulator.base_url
    with Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base) as client:
        texts += [repr(client), repr(client.get_credit())]
        remember_tokens(token_emulator.emulator)
    with (
        Client(api_key=WRONG_KEY, base_url=base, retry=FAST) as wrong,
        pytest.raises(AkoolError) as info,
    ):
        wrong.get_credit()
    texts.extend(describe(info.value))

    for name in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AKOOL_BASE_URL", base)
    runs = [
        ["-vv", "--api-key", API_KEY, "credit"],
        ["-vv", "--json", "--api-key", WRONG_KEY, "credit"],
        ["-vv", "--api-key", API_KEY, "swap", "plus", "--source-url", URL, "--target-url", URL],
        ["-vv", "--api-key", API_KEY, "status", "0" * 24],
        ["-vv", "--api-key", API_KEY, "swap", "plus", "--source-url", "x", "--target-url", URL],
    ]
    codes = []
    for argv in runs:
        codes.append(main(argv))
        out = capsys.readouterr()
        texts += [out.out, out.err]
    monkeypatch.setenv("AKOOL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", CLIENT_SECRET)
    codes.append(main(["-vv", "credit"]))
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert codes == [0, 1, 0, 1, 2, 0]  # an unknown id is exit 1
