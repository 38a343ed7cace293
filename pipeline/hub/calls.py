"""Calls to the Hugging Face Hub with retries, and Hub errors sorted into kinds with a reason
for people. hub.py and hub_tokens.py make every Hub call through `call_hub`, on the client that
`hf_api()` builds (the one place tests swap for a fake).

Transient errors (network, 409, 429, 5xx) are retried with backoff; the rest fail at once. A
call that gives up raises HubCallFailed with a `kind` (one of KINDS, for code) and a `reason`
(what happened, for people; how to fix it is each front door's to say). Jobs and storage buckets
(pipeline/jobs/) go through the same client and the same `call_hub`.
"""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

from huggingface_hub.errors import (BucketNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    OfflineModeIsEnabled, RepositoryNotFoundError)
from huggingface_hub.utils import httpx  # the HTTP module huggingface_hub itself uses

log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], None]

ATTEMPTS = 4  # tries per Hub call for transient errors (network, 409, 429, 5xx)
FIRST_WAIT_S = 2.0  # backoff before the second try; doubles each time
MAX_WAIT_S = 60.0
KINDS = ("offline", "not_found", "unauthorized", "forbidden", "billing", "conflict",
         "rate_limited", "server", "http", "network")
UNREACHABLE = ("network", "offline", "server", "rate_limited")  # the Hub can't be reached now

_HUB_ERRORS = (HfHubHTTPError, LocalEntryNotFoundError, httpx.HTTPError, ConnectionError,
               TimeoutError)


class HubCallFailed(Exception):
    """A Hub call that failed for good: `kind` (one of KINDS) and `reason` (for people)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def hf_api():
    """The Hub client every Hub call goes through."""
    from huggingface_hub import HfApi

    return HfApi(library_name="taleweaver")


def whoami(api, token: str, sleep: Sleep) -> str:
    """The user name the Hub gives for this token."""
    return call_hub(lambda: api.whoami(token=token), sleep)["name"]


def call_hub(fn: Callable[[], T], sleep: Sleep, attempts: int = ATTEMPTS) -> T:
    """fn(), retried with backoff on transient Hub errors; HubCallFailed when it gives up."""
    attempt = 1
    while True:
        try:
            return fn()
        except _HUB_ERRORS as err:
            kind, transient, reason, asked_wait = classify(err)
            if not transient or attempt >= attempts:
                tries = f" (after {attempt} tries)" if attempt > 1 else ""
                raise HubCallFailed(kind, reason + tries) from err
            wait = min(MAX_WAIT_S, max(FIRST_WAIT_S * 2 ** (attempt - 1), asked_wait))
            log.warning("Hub call failed (%s); retrying in %.0f s", reason, wait)
            sleep(wait)
            attempt += 1


def classify(err: BaseException) -> tuple[str, bool, str, float]:
    """(kind, transient, reason for people, seconds the server asked us to wait)."""
    while isinstance(err, LocalEntryNotFoundError) and err.__cause__ is not None:
        err = err.__cause__  # snapshot_download wraps the real cause
    if isinstance(err, OfflineModeIsEnabled):
        return "offline", False, "offline mode is on (HF_HUB_OFFLINE=1)", 0.0
    if isinstance(err, RepositoryNotFoundError):
        return ("not_found", False, "the repo does not exist, or this token can't see it "
                "(404 Not Found)", 0.0)
    if isinstance(err, BucketNotFoundError):
        return ("not_found", False, "the storage bucket does not exist, or this token can't see "
                "it (404 Not Found)", 0.0)
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status == 402:
            return ("billing", False, "Hugging Face asks for payment (402 Payment Required): the "
                    "account needs a payment method for paid hardware "
                    "(https://huggingface.co/settings/billing)", 0.0)
        if status == 401:
            return ("unauthorized", False, "Hugging Face did not accept the token (401 "
                    "Unauthorized): it is invalid or expired", 0.0)
        if status == 403:
            return ("forbidden", False, "the token may not write there (403 Forbidden): it "
                    "needs write access to your own repos, and a sign-in through the app may "
                    "only change repos the app created", 0.0)
        if status == 404:
            return ("not_found", False, "Hugging Face does not know it, or this token can't see "
                    "it (404 Not Found)", 0.0)
        if status == 409:
            return ("conflict", True, "the repo changed during the upload (409 Conflict), e.g. "
                    "another upload to it at the same time", 0.0)
        if status == 429:
            retry_after = err.response.headers.get("Retry-After", "")
            wait = float(retry_after) if retry_after.isdigit() else 0.0
            return ("rate_limited", True, "Hugging Face is limiting requests (429 Too Many "
                    "Requests); wait a few minutes", wait)
        if status >= 500:
            return "server", True, f"the Hub had a server error ({status}); try later", 0.0
        detail = err.server_message or str(err).strip().splitlines()[0]
        return "http", False, f"the Hub answered {status}: {detail}", 0.0
    return ("network", True, f"the Hub could not be reached ({type(err).__name__}: {err}); "
            "check the internet connection", 0.0)
