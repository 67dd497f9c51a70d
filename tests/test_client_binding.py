"""The Operation descriptors: one endpoint table bound to an async and a blocking client."""

from __future__ import annotations

import functools
import inspect
from contextlib import ExitStack
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from akool_async import AsyncClient, PlusSwap, RetryPolicy, SwapKind, SwapStatus
from akool_async._endpoints import (
    FACESWAP_PLUS,
    FACESWAP_PRO,
    PUBLIC_OPERATIONS,
    AsyncOperation,
    BlockingBinder,
    BlockingMirror,
    Endpoint,
    Operation,
)
from akool_async.testing import EmulatorConfig, EmulatorThread

SRC = "https://example.com/source.jpg"
TGT = "https://example.com/target.jpg"


class MiniBlockingClient(BlockingBinder):
    """A blocking client built the way the real one is meant to be: one portal, no logic."""

    faceswap_plus = AsyncClient.faceswap_plus
    detect_faces = AsyncClient.detect_faces
    get_results = BlockingMirror(AsyncClient.get_results)
    get_credit = BlockingMirror(AsyncClient.get_credit)

    def __init__(self, **kwargs: Any) -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        self._async = self._portal.call(functools.partial(AsyncClient, **kwargs))
        self._stack.enter_context(self._portal.wrap_async_context_manager(self._async))

    def close(self) -> None:
        self._stack.close()

    def _call_blocking(self, endpoint: Endpoint[Any, Any], request: Any) -> Any:
        return self._portal.call(self._async._call, endpoint, request)

    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        return self._portal.call(functools.partial(getattr(self._async, name), *args, **kwargs))


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """A manual clock: jobs never progress on their own."""
    return EmulatorConfig(clock="manual")


def test_blocking_client_from_the_same_definitions(akool_emulator_thread: EmulatorThread) -> None:
    """A BlockingBinder reuses the Operation descriptors and mirrors the conveniences."""
    runner = akool_emulator_thread
    client = MiniBlockingClient(
        api_key=runner.emulator.api_key, base_url=runner.base_url, retry=RetryPolicy.none()
    )
    try:
        job = client.faceswap_plus(source_url=SRC, target_url=TGT)
        job_again = client.faceswap_plus(PlusSwap(source_url=SRC, target_url=TGT))
        [result] = client.get_results([job.id])
        credit = client.get_credit()
        faces = client.detect_faces(url=TGT).faces
    finally:
        client.close()
    assert (
        job.kind,
        result.status,
        credit,
        len(faces),
        job.id != job_again.id,
    ) == (SwapKind.PLUS, SwapStatus.QUEUED, 9998.0, 1, True)


def test_mirror_keeps_the_async_signature() -> None:
    """A BlockingMirror exposes the async method's name and docstring."""
    assert ("get_results", AsyncClient.get_results.__doc__) == (
        MiniBlockingClient.get_results.name,
        MiniBlockingClient.get_results.__doc__,
    )


def test_descriptor_on_the_class_is_the_operation() -> None:
    """Reading an operation from the class gives the Operation with its endpoint."""
    operation = AsyncClient.faceswap_plus
    assert (Operation, FACESWAP_PLUS) == (type(operation), operation.endpoint)


def test_bound_operation_signature_and_doc() -> None:
    """A bound operation shows the request class's keyword signature and docstring."""
    client = AsyncClient(api_key="k")
    bound = client.faceswap_plus
    assert (
        AsyncOperation,
        list(inspect.signature(PlusSwap).parameters),
        PlusSwap.__doc__,
    ) == (
        type(bound),
        list(inspect.signature(bound).parameters),
        bound.__doc__,
    )


def test_operation_factory_must_match_the_endpoint() -> None:
    """An Operation refuses a request class that is not its endpoint's."""
    with pytest.raises(TypeError, match="ProSwap"):
        Operation(FACESWAP_PRO, PlusSwap, name="faceswap_pro")  # type: ignore[arg-type]


def test_operation_name_must_match_attribute() -> None:
    """Binding an operation under another attribute name is refused."""
    with pytest.raises((TypeError, RuntimeError)):

        class Wrong(BlockingBinder):  # pragma: no cover - the class body is the test
            submit = AsyncClient.faceswap_plus


def test_operation_needs_a_binder() -> None:
    """An operation read from an unrelated object is a TypeError."""

    class NotAClient:
        pass

    with pytest.raises(TypeError):
        AsyncClient.faceswap_plus.__get__(NotAClient(), NotAClient)  # type: ignore[call-overload]


def test_public_operations_registry_matches_async_client() -> None:
    """PUBLIC_OPERATIONS lists exactly the public API operations of AsyncClient."""
    public = sorted(
        name
        for name, value in vars(AsyncClient).items()
        if not name.startswith("_")
        and name != "aclose"  # lifecycle, not an operation
        and (isinstance(value, Operation) or inspect.iscoroutinefunction(value))
    )
    assert list(PUBLIC_OPERATIONS) == public
