"""Whose a Hugging Face token is: the CLI's own (HF_TOKEN), and the user an API caller's token
belongs to (the Hub's whoami, remembered a while by a hash of the token, never the token).

The app identifies signed-in users by their OAuth profile; API callers pass only a token, and
ui/auth.py asks `user_for_token` whose it is.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any, Callable

from . import calls as hub_calls
from .calls import HubCallFailed, Sleep

WHOAMI_TTL_S = 600.0  # how long the user name of a token is remembered
WHOAMI_CACHE_SIZE = 1024

# sha256(token) -> (user name, monotonic expiry); never the token itself.
_token_users: dict[str, tuple[str, float]] = {}
_token_users_lock = threading.Lock()


class TokenError(ValueError):
    """A Hugging Face token that is missing, not accepted by the Hub, or can't be checked now."""


def token_from_env() -> str | None:
    """HF_TOKEN from the environment: the CLI's (or a duplicated Space's) own token, or None.

    Only the CLI calls this; the app passes each signed-in user's OAuth token instead.
    """
    return os.environ.get("HF_TOKEN", "").strip() or None


def user_for_token(token: str | None, *, api: Any = None, sleep: Sleep = time.sleep,
                   ttl: float = WHOAMI_TTL_S, clock: Callable[[], float] = time.monotonic) -> str:
    """The Hugging Face user name a token belongs to (the Hub's whoami), remembered for `ttl` s.

    The cache spares a Hub call per API request and holds only a hash of each token. Raises
    TokenError when the Hub refuses the token or can't be asked (offline).
    """
    if not token:
        raise TokenError("no Hugging Face token: sign in with Hugging Face, or pass your token "
                         "(gradio_client: Client(url, oauth_token='hf_...'))")
    key = hashlib.sha256(token.encode("utf-8")).hexdigest()
    with _token_users_lock:
        known = _token_users.get(key)
    if known and known[1] > clock():
        return known[0]
    api = api if api is not None else hub_calls.hf_api()
    try:
        name = hub_calls.whoami(api, token, sleep)
    except HubCallFailed as err:
        renew = ("; make a new one at https://huggingface.co/settings/tokens"
                 if err.kind == "unauthorized" else "")
        raise TokenError(f"the Hugging Face token could not be checked: {err.reason}{renew}") \
            from None
    with _token_users_lock:
        now = clock()
        if len(_token_users) >= WHOAMI_CACHE_SIZE:
            for stale in [k for k, (_, expiry) in _token_users.items() if expiry <= now]:
                del _token_users[stale]
            if len(_token_users) >= WHOAMI_CACHE_SIZE:
                _token_users.clear()
        _token_users[key] = (name, now + ttl)
    return name
