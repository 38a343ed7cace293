"""ui/auth.py: when sign-in is required, who is asking (and with which token), and what the
app says to do after a Hub action that did not happen."""
import gradio as gr
import pytest

from pipeline.settings import Settings
from ui import auth


@pytest.mark.parametrize("mode, environ, required, button", [
    ("never", {"SYSTEM": "spaces", "SPACE_ID": "a/b", "OAUTH_CLIENT_ID": "x"}, False, False),
    ("auto", {}, False, False),
    ("auto", {"SYSTEM": "spaces", "SPACE_ID": "a/b"}, True, False),  # visitors never share
    ("auto", {"SYSTEM": "spaces", "SPACE_ID": "a/b", "OAUTH_CLIENT_ID": "x"}, True, True),
    ("always", {}, True, False),
])
def test_when_sign_in_is_required(monkeypatch, mode, environ, required, button):
    for key in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings(require_login=mode)
    assert auth.sign_in_required(settings) is required
    assert auth.show_login_button(settings) is button


@pytest.mark.parametrize("mode, reason, advice", [
    ("always", "", ""),
    ("always", "offline", ""),
    ("always", "no_token", "To do it, sign in with Hugging Face (the button at the top of the "
                           'page), then press "Upload".'),
    ("never", "no_token", 'To do it, start the app with HF_TOKEN set to a Hugging Face write '
                          'token, then press "Upload".'),
    ("always", "unauthorized", 'Sign in with Hugging Face again, then press "Upload".'),
    ("never", "forbidden", 'Start the app with a valid HF_TOKEN (a write token), then press '
                           '"Upload".'),
    ("always", "public_repo", 'Then press "Upload".'),
    ("always", "network", 'Try again in a few minutes: press "Upload".'),
])
def test_the_app_says_what_to_do_after_a_hub_action_that_did_not_happen(mode, reason, advice):
    assert auth.hub_advice(Settings(require_login=mode), reason, 'press "Upload"') == advice


def test_who_is_asking(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_space_owner")
    never = Settings(require_login="never", local_user="me")
    always = Settings(require_login="always")
    assert auth.identify(never, None, None) == auth.Caller(never, "me", "hf_space_owner")
    profile = gr.OAuthProfile({"name": "Alice", "preferred_username": "alice",
                               "profile": "", "picture": ""})
    token = gr.OAuthToken(token="hf_alice_oauth", scope="contribute-repos", expires_at=0)
    assert auth.identify(always, profile, token) == auth.Caller(always, "alice", "hf_alice_oauth")
    # with sign-in, the Space's own HF_TOKEN is never anybody's token
    assert auth.identify(always, profile, None) == auth.Caller(always, "alice", None)
    with pytest.raises(gr.Error, match="Please sign in"):
        auth.identify(always, None, None)


class Inner:
    """The app behind the gate: answers 200 and records that it was reached."""

    def __init__(self):
        self.reached = 0

    async def __call__(self, scope, receive, send):
        self.reached += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})


def gate_answer(settings, headers, session=None, path="/gradio_api/upload", method="POST"):
    """(status, body text, whether the app behind was reached) for one request."""
    import asyncio

    inner = Inner()
    gate = auth.UploadGate(inner, settings)
    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    if session is not None:
        scope["session"] = session
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(gate(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body.decode(), bool(inner.reached)


def test_the_upload_gate_refuses_before_anything_is_read(monkeypatch):
    import time as clock

    settings = Settings(require_login="always", max_upload_mb=1, max_photos=3)
    monkeypatch.setattr(auth, "user_for_token", lambda token: {"hf_ok": "alice"}[token])
    small = {"content-length": "1000"}
    assert gate_answer(settings, small)[::2] == (401, False)
    assert gate_answer(settings, {**small, "x-hf-authorization": "Bearer hf_ok"}) == (200, "[]",
                                                                                      True)
    assert gate_answer(settings, {**small, "authorization": "Bearer hf_ok"})[0] == 200
    refused = gate_answer(settings, {**small, "x-hf-authorization": "Bearer hf_bad"})
    assert refused[0] == 401 and not refused[2]
    signed_in = {"oauth_info": {"access_token": "x", "expires_at": clock.time() + 60}}
    assert gate_answer(settings, small, session=signed_in)[0] == 200
    expired = {"oauth_info": {"access_token": "x", "expires_at": clock.time() - 1}}
    assert gate_answer(settings, small, session=expired)[0] == 401
    # six photos of 1 MB at most, plus 1 MB for the form's framing
    assert gate_answer(settings, {"content-length": str(7 * 2**20),
                                  "x-hf-authorization": "Bearer hf_ok"})[0] == 200
    status, text, reached = gate_answer(settings, {"content-length": str(7 * 2**20 + 1),
                                                   "x-hf-authorization": "Bearer hf_ok"})
    assert (status, reached) == (413, False) and "the limit is 1 MB a photo and 6 photos" in text
    assert gate_answer(settings, {})[0] == 411  # a body of unknown size is not read at all
    # other routes and sign-in turned off pass untouched
    assert gate_answer(settings, {}, path="/gradio_api/queue/join")[0] == 200
    assert gate_answer(settings, small, method="GET")[0] == 200
    assert gate_answer(Settings(require_login="never"), small)[0] == 200
