"""Who is asking: the signed-in user, an API caller's token owner, or the one local user.

With sign-in in effect (TALEWEAVER_REQUIRE_LOGIN=always, or auto on any Space: a public Space
must never put its visitors in one shared folder) every action needs a user: a browser
session's profile, or, for API callers, the owner of the token they pass
(`Client(url, oauth_token="hf_...")`). Their own token is used for their Hub repos, never the
Space's HF_TOKEN. Without sign-in there is one local user, and pushes use
HF_TOKEN.
"""
import functools
import inspect
import os
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import gradio as gr
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from pipeline.actions.system import own_token, user_for_token
from pipeline.settings import Settings
from ui.common import caller_message, user_errors

SIGN_IN = ("Please sign in with Hugging Face first (the button at the top of the page). "
           "API callers pass their token: Client(url, oauth_token='hf_...').")
UPLOAD_SIGN_IN = ("Please sign in with Hugging Face before uploading photos. API callers pass "
                  "their token for uploads too: Client(url, token='hf_...', oauth_token='hf_...').")

_SIGNED_IN = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=annotation)
              for name, annotation in (("profile", Optional[gr.OAuthProfile]),
                                       ("token", Optional[gr.OAuthToken]))]


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: the app's settings, the user whose folder it works in, and the
    Hub token used on their behalf."""

    settings: Settings
    user: str
    token: Optional[str]


def signed_in(settings: Settings, fn: Callable, *, quiet: bool = False,
              fresh: bool = False) -> Callable:
    """gradio's function for a handler `fn(caller, *inputs)`: it takes the inputs, then the
    visitor's profile and token (which gradio fills in), works out the Caller once, and
    turns the engine's errors into messages (`user_errors`).

    Without sign-in where it is required, a request is refused with a message; with `quiet`
    the handler gets None instead (lists then show nothing), for what a page does by itself.
    With `fresh` an API caller's token is checked with the Hub now rather than remembered
    (deleting and pushing: a revoked token stops at once).
    """
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())[1:]
    progress = [p for p in params if isinstance(p.default, gr.Progress)]
    inputs = [p for p in params if p not in progress]
    outer = signature.replace(parameters=inputs + _SIGNED_IN + progress)

    def call(args, kwargs):
        values = outer.bind(*args, **kwargs)
        values.apply_defaults()
        arguments = dict(values.arguments)
        profile, token = arguments.pop("profile"), arguments.pop("token")
        caller = (identify_quietly(settings, profile, token) if quiet
                  else identify(settings, profile, token, fresh=fresh))
        return fn(caller, **arguments)

    if inspect.isgeneratorfunction(fn):  # it shows something, then may fail
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            yield from call(args, kwargs)
    else:
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            return call(args, kwargs)

    handler.__signature__ = outer  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in outer.parameters.values()
                               if p.annotation is not inspect.Parameter.empty}
    if signature.return_annotation is not inspect.Signature.empty:
        handler.__annotations__["return"] = signature.return_annotation
    return user_errors(handler)


def oauth_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """True on a Space with Hugging Face sign-in set up (hf_oauth: true in the README)."""
    return environ.get("SYSTEM") == "spaces" and bool(environ.get("OAUTH_CLIENT_ID"))


def sign_in_required(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether every action needs a signed-in user (or an API caller's token): with "auto", on
    any Space, signed-in or not (only TALEWEAVER_REQUIRE_LOGIN=never shares one local user)."""
    if settings.require_login == "auto":
        return environ.get("SYSTEM") == "spaces"
    return settings.require_login == "always"


def show_login_button(settings: Settings) -> bool:
    """The Sign in button only where sign-in works: off a Space gradio would mock it."""
    return sign_in_required(settings) and oauth_configured()


