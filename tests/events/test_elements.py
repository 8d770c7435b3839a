"""elements_chain: PostHog's encoding of autocapture elements, written from $elements and read back."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpond.events.elements import _split_chain, chain_to_elements, elements_chain_from_properties, elements_to_chain

# posthog-js $elements for a click on a signup button, innermost element first.
SIGNUP_CLICK: list[dict[str, Any]] = [
    {
        "tag_name": "button",
        "$el_text": "Sign up",
        "attr__class": "btn btn-primary",
        "attr__type": "submit",
        "attr__data-attr": "signup-button",
        "nth_child": 2,
        "nth_of_type": 1,
    },
    {"tag_name": "form", "attr__id": "signup", "attr__action": "/signup", "nth_child": 1, "nth_of_type": 1},
    {"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
]
SIGNUP_CHAIN = (
    'button.btn.btn-primary:attr__class="btn btn-primary"attr__data-attr="signup-button"attr__type="submit"'
    'nth-child="2"nth-of-type="1"text="Sign up";'
    'form:attr__action="/signup"attr__id="signup"attr_id="signup"nth-child="1"nth-of-type="1";'
    'body:nth-child="2"nth-of-type="1"'
)

# A chain in the shape PostHog's own element tests use: escaped quotes and semicolons inside values.
POSTHOG_CHAIN = (
    r'a.small:data-attr="something \" that; could mess up"href="/a-url"nth-child="1"nth-of-type="0"'
    r'number="33"prop="value"style="min-height: 100vh;"text="bla bla";'
    'button.btn.btn-primary:nth-child="0"nth-of-type="0";div:nth-child="0"nth-of-type="0";'
    'div:attr_id="nested"nth-child="0"nth-of-type="0"'
)


def element(**fields: Any) -> dict[str, Any]:
    """An element as chain_to_elements returns it, with the fields not given at their empty values."""
    base: dict[str, Any] = {
        "event": None,
        "text": None,
        "tag_name": None,
        "attr_class": None,
        "href": None,
        "attr_id": None,
        "nth_child": None,
        "nth_of_type": None,
        "attributes": {},
        "order": 0,
    }
    return base | fields


# Writing


def test_realistic_autocapture_click_encodes_like_posthog() -> None:
    """A posthog-js click on a button in a form gives PostHog's exact chain."""
    assert elements_to_chain(SIGNUP_CLICK) == SIGNUP_CHAIN


def test_posthog_production_shaped_element() -> None:
    """An SVG icon element encodes to the production-shaped chain in PostHog's element tests."""
    svg = {
        "tag_name": "svg",
        "attr__class": "LemonIcon text-3xl",
        "attr__fill": "currentColor",
        "attr__width": "100%",
        "nth_child": 1,
        "nth_of_type": 1,
    }
    assert elements_to_chain([svg]) == (
        'svg.LemonIcon.text-3xl:attr__class="LemonIcon text-3xl"attr__fill="currentColor"attr__width="100%"'
        'nth-child="1"nth-of-type="1"'
    )


def test_legacy_elements_example_from_posthog_ingestion() -> None:
    """The legacy $elements example of PostHog's ingestion tests gives its expected chain."""
    assert (
        elements_to_chain([{"tag_name": "a", "$el_text": "click", "nth_child": 1, "nth_of_type": 1}])
        == 'a:nth-child="1"nth-of-type="1"text="click"'
    )


def test_quotes_are_escaped_and_backslashes_are_not() -> None:
    """Quotes become \\" in keys and values and vanish from classes; backslashes pass through unchanged."""
    chain = elements_to_chain(
        [
            {
                "tag_name": "a",
                "$el_text": 'say "hi"',
                "attr__class": ['x"y'],
                "attr__data-attr": 'something " that; could mess up',
                'attr__we"ird': "C:\\path\\",
            }
        ]
    )
    assert chain == (
        r'a.xy:attr__class="x\"y"attr__data-attr="something \" that; could mess up"attr__we\"ird="C:\path\"'
        r'nth-child="0"nth-of-type="0"text="say \"hi\""'
    )


def test_class_string_splits_on_single_spaces() -> None:
    """A class string splits on each space, so a double space leaves an empty class, as PostHog's does."""
    assert elements_to_chain([{"tag_name": "a", "attr__class": "btn  btn-sm"}]).startswith("a..btn.btn-sm:")


def test_class_list_is_sorted_by_code_unit_and_not_modified() -> None:
    """A class list is written sorted by UTF-16 code unit, non-strings skipped, and the input left as it was."""
    classes: list[object] = ["zeta", "Alpha", 7, "alpha"]
    chain = elements_to_chain([{"tag_name": "a", "attr__class": classes}])
    assert chain == 'a.Alpha.alpha.zeta:attr__class="zeta,Alpha,7,alpha"nth-child="0"nth-of-type="0"'
    assert classes == ["zeta", "Alpha", 7, "alpha"]


