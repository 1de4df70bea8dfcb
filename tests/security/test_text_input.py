"""Text input of every write serializer: limits hold for what the client sent, and the characters allowed are the
field's ``jobops.fields.Text`` kind (README, "Text input").

Each write serializer's string fields are found by introspection (a new string field is tested without editing
this file) and fed: over-long text made of characters Python's ``str.strip()`` removes (the fuzzer's ST201 find:
10,001 U+001D passed ``maxLength: 10000`` as ``""``), every refused control character (alone, inside, and at the
end where trimming would hide it), unpaired surrogates, and the characters the kind does accept. The schema test
checks that every string of every request body publishes the pattern the field checks.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.validators import RegexValidator
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from accounts.serializers import (
    MeUpdateSerializer,
    PasswordChangeSerializer,
    PhoneField,
    TokenObtainSerializer,
    TokenRefreshSerializer,
    UserCreateSerializer,
    UserUpdateSerializer,
)
from equipment.serializers import EquipmentWriteSerializer
from jobops.fields import WHITESPACE, StrictCharField, Text, TextValidator
from jobs.serializers import (
    JobTaskCreateSerializer,
    JobTaskReorderSerializer,
    JobTaskUpdateSerializer,
    JobWriteSerializer,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

#: Every serializer that reads a request body (the views' ``validate_input``/``validated`` and ``extend_schema``).
WRITE_SERIALIZERS: list[type[serializers.Serializer]] = [
    UserCreateSerializer,
    UserUpdateSerializer,
    MeUpdateSerializer,
    PasswordChangeSerializer,
    TokenObtainSerializer,
    TokenRefreshSerializer,
    EquipmentWriteSerializer,
    JobWriteSerializer,
    JobTaskCreateSerializer,
    JobTaskUpdateSerializer,
    JobTaskReorderSerializer,
]

#: Refused by each kind: every one of them, alone, inside a text and at its end.
REFUSED: dict[Text, list[str]] = {
    Text.LINE: [
        "\x00",
        "\x01",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x1d",
        "\x1e",
        "\x1f",
        "\x7f",
        "\x80",
        "\x85",
        "\x9f",
        "\u2028",
        "\u2029",
    ],
    Text.MULTILINE: ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1c", "\x1d", "\x1f", "\x7f", "\x85", "\x9f"],
    Text.ANY: ["\x00"],
}

#: Accepted by each kind (kept as sent: nothing here is at either end, so trimming leaves it alone).
ACCEPTED: dict[Text, list[str]] = {
    Text.LINE: [
        "a b",
        "Müller & Söhne",
        "漢字 עברית",
        "emoji 🚀👩🏽‍🔧",
        "a\u3000b",
        "a\u00a0b",
        "a\ufeffb",
        "a\u200db",
    ],
    Text.MULTILINE: ["line one\nline two", "a\r\nb", "col\tcol", "a\u2028b\u2029c", "漢字\n🚀"],
    Text.ANY: ["a b", "tab\tand\nnewline", "a\x01\x1f\x7f\x85b", "漢字🚀"],
}

#: Characters ``str.strip()`` removes that a client may not think of as whitespace (and plain ones).
STRIPPED = [" ", "\u3000", "\u00a0", "\u2003", "\x1d", "\x85", "\t"]


def _text_fields() -> list[tuple[type[serializers.Serializer], str]]:
    found = []
    for serializer_class in WRITE_SERIALIZERS:
        for name, field in serializer_class().fields.items():
            if isinstance(field, serializers.CharField) and not field.read_only:
                found.append((serializer_class, name))
    return found


TEXT_FIELDS = _text_fields()
IDS = [f"{serializer_class.__name__}.{name}" for serializer_class, name in TEXT_FIELDS]


def _field(serializer_class: type[serializers.Serializer], name: str) -> StrictCharField:
    field = serializer_class().fields[name]
    assert isinstance(field, StrictCharField), f"{serializer_class.__name__}.{name} is not a StrictCharField"
    return field


def _errors(serializer_class: type[serializers.Serializer], name: str, value: Any) -> list[str]:
    serializer = serializer_class(data={name: value}, partial=True)
    serializer.is_valid()
    return [str(error) for error in serializer.errors.get(name, [])]


def _own_pattern(field: StrictCharField) -> bool:
    """True if the field has a pattern of its own besides its kind's (e.g. a username's)."""
    return any(isinstance(v, RegexValidator) and not isinstance(v, TextValidator) for v in field.validators)


def _of_length(field: StrictCharField, length: int) -> str:
    """A value the field accepts, ``length`` characters long."""
    if isinstance(field, serializers.EmailField):
        domain = ".".join(["d" * 60] * 4)[: length - 64 - 5] + ".com"
        return ("a" * 64 + "@" + domain)[:length] if length >= 80 else "a" * (length - 12) + "@example.com"
    return "a" * length


def _samples(field: StrictCharField) -> list[str]:
    """Values the field accepts and keeps as they are."""
    if isinstance(field, PhoneField):  # stored in E.164: these are kept as sent
        return ["+442079460958", "+14155552671"]
    if isinstance(field, serializers.URLField):
        return ["https://hooks.example.com/jobops", "https://push.example.com/send/abc"]
    if isinstance(field, serializers.EmailField):
        return ["a.b@example.com", "x+y@sub.example.org"]
    if _own_pattern(field):  # a username: its own pattern decides
        return ["a.b", "user@host+tag-1"]
    return ACCEPTED[field.text]


def test_every_write_serializer_has_been_searched_for_text_fields():
    names = {f"{serializer_class.__name__}.{name}" for serializer_class, name in TEXT_FIELDS}
    # A sample of what introspection must find (if it finds none, every test below is vacuous).
    assert {
        "EquipmentWriteSerializer.description",
        "JobWriteSerializer.title",
        "JobTaskCreateSerializer.description",
        "UserCreateSerializer.email",
        "UserCreateSerializer.password",
        "TokenRefreshSerializer.refresh",
    } <= names
    assert len(names) >= 25


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_every_text_field_is_a_strict_char_field(serializer_class, name):
    field = _field(serializer_class, name)
    assert sum(isinstance(v, TextValidator) for v in field.validators) == 1


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_max_length_holds_for_the_text_as_sent(serializer_class, name):
    field = _field(serializer_class, name)
    if field.max_length is None:
        pytest.skip("no maximum length")
    limit = field.max_length
    too_long = [char * (limit + 1) for char in STRIPPED] + ["x" + " " * limit, " " * limit + "x", "x" * (limit + 1)]
    for value in too_long:
        errors = _errors(serializer_class, name, value)
        assert f"Ensure this field has no more than {limit} characters." in errors, (repr(value[:5]), errors)


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_text_at_the_limit_is_accepted_as_sent(serializer_class, name):
    field = _field(serializer_class, name)
    if isinstance(field, PhoneField | serializers.URLField):
        pytest.skip("its own format decides what a value of that length can be")
    value = _of_length(field, field.max_length or 10_000)
    assert len(value) == (field.max_length or 10_000)
    serializer = serializer_class(data={name: value}, partial=True)
    serializer.is_valid()
    assert name not in serializer.errors, serializer.errors
    assert serializer.validated_data[name] == value


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_refused_control_characters_are_400_wherever_they_are(serializer_class, name):
    field = _field(serializer_class, name)
    for char in REFUSED[field.text]:
        for value in (f"a{char}b", f"ab{char}", f"{char}ab", char * 3):
            assert _errors(serializer_class, name, value), (field.text, repr(value))


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_unpaired_surrogates_are_400(serializer_class, name):
    for value in ("a\ud800b", "\udfff", "ab\udbff"):
        errors = _errors(serializer_class, name, value)
        assert any("Surrogate characters are not allowed" in error for error in errors), (repr(value), errors)


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_characters_of_the_kind_are_accepted_and_kept(serializer_class, name):
    field = _field(serializer_class, name)
    for value in _samples(field):
        serializer = serializer_class(data={name: value}, partial=True)
        serializer.is_valid()
        assert name not in serializer.errors, (repr(value), serializer.errors)
        assert serializer.validated_data[name] == value


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_surrounding_whitespace_is_trimmed_only_where_the_field_says_so(serializer_class, name):
    field = _field(serializer_class, name)
    core = _samples(field)[0]
    if _own_pattern(field):
        # The pattern holds for the text as sent, so surrounding spaces are refused, not trimmed away.
        assert _errors(serializer_class, name, f" {core} ")
        return
    serializer = serializer_class(data={name: f" \u3000{core} "}, partial=True)
    serializer.is_valid()
    assert name not in serializer.errors, serializer.errors
    assert serializer.validated_data[name] == (core if field.trim_whitespace else f" \u3000{core} ")


@pytest.mark.parametrize(("serializer_class", "name"), TEXT_FIELDS, ids=IDS)
def test_whitespace_only_text_is_blank(serializer_class, name):
    field = _field(serializer_class, name)
    if _own_pattern(field) or not field.trim_whitespace:
        pytest.skip("not trimmed, or a pattern of its own refuses spaces")
    errors = _errors(serializer_class, name, " \u3000 ")
    if field.allow_blank:
        serializer = serializer_class(data={name: " \u3000 "}, partial=True)
        assert serializer.is_valid() or name not in serializer.errors, serializer.errors
        assert serializer.validated_data[name] == ""
    else:
        assert errors == ["This field may not be blank."]


# --- the published schema says what is checked --------------------------------------------------------------------


def _ecma(pattern: str) -> str:
    # As drf-spectacular publishes a Python pattern.
    return pattern.replace(r"\x", r"\u00").replace(r"\A", "^").replace(r"\Z", "$")


def _request_body_strings(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    components = schema["components"]["schemas"]
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if not body:
                continue
            ref = body.get("$ref", "")
            component = components[ref.rsplit("/", 1)[-1]] if ref else body
            for prop, prop_schema in component.get("properties", {}).items():
                for variant in prop_schema.get("oneOf", [prop_schema]):
                    if variant.get("type") == "string" and variant.get("maxLength") != 0:
                        found.append((f"{method.upper()} {path}", prop, variant))
    return found


def test_every_string_of_every_request_body_publishes_its_pattern():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    strings = _request_body_strings(schema)
    assert len(strings) >= 25, strings
    kinds = {_ecma(kind.pattern(non_blank=non_blank)) for kind in Text for non_blank in (False, True)}
    for operation, prop, variant in strings:
        if "format" in variant and variant["format"] in ("date", "date-time"):
            continue
        assert "pattern" in variant, (operation, prop, variant)
        if prop != "username" or "auth/token" in operation:
            assert variant["pattern"] in kinds, (operation, prop, variant)


@pytest.mark.parametrize("non_blank", [False, True])
@pytest.mark.parametrize("kind", list(Text))
def test_published_pattern_agrees_with_the_check(kind, non_blank):
    """The ECMA form of each kind, read back by Python, refuses exactly what the field refuses."""
    published = re.compile(_ecma(kind.pattern(non_blank=non_blank)).replace("$", r"\Z"))
    validator = kind.validator(non_blank=non_blank)
    samples = [*REFUSED[kind], *ACCEPTED[kind], "plain", "\u2028", "\t", "\n", " ", " \u3000\t", " a ", "\u3000x"]
    for sample in samples:
        refused = False
        try:
            validator(sample)
        except Exception:  # noqa: BLE001 - any validation error
            refused = True
        assert refused == (published.fullmatch(sample) is None), (kind, repr(sample))


def test_whitespace_is_what_str_strip_removes():
    assert {code for code in range(0x110000) if chr(code).isspace()} == WHITESPACE
    assert all(("a" + chr(code) + "a").strip(chr(code)) == "a" + chr(code) + "a" for code in WHITESPACE)
    assert all((chr(code) + "a" + chr(code)).strip() == "a" for code in WHITESPACE)


@pytest.mark.parametrize("kind", list(Text))
def test_text_of_whitespace_alone_is_blank_when_the_field_may_not_be(kind):
    validator = kind.validator(non_blank=True)
    for value in (" ", "\u3000\u2003", " \u00a0 "):
        with pytest.raises(serializers.ValidationError) as caught:
            validator(value)
        assert [str(detail) for detail in caught.value.detail] == ["This field may not be blank."]
    validator(" a ")


# --- query parameters: the same length rule (jobops.filters.TextFilter) ------------------------------------------


def _text_query_parameters() -> list[tuple[str, str, dict[str, Any]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "string":
                if "maxLength" in parameter["schema"]:
                    found.append((path, parameter["name"], parameter["schema"]))
    return found


def test_every_text_query_parameter_publishes_its_limit_and_holds_it_as_sent(admin_user):
    parameters = _text_query_parameters()
    names = {(path, name) for path, name, _ in parameters}
    assert {
        ("/api/jobs/", "search"),
        ("/api/equipment/", "search"),
        ("/api/users/", "search"),
        ("/api/audit/", "action"),
        ("/api/audit/", "object_type"),
    } <= names
    client = client_for(admin_user)
    for path, name, schema in parameters:
        limit = schema["maxLength"]
        for value in (" " * (limit + 1), "\u3000" * (limit + 1), "x" + " " * limit, "x" * (limit + 1)):
            response = client.get(path, {name: value})
            assert response.status_code == 400, (path, name, repr(value[:3]), response.content[:200])
            assert name in response.json(), response.json()
        if "pattern" not in schema:  # an opaque token (the change feed's cursor) has its own format
            response = client.get(path, {name: "x" * limit})
            assert response.status_code == 200, (path, name, response.content[:200])
