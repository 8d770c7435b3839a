"""Users, passwords and organisation memberships."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from logpond.meta import ConflictError, MembershipLevel, MetaDB, NotFoundError


def test_verify_password_accepts_only_the_right_password(meta: MetaDB) -> None:
    """The right password returns the user; a wrong one, an unknown email or a blank password return None."""
    user = meta.create_user("Ada@Example.com", "correct horse battery staple", first_name="Ada")

    assert meta.verify_password("ada@example.com", "correct horse battery staple") == user
    assert meta.verify_password(" ADA@example.com ", "correct horse battery staple") == user
    assert meta.verify_password("ada@example.com", "Correct horse battery staple") is None
    assert meta.verify_password("ada@example.com", "") is None
    assert meta.verify_password("nobody@example.com", "correct horse battery staple") is None


def test_passwords_are_stored_as_salted_scrypt_hashes(meta: MetaDB) -> None:
    """The users table holds ``scrypt$n$r$p$salt$hash`` with a per-user salt, never the password."""
    meta.create_user("a@example.com", "same password")
    meta.create_user("b@example.com", "same password")

    with meta.engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users ORDER BY id")).scalars().all()

    assert all(value.startswith("scrypt$") and len(value.split("$")) == 6 for value in stored)
    assert "same password" not in "".join(stored)
    first_salt, second_salt = (value.split("$")[4] for value in stored)
    assert first_salt != second_salt


def test_user_without_password_cannot_log_in(meta: MetaDB) -> None:
    """A user created without a password is refused whatever is tried."""
    meta.create_user("sso@example.com", None)

    assert meta.verify_password("sso@example.com", "") is None
    assert meta.verify_password("sso@example.com", "anything") is None


def test_emails_are_unique_ignoring_case(meta: MetaDB) -> None:
    """A second user with the same email in another case is a conflict."""
    meta.create_user("dup@example.com", "pw")

    with pytest.raises(ConflictError):
        meta.create_user("DUP@example.com", "pw")


@pytest.mark.parametrize("email", ["", "no-at-sign", "@example.com", "someone@", "two words@example.com"])
def test_malformed_emails_are_rejected(meta: MetaDB, email: str) -> None:
    """Addresses without a local part, an @ and a domain are refused."""
    with pytest.raises(ValueError, match="email"):
        meta.create_user(email, "pw")


def test_user_fields_and_lookup(meta: MetaDB) -> None:
    """A new user has ids, a random distinct_id and the given names; get_user finds them by id."""
    first = meta.create_user("a@example.com", "pw", first_name="Ada", last_name="Lovelace")
    second = meta.create_user("b@example.com", "pw")

    assert first.first_name == "Ada" and first.last_name == "Lovelace"
    assert not first.is_staff
    assert len(first.uuid) == 36
    assert first.distinct_id and first.distinct_id != second.distinct_id
    assert meta.get_user(first.id) == first
    assert meta.get_user(second.id + 100) is None


def test_memberships_and_levels(meta: MetaDB) -> None:
    """user_organizations lists the user's organisations with levels; non-members have no level."""
    acme = meta.create_organization("Acme")
    globex = meta.create_organization("Globex")
    other = meta.create_organization("Other")
    user = meta.create_user("m@example.com", "pw")

    meta.add_membership(user.id, acme.id, MembershipLevel.MEMBER)
    meta.add_membership(user.id, globex.id, MembershipLevel.ADMIN)

    memberships = meta.user_organizations(user.id)
    assert [(m.organization, m.level) for m in memberships] == [
        (acme, MembershipLevel.MEMBER),
        (globex, MembershipLevel.ADMIN),
    ]
    assert meta.user_membership_level(user.id, globex.id) == 8
    assert meta.user_membership_level(user.id, other.id) is None
    assert meta.user_organizations(user.id + 100) == []


def test_membership_needs_existing_user_and_organization_and_is_unique(meta: MetaDB) -> None:
    """Adding a membership twice conflicts; unknown users or organisations are not found."""
    organization = meta.create_organization("Acme")
    user = meta.create_user("m@example.com", "pw")
    meta.add_membership(user.id, organization.id, MembershipLevel.MEMBER)

    with pytest.raises(ConflictError):
        meta.add_membership(user.id, organization.id, MembershipLevel.OWNER)
    with pytest.raises(NotFoundError):
        meta.add_membership(user.id + 100, organization.id, MembershipLevel.MEMBER)
    with pytest.raises(NotFoundError):
        meta.add_membership(user.id, "00000000-0000-0000-0000-000000000000", MembershipLevel.MEMBER)
    with pytest.raises(ValueError):
        meta.add_membership(user.id, organization.id, 3)  # type: ignore[arg-type]


def test_admin_user_is_the_first_owner(meta: MetaDB) -> None:
    """get_admin_user is None without owners, then the user who first became an owner."""
    organization = meta.create_organization("Acme")
    member = meta.create_user("member@example.com", "pw")
    meta.add_membership(member.id, organization.id, MembershipLevel.ADMIN)
    assert meta.get_admin_user() is None

    owner = meta.create_user("owner@example.com", "pw")
    meta.add_membership(owner.id, organization.id, MembershipLevel.OWNER)
    later_owner = meta.create_user("later@example.com", "pw")
    meta.add_membership(later_owner.id, meta.create_organization("Second").id, MembershipLevel.OWNER)

    assert meta.get_admin_user() == owner


@pytest.mark.parametrize("user_id", [0, -1, 2**31, 2**70])
def test_out_of_range_user_ids_find_nothing(meta: MetaDB, user_id: int) -> None:
    """Ids no row can have (as typed into a URL) give empty answers, never database errors."""
    organization = meta.create_organization("Acme")

    assert meta.get_user(user_id) is None
    assert meta.user_organizations(user_id) == []
    assert meta.user_membership_level(user_id, organization.id) is None
    assert meta.list_personal_api_keys(user_id) == []
    with pytest.raises(NotFoundError):
        meta.add_membership(user_id, organization.id, MembershipLevel.MEMBER)
    with pytest.raises(NotFoundError):
        meta.create_personal_api_key(user_id, "k", ["*"])
