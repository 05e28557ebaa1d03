"""Service definitions: the versioned document an agency publishes to offer a form.

A definition names its owner, its audience and level, the data as a JSON Schema 2020-12,
the pages that ask for it one thing at a time, what is filled in from the registers,
attachments, and the receipt. `check` lists every problem of a broken definition at once,
so an agency fixes them in one go instead of one per attempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from felles.registry.models import RoleCode

LANGUAGES = ("nb", "nn", "en")
CODE_PATTERN = r"^[a-z][a-z0-9-]{2,62}$"
FIELD_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_ROWS = 1000


def N_(message: str) -> str:
    """Marks a string for translation (pages translate it when they show it)."""
    return message


# Where a prefilled value comes from, its JSON type, and what the person is told.
PREFILL_SOURCES: dict[str, tuple[str, str]] = {
    "person.name": ("string", N_("From the population register")),
    "person.given_name": ("string", N_("From the population register")),
    "person.family_name": ("string", N_("From the population register")),
    "person.birth_date": ("string", N_("From the population register")),
    "person.address": ("object", N_("From the population register")),
    "person.children": ("array", N_("From the population register")),
    "person.email": ("string", N_("From the contact register")),
    "person.mobile": ("string", N_("From the contact register")),
    "organisation.orgnr": ("string", N_("From the business register")),
    "organisation.name": ("string", N_("From the business register")),
    "organisation.address": ("object", N_("From the business register")),
    "organisation.roles": ("array", N_("From the business register")),
}
# Sources a question's choices can be drawn from (one option per item).
OPTION_SOURCES = ("person.children",)
ATTACHMENT_TYPES = (
    "application/pdf",
    "image/jpeg",
    "image/png",
    "text/plain",
    "text/csv",
)


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Definition):
    """The same text in bokmål, nynorsk and English (all three are required)."""

    nb: Annotated[str, Field(min_length=1, max_length=4000)]
    nn: Annotated[str, Field(min_length=1, max_length=4000)]
    en: Annotated[str, Field(min_length=1, max_length=4000)]

    def __call__(self, lang: str) -> str:
        return str(getattr(self, lang, self.nb))


class Condition(Definition):
    """When a page is shown: a field's answer equals one value, is one of several, or not.
    `all`/`any` combine conditions."""

    field: str | None = None
    equals: Any = None
    one_of: list[Any] | None = None
    not_equals: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    def holds(self, data: dict[str, Any]) -> bool:
        if self.all is not None:
            return all(c.holds(data) for c in self.all)
        if self.any is not None:
            return any(c.holds(data) for c in self.any)
        value = data.get(self.field or "")
        if self.one_of is not None:
            return value in self.one_of
        if "not_equals" in self.model_fields_set:
            return bool(value != self.not_equals)
        return bool(value == self.equals)

    def fields(self) -> Iterator[str]:
        if self.field:
            yield self.field
        for part in (self.all or []) + (self.any or []):
            yield from part.fields()


class Question(Definition):
    """One field on a page: its label and help, and for choices the labels of the values."""

    field: str
    label: Text
    hint: Text | None = None
    options: dict[str, Text] | None = None
    options_from: Literal["person.children"] | None = None
    # For a repeating group (an array of objects): the label of each column.
    columns: dict[str, Text] | None = None


class Page(Definition):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
    title: Text
    intro: Text | None = None
    questions: Annotated[list[Question], Field(min_length=1, max_length=20)]
    when: Condition | None = None

    def shown(self, data: dict[str, Any]) -> bool:
        return self.when is None or self.when.holds(data)


class Prefill(Definition):
    field: str
    source: str
    # What the value is called where it is shown (check your answers, the receipt) when
    # no page asks for it.
    label: Text | None = None
    # Whether the person may change the value (a name from the register may not).
    editable: bool = False


class Audience(Definition):
    """Who may use the service: people for themselves, and/or businesses through roles."""

    persons: bool = True
    roles: list[RoleCode] = Field(default_factory=list)
    # Whether a business's general manager may delegate the service to someone else.
    delegable: bool = True


class Attachments(Definition):
    types: Annotated[list[str], Field(min_length=1)]
    max_bytes: Annotated[int, Field(ge=1, le=50_000_000)] = 10_000_000
    max_count: Annotated[int, Field(ge=1, le=50)] = 5
    label: Text | None = None


class Receipt(Definition):
    text: Text
    next_steps: Text
    answer_within_days: Annotated[int | None, Field(ge=1, le=365)] = None


class ServiceDefinition(Definition):
    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    # Bounded: the version is an integer column (PostgreSQL's int4).
    version: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    owner: Annotated[str, Field(min_length=2, max_length=50)]
    name: Text
    description: Text
    # Why the registers are read: shown on "who has used my data".
    purpose: Text
    level: Literal["idporten-loa-substantial", "idporten-loa-high"] = "idporten-loa-substantial"
    audience: Audience = Field(default_factory=Audience)
    data_schema: Annotated[dict[str, Any], Field(alias="schema")]
    pages: Annotated[list[Page], Field(min_length=1, max_length=100)]
    prefill: list[Prefill] = Field(default_factory=list)
    attachments: Attachments | None = None
    signature: bool = False
    receipt: Receipt
    keywords: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceDefinition:
        problems = list(self._problems())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        cls = jsonschema.Draft202012Validator
        return cls(self.data_schema, format_checker=cls.FORMAT_CHECKER)

    def properties(self) -> dict[str, Any]:
        props = self.data_schema.get("properties", {})
        return props if isinstance(props, dict) else {}

    def page(self, page_id: str) -> Page | None:
        return next((p for p in self.pages if p.id == page_id), None)

    def prefill_for(self, field: str) -> Prefill | None:
        return next((p for p in self.prefill if p.field == field), None)

    def _problems(self) -> Iterator[str]:
        """Everything wrong that pydantic's field checks cannot see."""
        schema = self.data_schema
        meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
        broken = False
        for error in meta.iter_errors(schema):
            broken = True
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            yield f"schema: not valid JSON Schema 2020-12 at {where}: {error.message}"
        if broken:
            return
        declared = schema.get("$schema")
        if declared not in (None, "https://json-schema.org/draft/2020-12/schema"):
            yield "schema: $schema must be https://json-schema.org/draft/2020-12/schema"
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            yield "schema: must be an object with properties"
            return
        props: dict[str, Any] = schema["properties"]
        for name in props:
            if not FIELD_PATTERN.match(name):
                yield f"schema: field name {name!r} must be lower-case letters, digits and _"
        asked: dict[str, str] = {}
        prefilled = {p.field for p in self.prefill}
        for page in self.pages:
            for question in page.questions:
                if question.field not in props:
                    yield f"pages/{page.id}: asks for {question.field!r}, not in the schema"
                elif question.field in asked:
                    yield (
                        f"pages/{page.id}: {question.field!r} is already asked on "
                        f"page {asked[question.field]!r}"
                    )
                else:
                    asked[question.field] = page.id
                    yield from _question_problems(page.id, question, props[question.field])
            for name in page.when.fields() if page.when else ():
                if name not in props:
                    yield f"pages/{page.id}: condition uses {name!r}, not in the schema"
                elif name not in prefilled and asked.get(name, page.id) == page.id:
                    yield f"pages/{page.id}: condition uses {name!r}, which no earlier page asks"
        ids = [p.id for p in self.pages]
        for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
            yield f"pages: the page id {duplicate!r} is used twice"
        for required in schema.get("required", []):
            if required not in asked and required not in prefilled:
                yield f"schema: {required!r} is required but no page asks for it"
        for rule in self.prefill:
            yield from _prefill_problems(rule, props, self.audience)
        if not self.audience.persons and not self.audience.roles:
            yield "audience: nobody may use the service (no persons, no roles)"
        if self.attachments:
            for kind in self.attachments.types:
                if kind not in ATTACHMENT_TYPES:
                    yield f"attachments: {kind!r} is not one of {', '.join(ATTACHMENT_TYPES)}"


