"""The clients' methods as inspect, help() and IDEs see them, on the class and on an instance."""

from __future__ import annotations

import inspect
import pydoc
import re

import pytest

from akool_async import AsyncClient, Client
from akool_async._endpoints import PUBLIC_OPERATIONS

METHODS = [*PUBLIC_OPERATIONS, "wait", "swap_many", "statistics", "with_options"]


@pytest.mark.parametrize("cls", [AsyncClient, Client])
@pytest.mark.parametrize("name", METHODS)
def test_signature_on_the_class_starts_with_self(cls: type, name: str) -> None:
    """inspect.signature works on every method read from the class, self first, as for a def."""
    parameters = list(inspect.signature(getattr(cls, name)).parameters)
    assert parameters[0] == "self"


@pytest.mark.parametrize("name", PUBLIC_OPERATIONS)
def test_instance_signatures_show_plain_types(name: str) -> None:
    """An operation's signature shows the field types, not the wire-name annotations."""
    client = AsyncClient(api_key="sk-introspection")
    text = str(inspect.signature(getattr(client, name)))
    assert ("Annotated" in text, "_wire" in text) == (False, False)


def test_each_class_shows_its_own_return_type() -> None:
    """On AsyncClient an operation returns an awaitable; on Client the answer itself."""
    returns = (
        inspect.signature(AsyncClient.faceswap_plus).return_annotation,
        inspect.signature(Client.faceswap_plus).return_annotation,
    )
    assert returns == ("Awaitable[SwapJob]", "SwapJob")


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (Client.swap_many, "swap_many(self, requests: 'Iterable[R] | AsyncIterable[R]', *,"),
        (
            AsyncClient.faceswap_plus,
            "faceswap_plus(self, *, source_url: 'str | os.PathLike[str]', target_url:",
        ),
        (Client.get_results, "get_results(self, ids: 'Iterable[str]') -> 'list[SwapResult]'"),
    ],
)
def test_help_shows_the_signature_and_docstring(method: object, expected: str) -> None:
    """help() on a class's method documents it as a method: signature, then its docstring."""
    text = pydoc.render_doc(method, renderer=pydoc.plaintext)
    # Python 3.13's pydoc puts a long signature one parameter per line: compare it flattened.
    flat = re.sub(r"\(\s+", "(", re.sub(r",?\n\s*\)", ")", text))
    flat = re.sub(r"\n\s+", " ", flat)
    assert expected in flat
    assert (method.__doc__ or "").split("\n", 1)[0] in text


def test_calling_on_the_class_says_what_to_do() -> None:
    """Calling an operation on the class (a common slip) says to call it on a client."""
    with pytest.raises(TypeError, match=r"call it on an instance, e\.g\. client\.faceswap_plus"):
        AsyncClient.faceswap_plus(source_url="https://x/a", target_url="https://x/b")


def test_qualified_names_name_the_class() -> None:
    """Each class's method has that class in its qualified name (as help() and IDEs show)."""
    names = (AsyncClient.faceswap_plus.__qualname__, Client.faceswap_plus.__qualname__)
    assert names == ("AsyncClient.faceswap_plus", "Client.faceswap_plus")


def test_model_signatures_show_plain_types() -> None:
    """help() and IDEs show a model's fields with their types, not the wire annotations."""
    import akool_async

    noisy = [
        name
        for name in akool_async.__all__
        if isinstance(model := getattr(akool_async, name), type)
        and hasattr(model, "__attrs_attrs__")
        and "_wire" in str(inspect.signature(model))
    ]
    assert noisy == []