def test_class_string_and_list_give_the_same_classes() -> None:
    """Classes given as a string or as a list read back the same."""
    as_string = chain_to_elements(elements_to_chain([{"tag_name": "i", "attr__class": "b a"}]))
    as_list = chain_to_elements(elements_to_chain([{"tag_name": "i", "attr__class": ["b", "a"]}]))
    assert as_string[0]["attr_class"] == as_list[0]["attr_class"] == ["a", "b"]


def test_attributes_follow_javascript_locale_order() -> None:
    """Attribute keys sort like JavaScript's localeCompare: '_' before '-', case-blind, not by code point."""
    chain = elements_to_chain(
        [{"attr__Z": "1", "attr__data-x": "2", "attr__data_x": "3", "attr__ariaLabel": "4", "attr__aria-label": "5"}]
    )
    assert chain == (
        ':attr__aria-label="5"attr__ariaLabel="4"attr__data_x="3"attr__data-x="2"attr__Z="1"'
        'nth-child="0"nth-of-type="0"'
    )


def test_missing_fields_take_posthog_defaults() -> None:
    """An element without fields still gets nth-child and nth-of-type 0; empty text and href are left out."""
    assert elements_to_chain([{}]) == ':nth-child="0"nth-of-type="0"'
    assert (
        elements_to_chain([{"tag_name": "", "$el_text": "", "attr__href": "", "nth_child": None, "nth_of_type": 3}])
        == ':attr__href=""nth-child="0"nth-of-type="3"'
    )


def test_keys_posthog_ignores_are_ignored() -> None:
    """Plain text, href, order and other non-attr__ keys do not reach the chain, as in PostHog."""
    chain = elements_to_chain([{"tag_name": "a", "text": "x", "href": "/y", "order": 4, "data-x": "z"}])
    assert chain == 'a:nth-child="0"nth-of-type="0"'


def test_text_and_href_are_cut_in_utf16_units() -> None:
    """$el_text keeps 400 UTF-16 units and href 2048, never half a surrogate pair; attr__href stays whole."""
    long_href = "/" + "h" * 3000
    parsed = chain_to_elements(elements_to_chain([{"$el_text": "t" * 399 + "💻" + "u", "attr__href": long_href}]))[0]
    assert parsed["text"] == "t" * 399
    assert parsed["href"] == long_href[:2048]
    assert parsed["attributes"]["attr__href"] == long_href
    emoji = chain_to_elements(elements_to_chain([{"$el_text": "💻" * 300}]))[0]["text"]
    assert emoji == "💻" * 200


def test_values_are_spelled_like_javascript() -> None:
    """Non-string values are written as JavaScript's String() spells them, and None values are dropped."""
    chain = elements_to_chain(
        [
            {
                "nth_child": 2.0,
                "nth_of_type": True,
                "attr__a": 1.5,
                "attr__b": [1, None, [2, "x"]],
                "attr__c": {"k": "v"},
                "attr__d": 12345678901234567890,
                "attr__e": None,
                "attr__f": 1e21,
            }
        ]
    )
    assert chain == (
        ':attr__a="1.5"attr__b="1,,2,x"attr__c="[object Object]"attr__d="12345678901234567000"attr__f="1e+21"'
        'nth-child="2"nth-of-type="true"'
    )


def test_non_mapping_items_and_bad_field_types_are_skipped() -> None:
    """Entries that are not objects are skipped and unusable fields are left out instead of failing."""
    chain = elements_to_chain([None, "a", 3, {"tag_name": "b", "$el_text": 42, "attr__class": 42, "attr__href": 7}])
    assert chain == 'b:attr__class="42"attr__href="7"nth-child="0"nth-of-type="0"'


# Reading


def test_reads_posthog_chain_with_escapes_and_semicolons() -> None:
    """PostHog's escaped quotes and semicolons inside values split and read as its events API returns them."""
    assert chain_to_elements(POSTHOG_CHAIN) == [
        element(
            text="bla bla",
            tag_name="a",
            attr_class=["small"],
            href="/a-url",
            nth_child=1,
            nth_of_type=0,
            attributes={
                "data-attr": r"something \" that; could mess up",
                "number": "33",
                "prop": "value",
                "style": "min-height: 100vh;",
            },
        ),
        element(tag_name="button", attr_class=["btn", "btn-primary"], nth_child=0, nth_of_type=0, order=1),
        element(tag_name="div", nth_child=0, nth_of_type=0, order=2),
        element(tag_name="div", attr_id="nested", nth_child=0, nth_of_type=0, order=3),
    ]


