"""``MetaDB``: the metadata database (organisations, projects, users, personal API keys, exported assets).

One instance per process, shared by every request thread. Each method runs in its own short transaction
and returns frozen records, so callers never hold a session or an ORM object.
"""

from __future__ import annotations

import copy
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, delete, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from logpond.meta.alerts import AlertsRepo
from logpond.meta.engine import WRITE_OPTIONS, create_meta_engine
from logpond.meta.errors import ConflictError, NotFoundError
from logpond.meta.migrate import upgrade_to_head
from logpond.meta.models import (
    NAME_LENGTH,
    ExportedAssetRow,
    OrganizationMembershipRow,
    OrganizationRow,
    PersonalAPIKeyRow,
    ProjectRow,
    UserRow,
)
from logpond.meta.passwords import (
    DEFAULT_SCRYPT,
    ScryptParams,
    burn_password_check,
    check_password,
    hash_password,
)
from logpond.meta.records import (
    Bootstrap,
    ExportedAsset,
    Membership,
    MembershipLevel,
    Organization,
    PersonalAPIKey,
    Project,
    User,
)
from logpond.meta.scopes import validate_scopes
from logpond.meta.slugs import slug_candidates, slugify
from logpond.meta.tokens import (
    hash_personal_api_key,
    mask_personal_api_key,
    new_distinct_id,
    new_password,
    new_personal_api_key,
    new_personal_api_key_id,
    new_project_token,
)

Clock = Callable[[], datetime]

BOOTSTRAP_ORGANIZATION_NAME = "Default"
BOOTSTRAP_PROJECT_NAME = "Default project"
BOOTSTRAP_ADMIN_EMAIL = "admin@localhost"
KEY_LABEL_MAX_LENGTH = 40
# Recording every use of a key would turn each authenticated read into a write; hourly is precise enough
# to answer "is this key still in use?".
LAST_USED_RESOLUTION = timedelta(hours=1)

