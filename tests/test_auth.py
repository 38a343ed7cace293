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
