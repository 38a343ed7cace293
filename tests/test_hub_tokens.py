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
    # only the refusal is remembered (by the token's hash); a Hub that can't be asked is not
    assert [name for name, *_ in hub_tokens._token_users.values()] == [None]
    assert "hf_guessed" not in repr(hub_tokens._token_users)


def test_a_refused_token_is_remembered_briefly_so_repeating_it_costs_nothing(fake, waits,
                                                                          token_cache):
    clock = [0.0]
    for _ in range(5):
        with pytest.raises(hub_tokens.TokenError, match="401"):
            hub_tokens.user_for_token("hf_guessed", api=fake, sleep=waits.append,
                                      clock=lambda: clock[0])
    assert fake.methods() == ["whoami"]
    clock[0] += hub_tokens.BAD_TOKEN_TTL_S + 1
    with pytest.raises(hub_tokens.TokenError, match="401"):
        hub_tokens.user_for_token("hf_guessed", api=fake, sleep=waits.append,
                                  clock=lambda: clock[0])
    assert fake.methods() == ["whoami"] * 2


def test_a_revoked_token_stops_within_the_ttl_and_at_once_when_asked_fresh(fake, waits,
                                                                         token_cache):
    clock = [0.0]
    ask = dict(api=fake, sleep=waits.append, clock=lambda: clock[0])
    assert hub_tokens.user_for_token(ALICE, **ask) == "alice"
    del fake.users[ALICE]  # revoked on the Hub
    assert hub_tokens.user_for_token(ALICE, **ask) == "alice"  # remembered for a minute
    with pytest.raises(hub_tokens.TokenError, match="401"):
        hub_tokens.user_for_token(ALICE, fresh=True, **ask)  # deleting, pushing: at once
    fake.users[ALICE] = "alice"
    assert hub_tokens.user_for_token(ALICE, fresh=True, **ask) == "alice"
    del fake.users[ALICE]
    clock[0] += hub_tokens.WHOAMI_TTL_S + 1
    with pytest.raises(hub_tokens.TokenError, match="401"):
        hub_tokens.user_for_token(ALICE, **ask)


def test_a_slow_hub_holds_only_requests_with_the_same_token(fake, waits, token_cache):
    import threading

    release, asked = threading.Event(), threading.Event()
    whoami = fake.whoami

    def slow_for_alice(token=None, **kwargs):
        if token == ALICE:
            asked.set()
            assert release.wait(10)
        return whoami(token=token, **kwargs)

    fake.whoami = slow_for_alice
    answers = []
    alices = [threading.Thread(target=lambda: answers.append(
        hub_tokens.user_for_token(ALICE, api=fake, sleep=waits.append))) for _ in range(3)]
    for thread in alices:
        thread.start()
    assert asked.wait(10)
    assert hub_tokens.user_for_token(BOB, api=fake, sleep=waits.append) == "bob"  # no wait
    assert answers == []
    release.set()
    for thread in alices:
        thread.join(10)
    assert answers == ["alice"] * 3
    assert fake.methods().count("whoami") == 2  # one for Bob, one for the three Alices


def test_a_rate_limited_hub_is_tried_twice_and_not_waited_for_long(fake, waits, token_cache):
    from fake_hub import http_error

    fake.fail("whoami", *[http_error(429, headers={"Retry-After": "30"})] * 2)
    with pytest.raises(hub_tokens.TokenError, match="429 Too Many Requests.*after 2 tries"):
        hub_tokens.user_for_token(ALICE, api=fake, sleep=waits.append)
    assert waits == [hub_tokens.WHOAMI_MAX_WAIT_S] and fake.methods() == ["whoami"] * 2
    assert hub_tokens.user_for_token(ALICE, api=fake, sleep=waits.append) == "alice"  # not kept
