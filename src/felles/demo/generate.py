"""Build the synthetic country in memory: pure functions of (persons, seed), no database.

Everything is drawn from one `random.Random(seed)` and dated against a fixed reference
day, so the same arguments always give the same rows. Rows are dicts keyed by column
name, ready for bulk inserts. The country comes in chunks of whole families, so a large
population never has to sit in memory at once.
"""

from __future__ import annotations

import bisect
import itertools
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Generic, Literal, TypeVar

from felles.demo import data
from felles.registry.numbers import synthetic_orgnr, synthetic_pid
from felles.registry.schemas import Address

Row = dict[str, Any]
T = TypeVar("T")

REFERENCE_DATE = date(2026, 1, 1)
"""The country is as it stands on this day; nothing depends on when it is generated."""

REF = REFERENCE_DATE.toordinal()
CHUNK_PERSONS = 5_000
PERSONS_PER_ORGANISATION = 15
AGENCY_SEED = 0xFE11E5  # agencies keep the same numbers whatever the country's seed
KRR_RESERVATIONS_FROM = date(2014, 1, 1).toordinal()  # reservation became possible
EARLIEST_ARRIVAL = date(1970, 1, 1).toordinal()
SAME_SEX_MARRIAGE_FROM = date(2009, 1, 1).toordinal()
MAILBOX_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "ł": "l", "ß": "ss", "đ": "d"})

UnitKind = Literal["single", "couple", "family", "single_parent", "lineage"]
_UNIT_WEIGHTS: tuple[tuple[UnitKind, int], ...] = (
    ("single", 30),
    ("couple", 20),
    ("family", 21),
    ("single_parent", 5),
    ("lineage", 25),
)


@dataclass(slots=True)
class Country:
    """Rows for each register table, in an order that satisfies the foreign keys."""

    persons: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    relations: list[Row] = field(default_factory=list)
    organisations: list[Row] = field(default_factory=list)
    roles: list[Row] = field(default_factory=list)
    contacts: list[Row] = field(default_factory=list)
    agencies: list[Row] = field(default_factory=list)

    def tables(self) -> tuple[tuple[str, list[Row]], ...]:
        """(table key, rows) in insert order: parents before the rows that point at them."""
        return (
            ("persons", self.persons),
            ("events", self.events),
            ("relations", self.relations),
            ("organisations", self.organisations),
            ("roles", self.roles),
            ("contacts", self.contacts),
            ("agencies", self.agencies),
        )

    def extend(self, other: Country) -> None:
        for (_, mine), (_, theirs) in zip(self.tables(), other.tables(), strict=True):
            mine.extend(theirs)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for _, rows in self.tables())


Home = list[tuple[int, Address]]
"""Where a household lived: (day it moved in, address), oldest first."""


@dataclass(slots=True)
class _Draft:
    """A person while their family is being put together."""

    pid: str
    given: str
    middle: str | None
    family: str
    birth: int
    female: bool
    citizenship: str
    born_abroad: str | None = None  # country of birth when not Norway
    d_number: bool = False
    moves: Home = field(default_factory=list)  # first: at birth or on arrival
    extra: list[tuple[int, int, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def home(self) -> Address:
        return self.moves[-1][1]


@dataclass(frozen=True, slots=True)
class _Head:
    """The grown-up child of a family who now heads a household of their own."""

    birth: int
    female: bool
    family: str
    parents: tuple[_Draft, ...]
    parents_home: Home


def generate_country(persons: int, seed: int) -> Country:
    """The whole country at once (handy for tests and small populations)."""
    country = Country()
    for chunk in iter_country(persons, seed):
        country.extend(chunk)
    return country


def iter_country(
    persons: int, seed: int, *, chunk_persons: int = CHUNK_PERSONS
) -> Iterator[Country]:
    """The country in chunks of whole families; agencies come with the first chunk."""
    if persons < 1:
        raise ValueError("a country needs at least one person")
    builder = _Builder(seed)
    remaining = persons
    first = True
    while remaining > 0:
        chunk = builder.start_chunk()
        if first:
            builder.add_agencies()
            first = False
        while remaining > 0 and len(chunk.persons) < chunk_persons:
            remaining -= builder.add_unit(remaining)
        builder.add_organisations(persons - remaining)
        yield chunk


# --- small date helpers (days are proleptic ordinals) ----------------------------------


def _add_years(day: int, years: int) -> int:
    d = date.fromordinal(day)
    try:
        return d.replace(year=d.year + years).toordinal()
    except ValueError:  # 29 February in a year without one
        return d.replace(year=d.year + years, day=28).toordinal()


def _age(birth: int, on: int = REF) -> int:
    b, d = date.fromordinal(birth), date.fromordinal(on)
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def _stamp(day: int) -> datetime:
    return datetime.combine(date.fromordinal(day), time(12, 0), tzinfo=UTC)


def _follow(home: Home, start: int, end: int = REF + 1) -> Home:
    """Where someone who lived in `home` from `start` until `end` lived, move by move."""
    current = home[0][1]
    for day, address in home:
        if day <= start:
            current = address
    path: Home = [(start, current)]
    path.extend((day, address) for day, address in home if start < day < end)
    return path


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c in "-"))


