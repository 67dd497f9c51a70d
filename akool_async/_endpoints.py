"""Every AKOOL operation, declared once as data, and the descriptors that bind them to clients.

``ENDPOINTS`` is the table: one frozen ``Endpoint`` per HTTP operation (method, path, host,
request and response types, envelope kind, whether it creates a job, which decides
retry-safety, and the encoding quirks of its request). Nothing else in the SDK knows a path,
and nothing switches on an endpoint's name: what differs between endpoints is a field here.

The public operations of a client are ``Operation`` descriptors over that table. Reading one
from an instance binds it:

* on an ``AsyncBinder`` (``AsyncClient``) it gives an ``AsyncOperation``, called as
  ``await client.faceswap_plus(PlusSwap(...))`` or ``await client.faceswap_plus(source_url=...)``
  (the keyword arguments are the request class's, through a ``ParamSpec``, so type checkers
  see the real signature), which ends in ``AsyncBinder._call(endpoint, request)``;
* on a ``BlockingBinder`` (the blocking ``Client``) it gives a ``BlockingOperation`` with the
  same two call forms returning the response directly, which ends in
  ``BlockingBinder._call_blocking(endpoint, request)``.

The non-endpoint conveniences of ``AsyncClient`` (``get_results``, ...) are mirrored on a
blocking client with ``BlockingMirror(AsyncClient.get_results)``: one line each, typed from
the async method's own signature. ``PUBLIC_OPERATIONS`` lists every public operation name, so
a test can check that both clients expose the same set.
"""

from __future__ import annotations

import abc
import copy
import enum
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import (
    Any,
    Concatenate,
    Final,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    overload,
)

import attrs

from ._frames import AnalyzeFrames, FrameAnalysis
from ._models import (
    Credit,
    CreditQuery,
    Deleted,
    DeleteQuery,
    DetectFaces,
    FaceDetection,
    ImageSwap,
    LegacyDetect,
    LegacyFaceDetection,
    PlusSwap,
    ProSwap,
    ResultPage,
    ResultsQuery,
    SwapJob,
    Token,
    TokenRequest,
    VideoSwap,
)

__all__ = [
    "ANALYZE_FRAMES",
    "DELETE_RESULTS",
    "DETECT_FACES",
    "ENDPOINTS",
    "FACESWAP_IMAGE",
    "FACESWAP_PLUS",
    "FACESWAP_PRO",
    "FACESWAP_VIDEO",
    "GET_CREDIT",
    "GET_TOKEN",
    "LEGACY_DETECT",
    "LIST_RESULTS",
    "PUBLIC_OPERATIONS",
    "AsyncBinder",
    "AsyncOperation",
    "BlockingBinder",
    "BlockingMirror",
    "BlockingOperation",
    "Endpoint",
    "Envelope",
    "Host",
    "ImageEncoding",
    "Operation",
    "method_signature",
    "not_on_the_class",
]

P = ParamSpec("P")
R = TypeVar("R")
ReqT = TypeVar("ReqT")
RespT = TypeVar("RespT")


class Host(enum.Enum):
    """Which base URL an endpoint lives on."""

    API = "api"
    """``base_url`` (``https://openapi.akool.com``)."""
    LEGACY_DETECTOR = "legacy_detector"
    """``detector_base_url`` (``https://sg3.akool.com``)."""


class Envelope(enum.Enum):
    """How an endpoint wraps its answer (contract quirk 5)."""

    STANDARD = "standard"
    """``{code, msg, data}``; success is ``code == 1000``."""
    TOKEN = "token"
    """getToken: ``{code, token}`` with the token at the top level."""
    DETECTOR = "detector"
    """``{error_code, error_msg, ...}`` at the top level; success is ``error_code == 0``."""
    ANALYSIS = "analysis"
    """Analyze Frames: ``{success, error, ...}`` at the top level; success is ``success: true``."""


class ImageEncoding(enum.Enum):
    """How a detector wants the image bytes of a request's ``img``."""

    BASE64 = "base64"
    """Plain base64 (Detect Faces)."""
    DATA_URI = "data_uri"
    """A ``data:image/...;base64,...`` URI, its type sniffed from the bytes (legacy detector)."""