def test_round_trip_of_a_realistic_click() -> None:
    """Encoding posthog-js elements and decoding the chain gives back every field."""
    assert chain_to_elements(elements_to_chain(SIGNUP_CLICK)) == [
        element(
            text="Sign up",
            tag_name="button",
            attr_class=["btn", "btn-primary"],
            nth_child=2,
            nth_of_type=1,
            attributes={
                "attr__class": "btn btn-primary",
                "attr__data-attr": "signup-button",
                "attr__type": "submit",
            },
        ),
        element(
            tag_name="form",
            attr_id="signup",
            nth_child=1,
            nth_of_type=1,
            attributes={"attr__action": "/signup", "attr__id": "signup"},
            order=1,
        ),
        element(tag_name="body", nth_child=2, nth_of_type=1, order=2),
    ]


_SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), max_size=20)
_NAME = st.text(st.sampled_from("abcXYZ09-_"), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "tag_name": _NAME,
                "$el_text": _SAFE_TEXT,
                "attr__class": st.lists(_NAME, max_size=3),
                "nth_child": st.integers(0, 50),
                "nth_of_type": st.integers(0, 50),
            },
            optional={"attr__id": _NAME, "attr__href": _SAFE_TEXT, "attr__data-x": _SAFE_TEXT},
        ),
        max_size=4,
    )
)
def test_round_trip_property(elements: list[dict[str, Any]]) -> None:
    """Any elements without quotes or backslashes in their values read back to what was written."""
    parsed = chain_to_elements(elements_to_chain(elements))
    assert len(parsed) == len(elements)
    for order, (given_element, got) in enumerate(zip(elements, parsed, strict=True)):
        assert got["order"] == order
        assert got["tag_name"] == given_element["tag_name"]
        assert got["attr_class"] == (sorted(given_element["attr__class"]) or None)
        assert got["text"] == (given_element["$el_text"] or None)
        assert got["href"] == (given_element.get("attr__href") or None)
        assert got["attr_id"] == given_element.get("attr__id")
        assert (got["nth_child"], got["nth_of_type"]) == (given_element["nth_child"], given_element["nth_of_type"])
        expected = {key: value for key, value in given_element.items() if key.startswith("attr__")}
        expected["attr__class"] = ",".join(given_element["attr__class"])
        assert got["attributes"] == expected


def test_field_types_match_posthog() -> None:
    """Missing fields are None, a tag part that starts with '.' gives tag_name "", and numbers are ints."""
    assert chain_to_elements(':nth-child="1"') == [element(nth_child=1)]
    assert chain_to_elements('.another.something:attr__class="something another"') == [
        element(tag_name="", attr_class=["another", "something"], attributes={"attr__class": "something another"})
    ]
    assert chain_to_elements("a.") == [element(tag_name="a", attr_class=[])]
    assert chain_to_elements('div:empty=""') == [element(tag_name="div", attributes={"empty": ""})]
    assert chain_to_elements("") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7),
        (" -3 ", -3),
        ("x", None),
        ("1.5", None),
        ("", None),
        ("9" * 30, None),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_nth_values_parse_as_64_bit_ints_or_none(value: str, expected: int | None) -> None:
    """nth-child reads as a Python int when it is one within 64 bits, else None."""
    assert chain_to_elements(f'a:nth-child="{value}"')[0]["nth_child"] == expected


def test_last_occurrence_of_a_field_wins() -> None:
    """A field given twice takes its last value, as PostHog's reader does."""
    assert chain_to_elements('a:text="one"text="two"nth-child="1"nth-child="x"') == [
        element(tag_name="a", text="two", nth_child=None)
    ]


def test_colon_in_class_does_not_start_attributes() -> None:
    """Only a ':' followed by a key and '=' ends the tag part, so classes may contain ':'."""
    assert chain_to_elements('a.small.xy:z:href="/a"') == [
        element(tag_name="a", attr_class=["small", "xy:z"], href="/a")
    ]


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ('"a........small', [element(tag_name="a", attr_class=["small"])]),
        ('a:text="unterminated', [element(tag_name="a"), element(tag_name="unterminated", order=1)]),
        (
            'a:x="1"text="in;side"nth-child="2"',
            [element(tag_name="a", text="in;side", nth_child=2, attributes={"x": "1"})],
        ),
        ('a:x="1";"', [element(tag_name="a", attributes={"x": "1"})]),
        (
            'a:x="1" b;;c',
            [
                element(tag_name="a", attributes={"x": "1"}),
                element(tag_name="b", order=1),
                element(tag_name="c", order=2),
            ],
        ),
        ("a:junk", [element(tag_name="a:junk")]),
        ('a:x="1"junk', [element(tag_name="a", attributes={"x": "1"})]),
        (
            'a:x="1"y="never closed',
            [
                element(tag_name="a", attributes={"x": "1"}),
                element(tag_name="never", order=1),
                element(tag_name="closed", order=2),
            ],
        ),
        ('a:text="two\nlines"nth-child="3"', [element(tag_name="a", text="two\nlines", nth_child=3)]),
    ],
)
def test_malformed_chains_read_without_raising(chain: str, expected: list[dict[str, Any]]) -> None:
    """Unterminated quotes, stray separators and junk read the way PostHog's grammar reads them."""
    assert chain_to_elements(chain) == expected


