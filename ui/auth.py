"""Who is asking: the signed-in user, an API caller's token owner, or the one local user.

With sign-in in effect (TALEWEAVER_REQUIRE_LOGIN=always, or auto on any Space: a public Space
must never put its visitors in one shared folder) every action needs a user: a browser
session's profile, or, for API callers, the owner of the token they pass
(`Client(url, oauth_token="hf_...")`). Their own token is used for their Hub repos, never the
Space's HF_TOKEN. Without sign-in there is one local user, and pushes use
HF_TOKEN.
"""
import os
from dataclasses import dataclass
from typing import Mapping, Optional

import gradio as gr

from pipeline.hub import tokens as hub_tokens
from pipeline.settings import Settings


@dataclass(frozen=True)
class Identity:
    """The user whose folder an action works in, and the Hub token used on their behalf."""

    user: str
    token: Optional[str]


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
             token: Optional[gr.OAuthToken]) -> Identity:
    """The identity of a request; gr.Error when sign-in is required and missing."""
    if not sign_in_required(settings):
        return Identity(settings.local_user, hub_tokens.token_from_env())
    if profile is not None:
        return Identity(profile.username, token.token if token else None)
    if token is not None and token.token:
        return Identity(hub_tokens.user_for_token(token.token), token.token)
    raise gr.Error("Please sign in with Hugging Face first (the button at the top of the page). "
                   "API callers pass their token: Client(url, oauth_token='hf_...').",
                   print_exception=False)


def identify_quietly(settings: Settings, profile: Optional[gr.OAuthProfile],
                     token: Optional[gr.OAuthToken]) -> Optional[Identity]:
    """The identity, or None for a visitor who hasn't signed in yet (lists show nothing)."""
    try:
        return identify(settings, profile, token)
    except gr.Error:
        return None


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
