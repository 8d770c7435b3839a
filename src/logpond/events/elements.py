"""Autocapture elements: PostHog's ``elements_chain`` string, written from ``$elements`` and read back.

When posthog-js autocaptures a click it describes the clicked DOM element and its ancestors, innermost
first. Old clients send that description as ``properties.$elements`` (a list of objects); current ones
send it already encoded as ``properties.$elements_chain``. PostHog keeps only the encoded string, in the
``elements_chain`` column, and decodes it again when the events API returns an event's ``elements``.

Writing (what PostHog's Node ingestion does with ``$elements``):

- Elements are joined with ``;`` in the order the client listed them.
- An element is its tag, its classes and then ``:`` and its attributes. The tag is ``tag_name`` (left out
  when empty). Classes come from ``attr__class`` (a list as given, a string split on single spaces, so a
  double space yields an empty class and ``..``); each is written as ``.name`` with double quotes
  deleted, ordered by UTF-16 code unit.
- The attributes are ``text`` (``$el_text`` cut to 400 UTF-16 units, only when non-empty),
  ``nth-child`` and ``nth-of-type`` (always present, ``0`` when missing), ``href`` (``attr__href`` cut to
  2048 units, only when non-empty), ``attr_id`` (``attr__id``, only when set) and every ``attr__*`` key of
  the element as is, so ``attr__class``, ``attr__href`` and ``attr__id`` appear a second time.
  Keys such as ``text``, ``href`` or ``order`` in the input object are not used.
- Each attribute is written ``key="value"``, with nothing between attributes. They are ordered by
  JavaScript's ``localeCompare`` of the keys (ICU root collation: control characters ignored, then
  whitespace, punctuation and symbols, then digits, then letters compared case-blind with lower case
  first on ties), not by code point. Values are spelled the way JavaScript's ``String()`` spells them
  (``true``, ``1.5``, a list joined with ``,``). Every ``"`` in a key or value becomes ``\\"``; backslashes
  are left alone, so a value that ends in a backslash cannot be read back.

Reading (what PostHog's events API does with the column):

- The chain splits into elements at ``;`` and whitespace outside double quotes. A quote runs to the next
  quote that is not escaped (a backslash escapes the character after it). A quote that never closes
  runs to the last quote of the chain instead, or, when there is none, is dropped and ends the element.
- Inside an element, the first ``:`` followed by ``[A-Za-z0-9_-]*=`` ends the tag part. The tag part is
  split at its first ``.``: before it is ``tag_name`` (possibly ``""``), after it the non-empty
  ``.``-separated classes (possibly an empty list). Without a tag part both are ``None``.
- The rest is read as ``key="value"`` pairs from left to right: a key is everything up to the next
  ``="`` and its value runs to the next unescaped quote; reading stops at a value that never closes.
  Escapes are kept (``\\"`` stays ``\\"``, as PostHog returns it). ``text``, ``href``, ``attr_id``,
  ``nth-child`` and ``nth-of-type`` fill their fields (the last occurrence wins; a number that does not
  parse becomes ``None``); other keys, except the empty one, go into ``attributes``.

Where PostHog fails on hostile input we do something bounded instead: reading is linear in the chain
(PostHog's Python regexes backtrack exponentially on runs of backslashes); a line break inside a quoted
value is an ordinary character (PostHog's regexes stop at it and lose the element's later attributes);
``nth_child``/``nth_of_type`` outside the signed 64-bit range read as ``None``. When writing, input that
makes PostHog's ingestion throw and store an empty chain (a non-object entry, a ``None`` attribute value,
a non-string ``$el_text``, ``attr__href`` or class, an ``attr__class`` that is neither string nor list)
is skipped field by field; a 400/2048 cut that would split a surrogate pair drops the lone half; keys
outside ASCII are ordered after ASCII letters by code point (ICU would interleave accented letters).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["chain_to_elements", "elements_chain_from_properties", "elements_to_chain"]

_TEXT_UNITS = 400
_HREF_UNITS = 2048
_MAX_LIST_DEPTH = 32  # nested lists deeper than this stringify to ""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_CHARS = 64  # longer nth-child values are not numbers we keep
_SAFE_INTEGER = 2**53  # beyond it JavaScript holds the parsed JSON number as a rounded double

# ICU root collation order of the printable ASCII characters (checked against V8's localeCompare).
_COLLATION = "\t\n\x0b\x0c\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789" + string.ascii_lowercase
_PRIMARY = {ch: weight for weight, ch in enumerate(_COLLATION)}
_PRIMARY.update({ch.upper(): _PRIMARY[ch] for ch in string.ascii_lowercase})
_IGNORABLE = frozenset(chr(code) for code in (*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F))
_AFTER_ASCII = len(_COLLATION)

_PROMOTED = {
    "text": "text",
    "href": "href",
    "attr_id": "attr_id",
    "nth-child": "nth_child",
    "nth-of-type": "nth_of_type",
}
_NUMERIC_FIELDS = frozenset({"nth_child", "nth_of_type"})

# Reading uses possessive quantifiers only (no backtracking), so every match is linear in its length.
# A quoted run: a backslash escapes the next character, the first other quote closes it.
_QUOTED = r'"(?:[^"\\]++|\\.)*+"'
_ELEMENT = re.compile(r'(?s)(?:[^\s;"]++|' + _QUOTED + ")++")
_CLOSED_QUOTES = re.compile(r'(?s)(?:[^"]*+' + _QUOTED + ")*+")
_SEPARATOR = re.compile(r"[\s;]")
_ATTRIBUTES_START = re.compile(r":[A-Za-z0-9_\-]*+=")
# An attribute: the key runs to the first '="', the value to the closing quote.
_KEY = r'(?:[^=]++|=(?!"))*+'
_ATTRIBUTE = re.compile(r"(?s)(" + _KEY + r')="((?:[^"\\]++|\\.)*+)"')
_CLOSED_ATTRIBUTES = re.compile(r"(?s)(?:" + _KEY + '="' + _QUOTED[1:] + ")*+")


def elements_to_chain(elements: Iterable[object]) -> str:
    """Encode posthog-js ``$elements`` objects as PostHog's ``elements_chain`` string.

    Items that are not mappings are skipped; the input is not modified.
    """
    return ";".join(_element_to_string(element) for element in elements if isinstance(element, Mapping))


def chain_to_elements(chain: str) -> list[dict[str, Any]]:
    """Decode an ``elements_chain`` into the element objects of PostHog's events API.

    Each element is ``{"event": None, "text", "tag_name", "attr_class", "href", "attr_id", "nth_child",
    "nth_of_type", "attributes", "order"}``: strings or ``None``, ``attr_class`` a list or ``None``, the
    ``nth_*`` fields ints or ``None``, ``attributes`` a dict of strings, ``order`` the element's index.
    Never raises; anything that is not a string decodes to ``[]``.
    """
    if not isinstance(chain, str):
        return []
    return [_parse_element(piece, order) for order, piece in enumerate(_split_chain(chain))]


def elements_chain_from_properties(properties: Mapping[str, Any]) -> str:
    """The ``elements_chain`` PostHog stores for an event with these properties.

    ``$elements_chain`` when it is a non-empty string, else the chain encoded from a ``$elements`` list,
    else ``""``. PostHog's ingestion deletes both ``$elements_chain`` and ``$elements`` from the properties
    it stores (the chain lives only in its column), so the caller should pop both keys after calling this;
    this function does not modify ``properties``.
    """
    if not isinstance(properties, Mapping):
        return ""
    chain = properties.get("$elements_chain")
    if isinstance(chain, str) and chain:
        return chain
    elements = properties.get("$elements")
    if isinstance(elements, list):
        return elements_to_chain(elements)
    return ""


# Writing


def _element_to_string(element: Mapping[Any, Any]) -> str:
    tag = element.get("tag_name")
    head = [_js_string(tag) if _js_truthy(tag) else ""]
    for name in sorted(_classes(element.get("attr__class")), key=_utf16_units):
        head.append("." + name.replace('"', ""))

    attributes: dict[str, object] = {}
    text = _utf16_prefix(element.get("$el_text"), _TEXT_UNITS)
    if text:
        attributes["text"] = text
    for key, field in (("nth-child", "nth_child"), ("nth-of-type", "nth_of_type")):
        value = element.get(field)
        attributes[key] = 0 if value is None else value
    href = _utf16_prefix(element.get("attr__href"), _HREF_UNITS)
    if href:
        attributes["href"] = href
    attr_id = element.get("attr__id")
    if _js_truthy(attr_id):
        attributes["attr_id"] = attr_id
    for key, value in element.items():
        if isinstance(key, str) and key.startswith("attr__") and value is not None:
            attributes[key] = value

    # Escaping can make two keys equal; like JavaScript's Object.fromEntries, the first keeps its place
    # and the last its value.
    written: dict[str, str] = {}
    for key in sorted(attributes, key=_collation_key):
        written[_escape(key)] = _escape(_js_string(attributes[key]))
    return "".join(head) + ":" + "".join(f'{key}="{value}"' for key, value in written.items())


def _classes(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split(" ") if value else []
    if isinstance(value, list | tuple):
        return [name for name in value if isinstance(name, str)]
    return []


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def _utf16_units(text: str) -> bytes:
    """Sort key ordering strings by UTF-16 code unit, as JavaScript's default sort does."""
    return text.encode("utf-16-be", "surrogatepass")