@attrs.frozen(kw_only=True)
class Endpoint(Generic[ReqT, RespT]):
    """One HTTP operation of the API.

    Attributes:
        name: Stable name (also the key of the client's request counters).
        method: ``"GET"`` (request encoded as query parameters) or ``"POST"`` (JSON body).
        path: Path on ``host``.
        request_type: The request model.
        response_type: The model the answer decodes to.
        host: Which base URL.
        envelope: How the answer is wrapped.
        creates_job: A job-creating submit (charged): retried only when the request provably
            never reached the server or was refused without action. Other endpoints are reads
            or idempotent and are retried on any transient failure.
        authenticated: Sends the auth header (everything but getToken).
        explicit_fields: ``(wire key, request attribute)`` pairs always sent with the
            attribute's value, which resolves a None default (Plus: ``single_face_mode``,
            where None means "pick the documented pairing").
        image_encoding: How the request's ``img`` (bytes, or an image file's path) is sent;
            None for requests without an ``img``.
        status_poll: The status poll (listbyids): the rate controller keeps
            ``RateLimit.poll_share`` of the rate for it.
    """

    name: str
    method: Literal["GET", "POST"]
    path: str
    request_type: type[ReqT]
    response_type: type[RespT]
    host: Host = Host.API
    envelope: Envelope = Envelope.STANDARD
    creates_job: bool = False
    authenticated: bool = True
    explicit_fields: tuple[tuple[str, str], ...] = ()
    image_encoding: ImageEncoding | None = None
    status_poll: bool = False


GET_TOKEN: Final = Endpoint(
    name="get_token",
    method="POST",
    path="/api/open/v3/getToken",
    request_type=TokenRequest,
    response_type=Token,
    envelope=Envelope.TOKEN,
    authenticated=False,
)
FACESWAP_PLUS: Final = Endpoint(
    name="faceswap_plus",
    method="POST",
    path="/api/open/v4/faceswap/faceswapPlusByImage",
    request_type=PlusSwap,
    response_type=SwapJob,
    creates_job=True,
    # Always explicit: None means "pick the documented pairing" (contract 3.1, quirk 14).
    explicit_fields=(("single_face_mode", "resolved_single_face_mode"),),
)
FACESWAP_PRO: Final = Endpoint(
    name="faceswap_pro",
    method="POST",
    path="/api/open/v4/faceswap/faceswapByImage",
    request_type=ProSwap,
    response_type=SwapJob,
    creates_job=True,
)
FACESWAP_IMAGE: Final = Endpoint(
    name="faceswap_image",
    method="POST",
    path="/api/open/v3/faceswap/highquality/specifyimage",
    request_type=ImageSwap,
    response_type=SwapJob,
    creates_job=True,
)
FACESWAP_VIDEO: Final = Endpoint(
    name="faceswap_video",
    method="POST",
    path="/api/open/v3/faceswap/highquality/specifyvideo",
    request_type=VideoSwap,
    response_type=SwapJob,
    creates_job=True,
)
LIST_RESULTS: Final = Endpoint(
    name="list_results",
    method="GET",
    path="/api/open/v3/faceswap/result/listbyids",
    request_type=ResultsQuery,
    response_type=ResultPage,
    status_poll=True,
)
DELETE_RESULTS: Final = Endpoint(
    name="delete_results",
    method="POST",
    path="/api/open/v3/faceswap/result/delbyids",
    request_type=DeleteQuery,
    response_type=Deleted,
)
GET_CREDIT: Final = Endpoint(
    name="quota",
    method="GET",
    path="/api/open/v3/faceswap/quota/info",
    request_type=CreditQuery,
    response_type=Credit,
)
DETECT_FACES: Final = Endpoint(
    name="detect_faces",
    method="POST",
    path="/interface/detect-api/detect_faces",
    request_type=DetectFaces,
    response_type=FaceDetection,
    envelope=Envelope.DETECTOR,
    image_encoding=ImageEncoding.BASE64,
)
ANALYZE_FRAMES: Final = Endpoint(
    name="analyze_frames",
    method="POST",
    path="/interface/detect-api/faceswap/analyze_frames",
    request_type=AnalyzeFrames,
    response_type=FrameAnalysis,
    envelope=Envelope.ANALYSIS,
)
LEGACY_DETECT: Final = Endpoint(
    name="detect_legacy",
    method="POST",
    path="/detect",
    request_type=LegacyDetect,
    response_type=LegacyFaceDetection,
    host=Host.LEGACY_DETECTOR,
    envelope=Envelope.DETECTOR,
    image_encoding=ImageEncoding.DATA_URI,
)

#: The table, by name.
ENDPOINTS: Final[Mapping[str, Endpoint[Any, Any]]] = {
    endpoint.name: endpoint
    for endpoint in (
        GET_TOKEN,
        FACESWAP_PLUS,
        FACESWAP_PRO,
        FACESWAP_IMAGE,
        FACESWAP_VIDEO,
        LIST_RESULTS,
        DELETE_RESULTS,
        GET_CREDIT,
        DETECT_FACES,
        ANALYZE_FRAMES,
        LEGACY_DETECT,
    )
}

