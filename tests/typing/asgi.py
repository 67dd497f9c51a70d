"""Type-checked by mypy, never run: the ASGI receiver fits Starlette's and FastAPI's own types."""

from __future__ import annotations

from typing import assert_type

from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from akool_async import WebhookASGIApp, WebhookReceiver


def asgi(receiver: WebhookReceiver) -> None:
    webhooks = assert_type(receiver.asgi(), WebhookASGIApp)
    app: ASGIApp = webhooks  # what every ASGI server and middleware accepts
    assert_type(webhooks.route("/akool/webhook"), Route)
    Starlette(routes=[webhooks.route()])
    api = FastAPI(routes=[webhooks.route()])
    api.add_route("/akool/webhook", webhooks.endpoint, methods=["POST"])
    assert_type(webhooks.receiver, WebhookReceiver)
    del app


async def fastapi_route(webhooks: WebhookASGIApp, request: Request) -> Response:
    return await webhooks.endpoint(request)