# PostgreSQL advisory lock keys for writes that check-then-insert; on SQLite, BEGIN IMMEDIATE already
# serialises writers.
_BOOTSTRAP_LOCK = 0x6C6F67706F6E6401
_SLUG_LOCK = 0x6C6F67706F6E6402
# Largest value of a 32-bit INTEGER column (PostgreSQL's int4; SQLite's are wider).
_MAX_ROW_ID = 2**31 - 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class MetaDB:
    """The metadata database behind an SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://``)."""

    def __init__(self, url: str, *, clock: Clock = utc_now, scrypt: ScryptParams = DEFAULT_SCRYPT) -> None:
        self.url = url
        self.engine: Engine = create_meta_engine(url)
        self._clock = clock
        self._scrypt = scrypt
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(**WRITE_OPTIONS), expire_on_commit=False)
        self.alerts = AlertsRepo(self)

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Apply every pending migration; safe to call on every start."""
        upgrade_to_head(self.engine)

    def close(self) -> None:
        """Close pooled connections (the instance can still be used; it reconnects on demand)."""
        self.engine.dispose()

    def __enter__(self) -> MetaDB:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._write_sessions() as session, session.begin():
            yield session

    def _lock(self, session: Session, key: int) -> None:
        """Serialise a check-then-insert against other processes until the transaction ends."""
        if self.backend == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    # --- bootstrap ---------------------------------------------------------------------------------------

    def bootstrap(self) -> Bootstrap | None:
        """On an empty database create the default organisation, project 1 and an owner ``admin@localhost``
        with a random password (returned once, never stored in clear). Otherwise do nothing, return None."""
        if self.list_organizations():
            return None
        # Hash before taking the write lock: scrypt is deliberately slow.
        password = new_password()
        password_hash = hash_password(password, self._scrypt)
        with self._writing() as session:
            self._lock(session, _BOOTSTRAP_LOCK)
            self._lock(session, _SLUG_LOCK)
            if session.scalar(select(OrganizationRow.id).limit(1)) is not None:
                return None  # another process bootstrapped between our check and our lock
            organization = self._insert_organization(session, BOOTSTRAP_ORGANIZATION_NAME)
            project = self._insert_project(session, organization.id, BOOTSTRAP_PROJECT_NAME, "UTC")
            user = self._insert_user(
                session, BOOTSTRAP_ADMIN_EMAIL, password_hash, first_name="Admin", last_name="", is_staff=True
            )
            self._insert_membership(session, user.id, organization.id, MembershipLevel.OWNER)
            return Bootstrap(
                organization=_organization(organization),
                project=_project(project),
                user=_user(user),
                password=password,
            )

    # --- organisations -----------------------------------------------------------------------------------

    def create_organization(self, name: str) -> Organization:
        """A new organisation; its slug comes from the name, with ``-2``, ``-3``… if already taken."""
        name = _clean_name(name, "organization name")
        with self._writing() as session:
            # Picking a free slug is check-then-insert: serialise it (organisations are created rarely).
            self._lock(session, _SLUG_LOCK)
            return _organization(self._insert_organization(session, name))

    def list_organizations(self) -> list[Organization]:
        with self._reading() as session:
            rows = session.scalars(select(OrganizationRow).order_by(OrganizationRow.created_at, OrganizationRow.id))
            return [_organization(row) for row in rows]

    def get_organization(self, organization_id: str) -> Organization | None:
        with self._reading() as session:
            row = session.get(OrganizationRow, organization_id)
            return None if row is None else _organization(row)

    def _insert_organization(self, session: Session, name: str) -> OrganizationRow:
        base = slugify(name)
        # Every candidate slug starts with these characters (suffixes cut at most 16 from the end).
        prefix = base[:32]
        taken = set(session.scalars(select(OrganizationRow.slug).where(OrganizationRow.slug.startswith(prefix))))
        slug = next(candidate for candidate in slug_candidates(base) if candidate not in taken)
        now = self._clock()
        row = OrganizationRow(id=str(uuid.uuid4()), name=name, slug=slug, created_at=now, updated_at=now)
        session.add(row)
        session.flush()
        return row

    # --- projects ----------------------------------------------------------------------------------------

    def create_project(self, name: str, organization_id: str | None = None, *, timezone: str = "UTC") -> Project:
        """A new project with a fresh ``phc_`` token in ``organization_id`` (None: the first organisation)."""
        name = _clean_name(name, "project name")
        _check_timezone(timezone)
        with self._writing() as session:
            if organization_id is None:
                organization_id = session.scalar(
                    select(OrganizationRow.id).order_by(OrganizationRow.created_at, OrganizationRow.id).limit(1)
                )
                if organization_id is None:
                    raise NotFoundError("there is no organization yet; bootstrap the database first")
            elif session.get(OrganizationRow, organization_id) is None:
                raise NotFoundError(f"organization {organization_id!r} does not exist")
            return _project(self._insert_project(session, organization_id, name, timezone))

    def get_project(self, project_id: int) -> Project | None:
        if not _is_row_id(project_id):
            return None
        with self._reading() as session:
            row = session.get(ProjectRow, project_id)
            return None if row is None else _project(row)

    def get_project_by_token(self, token: str) -> Project | None:
        """The project whose public ``phc_`` token this is (ingestion's authentication)."""
        with self._reading() as session:
            row = session.scalar(select(ProjectRow).where(ProjectRow.api_token == token))
            return None if row is None else _project(row)

    def list_projects(self, organization_ids: Sequence[str] | None = None) -> list[Project]:
        """Projects by id; ``organization_ids`` None means all, a list means only those organisations'."""
        query = select(ProjectRow).order_by(ProjectRow.id)
        if organization_ids is not None:
            query = query.where(ProjectRow.organization_id.in_(list(organization_ids)))
        with self._reading() as session:
            return [_project(row) for row in session.scalars(query)]

    def _insert_project(self, session: Session, organization_id: str, name: str, timezone: str) -> ProjectRow:
        now = self._clock()
        row = ProjectRow(
            uuid=str(uuid.uuid4()),
            organization_id=organization_id,
            name=name,
            api_token=new_project_token(),
            timezone=timezone,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row

    # --- users and memberships ---------------------------------------------------------------------------

    def create_user(
        self,
        email: str,
        password: str | None,
        *,
        first_name: str = "",
        last_name: str = "",
        is_staff: bool = False,
    ) -> User:
        """A new user; ``password`` None makes a user who cannot log in with a password."""
        email = _clean_email(email)
        password_hash = None if password is None else hash_password(password, self._scrypt)
        try:
            with self._writing() as session:
                if session.scalar(select(UserRow.id).where(UserRow.email == email)) is not None:
                    raise ConflictError(f"a user with email {email!r} already exists")
                row = self._insert_user(
                    session,
                    email,
                    password_hash,
                    first_name=first_name,
                    last_name=last_name,
                    is_staff=is_staff,
                )
                return _user(row)
        except IntegrityError as error:  # a concurrent insert of the same email on PostgreSQL
            raise ConflictError(f"a user with email {email!r} already exists") from error

    def add_membership(self, user_id: int, organization_id: str, level: MembershipLevel) -> Membership:
        """Make a user a member of an organisation at ``level``."""
        level = MembershipLevel(level)
        try:
            with self._writing() as session:
                if not _is_row_id(user_id) or session.get(UserRow, user_id) is None:
                    raise NotFoundError(f"user {user_id} does not exist")
                organization = session.get(OrganizationRow, organization_id)
                if organization is None:
                    raise NotFoundError(f"organization {organization_id!r} does not exist")
                if self._membership_level(session, user_id, organization_id) is not None:
                    raise ConflictError(f"user {user_id} is already a member of {organization_id!r}")
                self._insert_membership(session, user_id, organization_id, level)
                return Membership(organization=_organization(organization), level=level)
        except IntegrityError as error:
            raise ConflictError(f"user {user_id} is already a member of {organization_id!r}") from error

    def get_user(self, user_id: int) -> User | None:
        if not _is_row_id(user_id):
            return None
        with self._reading() as session:
            row = session.get(UserRow, user_id)
            return None if row is None else _user(row)

    def get_admin_user(self) -> User | None:
        """The first user made an organisation owner (the bootstrap admin on a fresh install)."""
        query = (
            select(UserRow)
            .join(OrganizationMembershipRow, OrganizationMembershipRow.user_id == UserRow.id)
            .where(OrganizationMembershipRow.level == MembershipLevel.OWNER)
            .order_by(OrganizationMembershipRow.id)
            .limit(1)
        )
        with self._reading() as session:
            row = session.scalar(query)
            return None if row is None else _user(row)

    def user_organizations(self, user_id: int) -> list[Membership]:
        """The organisations a user belongs to, oldest membership first, with the user's level in each."""
        if not _is_row_id(user_id):
            return []
        query = (
            select(OrganizationRow, OrganizationMembershipRow.level)
            .join(OrganizationMembershipRow, OrganizationMembershipRow.organization_id == OrganizationRow.id)
            .where(OrganizationMembershipRow.user_id == user_id)
            .order_by(OrganizationMembershipRow.id)
        )
        with self._reading() as session:
            return [
                Membership(organization=_organization(row), level=MembershipLevel(level))
                for row, level in session.execute(query)
            ]

    def user_membership_level(self, user_id: int, organization_id: str) -> MembershipLevel | None:
        """The user's level in the organisation, or None when not a member."""
        if not _is_row_id(user_id):
            return None
        with self._reading() as session:
            return self._membership_level(session, user_id, organization_id)

    def verify_password(self, email: str, password: str) -> User | None:
        """The user with this email if ``password`` is theirs, else None (same cost either way)."""
        with self._reading() as session:
            row = session.scalar(select(UserRow).where(UserRow.email == email.strip().lower()))
            user = None if row is None else _user(row)
            password_hash = None if row is None else row.password_hash
        if password_hash is None:
            burn_password_check(password, self._scrypt)
            return None
        return user if check_password(password, password_hash) else None

    def _membership_level(self, session: Session, user_id: int, organization_id: str) -> MembershipLevel | None:
        level = session.scalar(
            select(OrganizationMembershipRow.level).where(
                OrganizationMembershipRow.user_id == user_id,
                OrganizationMembershipRow.organization_id == organization_id,
            )
        )
        return None if level is None else MembershipLevel(level)

    def _insert_user(
        self,
        session: Session,
        email: str,
        password_hash: str | None,
        *,
        first_name: str,
        last_name: str,
        is_staff: bool,
    ) -> UserRow:
        row = UserRow(
            uuid=str(uuid.uuid4()),
            distinct_id=new_distinct_id(),
            email=email,
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
            is_staff=is_staff,
            date_joined=self._clock(),
        )
        session.add(row)
        session.flush()
        return row

    def _insert_membership(self, session: Session, user_id: int, organization_id: str, level: MembershipLevel) -> None:
        now = self._clock()
        session.add(
            OrganizationMembershipRow(
                organization_id=organization_id,
                user_id=user_id,
                level=int(level),
                joined_at=now,
                updated_at=now,
            )
        )
        session.flush()

    # --- personal API keys -------------------------------------------------------------------------------

    def create_personal_api_key(
        self,
        user_id: int,
        label: str,
        scopes: Sequence[str],
        scoped_teams: Sequence[int] | None = None,
        scoped_organizations: Sequence[str] | None = None,
    ) -> tuple[str, PersonalAPIKey]:
        """A new ``phx_`` key for the user: returns the plain key (shown once) and the stored record.

        Raises ``InvalidScopeError`` (a ValueError) naming a malformed scope, ValueError for a bad label or
        restriction, NotFoundError for an unknown user.
        """
        label = label.strip()
        if not label or len(label) > KEY_LABEL_MAX_LENGTH:
            raise ValueError(f"label must be 1 to {KEY_LABEL_MAX_LENGTH} characters")
        checked_scopes = validate_scopes(scopes)
        if not checked_scopes:
            raise ValueError("a personal API key needs at least one scope")
        teams = None if scoped_teams is None else _checked_ints(scoped_teams, "scoped_teams")
        organizations = (
            None if scoped_organizations is None else _checked_strs(scoped_organizations, "scoped_organizations")
        )
        plain = new_personal_api_key()
        with self._writing() as session:
            if not _is_row_id(user_id) or session.get(UserRow, user_id) is None:
                raise NotFoundError(f"user {user_id} does not exist")
            self._check_key_restrictions(session, user_id, teams, organizations)
            row = PersonalAPIKeyRow(
                id=new_personal_api_key_id(),
                user_id=user_id,
                label=label,
                secure_value=hash_personal_api_key(plain),
                mask_value=mask_personal_api_key(plain),
                scopes=list(checked_scopes),
                scoped_teams=None if teams is None else list(teams),
                scoped_organizations=None if organizations is None else list(organizations),
                created_at=self._clock(),
                last_used_at=None,
                last_rolled_at=None,
            )
            session.add(row)
            session.flush()
            return plain, _personal_api_key(row)

    def authenticate_personal_api_key(self, plain: str) -> tuple[PersonalAPIKey, User] | None:
        """The key and its owner for a plain key from a request, or None if no such key exists.

        Any string is looked up by its hash, so legacy keys without the ``phx_`` prefix still work.
        """
        if not plain:
            return None
        secure_value = hash_personal_api_key(plain)
        query = (
            select(PersonalAPIKeyRow, UserRow)
            .join(UserRow, UserRow.id == PersonalAPIKeyRow.user_id)
            .where(PersonalAPIKeyRow.secure_value == secure_value)
        )
        with self._reading() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            key, user = _personal_api_key(found[0]), _user(found[1])

        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            # Conditional, so concurrent requests with the same key write at most once per hour; a separate
            # short write transaction keeps the common path a pure read.
            with self._writing() as session:
                session.execute(
                    update(PersonalAPIKeyRow)
                    .where(
                        PersonalAPIKeyRow.id == key.id,
                        or_(
                            PersonalAPIKeyRow.last_used_at.is_(None),
                            PersonalAPIKeyRow.last_used_at <= now - LAST_USED_RESOLUTION,
                        ),
                    )
                    .values(last_used_at=now)
                )
            key = replace(key, last_used_at=now)
        return key, user

    def get_personal_api_key(self, key_id: str) -> PersonalAPIKey | None:
        with self._reading() as session:
            row = session.get(PersonalAPIKeyRow, key_id)
            return None if row is None else _personal_api_key(row)

    def list_personal_api_keys(self, user_id: int) -> list[PersonalAPIKey]:
        """The user's keys, oldest first."""
        if not _is_row_id(user_id):
            return []
        query = (
            select(PersonalAPIKeyRow)
            .where(PersonalAPIKeyRow.user_id == user_id)
            .order_by(PersonalAPIKeyRow.created_at, PersonalAPIKeyRow.id)
        )
        with self._reading() as session:
            return [_personal_api_key(row) for row in session.scalars(query)]

    def roll_personal_api_key(self, key_id: str) -> tuple[str, PersonalAPIKey]:
        """Replace a key's secret, keeping its id, label, scopes and restrictions; the old secret stops
        working at once. Returns the new plain key (shown once) and the record."""
        plain = new_personal_api_key()
        with self._writing() as session:
            row = session.get(PersonalAPIKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"personal API key {key_id!r} does not exist")
            row.secure_value = hash_personal_api_key(plain)
            row.mask_value = mask_personal_api_key(plain)
            row.last_rolled_at = self._clock()
            session.flush()
            return plain, _personal_api_key(row)

    def delete_personal_api_key(self, key_id: str) -> bool:
        """Delete a key; True if it existed."""
        with self._writing() as session:
            row = session.get(PersonalAPIKeyRow, key_id)
            if row is None:
                return False
            session.delete(row)
            return True

    def _check_key_restrictions(
        self,
        session: Session,
        user_id: int,
        teams: tuple[int, ...] | None,
        organizations: tuple[str, ...] | None,
    ) -> None:
        """A key may only be restricted to projects and organisations its owner can reach."""
        member_of = set(
            session.scalars(
                select(OrganizationMembershipRow.organization_id).where(OrganizationMembershipRow.user_id == user_id)
            )
        )
        for organization_id in organizations or ():
            if organization_id not in member_of:
                raise ValueError(
                    f"scoped_organizations: {organization_id!r} is not an organization this user belongs to"
                )
        if teams:
            reachable = set(session.scalars(select(ProjectRow.id).where(ProjectRow.organization_id.in_(member_of))))
            for project_id in teams:
                if project_id not in reachable:
                    raise ValueError(f"scoped_teams: {project_id} is not a project this user can access")

    # --- exported assets ---------------------------------------------------------------------------------

    def create_exported_asset(
        self,
        team_id: int,
        *,
        export_format: str,
        export_context: Mapping[str, Any],
        created_by_id: int | None,
        expires_after: datetime | None,
    ) -> ExportedAsset:
        """A new export of project ``team_id``, without content yet. Raises NotFoundError for an unknown
        project."""
        with self._writing() as session:
            if not _is_row_id(team_id) or session.get(ProjectRow, team_id) is None:
                raise NotFoundError(f"project {team_id} does not exist")
            row = ExportedAssetRow(
                team_id=team_id,
                created_by_id=created_by_id,
                export_format=export_format,
                export_context=copy.deepcopy(dict(export_context)),
                content_location=None,
                exception=None,
                created_at=self._clock(),
                expires_after=expires_after,
            )
            session.add(row)
            session.flush()
            return _exported_asset(row)

    def get_exported_asset(self, team_id: int, asset_id: int) -> ExportedAsset | None:
        """The export ``asset_id`` of project ``team_id``; None when absent or another project's."""
        if not (_is_row_id(team_id) and _is_row_id(asset_id)):
            return None
        with self._reading() as session:
            row = session.get(ExportedAssetRow, asset_id)
            return None if row is None or row.team_id != team_id else _exported_asset(row)

    def mark_exported_asset_done(self, team_id: int, asset_id: int, content_location: str) -> ExportedAsset:
        """Record that the export's file, ``content_location`` in the exports directory, is complete."""
        with self._writing() as session:
            row = session.get(ExportedAssetRow, asset_id) if _is_row_id(asset_id) else None
            if row is None or row.team_id != team_id:
                raise NotFoundError(f"exported asset {asset_id} of project {team_id} does not exist")
            row.content_location = content_location
            row.exception = None
            session.flush()
            return _exported_asset(row)

    def delete_exported_asset(self, team_id: int, asset_id: int) -> bool:
        """Delete the export's record (not its file); True if it existed."""
        if not (_is_row_id(team_id) and _is_row_id(asset_id)):
            return False
        with self._writing() as session:
            result = session.execute(
                delete(ExportedAssetRow).where(ExportedAssetRow.id == asset_id, ExportedAssetRow.team_id == team_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def delete_expired_exported_assets(self, now: datetime, *, limit: int = 100) -> list[ExportedAsset]:
        """Delete the records of up to ``limit`` exports, of any project, whose ``expires_after`` is at or
        before ``now``, and return them so the caller can remove their files."""
        with self._writing() as session:
            rows = list(
                session.scalars(
                    select(ExportedAssetRow)
                    .where(ExportedAssetRow.expires_after <= now)
                    .order_by(ExportedAssetRow.id)
                    .limit(limit)
                )
            )
            expired = [_exported_asset(row) for row in rows]
            if rows:
                session.execute(delete(ExportedAssetRow).where(ExportedAssetRow.id.in_([row.id for row in rows])))
            return expired


# --- validation ---------------------------------------------------------------------------------------------


def _is_row_id(value: int) -> bool:
    """Whether ``value`` can be an integer primary key. Ids often come straight from URLs, and one beyond
    the column's range makes PostgreSQL raise (and SQLite overflow) instead of simply finding nothing."""
    return 0 < value <= _MAX_ROW_ID


def _clean_name(name: str, what: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > NAME_LENGTH:
        raise ValueError(f"{what} must be 1 to {NAME_LENGTH} characters")
    return cleaned


def _clean_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    if not (local and at and domain) or len(cleaned) > 254 or any(c.isspace() for c in cleaned):
        raise ValueError(f"not an email address: {email!r}")
    return cleaned


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


def _checked_ints(values: Sequence[int], field: str) -> tuple[int, ...]:
    # bool is an int subclass; True as a project id is certainly a mistake.
    if any(not isinstance(value, int) or isinstance(value, bool) for value in values):
        raise ValueError(f"{field} must be a list of project ids (integers)")
    return tuple(values)


def _checked_strs(values: Sequence[str], field: str) -> tuple[str, ...]:
    if any(not isinstance(value, str) for value in values):
        raise ValueError(f"{field} must be a list of organization ids (strings)")
    return tuple(values)


# --- rows to records ----------------------------------------------------------------------------------------


def _organization(row: OrganizationRow) -> Organization:
    return Organization(id=row.id, name=row.name, slug=row.slug, created_at=row.created_at, updated_at=row.updated_at)


def _project(row: ProjectRow) -> Project:
    return Project(
        id=row.id,
        uuid=row.uuid,
        organization_id=row.organization_id,
        name=row.name,
        api_token=row.api_token,
        timezone=row.timezone,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        uuid=row.uuid,
        distinct_id=row.distinct_id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        is_staff=row.is_staff,
        date_joined=row.date_joined,
    )


def _personal_api_key(row: PersonalAPIKeyRow) -> PersonalAPIKey:
    return PersonalAPIKey(
        id=row.id,
        user_id=row.user_id,
        label=row.label,
        mask_value=row.mask_value,
        scopes=tuple(row.scopes),
        scoped_teams=None if row.scoped_teams is None else tuple(row.scoped_teams),
        scoped_organizations=None if row.scoped_organizations is None else tuple(row.scoped_organizations),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        last_rolled_at=row.last_rolled_at,
    )


def _exported_asset(row: ExportedAssetRow) -> ExportedAsset:
    return ExportedAsset(
        id=row.id,
        team_id=row.team_id,
        created_by_id=row.created_by_id,
        export_format=row.export_format,
        export_context=copy.deepcopy(row.export_context),
        content_location=row.content_location,
        exception=row.exception,
        created_at=row.created_at,
        expires_after=row.expires_after,
    )