#: The API operations of a client, sorted: the ``Operation`` descriptors plus the conveniences
#: over ``_call`` (``get_results``, ``delete_results``, ``get_credit``), ``download`` (one
#: result file, verified, into a directory or an object store) and ``wait`` (one job, through
#: the job service's shared poller): every public coroutine method of ``AsyncClient`` but
#: ``aclose``. The other job methods (``swap_many``, ``use_webhooks``...) are not listed.
PUBLIC_OPERATIONS: Final[tuple[str, ...]] = (
    "analyze_frames",
    "delete_results",
    "detect_faces",
    "detect_faces_legacy",
    "download",
    "faceswap_image",
    "faceswap_plus",
    "faceswap_pro",
    "faceswap_video",
    "get_credit",
    "get_results",
    "wait",
)


_SELF: Final = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def method_signature(bound: inspect.Signature) -> inspect.Signature:
    """``bound`` with ``self`` first: what ``inspect.signature`` shows for a method on a class."""
    return bound.replace(parameters=[_SELF, *bound.parameters.values()])


def not_on_the_class(name: str) -> NoReturn:
    """What calling a client's operation on the class (``AsyncClient.faceswap_plus()``) does."""
    raise TypeError(f"{name}() is a client method: call it on an instance, e.g. client.{name}()")


class AsyncBinder(abc.ABC):
    """What an ``Operation`` needs from an async client."""

    __slots__ = ()

    @abc.abstractmethod
    async def _call(self, endpoint: Endpoint[Any, R], request: Any) -> R:
        """Send ``request`` to ``endpoint`` (with the client's retries) and decode the answer."""


class BlockingBinder(abc.ABC):
    """What an ``Operation`` and a ``BlockingMirror`` need from a blocking client."""

    __slots__ = ()

    @abc.abstractmethod
    def _call_blocking(self, endpoint: Endpoint[Any, R], request: Any) -> R:
        """Run the async client's ``_call(endpoint, request)`` to completion and return it."""

    @abc.abstractmethod
    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run the async client's method ``name(*args, **kwargs)`` to completion."""


class Operation(Generic[P, ReqT, RespT]):
    """A public operation: an endpoint plus the request class whose constructor it accepts.

    Read from a client class it stands for the method: ``inspect.signature`` and ``help()``
    show the request's fields (``AsyncClient.faceswap_plus`` returns an awaitable,
    ``Client.faceswap_plus`` the answer itself).

    Args:
        endpoint: The endpoint it calls.
        request_factory: The request class (its constructor gives the keyword signature).
    """

    def __init__(
        self, endpoint: Endpoint[ReqT, RespT], request_factory: Callable[P, ReqT], *, name: str
    ) -> None:
        if request_factory is not endpoint.request_type:
            raise TypeError(f"{name}: the factory must be {endpoint.request_type.__name__}")
        self.endpoint = endpoint
        self.request_factory = request_factory
        self.name = name
        self.__name__ = self.__qualname__ = name
        self.__module__ = "akool_async"
        self.__doc__ = endpoint.request_type.__doc__
        self._awaitable = True
        self._blocking_views: dict[type[Any], Self] = {}

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self.name:
            raise TypeError(f"operation {self.name!r} bound under the name {name!r}")
        if "." not in self.__qualname__:  # the defining class, not a class reusing it
            self.__qualname__ = f"{owner.__qualname__}.{name}"

    @property
    def __signature__(self) -> inspect.Signature:
        return method_signature(_signature(self, awaitable=self._awaitable))

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        not_on_the_class(self.name)

    def _on_blocking_class(self, owner: type[Any]) -> Self:
        """This operation as a blocking class shows it (same endpoint, blocking signature)."""
        view = self._blocking_views.get(owner)
        if view is None:
            view = copy.copy(self)
            view._awaitable = False
            view.__qualname__ = f"{owner.__qualname__}.{self.name}"
            self._blocking_views[owner] = view
        return view

    def make_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ReqT:
        """The request object: the one passed positionally, or one built from the keywords."""
        request_type = self.endpoint.request_type
        if len(args) == 1 and not kwargs and isinstance(args[0], request_type):
            return args[0]
        if args and kwargs:
            raise TypeError(
                f"{self.name}() takes a {request_type.__name__} or keyword arguments, not both"
            )
        if args:
            raise TypeError(
                f"{self.name}() takes a {request_type.__name__} or keyword arguments, "
                f"not {type(args[0]).__name__}"
            )
        factory = cast("Callable[..., ReqT]", self.request_factory)
        return factory(**kwargs)

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, obj: AsyncBinder, owner: type[Any] | None = None
    ) -> AsyncOperation[P, ReqT, RespT]: ...
    @overload
    def __get__(
        self, obj: BlockingBinder, owner: type[Any] | None = None
    ) -> BlockingOperation[P, ReqT, RespT]: ...
    def __get__(self, obj: object, owner: type[Any] | None = None) -> Any:
        if obj is None:
            if owner is not None and issubclass(owner, BlockingBinder):
                return self._on_blocking_class(owner)
            return self
        if isinstance(obj, AsyncBinder):
            return AsyncOperation(self, obj)
        if isinstance(obj, BlockingBinder):
            return BlockingOperation(self, obj)
        raise TypeError(f"{type(obj).__name__} is neither an AsyncBinder nor a BlockingBinder")


