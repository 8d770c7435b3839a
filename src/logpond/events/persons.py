"""Persons at ingestion: find or create each event's person, apply its property changes, merge identities.

The writer calls ``PersonProcessor.process`` for every batch of events, in write-ahead-log order, on one
thread; that order is what makes the result deterministic. The processor keeps a bounded cache of
distinct-id mappings and persons and reads what it lacks from the store (``PersonSource``). What it
changed comes out of ``changes()`` as rows to append — persons and distinct-id mappings are versioned rows
of ReplacingMergeTrees, so a change is a new row with a higher version, never an update in place — and
stays pending until the writer ``confirm()``s that those rows are stored, so a failed insert that the
writer retries writes them again.

Every event is stamped with its person's id, properties and creation time as they are after that event
(``Stamps``), so queries about people need no join. When two persons merge, the surviving person takes
the other's distinct ids and the merged-away person is marked deleted; the writer then moves the merged
person's earlier events to the survivor (``Changes.merges``). Their stamped person properties stay those of
the moment they were ingested.

Rules, as PostHog's ingestion applies them:

- A new distinct id gets a person whose id is derived from the project and the distinct id
  (``person_uuid``), so a person created later for a person-less distinct id has the id its events carry.
- ``$set_once`` fills missing keys, then ``$set`` overwrites, then ``$unset`` removes keys.
- Ordinary events also record where the person came from: ``$initial_browser``, ``$initial_utm_source``…
  (set once) and ``$browser``, ``utm_source``… when the person has no value yet. Unlike an explicit
  ``$set``, these never overwrite, so page views do not rewrite the person row on every URL change.
- ``$identify`` (``$anon_distinct_id``) and ``$create_alias`` (``alias``) link two distinct ids and mark the
  person identified. If both already have different persons, the other distinct id's person is merged into
  the event's person — unless it is already identified (only ``$merge_dangerously`` merges those).
  Properties of the event's person win over the merged person's; the earlier ``created_at`` is kept.
- Distinct ids that clients send when they have no real id (``anonymous``, ``null``, ``0``…) never merge.
- ``$process_person_profile: false`` events neither create nor change persons. They carry the existing
  person's id when there is one (mode ``force_upgrade`` when that person is over a minute older than the
  event), else the derived id with PostHog's "no person" creation time, and no person properties.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from logpond.events.batch import MERGE_DANGEROUSLY, EventBatch, PersonUpdate

# Distinct ids that identify nobody (clients send them when they have no real id): a merge through one of
# them would join unrelated people. Compared lower-cased, then exactly; quoted forms count too.
_ILLEGAL_ANY_CASE = frozenset(
    {
        "anonymous",
        "guest",
        "distinctid",
        "distinct_id",
        "id",
        "not_authenticated",
        "email",
        "undefined",
        "true",
        "false",
    }
)
_ILLEGAL_EXACT = frozenset({"[object Object]", "NaN", "None", "none", "null", "0", "undefined"})

_PERSON_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")

_ABSENT = object()

MODE_FULL = "full"
MODE_PROPERTYLESS = "propertyless"
MODE_FORCE_UPGRADE = "force_upgrade"  # person-less event of a person older than a minute
_PERSONLESS_CREATED_AT_US = 5_000_000  # 1970-01-01T00:00:05Z, PostHog's marker of "no person"
_MINUTE_US = 60_000_000


def person_uuid(team_id: int, distinct_id: str) -> str:
    """The id a new person of ``distinct_id`` gets: the same on every server and every replay."""
    return str(uuid.uuid5(_PERSON_NAMESPACE, f"{team_id}:{distinct_id}"))


def is_mergeable_id(distinct_id: str) -> bool:
    if not distinct_id.strip():
        return False
    forms = [distinct_id]
    if len(distinct_id) > 1 and distinct_id[0] == distinct_id[-1] and distinct_id[0] in "'\"":
        forms.append(distinct_id[1:-1])
    return not any(f.lower() in _ILLEGAL_ANY_CASE or f in _ILLEGAL_EXACT for f in forms)


@dataclass(slots=True)
class Person:
    id: str
    team_id: int
    created_at_us: int
    properties: dict[str, Any]
    is_identified: bool
    version: int
    last_seen_us: int | None = None
    is_deleted: bool = False
    _json: str | None = None

    def properties_json(self) -> str:
        if self._json is None:
            self._json = orjson.dumps(self.properties, option=orjson.OPT_NON_STR_KEYS).decode()
        return self._json

    def changed(self) -> None:
        self._json = None
        self.version += 1


@dataclass(frozen=True, slots=True)
class Mapping:
    """A distinct id's person (``None``: known to have none) and the version of that mapping row."""

    person_id: str | None
    version: int


