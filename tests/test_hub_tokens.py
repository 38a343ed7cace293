"""pipeline/hub_tokens.py: the CLI's HF_TOKEN, and whose an API caller's token is (against the
fake Hub of tests/fake_hub.py; the Hub is unreachable here)."""
import pytest
from fake_hub import ALICE, BOB

from pipeline.hub import tokens as hub_tokens
from pipeline.hub.tokens import token_from_env


def test_token_from_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "  hf_x  ")
    assert token_from_env() == "hf_x"
    monkeypatch.setenv("HF_TOKEN", "")
    assert token_from_env() is None
    monkeypatch.delenv("HF_TOKEN")
    assert token_from_env() is None


@pytest.fixture
def token_cache(monkeypatch):
    monkeypatch.setattr(hub_tokens, "_token_users", {})


def test_a_tokens_user_is_asked_once_and_remembered_for_a_while(fake, waits, token_cache):
    clock = [100.0]
    ask = dict(api=fake, sleep=waits.append, ttl=60, clock=lambda: clock[0])

    assert hub_tokens.user_for_token(ALICE, **ask) == "alice"
    assert hub_tokens.user_for_token(BOB, **ask) == "bob"
    assert hub_tokens.user_for_token(ALICE, **ask) == "alice"
    assert fake.methods() == ["whoami", "whoami"]
    clock[0] += 61
    assert hub_tokens.user_for_token(ALICE, **ask) == "alice"
    assert fake.methods() == ["whoami"] * 3
    assert ALICE not in repr(hub_tokens._token_users) and BOB not in repr(hub_tokens._token_users)


def test_a_refused_missing_or_uncheckable_token_is_a_clear_error(fake, waits, token_cache):
    with pytest.raises(hub_tokens.TokenError, match="401 Unauthorized.*make a new one at https://"):
        hub_tokens.user_for_token("hf_guessed", api=fake, sleep=waits.append)
    with pytest.raises(hub_tokens.TokenError, match="no Hugging Face token"):
        hub_tokens.user_for_token("", api=fake, sleep=waits.append)
    with pytest.raises(hub_tokens.TokenError, match="offline mode"):
        hub_tokens.user_for_token(ALICE, sleep=waits.append)  # the real client, HF_HUB_OFFLINE=1
    assert hub_tokens._token_users == {}
