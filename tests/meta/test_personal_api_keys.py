"""Personal API keys: creation, authentication, hashing at rest, restrictions, usage tracking."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from logpond.meta import InvalidScopeError, MembershipLevel, MetaDB, NotFoundError, User
from logpond.meta.models import PersonalAPIKeyRow
from tests.meta._support import FakeClock, dump_all_tables


@pytest.fixture
def admin(meta: MetaDB) -> User:
    created = meta.bootstrap()
    assert created is not None
    return created.user


def test_created_key_authenticates_as_its_user(meta: MetaDB, admin: User) -> None:
    """The plain key returned at creation authenticates and yields the key record and its owner."""
    plain, key = meta.create_personal_api_key(admin.id, "ci", ["query:read", "project:read"])

    assert re.fullmatch(r"phx_[A-Za-z0-9_-]{47}", plain)
    assert key.mask_value == f"phx_...{plain[-4:]}"
    assert key.scopes == ("query:read", "project:read")
    assert key.scoped_teams is None and key.scoped_organizations is None
    assert key.last_used_at is None and key.last_rolled_at is None

    found = meta.authenticate_personal_api_key(plain)

    assert found is not None
    found_key, user = found
    assert user == admin
    assert (found_key.id, found_key.label, found_key.scopes) == (key.id, "ci", key.scopes)


@pytest.mark.parametrize("attempt", ["", "phx_", "phx_" + "a" * 47, "not a key", "phc_" + "a" * 43])
def test_unknown_keys_do_not_authenticate(meta: MetaDB, admin: User, attempt: str) -> None:
    """Strings that are not a stored key, including other token kinds, authenticate nobody."""
    meta.create_personal_api_key(admin.id, "real", ["*"])

    assert meta.authenticate_personal_api_key(attempt) is None


def test_near_miss_of_a_real_key_does_not_authenticate(meta: MetaDB, admin: User) -> None:
    """Changing a character, case, or adding whitespace to a real key makes it invalid."""
    plain, _ = meta.create_personal_api_key(admin.id, "real", ["*"])
    last = plain[-1]
    altered = plain[:-1] + ("A" if last != "A" else "B")

    for attempt in (altered, plain.swapcase(), plain + " ", plain[:-1]):
        assert meta.authenticate_personal_api_key(attempt) is None


def test_legacy_key_without_prefix_authenticates(meta: MetaDB, admin: User) -> None:
    """A key stored by its sha256 without the phx_ prefix (older PostHog keys) is accepted."""
    legacy = "LegacyKeyWithoutAnyPrefix0123456789abcdefghij"
    with meta.engine.begin() as connection:
        connection.execute(
            insert(PersonalAPIKeyRow).values(
                id="legacy1",
                user_id=admin.id,
                label="old",
                secure_value="sha256$" + hashlib.sha256(legacy.encode()).hexdigest(),
                mask_value="Lega...ghij",
                scopes=["*"],
                scoped_teams=None,
                scoped_organizations=None,
                created_at=admin.date_joined,
                last_used_at=None,
                last_rolled_at=None,
            )
        )

    found = meta.authenticate_personal_api_key(legacy)

    assert found is not None
    assert found[0].id == "legacy1" and found[1] == admin


def test_plain_key_is_never_stored(meta: MetaDB, admin: User, meta_url: str) -> None:
    """After creating and using a key, neither the key nor its secret part appears in any table or file."""
    plain, key = meta.create_personal_api_key(admin.id, "secret", ["*"])
    assert meta.authenticate_personal_api_key(plain) is not None
    secret_part = plain[len("phx_") :]

    everything = dump_all_tables(meta)
    assert key.id in everything  # the dump really covers the keys table
    assert "sha256$" + hashlib.sha256(plain.encode()).hexdigest() in everything
    assert secret_part not in everything
    assert secret_part[:20] not in everything

    if meta_url.startswith("sqlite:///"):
        # Also the raw bytes on disk, write-ahead log included.
        database = Path(meta_url.removeprefix("sqlite:///"))
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert secret_part.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    "bad", ["query", "query:admin", "Query:read", "logs:read:write", "*:read", " query:read"]
)
def test_malformed_scope_is_rejected_by_name(meta: MetaDB, admin: User, bad: str) -> None:
    """A bad scope raises InvalidScopeError naming it, and no key is created."""
    with pytest.raises(InvalidScopeError, match=re.escape(repr(bad))):
        meta.create_personal_api_key(admin.id, "bad", ["query:read", bad])

    assert meta.list_personal_api_keys(admin.id) == []


def test_key_needs_a_scope_and_a_label(meta: MetaDB, admin: User) -> None:
    """An empty scope list, an empty label or a label over 40 characters are refused."""
    with pytest.raises(ValueError, match="scope"):
        meta.create_personal_api_key(admin.id, "none", [])
    with pytest.raises(ValueError, match="label"):
        meta.create_personal_api_key(admin.id, "  ", ["*"])
    with pytest.raises(ValueError, match="label"):
        meta.create_personal_api_key(admin.id, "l" * 41, ["*"])
    with pytest.raises(NotFoundError):
        meta.create_personal_api_key(admin.id + 100, "ghost", ["*"])


def test_key_restrictions_are_stored_and_enforced_by_the_record(meta: MetaDB, admin: User) -> None:
    """scoped_teams / scoped_organizations round-trip and drive allows_project / allows_organization."""
    home = meta.user_organizations(admin.id)[0].organization
    second_project = meta.create_project("Second", home.id)

    _, key = meta.create_personal_api_key(
        admin.id, "narrow", ["query:read"], scoped_teams=[second_project.id], scoped_organizations=[home.id]
    )
    stored = meta.get_personal_api_key(key.id)

    assert stored == key
    assert key.scoped_teams == (second_project.id,)
    assert key.scoped_organizations == (home.id,)
    assert key.allows_project(second_project.id) and not key.allows_project(1)
    assert key.allows_organization(home.id) and not key.allows_organization("another-org")

    _, open_key = meta.create_personal_api_key(
        admin.id, "open", ["*"], scoped_teams=[], scoped_organizations=[]
    )
    assert open_key.allows_project(12345) and open_key.allows_organization("any")


def test_key_cannot_be_restricted_to_things_its_user_cannot_reach(meta: MetaDB, admin: User) -> None:
    """Restricting to an unknown project, a foreign organisation's project or a foreign org is refused."""
    foreign = meta.create_organization("Foreign")
    foreign_project = meta.create_project("Theirs", foreign.id)

    with pytest.raises(ValueError, match="scoped_teams"):
        meta.create_personal_api_key(admin.id, "k", ["*"], scoped_teams=[999])
    with pytest.raises(ValueError, match="scoped_teams"):
        meta.create_personal_api_key(admin.id, "k", ["*"], scoped_teams=[foreign_project.id])
    with pytest.raises(ValueError, match="scoped_organizations"):
        meta.create_personal_api_key(admin.id, "k", ["*"], scoped_organizations=[foreign.id])
    with pytest.raises(ValueError, match="scoped_teams"):
        meta.create_personal_api_key(admin.id, "k", ["*"], scoped_teams=[True])

    meta.add_membership(admin.id, foreign.id, MembershipLevel.MEMBER)
    _, key = meta.create_personal_api_key(admin.id, "k", ["*"], scoped_teams=[foreign_project.id])
    assert key.scoped_teams == (foreign_project.id,)