def _question_problems(page: str, question: Question, schema: Any) -> Iterator[str]:
    where = f"pages/{page}/{question.field}"
    if not isinstance(schema, dict):
        yield f"{where}: the schema of the field must be an object"
        return
    kind = schema.get("type")
    if question.options is not None:
        values = schema.get("enum")
        if not isinstance(values, list):
            yield f"{where}: options need an enum in the schema"
        elif set(map(str, values)) != set(question.options):
            yield f"{where}: options must label exactly the enum's values"
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict) or items.get("type") != "object":
            yield f"{where}: a list must have object items (a repeating group)"
        elif set(question.columns or {}) != set(items.get("properties", {})):
            yield f"{where}: columns must label exactly the items' properties"
        elif "maxItems" not in schema or int(schema["maxItems"]) > MAX_ROWS:
            yield f"{where}: a repeating group needs maxItems of at most {MAX_ROWS}"
    elif question.columns is not None:
        yield f"{where}: columns are only for a list (type array)"
    if question.options_from and kind != "string":
        yield f"{where}: options_from needs a string field"
    if kind not in ("string", "integer", "number", "boolean", "array"):
        yield f"{where}: type must be string, integer, number, boolean or array"


def _prefill_problems(rule: Prefill, props: dict[str, Any], audience: Audience) -> Iterator[str]:
    where = f"prefill/{rule.field}"
    if rule.source not in PREFILL_SOURCES:
        yield f"{where}: unknown source {rule.source!r}; known: {', '.join(PREFILL_SOURCES)}"
        return
    if rule.field not in props:
        yield f"{where}: not in the schema"
        return
    wanted, _ = PREFILL_SOURCES[rule.source]
    if props[rule.field].get("type") != wanted:
        yield f"{where}: {rule.source} gives a{'n' if wanted[0] in 'aeio' else ''} {wanted}"
    if rule.source.startswith("organisation.") and not audience.roles:
        yield f"{where}: {rule.source} needs a business audience (roles)"


class DefinitionError(ValueError):
    """A definition that cannot be published, with every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse(document: Any) -> ServiceDefinition:
    """Validate a loaded YAML or JSON document; DefinitionError lists all problems."""
    if not isinstance(document, dict):
        raise DefinitionError(["the definition must be a mapping (YAML or JSON object)"])
    try:
        return ServiceDefinition.model_validate(document)
    except ValidationError as exc:
        raise DefinitionError(_problems_of(exc)) from None


def _problems_of(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        where = "/".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "value_error" and not where:
            problems.extend(message.split("\n"))
        else:
            problems.append(f"{where}: {message}" if where else message)
    return problems


def load_text(text: str) -> ServiceDefinition:
    """A definition from YAML (JSON is YAML too)."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError([f"not valid YAML or JSON: {exc}"]) from None
    return parse(document)
