"""Credentials inside text that is about to be kept for good.

The audit log is append-only: a password or a token written into it can
never be taken out. URLs carry them in two places: the user information
(`https://user:password@host`, or a bare token, `https://ghp_...@github.com`,
as CI clones a repository) and query parameters named like a secret (an
Azure SAS `sig`, Google Chat's `key` and `token`, `access_token`).
"""

from __future__ import annotations

import re
from typing import Any

from cmi_console.core.canonical import walked

# words of a query parameter's name that say it holds a secret; the longer
# ones also end a name run together (`accesstoken`, `clientsecret`)
_SECRET_WORDS = frozenset(
    {"key", "sig", "auth", "pwd", "pass", "jwt", "sas", "authorization", "credentials"}
)
_SECRET_ENDINGS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "signature",
    "apikey",
    "credential",
)
# a name's words: split at `-`, `_`, `.` and case (`X-Amz-Signature`,
# `AWSAccessKeyId`, `api_key`)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def secret_name(name: str) -> bool:
    """Whether a query parameter's name says it holds a secret: one of its
    words is a secret's (`sig`, `api_key`, `X-Amz-Signature`) or it ends in
    one (`access_token`, `clientsecret`). Matching text inside a word had
    taken `author`, `keyword` and `design` for secrets."""
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


# user information holding a password (`user:password@`) under any scheme, or
# anything at all under http(s), where a bare name before `@` is a token (a
# CI clone's); elsewhere it is a name (Azure's `wasbs://container@account`)
_USERINFO = re.compile(
    r"(\b(?:https?://[^/?#@\s\"'<>]+|[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s\"'<>]*:[^/?#@\s\"'<>]*)@)"
)
_QUERY = re.compile(r"([?&][^=&#\s\"'<>]+=)([^&#\s\"'<>]+)")
# one URL within text, as far as the characters that end one in prose or JSON;
# tried only where a scheme can begin, so a long run of letters is read once
_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


# hosts whose clone URLs carry the user's name bare before `@`, and how to
# tell it from a token there: Bitbucket's names are lower case (its tokens,
# `ATBB...`, `ATCTT...`, come as `x-token-auth:TOKEN@` or a password), and
# read as a name here only if they open with a letter and hold few digits;
# Azure DevOps names the organization that also opens the path
_BITBUCKET_NAME = re.compile(r"[a-z][a-z0-9_-]{0,29}")


def _a_name(user: str, rest: str) -> bool:
    """Whether `user`, bare before `@` in an https URL that goes on with
    `rest`, is the user's name in a clone URL rather than a token
    (`https://alice@bitbucket.org/team/repo.git` had been refused)."""
    if rest.startswith("bitbucket.org/"):
        digits = sum(c.isdigit() for c in user)
        return _BITBUCKET_NAME.fullmatch(user) is not None and digits <= 4
    if rest.startswith("dev.azure.com/"):
        return rest[len("dev.azure.com/") :].split("/", 1)[0] == user
    return False


def _userinfo_scrubbed(m: re.Match[str]) -> str:
    scheme, _, user = m[1][:-1].partition("://")
    if scheme == "https" and ":" not in user and _a_name(user, m.string[m.end() :]):
        return m[0]
    return scheme + "://***@"


def scrubbed(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`."""
    if "://" not in text:
        return text
    text = _USERINFO.sub(_userinfo_scrubbed, text)
    return query_scrubbed(text)


def query_scrubbed(text: str) -> str:
    """`text` with the value of every query parameter named like a secret
    replaced by `***` (`?password=`, `&sig=`)."""
    return _QUERY.sub(lambda m: m[1] + "***" if secret_name(m[1][1:-1]) else m[0], text)


def credential_url(text: str) -> str | None:
    """The first URL in `text` that holds a credential (`scrubbed` would
    change it), shown scrubbed: the URL alone, not a long description
    around it; else None."""
    if "://" not in text:  # the common case, checked in C
        return None
    for found in _URL.finditer(text):
        if (clean := scrubbed(found[0])) != found[0]:
            return clean
    return None


def holds_credential(where: str, url: str) -> str:
    """The refusal of text that holds `url` (scrubbed)."""
    return f"{where}: holds a credential ({url}); the audit log would keep it for good"


def credential_in(value: Any) -> str | None:
    """Where a parsed JSON value holds a URL with a credential, and which;
    else None. For values a user gives that the log would keep: refused, so
    the user can give them without."""
    for where, item in walked(value):
        if isinstance(item, str) and (url := credential_url(item)):
            return holds_credential(where, url)
    return None