class _Weighted(Generic[T]):
    """Draw from fixed weights quickly (bisect on cumulative weights)."""

    def __init__(self, items: Sequence[tuple[T, int | float]]) -> None:
        self.items = [item for item, _ in items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]


@dataclass(frozen=True, slots=True)
class _Municipality:
    number: str
    name: str
    nynorsk: bool
    postal: tuple[tuple[str, str], ...]


_MUNICIPALITIES = _Weighted(
    [
        (_Municipality(number, name, nynorsk, postal), population)
        for number, name, population, nynorsk, postal in data.MUNICIPALITIES
    ]
)
_FOREIGN = _Weighted(data.FOREIGN_CITIZENSHIP_WEIGHTS)
_PARTNER_FOREIGN = _Weighted(data.PARTNER_COUNTRIES)
_UNITS = _Weighted(_UNIT_WEIGHTS)
# Age bands (youngest, oldest, weight) for the first adult of each kind of household.
_SINGLE_AGES = _Weighted(
    [((20, 29), 30), ((30, 49), 24), ((50, 66), 20), ((67, 79), 16), ((80, 99), 10)]
)
_COUPLE_AGES = _Weighted([((21, 39), 24), ((40, 59), 28), ((60, 79), 38), ((80, 94), 10)])
_PARENT_AGES = _Weighted([((24, 34), 30), ((35, 44), 40), ((45, 58), 30)])
_ELDER_AGES = _Weighted([((50, 64), 40), ((65, 79), 45), ((80, 95), 15)])
_KIDS = _Weighted([(1, 40), (2, 40), (3, 15), (4, 5)])
_HOME_MOVES = _Weighted([(0, 45), (1, 32), (2, 16), (3, 7)])
_EMAIL_DOMAINS = _Weighted(data.EMAIL_DOMAINS)
_MAILBOX = _Weighted([("felles", 50), ("digipost", 28), ("eboks", 10), (None, 12)])
_FORMS = _Weighted([("ENK", 45), ("AS", 44), ("ASA", 1), ("SA", 2), ("FLI", 6), ("STI", 2)])
_BY_NUMBER = {m.number: m for m in _MUNICIPALITIES.items}
_NYNORSK_MUNICIPALITIES = frozenset(m.number for m in _MUNICIPALITIES.items if m.nynorsk)


def _name_forms(origin: str, family: str) -> tuple[str, str]:
    """The male and female forms of a family name from abroad (Kowalski, Kowalska)."""
    for male, female in data.FOREIGN_NAMES[origin][2]:
        if family in (male, female):
            return male, female
    return family, family