class PersonSource(Protocol):
    """The stored state: what the cache does not hold is read from here."""

    def distinct_ids(self, team_id: int, distinct_ids: list[str]) -> dict[str, Mapping]:
        """Current mappings of the given distinct ids that exist (absent ids are left out)."""

    def persons(self, team_id: int, person_ids: list[str]) -> dict[str, Person]:
        """Current rows of the given persons that exist and are not deleted."""

    def distinct_ids_of(self, team_id: int, person_id: str) -> dict[str, Mapping]:
        """Every distinct id currently mapped to ``person_id``."""

    def count_distinct_ids(self, team_id: int) -> int:
        """How many distinct-id mappings the project has (deleted ones included)."""

    def all_distinct_ids(self, team_id: int) -> dict[str, Mapping]:
        """Every mapping of the project (deleted ones with no person)."""

    def all_persons(self, team_id: int) -> dict[str, Person]:
        """Every person of the project, merged-away ones included (flagged deleted)."""


@dataclass
class Stamps:
    """Per event row: the person columns the events table stores."""

    person_ids: list[str] = field(default_factory=list)
    person_properties: list[str] = field(default_factory=list)
    person_created_at_us: list[int] = field(default_factory=list)
    person_modes: list[str] = field(default_factory=list)


@dataclass
class Changes:
    """Rows to append: persons (latest state), distinct-id mappings, and merges as (from, into) person ids."""

    persons: list[Person]
    distinct_ids: list[tuple[int, str, str, int, bool]]  # team_id, distinct_id, person_id, version, deleted
    merges: list[tuple[int, str, str]]  # team_id, merged-away person, surviving person