def identify(settings: Settings, profile: Optional[gr.OAuthProfile],
             token: Optional[gr.OAuthToken], *, fresh: bool = False) -> Caller:
    """Who a request acts for; gr.Error when sign-in is required and missing. An API caller's
    token is checked with the Hub (remembered a minute, asked again with `fresh`)."""
    if not sign_in_required(settings):
        return Caller(settings, settings.local_user, own_token())
    if profile is not None:
        return Caller(settings, profile.username, token.token if token else None)
    if token is not None and token.token:
        return Caller(settings, user_for_token(token.token, fresh=fresh), token.token)
    raise gr.Error(SIGN_IN, print_exception=False)


def identify_quietly(settings: Settings, profile: Optional[gr.OAuthProfile],
                     token: Optional[gr.OAuthToken]) -> Optional[Caller]:
    """Who a request acts for, or None for a visitor who hasn't signed in yet."""
    try:
        return identify(settings, profile, token)
    except gr.Error:
        return None


class UploadGate:
    """ASGI middleware on gradio's upload route (POST .../upload): where sign-in is required,
    only a signed-in session or a request carrying a token the Hub accepts may upload (an API
    caller's `Client(url, token=...)`), and a request larger than the photos a character may
    take (per photo TALEWEAVER_MAX_UPLOAD_MB, which gradio's max_file_size also enforces while
    it reads) is refused from its Content-Length, before anything is read or stored."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings
        # a character takes up to twice max_photos files; 1 MB covers the multipart framing
        self.limit = settings.max_upload_bytes * 2 * settings.max_photos + 2 ** 20

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "POST"
                or not scope["path"].rstrip("/").endswith("/upload")):
            return await self.app(scope, receive, send)
        refusal = self._too_large(dict(scope["headers"])) or await self._unsigned(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    def _too_large(self, headers: dict) -> Optional[PlainTextResponse]:
        length = headers.get(b"content-length", b"")
        if not length.isdigit():
            return PlainTextResponse("uploads must say their size (Content-Length)", 411)
        if int(length) > self.limit:
            return PlainTextResponse(
                f"this upload is {int(length) / 2**20:.0f} MB; the limit is "
                f"{self.settings.max_upload_mb} MB a photo and {2 * self.settings.max_photos} "
                "photos at once", 413)
        return None

    async def _unsigned(self, scope) -> Optional[PlainTextResponse]:
        if not sign_in_required(self.settings):
            return None
        info = (scope.get("session") or {}).get("oauth_info") or {}
        if info and (info.get("expires_at") or time.time() + 1) > time.time():
            return None
        headers = dict(scope["headers"])
        bearer = (headers.get(b"x-hf-authorization") or headers.get(b"authorization") or b"")
        token = bearer.decode("latin-1").removeprefix("Bearer ").strip()
        if not token:
            return PlainTextResponse(UPLOAD_SIGN_IN, 401)
        try:
            await run_in_threadpool(user_for_token, token)
        except Exception as err:  # noqa: BLE001 - a refused token, or the Hub unreachable
            return PlainTextResponse(caller_message(err), 401)
        return None


def upload_gate(settings: Settings) -> Middleware:
    """The UploadGate for `launch(app_kwargs={"middleware": [...]})`."""
    return Middleware(UploadGate, settings=settings)


def hub_advice(settings: Settings, reason: str, again: str) -> str:
    """What to do in the app after a Hub upload or repo deletion that did not happen, from the
    HubResult's `reason`; `again` is how to retry here, e.g. 'press "Upload to my Hugging
    Face repo"'. Plain text (the engine's message says what happened; this, what to do)."""
    if reason in ("", "offline"):
        return ""  # done, or nothing a visitor can change
    if sign_in_required(settings):
        sign_in = "sign in with Hugging Face (the button at the top of the page)"
        renew = "sign in with Hugging Face again"
    else:
        sign_in = "start the app with HF_TOKEN set to a Hugging Face write token"
        renew = "start the app with a valid HF_TOKEN (a write token)"
    if reason == "no_token":
        return f"To do it, {sign_in}, then {again}."
    if reason in ("unauthorized", "forbidden"):
        return f"{renew[0].upper()}{renew[1:]}, then {again}."
    if reason == "public_repo":
        return f"Then {again}."
    return f"Try again in a few minutes: {again}."