def _signature(operation: Operation[Any, Any, Any], *, awaitable: bool) -> inspect.Signature:
    request_type = operation.endpoint.request_type
    response_type = operation.endpoint.response_type
    params = list(inspect.signature(request_type).parameters.values())  # plain types (_models)
    returns = f"Awaitable[{response_type.__name__}]" if awaitable else response_type.__name__
    return inspect.Signature(params, return_annotation=returns)


class AsyncOperation(Generic[P, ReqT, RespT]):
    """An ``Operation`` bound to an async client; await its call."""

    def __init__(self, operation: Operation[P, ReqT, RespT], client: AsyncBinder) -> None:
        self._operation = operation
        self._client = client
        self.__doc__ = operation.__doc__

    @property
    def __signature__(self) -> inspect.Signature:
        return _signature(self._operation, awaitable=True)

    @property
    def endpoint(self) -> Endpoint[ReqT, RespT]:
        """The endpoint this operation calls."""
        return self._operation.endpoint

    @overload
    async def __call__(self, request: ReqT, /) -> RespT: ...
    @overload
    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> RespT: ...
    async def __call__(self, *args: Any, **kwargs: Any) -> RespT:
        request = self._operation.make_request(args, kwargs)
        return await self._client._call(self._operation.endpoint, request)

    def __repr__(self) -> str:
        return f"<async operation {self._operation.name} of {self._client!r}>"


class BlockingOperation(Generic[P, ReqT, RespT]):
    """An ``Operation`` bound to a blocking client; its call returns the response."""

    def __init__(self, operation: Operation[P, ReqT, RespT], client: BlockingBinder) -> None:
        self._operation = operation
        self._client = client
        self.__doc__ = operation.__doc__

    @property
    def __signature__(self) -> inspect.Signature:
        return _signature(self._operation, awaitable=False)

    @property
    def endpoint(self) -> Endpoint[ReqT, RespT]:
        """The endpoint this operation calls."""
        return self._operation.endpoint

    @overload
    def __call__(self, request: ReqT, /) -> RespT: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> RespT: ...
    def __call__(self, *args: Any, **kwargs: Any) -> RespT:
        request = self._operation.make_request(args, kwargs)
        return self._client._call_blocking(self._operation.endpoint, request)

    def __repr__(self) -> str:
        return f"<blocking operation {self._operation.name} of {self._client!r}>"


class BlockingMirror(Generic[P, R]):
    """The blocking twin of an async client method, typed from the method's signature.

    ``get_results = BlockingMirror(AsyncClient.get_results)`` in a ``BlockingBinder`` class
    gives ``client.get_results(ids) -> list[SwapResult]`` that runs
    ``BlockingBinder._run_blocking("get_results", ids)``.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], Awaitable[R]]) -> None:
        self._method = method
        self.name = self.__name__ = self.__qualname__ = method.__name__
        self.__module__ = "akool_async"
        self.__doc__ = method.__doc__
        signature = inspect.signature(method)  # a bound method's: without ``self``
        self.bound_signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        # On the class: a method's signature (with ``self``); for inspect and help().
        self.__signature__ = method_signature(self.bound_signature)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self.name:
            raise TypeError(f"mirror of {self.name!r} bound under the name {name!r}")
        if "." not in self.__qualname__:  # the defining class, not a class reusing it
            self.__qualname__ = f"{owner.__qualname__}.{name}"

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        not_on_the_class(self.name)

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: BlockingBinder, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(self, obj: BlockingBinder | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        bound = functools.partial(obj._run_blocking, self.name)
        functools.update_wrapper(bound, self._method)
        bound.__signature__ = self.bound_signature  # type: ignore[attr-defined]
        return bound
