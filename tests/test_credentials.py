"""core.credentials: no credential of a URL survives into text kept for good,
and text without one is left exactly as it was."""

from __future__ import annotations

import pytest
from conftest import Workspace
from gate_helpers import ok
from hypothesis import given
from hypothesis import strategies as st

from cmi_console.core.credentials import credential_url, scrubbed
from cmi_console.core.errors import BadInput

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


@given(SECRET)
def test_a_token_where_a_clone_url_may_carry_a_name_is_replaced(secret: str) -> None:
    """Bitbucket's names are lower case and its tokens are not; an Azure
    DevOps name is the organization the path names, a token is not."""
    for url in (
        f"https://{secret}@bitbucket.org/team/repo.git",
        f"https://{secret.lower()}x@dev.azure.com/contoso/models/_git/credit",
        f"https://x-token-auth:{secret.lower()}@bitbucket.org/team/repo.git",
        f"http://alice@bitbucket.org/{secret}",  # plain http: no exception
    ):
        assert "://***@" in scrubbed(url) and credential_url(url) is not None, url


@given(
    SECRET,
    st.sampled_from(
        [
            "sig",
            "access_token",
            "api_key",
            "Password",
            "X-Auth",
            "X-Amz-Signature",
            "AWSAccessKeyId",
            "x-amz-security-token",
            "clientsecret",
            "apiKey",
        ]
    ),
    WORD,
)
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
        # the user's name in a clone URL, as Bitbucket and Azure DevOps give them
        "https://alice@bitbucket.org/team/repo.git",
        "https://contoso@dev.azure.com/contoso/models/_git/credit",
        # a secret's word inside another word: these had been taken for secrets
        "https://docs.example/search?keyword=drift&author=alice&design=2&signal=on",
    ):
        assert scrubbed(text) == text


@given(st.text(max_size=60), SECRET, WORD, st.text(max_size=60))
def test_the_url_holding_a_credential_is_found_in_prose(
    before: str, secret: str, host: str, after: str
) -> None:
    """Only the URL is shown (scrubbed): a 2,000-character description around
    it would make the refusal's one line unreadable."""
    url = f"https://ci:{secret}@{host}.example/r.git"
    found = credential_url(f"{before} {url} {after}")
    assert found is not None and secret not in found
    if "://" not in before:  # a URL of the text's own may come first
        assert found == f"https://***@{host}.example/r.git"


def test_prose_whose_urls_hold_no_credential_is_not_refused() -> None:
    for text in (
        "see https://docs.example/page?x=1 and s3://bucket/k (mail a@b.example)",
        "wasbs://container@account.blob.core.windows.net/runs/1, ftp://anonymous@m.example",
        "no url at all, just key=value and ?token=in prose",
    ):
        assert credential_url(text) is None


@pytest.mark.parametrize("where", ["row", "entry"])
def test_no_write_can_put_a_credential_in_the_log(populated: Workspace, where: str) -> None:
    """The backstop under every command's own check: a row's text and an
    entry's data are refused whole, and nothing is written."""
    from cmi_console.store.tables import VersionTag, table

    tags = table(VersionTag)
    ctx = populated.ctx("alice")
    head = ok(populated.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    link = "https://acct.blob.example/d.csv?sig=Zm9vYmFy"
    data = {"note": [f"from {link}"]} if where == "entry" else {}
    with pytest.raises(BadInput) as caught, ctx.write() as tx:
        tx.insert(tags, {"version_id": 1, "key": "kept", "value": "ok"})
        if where == "row":
            tx.update(tags, 1, {"value": f"see {link}"})
        tx.record("version.tag", "version:cancer:1", data)
    shown = "https://acct.blob.example/d.csv?sig=***"
    assert str(caught.value) == (
        f"{'version.tag: note[0]' if where == 'entry' else 'version_tags.value'}: "
        f"holds a credential ({shown}); the audit log would keep it for good"
    )
    assert ok(populated.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    assert "kept" not in ok(populated.cli("version", "show", "cancer:1", "--json")).json()["tags"]


def test_a_bitbucket_clone_url_with_its_users_name_is_kept_as_given(
    populated: Workspace,
) -> None:
    """A Bitbucket CI job's `--code` names the remote as the job cloned it,
    with the user's name before `@`: it had been refused as a token."""
    remote = "https://alice@bitbucket.org/team/credit.git"
    code = f'{{"commit": "4f2a9c1", "remote": "{remote}"}}'
    run = ok(populated.cli("run", "record", "--code", code, "--json", as_="alice")).json()
    assert run["code_ref"]["remote"] == remote
    with_token = code.replace("alice", "ATBB3xQ9k2LmZ7")
    token = populated.cli("run", "record", "--code", with_token, as_="alice")
    assert token.code == 2 and "https://***@bitbucket.org/team/credit.git" in token.err