class PersonProcessor:
    def __init__(self, source: PersonSource, *, max_cached: int = 500_000) -> None:
        self.source = source
        self.max_cached = max_cached
        self._mappings: OrderedDict[tuple[int, str], Mapping] = OrderedDict()
        self._persons: OrderedDict[tuple[int, str], Person] = OrderedDict()
        self._absent: OrderedDict[tuple[int, str], None] = OrderedDict()  # person ids known not to exist
        # distinct ids that sent person-less events and have no person yet (PostHog keeps these in a table;
        # here they are remembered while the server runs, up to the cache size)
        self._personless: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._dirty_persons: dict[tuple[int, str], Person] = {}
        self._dirty_mappings: dict[tuple[int, str], Mapping] = {}
        self._merges: list[tuple[int, str, str]] = []
        # projects whose every mapping and person is in the cache: a miss there means "none", no store read.
        # A project small enough is loaded whole when first seen; any trim of the cache ends this for all.
        self._complete: set[int] = set()
        self._checked: set[int] = set()
        self.stats = {"store_lookups": 0, "persons_created": 0, "merges": 0, "merges_refused": 0}

    # --- the writer's interface ------------------------------------------------------------------
    def process(self, batch: EventBatch) -> Stamps:
        """Apply ``batch``'s person work in row order and return the person columns of its events."""
        team = batch.team_id
        self._load(team, batch)
        updates: dict[int, PersonUpdate] = {u.row: u for u in batch.updates}
        stamps = Stamps()
        # each distinct id's person, resolved once per batch; a link or merge may change any of them
        resolved: dict[str, Person] = {}
        for row, distinct_id in enumerate(batch.distinct_ids):
            timestamp = batch.timestamps[row]
            if row in batch.personless:
                existing = self._person_of(team, distinct_id)
                if existing is None:
                    self._personless[(team, distinct_id)] = None
                    stamps.person_ids.append(person_uuid(team, distinct_id))
                    stamps.person_created_at_us.append(_PERSONLESS_CREATED_AT_US)
                    stamps.person_modes.append(MODE_PROPERTYLESS)
                else:
                    stamps.person_ids.append(existing.id)
                    stamps.person_created_at_us.append(existing.created_at_us)
                    old = timestamp > existing.created_at_us + _MINUTE_US
                    stamps.person_modes.append(MODE_FORCE_UPGRADE if old else MODE_PROPERTYLESS)
                stamps.person_properties.append("{}")
                continue
            update = updates.get(row)
            if update is not None and update.other_distinct_id is not None:
                self._link(team, distinct_id, update.other_distinct_id, update.merge_kind, timestamp, batch.uuids[row])
                resolved.clear()
            person = resolved.get(distinct_id)
            if person is None:
                person = resolved[distinct_id] = self._person_for(team, distinct_id, timestamp, batch.uuids[row])
            if update is not None:
                self._apply(person, update)
            if person.last_seen_us is None or timestamp > person.last_seen_us:
                person.last_seen_us = timestamp  # written with the person's next change
            stamps.person_ids.append(person.id)
            stamps.person_properties.append(person._json or person.properties_json())
            stamps.person_created_at_us.append(person.created_at_us)
            stamps.person_modes.append(MODE_FULL)
        return stamps

    def changes(self) -> Changes:
        rows = [(t, d, m.person_id or "", m.version, m.person_id is None) for (t, d), m in self._dirty_mappings.items()]
        return Changes(persons=list(self._dirty_persons.values()), distinct_ids=rows, merges=list(self._merges))

    def confirm(self) -> None:
        """The rows of ``changes()`` are stored: forget them, and trim the cache."""
        self._dirty_persons.clear()
        self._dirty_mappings.clear()
        self._merges.clear()
        for cache in (self._mappings, self._persons, self._absent, self._personless):
            while len(cache) > self.max_cached:
                cache.popitem(last=False)
                self._complete.clear()

    # --- lookups -----------------------------------------------------------------------------------
    def _load_project(self, team: int) -> None:
        """Read a project's whole person state once, if it fits in half the cache."""
        self._checked.add(team)
        if self.source.count_distinct_ids(team) > self.max_cached // 2:
            return
        for distinct_id, mapping in self.source.all_distinct_ids(team).items():
            self._mappings[(team, distinct_id)] = mapping
        for person_id, person in self.source.all_persons(team).items():
            self._persons[(team, person_id)] = person
        self._complete.add(team)

    def _load(self, team: int, batch: EventBatch) -> None:
        if team not in self._checked:
            self._load_project(team)
        wanted = set(batch.distinct_ids)
        wanted.update(u.other_distinct_id for u in batch.updates if u.other_distinct_id is not None)
        missing = [d for d in wanted if (team, d) not in self._mappings]
        if missing and team in self._complete:
            for distinct_id in missing:
                self._mappings[(team, distinct_id)] = Mapping(None, 0)
        elif missing:
            self.stats["store_lookups"] += 1
            found = self.source.distinct_ids(team, missing)
            for distinct_id in missing:
                self._mappings[(team, distinct_id)] = found.get(distinct_id, Mapping(None, 0))
        person_ids = {
            m.person_id
            for d in wanted
            if (m := self._mappings[(team, d)]).person_id is not None and (team, m.person_id) not in self._persons
        }
        # a new distinct id's person gets the derived id, unless a person with that id existed and was
        # merged away: read those ids in the same query rather than one by one when creating
        derived = {person_uuid(team, d): d for d in wanted if self._mappings[(team, d)].person_id is None}
        unknown = [p for p in derived if (team, p) not in self._persons and (team, p) not in self._absent]
        if team in self._complete:
            for person_id in unknown:
                self._absent[(team, person_id)] = None
            unknown = []
        person_ids.update(unknown)
        if person_ids:
            loaded = self.source.persons(team, sorted(person_ids))
            for person_id, person in loaded.items():
                self._persons[(team, person_id)] = person
            for person_id in unknown:
                if person_id not in loaded:
                    self._absent[(team, person_id)] = None
        for distinct_id in wanted:  # recently used: last to be trimmed
            self._mappings.move_to_end((team, distinct_id))

    def _mapping(self, team: int, distinct_id: str) -> Mapping:
        key = (team, distinct_id)
        mapping = self._mappings.get(key)
        if mapping is None:  # trimmed since this batch was loaded (only possible with a tiny cache)
            mapping = self.source.distinct_ids(team, [distinct_id]).get(distinct_id, Mapping(None, 0))
            self._mappings[key] = mapping
        return mapping

    def _person(self, team: int, person_id: str) -> Person | None:
        person = self._persons.get((team, person_id))
        if person is None and (team, person_id) not in self._absent:
            person = self.source.persons(team, [person_id]).get(person_id)
            if person is not None:
                self._persons[(team, person_id)] = person
        return person

    def _person_of(self, team: int, distinct_id: str) -> Person | None:
        mapping = self._mapping(team, distinct_id)
        if mapping.person_id is None:
            return None
        person = self._person(team, mapping.person_id)
        return None if person is None or person.is_deleted else person

    # --- changes -----------------------------------------------------------------------------------
    def _set_mapping(self, team: int, distinct_id: str, person_id: str) -> None:
        key = (team, distinct_id)
        previous = self._mapping(team, distinct_id)
        mapping = Mapping(person_id, previous.version + 1)
        self._mappings[key] = mapping
        self._dirty_mappings[key] = mapping
        if self._personless.pop(key, _ABSENT) is not _ABSENT:
            # its person-less events carry the derived id: move them to the person it now belongs to
            derived = person_uuid(team, distinct_id)
            if derived != person_id:
                self._merges.append((team, derived, person_id))

    def _was_personless(self, team: int, distinct_id: str) -> bool:
        return (team, distinct_id) in self._personless

    def _dirty(self, person: Person) -> None:
        self._dirty_persons[(person.team_id, person.id)] = person

    def _create(
        self, team: int, distinct_id: str, timestamp: int, event_uuid: str, *, id_from: str | None = None
    ) -> Person:
        person_id = person_uuid(team, id_from or distinct_id)
        existing = self._person(team, person_id)
        if existing is not None and existing.is_deleted:
            # the derived id was merged away earlier: a fresh person needs a fresh id
            person_id = str(uuid.uuid4())
        person = Person(
            id=person_id,
            team_id=team,
            created_at_us=timestamp,
            properties={"$creator_event_uuid": event_uuid},
            is_identified=False,
            version=0,
            last_seen_us=timestamp,
        )
        self._persons[(team, person_id)] = person
        self._absent.pop((team, person_id), None)
        self._dirty(person)
        self._set_mapping(team, distinct_id, person_id)
        self.stats["persons_created"] += 1
        return person

    def _person_for(self, team: int, distinct_id: str, timestamp: int, event_uuid: str) -> Person:
        person = self._person_of(team, distinct_id)
        return person if person is not None else self._create(team, distinct_id, timestamp, event_uuid)

    def _apply(self, person: Person, update: PersonUpdate) -> None:
        props = person.properties
        changed = False
        once, missing = update.set_once, update.set_if_missing
        # most events only repeat where the person came from: nothing to do once it has every key
        nothing_new = (once is None or props.keys() >= once.keys()) and (
            missing is None or props.keys() >= missing.keys()
        )
        if update.set is None and update.unset is None and nothing_new:
            return
        for key, value in (once or {}).items():
            if key not in props:
                props[key] = value
                changed = True
        for key, value in (update.set or {}).items():
            if key not in props or props[key] != value:
                props[key] = value
                changed = True
        for key, value in (update.set_if_missing or {}).items():
            if key not in props:
                props[key] = value
                changed = True
        for key in update.unset or ():
            if key in props:
                del props[key]
                changed = True
        if changed:
            person.changed()
            self._dirty(person)

    def _identified(self, person: Person) -> None:
        if not person.is_identified:
            person.is_identified = True
            person.changed()
            self._dirty(person)

    def _link(
        self, team: int, distinct_id: str, other_id: str, kind: str | None, timestamp: int, event_uuid: str
    ) -> None:
        """``$identify`` / ``$create_alias``: make ``distinct_id`` and ``other_id`` one person."""
        if other_id == distinct_id or not is_mergeable_id(other_id) or not is_mergeable_id(distinct_id):
            return
        into = self._person_of(team, distinct_id)
        other = self._person_of(team, other_id)
        if into is None and other is None:
            # when only the other id sent person-less events, the person takes that id's derived uuid, so
            # those events already carry it
            owner = (
                other_id
                if self._was_personless(team, other_id) and not self._was_personless(team, distinct_id)
                else distinct_id
            )
            person = self._create(team, distinct_id, timestamp, event_uuid, id_from=owner)
            self._set_mapping(team, other_id, person.id)
            self._identified(person)
        elif other is None:
            assert into is not None
            self._set_mapping(team, other_id, into.id)
            self._identified(into)
        elif into is None:
            self._set_mapping(team, distinct_id, other.id)
            self._identified(other)
        elif into.id == other.id:
            self._identified(into)
        elif other.is_identified and kind != MERGE_DANGEROUSLY:
            self.stats["merges_refused"] += 1
            self._identified(into)  # the event's own person is identified all the same
        else:
            self._merge(team, other, into)

    def _merge(self, team: int, other: Person, into: Person) -> None:
        into.properties = {**other.properties, **into.properties}
        into.created_at_us = min(into.created_at_us, other.created_at_us)
        into.is_identified = True
        if other.last_seen_us is not None and (into.last_seen_us is None or other.last_seen_us > into.last_seen_us):
            into.last_seen_us = other.last_seen_us
        into.version = max(into.version, other.version)
        into.changed()
        self._dirty(into)
        moved = dict(self.source.distinct_ids_of(team, other.id))
        for (t, d), mapping in self._mappings.items():
            if t == team and mapping.person_id == other.id:
                moved[d] = mapping
        for distinct_id in moved:
            self._set_mapping(team, distinct_id, into.id)
        other.is_deleted = True
        other.changed()
        self._dirty(other)
        self._merges.append((team, other.id, into.id))
        self.stats["merges"] += 1
