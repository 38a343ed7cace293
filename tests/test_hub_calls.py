"""pipeline/hub_calls.py through hub.push_adapter: which Hub errors are retried (with what
backoff), which fail at once, and the reason each gives; the local adapter is never touched."""
import pytest
from fake_hub import adapter_of, files_of, http_error, neutral, push
from huggingface_hub.utils import httpx

from pipeline.adapter_files import MODEL_CARD
from pipeline.hub.calls import ATTEMPTS
from pipeline.hub.repos import hub_record


@pytest.mark.parametrize("method, error, words, reason", [
    ("create_repo", http_error(401), "401 Unauthorized", "unauthorized"),
    ("whoami", http_error(401), "401 Unauthorized", "unauthorized"),
    ("create_repo", http_error(403), "403 Forbidden", "forbidden"),
    ("create_commit", http_error(400), "the Hub answered 400", "http"),
])
def test_permanent_errors_fail_at_once_and_keep_the_adapter(settings, mia, fake, waits, online,
                                                            method, error, words, reason):
    before = files_of(adapter_of(settings, mia))
    fake.fail(method, error)

    result = push(settings, fake, waits, mia)

    assert (result.status, result.reason) == ("failed", reason) and words in result.message
    assert "Mia's adapter is safe on this machine" in result.message and neutral(result.message)
    assert waits == [] and fake.methods().count(method) == 1
    after = files_of(adapter_of(settings, mia))
    assert {k: v for k, v in after.items() if k != MODEL_CARD} == before
    assert hub_record(settings, "alice", mia) is None


@pytest.mark.parametrize("error, waited", [
    (http_error(409), [2.0]),
    (http_error(429, headers={"Retry-After": "7"}), [7.0]),
    (http_error(503), [2.0]),
    (httpx.ConnectError("[Errno 101] Network is unreachable"), [2.0]),
    (httpx.ReadTimeout("timed out"), [2.0]),
])
def test_transient_errors_are_retried_with_backoff(settings, mia, fake, waits, online, error,
                                                   waited):
    fake.fail("create_commit", error)

    result = push(settings, fake, waits, mia)

    assert result.status == "pushed" and waits == waited
    assert fake.methods().count("create_commit") == 2


def test_retries_give_up_with_a_clear_message(settings, mia, fake, waits, online):
    fake.fail("create_repo", *[http_error(502) for _ in range(ATTEMPTS)])

    result = push(settings, fake, waits, mia)

    assert (result.status, result.reason) == ("failed", "server")
    assert "server error (502)" in result.message
    assert f"after {ATTEMPTS} tries" in result.message
    assert waits == [2.0, 4.0, 8.0] and "create_commit" not in fake.methods()


def test_rate_limit_message(settings, mia, fake, waits, online):
    fake.fail("create_commit", *[http_error(429) for _ in range(ATTEMPTS)])

    result = push(settings, fake, waits, mia)

    assert result.status == "failed" and "429 Too Many Requests" in result.message