def test_last_used_at_is_written_at_most_hourly(meta: MetaDB, admin: User, clock: FakeClock) -> None:
    """The first use sets last_used_at; uses within the hour leave it; a use after an hour moves it."""
    plain, key = meta.create_personal_api_key(admin.id, "busy", ["*"])

    first = meta.authenticate_personal_api_key(plain)
    assert first is not None
    first_use = first[0].last_used_at
    assert first_use is not None
    assert meta.get_personal_api_key(key.id) == first[0]

    clock.advance(timedelta(minutes=59))
    again = meta.authenticate_personal_api_key(plain)
    assert again is not None and again[0].last_used_at == first_use
    stored = meta.get_personal_api_key(key.id)
    assert stored is not None and stored.last_used_at == first_use

    clock.advance(timedelta(minutes=2))
    later = meta.authenticate_personal_api_key(plain)
    assert later is not None
    stored = meta.get_personal_api_key(key.id)
    assert stored is not None and stored.last_used_at == later[0].last_used_at
    assert later[0].last_used_at is not None and later[0].last_used_at - first_use > timedelta(hours=1)


def test_list_and_delete_keys(meta: MetaDB, admin: User) -> None:
    """A user's keys are listed oldest first; a deleted key is gone and stops authenticating."""
    other = meta.create_user("other@example.com", "pw")
    plain_a, a = meta.create_personal_api_key(admin.id, "a", ["*"])
    _, b = meta.create_personal_api_key(admin.id, "b", ["query:read"])
    _, c = meta.create_personal_api_key(other.id, "c", ["*"])

    assert meta.list_personal_api_keys(admin.id) == [a, b]
    assert meta.list_personal_api_keys(other.id) == [c]

    assert meta.delete_personal_api_key(a.id) is True
    assert meta.delete_personal_api_key(a.id) is False
    assert meta.list_personal_api_keys(admin.id) == [b]
    assert meta.get_personal_api_key(a.id) is None
    assert meta.authenticate_personal_api_key(plain_a) is None


def test_rolling_a_key_replaces_its_secret(meta: MetaDB, admin: User) -> None:
    """After a roll the old secret fails, the new one works, and id, label and scopes are kept."""
    old_plain, key = meta.create_personal_api_key(admin.id, "rolled", ["logs:read"])

    new_plain, rolled = meta.roll_personal_api_key(key.id)

    assert new_plain != old_plain
    assert (rolled.id, rolled.label, rolled.scopes) == (key.id, key.label, key.scopes)
    assert rolled.mask_value == f"phx_...{new_plain[-4:]}"
    assert rolled.last_rolled_at is not None
    assert meta.authenticate_personal_api_key(old_plain) is None
    found = meta.authenticate_personal_api_key(new_plain)
    assert found is not None and found[0].id == key.id
    with pytest.raises(NotFoundError):
        meta.roll_personal_api_key("missing")
