"""core.credentials: no credential of a URL survives into text kept for good,
and text without one is left exactly as it was."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cmi_console.core.credentials import scrubbed

SECRET = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=40)
WORD = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)


@given(SECRET, WORD, WORD, st.sampled_from(["https", "http", "postgresql", "ftp", "s3"]))
def test_a_password_in_a_url_is_replaced(secret: str, user: str, host: str, scheme: str) -> None:
    text = f"see {scheme}://{user}:{secret}@{host}.example/p?q=1 for more"
    out = scrubbed(text)
    assert secret not in out and out == f"see {scheme}://***@{host}.example/p?q=1 for more"


@given(SECRET, WORD)
def test_a_bare_token_before_the_host_of_an_http_url_is_replaced(secret: str, host: str) -> None:
    assert (
        scrubbed(f"https://{secret}@{host}.example/o/r.git")
        == f"https://***@{host}.example/o/r.git"
    )


@given(SECRET, st.sampled_from(["sig", "access_token", "api_key", "Password", "X-Auth"]), WORD)
def test_a_secret_query_parameter_is_replaced(secret: str, name: str, host: str) -> None:
    out = scrubbed(f'{{"url": "https://{host}.example/d.csv?v=2&{name}={secret}&x=1"}}')
    assert secret not in out and f"&{name}=***&x=1" in out and "?v=2" in out


@given(st.text())
def test_text_without_a_url_is_left_alone(text: str) -> None:
    if "://" not in text:
        assert scrubbed(text) == text


def test_names_that_are_no_secret_stay() -> None:
    for text in (
        "wasbs://container@account.blob.core.windows.net/runs/1",  # Azure: a name
        "s3://bucket/models/1",
        "git@github.com:org/repo.git",
        "https://host.example/path?email=a@b.example",
        "ftp://anonymous@mirror.example/pub",
    ):
        assert scrubbed(text) == text