def _utf16_prefix(value: object, units: int) -> str | None:
    """JavaScript's ``value.slice(0, units)`` for a string, without leaving half a surrogate pair."""
    if not isinstance(value, str):
        return None
    if len(value) <= units // 2:
        return value
    encoded = value.encode("utf-16-le", "surrogatepass")
    if len(encoded) <= 2 * units:
        return value
    cut = encoded[: 2 * units]
    if 0xD8 <= cut[-1] <= 0xDB:  # the cut ends on a high surrogate whose partner was cut off
        cut = cut[:-2]
    return cut.decode("utf-16-le", "surrogatepass")


def _collation_key(key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sort key approximating ICU root collation (exact for ASCII): primary weights, then case."""
    primary: list[int] = []
    case: list[int] = []
    for ch in key:
        if ch in _IGNORABLE:
            continue
        weight = _PRIMARY.get(ch)
        primary.append(_AFTER_ASCII + ord(ch) if weight is None else weight)
        case.append(1 if "A" <= ch <= "Z" else 0)
    return tuple(primary), tuple(case)


def _js_truthy(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def _js_string(value: object, depth: int = 0) -> str:
    """``String(value)`` in JavaScript, for the values JSON can carry."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            return str(value)
        try:
            return _js_number(float(value))
        except OverflowError:
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, list | tuple):
        if depth >= _MAX_LIST_DEPTH:
            return ""
        return ",".join("" if item is None else _js_string(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _js_number(number: float) -> str:
    """JavaScript's Number::toString: the shortest round-trip digits, laid out by ECMAScript's rules."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # value = 0.<digits> * 10**point
    point = len(whole) + (int(exponent) if exponent else 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        body = digits + "0" * (point - count)
    elif 0 < point <= 21:
        body = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        power = point - 1
        body = digits[0] + ("." + digits[1:] if count > 1 else "") + ("e+" if power >= 0 else "e-") + str(abs(power))
    return ("-" if number < 0 else "") + body


# Reading


def _split_chain(chain: str) -> list[str]:
    """The chain's elements: runs of text between separators, quoted parts included whole."""
    closed = _CLOSED_QUOTES.match(chain)
    unclosed = chain.find('"', closed.end() if closed else 0)
    if unclosed < 0:
        return _ELEMENT.findall(chain)
    # Every quote after an unclosed one is escaped in its run, so at most one quote is ever unclosed.
    pieces: list[str] = []
    start = unclosed
    for found in _ELEMENT.finditer(chain, 0, unclosed):
        if found.end() == unclosed:
            start = found.start()  # the element the unclosed quote belongs to
        else:
            pieces.append(found.group())
    last = chain.rfind('"')
    if last > unclosed:  # the run ends at the chain's last quote, the element at the next separator
        separator = _SEPARATOR.search(chain, last + 1)
        rest = len(chain) if separator is None else separator.start()
        pieces.append(chain[start:rest])
    else:  # the quote is dropped and ends its element
        if unclosed > start:
            pieces.append(chain[start:unclosed])
        rest = unclosed + 1
    pieces.extend(_ELEMENT.findall(chain, rest))  # no quotes are left here
    return pieces


def _parse_element(piece: str, order: int) -> dict[str, Any]:
    element: dict[str, Any] = {
        "event": None,
        "text": None,
        "tag_name": None,
        "attr_class": None,
        "href": None,
        "attr_id": None,
        "nth_child": None,
        "nth_of_type": None,
        "attributes": {},
        "order": order,
    }
    split = _ATTRIBUTES_START.search(piece)
    head = piece if split is None else piece[: split.start()]
    if head:
        tag, dot, classes = head.partition(".")
        element["tag_name"] = tag
        if dot:
            element["attr_class"] = [name for name in classes.split(".") if name]
    if split is not None:
        _read_attributes(piece, split.start() + 1, element)
    return element


def _read_attributes(piece: str, position: int, element: dict[str, Any]) -> None:
    # Only the attributes before the first value that never closes are read: every later value would
    # run into that same quote. Matching them up front keeps the search below from retrying.
    closed = _CLOSED_ATTRIBUTES.match(piece, position)
    end = closed.end() if closed else position
    attributes: dict[str, str] = element["attributes"]
    for key, value in _ATTRIBUTE.findall(piece, position, end):
        field = _PROMOTED.get(key)
        if field in _NUMERIC_FIELDS:
            element[field] = _parse_int(value)
        elif field is not None:
            element[field] = value
        elif key:
            attributes[key] = value


def _parse_int(value: str) -> int | None:
    """Python's ``int()`` as PostHog applies it, ``None`` for anything else or beyond 64 bits."""
    if len(value) > _MAX_INT_CHARS:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None