def test_unclosed_quote_runs_to_the_last_quote() -> None:
    """A quote that never closes extends to the chain's last quote; a separator after it still splits."""
    assert chain_to_elements('a.b:x="1"y="z\\";c d') == [
        element(tag_name="a", attr_class=["b"], attributes={"x": "1"}),
        element(tag_name="c", order=1),
        element(tag_name="d", order=2),
    ]


def test_non_string_chain_reads_as_empty() -> None:
    """Anything but a string decodes to no elements."""
    assert chain_to_elements(None) == []  # type: ignore[arg-type]
    assert chain_to_elements(b'a:x="1"') == []  # type: ignore[arg-type]


def _reference_split(chain: str) -> list[str]:
    """Character-by-character statement of the element split, to check the regex version against."""
    pieces: list[str] = []
    current = ""
    i = 0
    while i < len(chain):
        ch = chain[i]
        if ch.isspace() or ch == ";":
            if current:
                pieces.append(current)
            current = ""
            i += 1
        elif ch != '"':
            current += ch
            i += 1
        else:
            j = i + 1
            while j < len(chain) and chain[j] != '"':
                j += 2 if chain[j] == "\\" else 1
            if j >= len(chain):
                j = chain.rfind('"')
            if j > i:
                current += chain[i : j + 1]
                i = j + 1
            else:
                if current:
                    pieces.append(current)
                current = ""
                i += 1
    if current:
        pieces.append(current)
    return pieces


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from('ab.:=";\\ \n\t-'), max_size=40))
def test_split_matches_reference_and_never_raises(chain: str) -> None:
    """Random chains of the grammar's special characters split like the plain reference and never raise."""
    assert _split_chain(chain) == _reference_split(chain)
    assert [item["order"] for item in chain_to_elements(chain)] == list(range(len(_reference_split(chain))))


_HOSTILE = {
    "backslashes in an open quote": 'a:x="' + "\\" * 1_000_000,
    "escaped quotes": 'a:x="' + '\\"' * 500_000,
    "quotes": '"' * 1_000_000,
    "open quote and backslash pairs": '"\\' * 500_000,
    "empty attributes": 'a:x=""' * 170_000,
    "attribute openers": '="' * 500_000,
    "colons": "a:" * 500_000,
    "keys without equals": (":" + "a" * 1_000) * 1_000,
    "dots": "a" + "." * 1_000_000,
    "separators": "; \t" * 250_000,
    "open values after semicolons": 'a:x="\\";b' * 100_000,
}


@pytest.mark.parametrize("chain", _HOSTILE.values(), ids=list(_HOSTILE))
def test_hostile_megabyte_chain_is_fast(chain: str) -> None:
    """A 1 MB hostile chain decodes in well under two seconds."""
    started = time.perf_counter()
    chain_to_elements(chain)
    assert time.perf_counter() - started < 2.0


def test_megabyte_of_tiny_elements_is_linear() -> None:
    """A 1 MB chain of half a million one-letter elements decodes them all in bounded time."""
    started = time.perf_counter()
    parsed = chain_to_elements("a;" * 500_000)
    assert len(parsed) == 500_000
    assert parsed[-1] == element(tag_name="a", order=499_999)
    assert time.perf_counter() - started < 10.0


# Properties


def test_chain_property_wins() -> None:
    """A non-empty $elements_chain is stored as sent, even when $elements is present."""
    properties = {"$elements_chain": 'a:nth-child="1"', "$elements": SIGNUP_CLICK}
    assert elements_chain_from_properties(properties) == 'a:nth-child="1"'


def test_elements_property_is_encoded() -> None:
    """Without a chain, the $elements list is encoded, skipping non-object items, and nothing is mutated."""
    properties: dict[str, Any] = {"$elements_chain": "", "$elements": [*SIGNUP_CLICK, "junk", None]}
    assert elements_chain_from_properties(properties) == SIGNUP_CHAIN
    assert properties["$elements"][3:] == ["junk", None]
    assert properties["$elements_chain"] == ""


@pytest.mark.parametrize(
    "properties",
    [{}, {"$elements": []}, {"$elements": "not-a-list"}, {"$elements": {"tag_name": "a"}}, {"$elements_chain": 5}],
)
def test_no_usable_elements_give_empty_chain(properties: dict[str, Any]) -> None:
    """Missing, empty or wrongly typed element properties give an empty chain."""
    assert elements_chain_from_properties(properties) == ""