class _Builder:
    """Makes households, businesses and agencies, keeping every number unique."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pids: set[str] = set()
        self.orgnrs: set[str] = set()
        self.org_names: set[str] = set()
        self.emails: set[str] = set()
        self.mobiles: set[str] = set()
        self.organisations_made = 0
        self.chunk = Country()
        self.adults: list[_Draft] = []  # who may hold roles, this chunk
        self.directors: list[_Draft] = []  # who already holds one, this chunk
        self.agency_rows = self._agency_rows()

    def start_chunk(self) -> Country:
        self.chunk = Country()
        self.adults = []
        self.directors = []
        return self.chunk

    # --- places ----------------------------------------------------------------------

    def _address(
        self, municipality: _Municipality | None = None, business: bool = False
    ) -> Address:
        rng = self.rng
        m = municipality or _MUNICIPALITIES.pick(rng)
        postal_code, postal_town = rng.choice(m.postal)
        if business:
            street = rng.choice(data.BUSINESS_STREETS)
        elif rng.random() < 0.15:
            street = rng.choice(data.CLASSIC_STREETS)
        else:
            endings = data.STREET_ENDINGS_NYNORSK if m.nynorsk else data.STREET_ENDINGS
            street = rng.choice(data.STREET_STEMS) + rng.choice(endings)
        number = 1 + int(rng.random() ** 2 * 120)
        letter = rng.choice("ABC") if rng.random() < 0.1 else ""
        return Address(f"{street} {number}{letter}", postal_code, postal_town, m.number, m.name)

    def _near(self, address: Address, same_municipality: float) -> Address:
        """A new address, in the same municipality with the given probability."""
        if self.rng.random() < same_municipality:
            return self._address(_BY_NUMBER[address.municipality_number])
        return self._address()

    def _home(self, formed: int, until: int = REF, first: Address | None = None) -> Home:
        """A household's addresses from `formed`, with a few moves before `until`."""
        home: Home = [(formed, first or self._address())]
        moves = _HOME_MOVES.pick(self.rng)
        if moves and until - formed > 2:
            days = sorted({self.rng.randint(formed + 1, until - 1) for _ in range(moves)})
            for day in days:
                home.append((day, self._near(home[-1][1], 0.6)))
        return home

    # --- people ----------------------------------------------------------------------

    def _pid(self, birth: int, female: bool, d_number: bool) -> str:
        born = date.fromordinal(birth)
        for _ in range(200):
            pid = synthetic_pid(born, self.rng, female=female, d_number=d_number)
            if pid not in self.pids:
                self.pids.add(pid)
                return pid
        raise RuntimeError(f"no free synthetic number left for {born}")  # pragma: no cover

    def _given(self, birth: int, female: bool, origin: str) -> str:
        rng = self.rng
        if origin != "NO":
            female_names, male_names, _ = data.FOREIGN_NAMES[origin]
            return rng.choice(female_names if female else male_names)
        year = date.fromordinal(birth).year
        if year < 1960:
            pool = data.FEMALE_NAMES_OLD if female else data.MALE_NAMES_OLD
            double = 0.08
        elif year < 1990:
            pool = data.FEMALE_NAMES_MID if female else data.MALE_NAMES_MID
            double = 0.06
        else:
            pool = data.FEMALE_NAMES_NEW if female else data.MALE_NAMES_NEW
            double = 0.02
        if rng.random() < double:
            return rng.choice(data.DOUBLE_FEMALE_NAMES if female else data.DOUBLE_MALE_NAMES)
        return rng.choice(pool)

    def _family_name(self) -> str:
        names = data.FAMILY_NAMES
        return names[int(len(names) * self.rng.random() ** 1.3)]

    def _foreign_family(self, origin: str) -> tuple[str, str]:
        return self.rng.choice(data.FOREIGN_NAMES[origin][2])

    def _person(
        self,
        birth: int,
        female: bool,
        family: str,
        *,
        origin: str = "NO",
        citizenship: str = "NO",
        born_abroad: str | None = None,
        d_number: bool = False,
        middle: str | None = None,
    ) -> _Draft:
        if origin == "NO" and middle is None and self.rng.random() < 0.1:
            middle = self._family_name()
            if middle == family:
                middle = None
        return _Draft(
            pid=self._pid(birth, female, d_number),
            given=self._given(birth, female, origin),
            middle=middle,
            family=family,
            birth=birth,
            female=female,
            citizenship=citizenship,
            born_abroad=born_abroad,
            d_number=d_number,
        )

    def _birth_aged(self, low: int, high: int) -> int:
        """A birth day for someone aged `low`..`high` (whole years) on the reference day."""
        years = self.rng.randint(low, high)
        latest = _add_years(REF, -years) - 1
        return self.rng.randint(_add_years(latest, -1) + 1, latest)

    def _partner_birth(self, birth: int, partner_female: bool) -> int:
        gap = max(-8.0, min(15.0, self.rng.gauss(2.5, 3.5)))  # he is a little older, on average
        day = birth + int(gap * 365.25) * (1 if partner_female else -1)
        youngest, oldest = _add_years(REF, -18) - 1, _add_years(REF, -100) + 1
        if day > youngest:  # too young for a partner: make them the older one instead
            day = min(birth - (day - birth), youngest - self.rng.randint(0, 3 * 365))
        elif day < oldest:
            day = oldest + self.rng.randint(0, 3 * 365)
        return day

    def _grow_up(self, person: _Draft, join: int, head: _Head | None) -> None:
        """A native adult's path: childhood home, leaving home, a flat or two, then `join`."""
        rng = self.rng
        leave = min(_add_years(person.birth, rng.randint(18, 24)) + rng.randint(0, 364), join)
        if head is not None:
            person.moves = _follow(head.parents_home, person.birth, leave)
        else:
            person.moves = _follow(self._home(person.birth, until=leave), person.birth, leave)
        if leave < join:
            days = {leave} | {rng.randint(leave, join - 1) for _ in range(rng.choice((0, 1, 1, 2)))}
            for day in sorted(days):
                person.moves.append((day, self._near(person.moves[-1][1], 0.5)))

    def _settle(self, adults: Sequence[_Draft], home: Home, heads: Sequence[_Head | None]) -> None:
        """Move the adults into `home` (each from their own past) on the day it was formed."""
        formed = home[0][0]
        for person, head in zip(adults, heads, strict=True):
            if person.born_abroad is not None and not person.moves:
                person.moves = _follow(home, formed)  # arrived straight into this home
            else:
                self._grow_up(person, formed, head)
                person.moves.extend(_follow(home, formed))

    def _marry(self, a: _Draft, b: _Draft, formed: int) -> None:
        rng = self.rng
        lo = max(formed, SAME_SEX_MARRIAGE_FROM) if a.female == b.female else formed
        if lo >= REF - 1:
            return
        since = lo + int((min(_add_years(lo, 12), REF - 1) - lo) * rng.random() ** 1.5)
        for x, y in ((a, b), (b, a)):
            x.extra.append((since, 3, "marriage", {"spouse": y.pid}))
            self._relation(x, y, "spouse", since)
        if a.female != b.female and rng.random() < 0.35:
            wife, husband = (a, b) if a.female else (b, a)
            if wife.born_abroad is None and wife.family != husband.family:
                change = {
                    "from": {"family_name": wife.family},
                    "to": {"family_name": husband.family},
                }
                wife.extra.append((since, 4, "name_change", change))
                wife.family = husband.family

    def _relation(self, person: _Draft, related: _Draft, kind: str, since: int) -> None:
        self.chunk.relations.append(
            {
                "pid": person.pid,
                "related_pid": related.pid,
                "kind": kind,
                "since": date.fromordinal(since),
            }
        )

    def _parent(self, child: _Draft, parents: Sequence[_Draft]) -> None:
        for parent in parents:
            self._relation(child, parent, "parent", child.birth)
            self._relation(parent, child, "child", child.birth)

    def _child_births(
        self, parents: Sequence[_Draft], count: int, youngest_age: int, oldest_age: int
    ) -> list[int]:
        """Birth days for children born when every parent was 20-45, aged within bounds."""
        lo = max(
            max(_add_years(p.birth, 20) for p in parents), _add_years(REF, -oldest_age - 1) + 1
        )
        hi = min(
            min(_add_years(p.birth, 45) for p in parents) - 1,
            _add_years(REF, -youngest_age) - 1,  # already `youngest_age` before today
        )
        if lo > hi:
            return []
        # Draw each child's age first, flat over the ages asked for, and drop those the
        # parents' window rules out: young parents then have fewer children so far,
        # rather than crowding the last few years with births.
        youngest, oldest = max(_age(hi), youngest_age), min(_age(lo), oldest_age)
        days = []
        for _ in range(count):
            for _attempt in range(3):
                years = self.rng.randint(youngest_age, oldest_age)
                if youngest <= years <= oldest:
                    break
            else:
                continue
            first = max(lo, _add_years(REF, -(years + 1)) + 1)
            last = min(hi, _add_years(REF, -years))
            days.append(self.rng.randint(first, last))
        births: list[int] = []
        for day in sorted(days):
            if not births or day - births[-1] >= 300:
                births.append(day)
        return births

    # --- households ------------------------------------------------------------------

    def add_unit(self, budget: int) -> int:
        """Add one household (or a family spread over several); return how many people."""
        kind = _UNITS.pick(self.rng)
        before = len(self.chunk.persons)
        if kind == "lineage" and budget >= 3:
            self._lineage(budget)
        elif kind in ("family", "single_parent", "couple") and budget >= 2:
            self._household(kind, budget, None, self._origin())
        else:
            self._household("single", 1, None, self._origin())
        return len(self.chunk.persons) - before

    def _origin(self) -> str:
        return _FOREIGN.pick(self.rng) if self.rng.random() < 0.2 else "NO"

    def _household(self, kind: UnitKind, budget: int, head: _Head | None, origin: str) -> int:
        """One household living together at one address; returns how many people."""
        rng = self.rng
        foreign = origin != "NO"
        if (
            kind == "single"
            and foreign
            and origin in data.D_NUMBER_COUNTRIES
            and rng.random() < 0.4
        ):
            return self._guest_worker(origin)
        # The first adult
        if head is not None:
            first = self._person(head.birth, head.female, head.family)
        else:
            female = rng.random() < (0.8 if kind == "single_parent" else 0.5)
            ages = {"single": _SINGLE_AGES, "couple": _COUPLE_AGES}.get(kind, _PARENT_AGES)
            birth = self._birth_aged(*ages.pick(rng))
            family, female_family = (
                self._foreign_family(origin) if foreign else (self._family_name(),) * 2
            )
            first = self._person(
                birth,
                female,
                female_family if female else family,
                origin=origin,
                citizenship=origin,
                born_abroad=origin if foreign else None,
            )
        adults = [first]
        heads: list[_Head | None] = [head]
        # A partner
        if kind in ("couple", "family") and budget >= 2:
            same_sex = kind == "couple" and not foreign and rng.random() < 0.03
            partner_female = first.female if same_sex else not first.female
            birth = self._partner_birth(first.birth, partner_female)
            if foreign:
                male_form, female_form = _name_forms(origin, first.family)
                partner = self._person(
                    birth,
                    partner_female,
                    female_form if partner_female else male_form,
                    origin=origin,
                    citizenship=origin,
                    born_abroad=origin,
                )
            elif rng.random() < 0.05:
                cc = _PARTNER_FOREIGN.pick(rng)
                male_form, female_form = self._foreign_family(cc)
                partner = self._person(
                    birth,
                    partner_female,
                    female_form if partner_female else male_form,
                    origin=cc,
                    citizenship=cc,
                    born_abroad=cc,
                )
            else:
                partner = self._person(birth, partner_female, self._family_name())
            adults.append(partner)
            heads.append(None)
        grown = max(_add_years(p.birth, 18) for p in adults)
        if grown >= REF - 1:  # nobody is old enough to have formed this household yet
            adults, heads = adults[:1], heads[:1]
            grown = _add_years(first.birth, 18)
        # Children at home
        kids: list[int] = []
        if kind in ("family", "single_parent") and budget > len(adults):
            count = min(_KIDS.pick(rng), budget - len(adults))
            kids = self._child_births(adults, count, 0, 19)
        # When the household formed, and where it has lived since
        if foreign:
            formed = REF - 30 - int((REF - 30 - max(grown, EARLIEST_ARRIVAL)) * rng.random() ** 2)
            formed = max(formed, grown)
        elif kids:
            formed = rng.randint(grown, kids[0])
        else:
            formed = grown + int((REF - 1 - grown) * rng.random() ** 1.6)
        formed = min(formed, REF - 1)
        home = self._home(formed)
        if foreign and formed <= _add_years(REF, -8) and rng.random() < 0.4:
            for adult in adults:
                if adult.born_abroad == origin:
                    adult.citizenship = "NO"  # naturalised
        self._settle(adults, home, heads)
        if len(adults) == 2 and rng.random() < 0.7:
            self._marry(adults[0], adults[1], formed)
        if head is not None:
            self._parent(first, head.parents)
        # The children themselves
        children: list[_Draft] = []
        if kids:
            father = next((a for a in adults if not a.female), None)
            mother = next((a for a in adults if a.female), None)
            name_giver = first
            if father is not None and mother is not None:
                name_giver = mother if rng.random() < 0.3 else father
            other = next((a for a in adults if a is not name_giver), None)
            for birth in kids:
                female = rng.random() < 0.49
                if foreign:
                    male_form, female_form = _name_forms(origin, name_giver.family)
                    family = female_form if female else male_form
                else:
                    family = name_giver.family
                middle = None
                if (
                    not foreign
                    and other is not None
                    and other.family != family
                    and rng.random() < 0.25
                ):
                    middle = other.family
                abroad = origin if foreign and birth < formed else None
                child_origin = origin if foreign and (abroad or rng.random() < 0.7) else "NO"
                citizenship = "NO" if any(a.citizenship == "NO" for a in adults) else origin
                child = self._person(
                    birth,
                    female,
                    family,
                    origin=child_origin,
                    citizenship=citizenship,
                    born_abroad=abroad,
                    middle=middle,
                )
                child.moves = _follow(home, formed if abroad else birth)
                self._parent(child, adults)
                children.append(child)
        for person in (*adults, *children):
            self._record(person)
        return len(adults) + len(children)

    def _guest_worker(self, origin: str) -> int:
        """Someone working here for a while on a D-number, without having settled."""
        rng = self.rng
        female = rng.random() < 0.35
        birth = self._birth_aged(20, 60)
        male_form, female_form = self._foreign_family(origin)
        person = self._person(
            birth,
            female,
            female_form if female else male_form,
            origin=origin,
            citizenship=origin,
            born_abroad=origin,
            d_number=True,
        )
        person.moves = [(REF - rng.randint(30, 6 * 365), self._address())]
        self._record(person)
        return 1

    def _lineage(self, budget: int) -> int:
        """Older parents and grown-up children who run households of their own."""
        rng = self.rng
        widowed = rng.random() < 0.25
        female = rng.random() < 0.5
        birth = self._birth_aged(*_ELDER_AGES.pick(rng))
        first = self._person(birth, female, self._family_name())
        elders = [first]
        if not widowed:
            partner_female = not female
            elders.append(
                self._person(
                    self._partner_birth(birth, partner_female), partner_female, self._family_name()
                )
            )
        births = self._child_births(elders, rng.choice((1, 2, 2, 3, 3)), 20, 80)
        grown = max(_add_years(p.birth, 18) for p in elders)
        formed = rng.randint(grown, births[0] if births else _add_years(grown, 10))
        home = self._home(formed)
        self._settle(elders, home, [None] * len(elders))
        if len(elders) == 2 and rng.random() < 0.8:
            self._marry(elders[0], elders[1], formed)
        for person in elders:
            self._record(person)
        made = len(elders)
        father = next((a for a in elders if not a.female), None)
        name_giver = father if father is not None and rng.random() < 0.8 else first
        for day in births:
            room = budget - made
            if room < 1:
                break
            head = _Head(day, rng.random() < 0.5, name_giver.family, tuple(elders), home)
            age = _age(day)
            kind: UnitKind = rng.choice(("single", "couple", "family", "family"))
            if age > 58 and kind == "family":
                kind = "couple"
            if age < 23 and rng.random() < 0.8:
                kind = "single"
            if room < 2:
                kind = "single"
            made += self._household(kind, room, head, "NO")
        return made

    def _record(self, person: _Draft) -> None:
        """Turn a finished person into rows: the person, their history, their contact entry."""
        chunk = self.chunk
        home = person.home
        events: list[tuple[int, int, str, dict[str, Any]]] = []
        first_day, first_address = person.moves[0]
        if person.born_abroad is None:
            place = {"country": "NO", "municipality_number": first_address.municipality_number}
            events.append((person.birth, 0, "birth", place))
        else:
            events.append(
                (
                    person.birth,
                    0,
                    "birth",
                    {"country": person.born_abroad, "municipality_number": None},
                )
            )
            if not person.d_number:
                events.append(
                    (
                        first_day,
                        1,
                        "immigration",
                        {
                            "from_country": person.born_abroad,
                            "municipality_number": first_address.municipality_number,
                        },
                    )
                )
        previous = first_address
        for day, address in person.moves[1:]:
            if address != previous:
                events.append(
                    (day, 2, "relocation", {"from": previous.as_event(), "to": address.as_event()})
                )
                previous = address
        events.extend(person.extra)
        events.sort(key=lambda e: (e[0], e[1]))
        for day, _, kind, payload in events:
            chunk.events.append(
                {
                    "pid": person.pid,
                    "kind": kind,
                    "effective_on": date.fromordinal(day),
                    "data": payload,
                    "recorded_at": _stamp(day),
                }
            )
        chunk.persons.append(
            {
                "pid": person.pid,
                "given_name": person.given,
                "middle_name": person.middle,
                "family_name": person.family,
                "birth_date": date.fromordinal(person.birth),
                "sex": "F" if person.female else "M",
                "citizenship": person.citizenship,
                "street": home.street,
                "postal_code": home.postal_code,
                "postal_town": home.postal_town,
                "municipality_number": home.municipality_number,
                "municipality_name": home.municipality_name,
                "deceased_on": None,
                "updated_at": _stamp(max(events[-1][0], person.moves[-1][0])),
            }
        )
        age = _age(person.birth)
        if age >= 18:
            self._contact(person, age)
            if 20 <= age <= 80:
                self.adults.append(person)

    def _contact(self, person: _Draft, age: int) -> None:
        """Most adults are in the contact register; some have said no to digital mail."""
        rng = self.rng
        reserved = rng.random() < (0.065 if age < 60 else 0.10 if age < 80 else 0.2)
        if not reserved and rng.random() >= 0.89:
            return
        elderly = age >= 80
        email = self._email(person) if rng.random() < (0.6 if elderly else 0.94) else None
        mobile = self._mobile() if rng.random() < (0.75 if elderly else 0.97) else None
        if not reserved and email is None and mobile is None:
            mobile = self._mobile()
        confirmed = REF - rng.randint(1, 730) if email or mobile else None
        provider = None if reserved else _MAILBOX.pick(rng)
        reserved_on = None
        if reserved:
            earliest = max(_add_years(person.birth, 18), KRR_RESERVATIONS_FROM)
            reserved_on = rng.randint(min(earliest, REF - 1), REF - 1)
        if person.born_abroad is not None and rng.random() < 0.45:
            language = "en"
        elif rng.random() < (
            0.3 if person.home.municipality_number in _NYNORSK_MUNICIPALITIES else 0.04
        ):
            language = "nn"
        else:
            language = "nb"
        changed = max(d for d in (confirmed, reserved_on, person.moves[-1][0]) if d is not None)
        self.chunk.contacts.append(
            {
                "pid": person.pid,
                "email": email,
                "mobile": mobile,
                "last_confirmed_on": date.fromordinal(confirmed) if confirmed else None,
                "reserved": reserved,
                "reserved_on": date.fromordinal(reserved_on) if reserved_on else None,
                "mailbox_provider": provider,
                "mailbox_address": self._mailbox_address(person, provider) if provider else None,
                "language": language,
                "updated_at": _stamp(changed),
            }
        )

    def _local_part(self, person: _Draft) -> str:
        given = _ascii(person.given.split()[0])
        family = _ascii(person.family.replace(" ", ""))
        return f"{given}.{family}".strip(".") or "person"

    def _email(self, person: _Draft) -> str:
        local = self._local_part(person)
        domain = _EMAIL_DOMAINS.pick(self.rng)
        email = f"{local}@{domain}"
        while email in self.emails:
            email = f"{local}{self.rng.randint(1, 9999)}@{domain}"
        self.emails.add(email)
        return email

    def _mobile(self) -> str:
        while True:
            number = f"+47 {self.rng.choice('49')}{self.rng.randrange(10**7):07d}"
            if number not in self.mobiles:
                self.mobiles.add(number)
                return number

    def _mailbox_address(self, person: _Draft, provider: str) -> str:
        code = "".join(self.rng.choice(MAILBOX_CHARS) for _ in range(4))
        if provider == "eboks":
            return f"EB{self.rng.randrange(10**10):010d}"
        return f"{self._local_part(person)}#{code}"

    # --- businesses ------------------------------------------------------------------

    def _orgnr(self, rng: random.Random) -> str:
        while True:
            orgnr = synthetic_orgnr(rng)
            if orgnr not in self.orgnrs:
                self.orgnrs.add(orgnr)
                return orgnr

    def _org_name(self, base: str, suffix: str, municipality: str) -> str:
        """A name no other organisation has: add the place, then a number, if taken."""
        tail = f" {suffix}" if suffix else ""
        for candidate in itertools.chain(
            (f"{base}{tail}", f"{base} {municipality}{tail}"),
            (f"{base} {n}{tail}" for n in itertools.count(2)),
        ):
            if candidate not in self.org_names:
                self.org_names.add(candidate)
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def _holder(self, taken: set[str], low: int = 20, high: int = 80) -> _Draft | None:
        """Someone to hold a role; people who already hold one are picked more often."""
        rng = self.rng
        for _ in range(30):
            if self.directors and rng.random() < 0.25:
                person = rng.choice(self.directors)
            else:
                person = rng.choice(self.adults)
            if person.pid not in taken and low <= _age(person.birth) <= high:
                return person
        return None

    def _role(self, orgnr: str, person: _Draft, code: str, registered: int, founder: bool) -> None:
        lo = max(registered, _add_years(person.birth, 18))
        since = lo if founder or lo >= REF - 1 else self.rng.randint(lo, REF - 1)
        self.chunk.roles.append(
            {"orgnr": orgnr, "pid": person.pid, "code": code, "since": date.fromordinal(since)}
        )
        self.directors.append(person)

    def add_organisations(self, persons_so_far: int) -> None:
        """Businesses and associations, about one per 15 people, run by this chunk's adults."""
        target = round(persons_so_far / PERSONS_PER_ORGANISATION)
        while self.organisations_made < target and self.adults:
            self._organisation()
            self.organisations_made += 1

    def _organisation(self) -> None:
        rng = self.rng
        form = _FORMS.pick(rng)
        orgnr = self._orgnr(rng)
        if form == "ENK":
            self._sole_proprietorship(orgnr)
            return
        taken: set[str] = set()
        chair = self._holder(taken) or rng.choice(self.adults)
        taken.add(chair.pid)
        municipality = _MUNICIPALITIES.pick(rng)
        suffix = form
        if form == "AS":
            trade, nace = rng.choice(data.TRADES)
            style = rng.random()
            if style < 0.4:
                base = f"{chair.family} {trade}"
            elif style < 0.7:
                base = f"{rng.choice(data.PLACE_WORDS)} {trade}"
            elif style < 0.9:
                base = rng.choice(data.PLACE_WORDS) + rng.choice(data.FUSED_ENDINGS)
            else:
                base = f"{chair.family} & {self._family_name()}"
            if rng.random() < 0.6:
                municipality = _BY_NUMBER[chair.home.municipality_number]
            registered = self._registered_since(1970, 0.8)
            dagl = chair if rng.random() < 0.45 else self._holder(taken)
            members = rng.choice((0, 0, 1, 2, 2, 3))
        elif form == "ASA":
            word, nace = rng.choice(data.ASA_NAMES)
            base = f"{rng.choice(data.PLACE_WORDS)} {word}"
            registered = self._registered_since(1985, 1.0)
            dagl = self._holder(taken)
            members = rng.randint(4, 6)
        else:
            names = {"SA": data.SA_NAMES, "FLI": data.FLI_NAMES, "STI": data.STI_NAMES}[form]
            word, nace = rng.choice(names)
            if form == "STI":
                owner = chair.family if rng.random() < 0.5 else municipality.name
                base = f"Stiftelsen {owner} {word}"
            else:
                base = f"{municipality.name} {word}"
            suffix = "SA" if form == "SA" else ""
            registered = self._registered_since(1950, 1.0)
            dagl = self._holder(taken) if form == "SA" or rng.random() < 0.3 else None
            members = rng.randint(2, 4)
        address = self._address(municipality, business=form in ("AS", "ASA", "SA"))
        name = self._org_name(base, suffix, municipality.name)
        self._org_row(orgnr, name, form, nace, address, registered)
        self._role(orgnr, chair, "LEDE", registered, founder=rng.random() < 0.5)
        if dagl is not None:
            self._role(orgnr, dagl, "DAGL", registered, founder=rng.random() < 0.5)
            taken.add(dagl.pid)
        for _ in range(members):
            member = self._holder(taken)
            if member is None:
                break
            taken.add(member.pid)
            self._role(orgnr, member, "MEDL", registered, founder=False)

    def _registered_since(self, year: int, skew: float) -> int:
        """A registration day from `year` on; skew below 1 favours recent years."""
        start = date(year, 1, 1).toordinal()
        return REF - 30 - int((REF - 30 - start) * self.rng.random() ** skew)

    def _sole_proprietorship(self, orgnr: str) -> None:
        """An ENK: one owner (INNH), named after them, run from their home."""
        rng = self.rng
        owner = self._holder(set(), 20, 75) or rng.choice(self.adults)
        trade, nace = rng.choice(data.TRADES)
        first_name = owner.given.split()[0]
        base = rng.choice(
            (
                f"{owner.family} {trade}",
                f"{first_name} {owner.family} {trade}",
                f"{trade} {first_name} {owner.family}",
            )
        )
        earliest = min(max(_add_years(owner.birth, 19), date(1985, 1, 1).toordinal()), REF - 2)
        registered = REF - 1 - int((REF - 1 - earliest) * rng.random() ** 1.5)
        address = owner.home
        name = self._org_name(base, "", address.municipality_name)
        self._org_row(orgnr, name, "ENK", nace, address, registered)
        self._role(orgnr, owner, "INNH", registered, founder=True)

    def _org_row(
        self, orgnr: str, name: str, form: str, nace: str, address: Address, registered: int
    ) -> None:
        self.chunk.organisations.append(
            {
                "orgnr": orgnr,
                "name": name,
                "form": form,
                "industry_code": nace,
                "street": address.street,
                "postal_code": address.postal_code,
                "postal_town": address.postal_town,
                "municipality_number": address.municipality_number,
                "registered_on": date.fromordinal(registered),
                "parent_orgnr": None,
            }
        )

    # --- agencies --------------------------------------------------------------------

    def _agency_rows(self) -> tuple[list[Row], list[Row]]:
        """Agencies get numbers from their own fixed seed, the same in every country."""
        rng = random.Random(AGENCY_SEED)
        organisations: list[Row] = []
        agencies: list[Row] = []
        for (
            slug,
            form,
            level,
            name_nb,
            name_nn,
            name_en,
            municipality,
            nace,
            street,
            postal_code,
            postal_town,
            registered,
        ) in data.AGENCIES:
            orgnr = self._orgnr(rng)
            self.org_names.add(name_nb)
            organisations.append(
                {
                    "orgnr": orgnr,
                    "name": name_nb,
                    "form": form,
                    "industry_code": nace,
                    "street": street,
                    "postal_code": postal_code,
                    "postal_town": postal_town,
                    "municipality_number": municipality or data.AGENCY_MUNICIPALITY[postal_town],
                    "registered_on": date.fromisoformat(registered),
                    "parent_orgnr": None,
                }
            )
            agencies.append(
                {
                    "orgnr": orgnr,
                    "slug": slug,
                    "level": level,
                    "name_nb": name_nb,
                    "name_nn": name_nn,
                    "name_en": name_en,
                    "municipality_number": municipality,
                }
            )
        return organisations, agencies

    def add_agencies(self) -> None:
        organisations, agencies = self.agency_rows
        self.chunk.organisations.extend(organisations)
        self.chunk.agencies.extend(agencies)
