"""Whose a Hugging Face token is: the CLI's own (HF_TOKEN), and the user an API caller's token
belongs to (the Hub's whoami, remembered a while by a hash of the token, never the token).

The app identifies signed-in users by their OAuth profile; API callers pass only a token, and
ui/auth.py asks `user_for_token` whose it is. Answers are remembered for WHOAMI_TTL_S (so a
revoked token stops working within that time; `fresh=True` asks the Hub again, for deleting),
and a refused token for BAD_TOKEN_TTL_S (so repeating it costs no Hub call). Only requests
with the same token wait for one another's Hub call; nobody waits for a slow answer about
someone else's token, and a slow or rate-limited Hub is asked at most WHOAMI_ATTEMPTS times.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from typing import Any, Callable, Iterator

from . import calls as hub_calls
from .calls import HubCallFailed, Sleep

WHOAMI_TTL_S = 60.0  # how long the user name of a token is remembered
BAD_TOKEN_TTL_S = 60.0  # how long a token the Hub refused stays refused without asking again
WHOAMI_ATTEMPTS = 2  # a request waits for at most this many tries (one short backoff)
WHOAMI_MAX_WAIT_S = 2.0  # that backoff, whatever Retry-After asks
WHOAMI_CACHE_SIZE = 1024

# sha256(token) -> (user name, or None for a refused token; the message; monotonic expiry).
_token_users: dict[str, tuple[str | None, str, float]] = {}
_token_users_lock = threading.Lock()  # guards the two dicts; never held during a Hub call
_asking: dict[str, tuple[threading.Lock, int]] = {}  # per token: its lock and how many use it


class TokenError(ValueError):
    """A Hugging Face token that is missing, not accepted by the Hub, or can't be checked now."""


def token_from_env() -> str | None:
    """HF_TOKEN from the environment: the CLI's (or a duplicated Space's) own token, or None.

    Only the CLI calls this; the app passes each signed-in user's OAuth token instead.
    """
    return os.environ.get("HF_TOKEN", "").strip() or None


def user_for_token(token: str | None, *, api: Any = None, sleep: Sleep = time.sleep,
                   ttl: float = WHOAMI_TTL_S, clock: Callable[[], float] = time.monotonic,
                   fresh: bool = False) -> str:
    """The Hugging Face user name a token belongs to (the Hub's whoami), remembered for `ttl` s
    (`fresh`: ask the Hub now). Raises TokenError when the Hub refuses the token (remembered
    for BAD_TOKEN_TTL_S) or can't be asked (offline, rate limits: not remembered)."""
    if not token:
        raise TokenError("no Hugging Face token: sign in with Hugging Face, or pass your token "
                         "(gradio_client: Client(url, oauth_token='hf_...'))")
    key = hashlib.sha256(token.encode("utf-8")).hexdigest()
    if not fresh:
        known = _remembered(key, clock)
        if known is not None:
            return known
    with _asking_about(key):
        if not fresh:  # another request with this token may have just asked
            known = _remembered(key, clock)
            if known is not None:
                return known
        api = api if api is not None else hub_calls.hf_api()
        try:
            name = hub_calls.whoami(api, token, sleep, attempts=WHOAMI_ATTEMPTS,
                                    max_wait=WHOAMI_MAX_WAIT_S)
        except HubCallFailed as err:
            message = f"the Hugging Face token could not be checked: {err.reason}"
            if err.kind == "unauthorized":
                message += "; make a new one at https://huggingface.co/settings/tokens"
                _remember(key, None, message, clock() + BAD_TOKEN_TTL_S, clock)
            raise TokenError(message) from None
        _remember(key, name, "", clock() + ttl, clock)
        return name


def _remembered(key: str, clock: Callable[[], float]) -> str | None:
    """The remembered user of a token; TokenError for a remembered refusal; None if unknown."""
    with _token_users_lock:
        known = _token_users.get(key)
    if known is None or known[2] <= clock():
        return None
    name, message, _ = known
    if name is None:
        raise TokenError(message)
    return name


def _remember(key: str, name: str | None, message: str, expiry: float,
              clock: Callable[[], float]) -> None:
    with _token_users_lock:
        if len(_token_users) >= WHOAMI_CACHE_SIZE:
            now = clock()
            for stale in [k for k, (*_, ends) in _token_users.items() if ends <= now]:
                del _token_users[stale]
            if len(_token_users) >= WHOAMI_CACHE_SIZE:
                _token_users.clear()
        _token_users[key] = (name, message, expiry)


@contextlib.contextmanager
def _asking_about(key: str) -> Iterator[None]:
    """Hold the lock of one token (made when first needed, dropped when nobody uses it)."""
    with _token_users_lock:
        lock, users = _asking.get(key, (threading.Lock(), 0))
        _asking[key] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _token_users_lock:
            lock, users = _asking[key]
            if users == 1:
                del _asking[key]
            else:
                _asking[key] = (lock, users - 1)
