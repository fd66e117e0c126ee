"""What Slack checks in a message or a view before it takes it, and how it says no.

:class:`StrictRules` runs on every ``blocks``, ``text`` and ``view`` LocalSlack receives; a
failure raises :class:`Refusal`, whose :meth:`~Refusal.reply` is Slack's answer: e.g.
``{"ok": false, "error": "invalid_blocks", "errors": ["action_id \"x\" already exists
[json-pointer:/blocks/3/elements/1/action_id]"], "response_metadata": {"messages": ["[ERROR]
…"]}}``; views answer ``invalid_arguments`` with the messages only.

- slack_sdk's validators on every model of the tree (``validate_json()`` checks one object
  and does not descend): button text 75 and value 2,000, option text 75, 100 options, actions
  25 elements, context 10, header 150, section text 3,000 and 10 fields, modal
  title/submit/close 24, ``private_metadata`` 3,000 … in slack_sdk's words.
- What slack_sdk leaves out, in Slack's words: unknown block and element types, ``action_id``
  unique within its block, ``block_id`` unique within a message or view, 50 blocks per
  message (100 per view), 2,000 characters per section field, 100 options across a static
  select's option groups, a ``file_input`` outside an input block or with ``max_files``
  outside 1–10, a modal's ``title``, ``submit`` when it has inputs, top-level
  ``text`` up to 40,000 characters (``msg_too_long``).
- :mod:`bot.localslack.escaping` on ``mrkdwn`` text objects and top-level ``text`` (a local
  check: real Slack would take it). ``plain_text`` is shown as typed and is not checked.

https://docs.slack.dev/reference/block-kit/blocks
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block, BlockElement, Option, OptionGroup
from slack_sdk.models.views import View

from bot.localslack.escaping import DEFAULT_LINK_HOSTS, escaping_problems

__all__ = ["DEFAULT_LINK_HOSTS", "Problem", "Refusal", "StrictRules"]

MESSAGE_BLOCKS = 50  # https://docs.slack.dev/reference/block-kit/blocks
VIEW_BLOCKS = 100
FIELD_TEXT = 2000
SELECT_OPTIONS = 100
MIN_FILES, MAX_FILES = 1, 10  # a file_input's max_files
TEXT_LIMIT = 40_000  # https://docs.slack.dev/reference/methods/chat.postMessage#truncating
LOCAL = "local strict check: "


def _subclasses(cls: type) -> Iterator[type]:
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        yield sub
        yield from _subclasses(sub)


def _types(cls: type) -> frozenset[str]:
    return frozenset(t for c in _subclasses(cls) if isinstance(t := getattr(c, "type", None), str))


# Checked before slack_sdk parses: its parser logs a whole unknown block at WARNING.
BLOCK_TYPES = _types(Block)
ELEMENT_TYPES = _types(BlockElement) | {"plain_text", "mrkdwn"}
_ELEMENT_LISTS = ("actions", "context", "context_actions")
_STATIC_SELECTS = ("static_select", "multi_static_select")

@dataclass(frozen=True)
class Problem:
    """One thing Slack objects to, and where: a JSON pointer into the request's params."""

    message: str
    pointer: str

    def __str__(self) -> str:
        return f"{self.message} [json-pointer:{self.pointer}]"


class Refusal(Exception):
    """Slack refuses the request: ``error`` is its code, ``problems`` say why and where."""

    def __init__(self, error: str, problems: Iterable[Problem]) -> None:
        self.error = error
        self.problems = tuple(problems)
        super().__init__(f"{error}: " + "; ".join(map(str, self.problems)))

    @property
    def messages(self) -> list[str]:
        return [str(p) for p in self.problems]

    def reply(self) -> dict[str, Any]:
        """The Web API answer: ``invalid_blocks`` lists ``errors`` too; ``msg_too_long`` is bare."""
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.error == "invalid_blocks":
            body["errors"] = self.messages
        if self.error in ("invalid_blocks", "invalid_arguments"):
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


@dataclass(frozen=True)
class StrictRules:
    """Slack's checks, with the only two allowances a test may widen.

    ``link_hosts``: hosts a link may point to (``"*.example.com"`` for subdomains).
    ``special_mentions``: which of ``here``, ``channel``, ``everyone`` may be used.
    """

    link_hosts: frozenset[str] = DEFAULT_LINK_HOSTS
    special_mentions: frozenset[str] = frozenset()

    def check_message(self, params: dict[str, Any]) -> None:
        """A ``chat.*`` call's or a ``response_url`` body's ``blocks`` and ``text``."""
        blocks = params.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise Refusal("invalid_blocks_format", [Problem("must provide an array", "/blocks")])
        problems = self._blocks(blocks or [], "/blocks", limit=MESSAGE_BLOCKS)
        if problems:
            raise Refusal("invalid_blocks", problems)
        text = params.get("text")
        if not isinstance(text, str):
            return
        if len(text) > TEXT_LIMIT:
            raise Refusal("msg_too_long", [Problem(
                f"text is {len(text):,} characters; Slack takes at most {TEXT_LIMIT:,}", "/text")])
        problems = self._escaping(text, "/text")
        if problems:
            raise Refusal("invalid_arguments", problems)

    def check_view(self, view: Any) -> None:
        """A ``views.*`` call's ``view`` (or a ``view_submission`` ack's)."""
        if not isinstance(view, dict):
            raise Refusal("invalid_arguments", [Problem("must provide an object", "/view")])
        blocks = view.get("blocks") or []
        problems = self._blocks(blocks, "/view/blocks", limit=VIEW_BLOCKS)
        # The blocks are checked above, one by one with their pointers: the view's own model
        # is built without them so that slack_sdk does not parse (and log) them again.
        try:
            model = View(**dict(view, blocks=None))
            # None, not a list as typed: with [] its count check would see 0 blocks
            model.blocks = None  # type: ignore[assignment]  # slack_sdk types it as a list; see above
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            problems.append(Problem(f"cannot be parsed: {exc}", "/view"))
        else:
            problems += _sdk_problems(model, view, "/view")
        if view.get("type") == "modal":
            problems += _modal_problems(view)
        if problems:
            raise Refusal("invalid_arguments", problems)

    # ---------------------------------------------------------------- blocks
    def _blocks(self, blocks: Any, where: str, *, limit: int) -> list[Problem]:
        if not isinstance(blocks, list):
            return [Problem("must provide an array", where)]
        problems: list[Problem] = []
        if len(blocks) > limit:
            problems.append(Problem(f"no more than {limit} items allowed", where))
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            pointer = f"{where}/{i}"
            if not isinstance(block, dict):
                problems.append(Problem("must provide an object", pointer))
                continue
            block_id = block.get("block_id")
            if isinstance(block_id, str):
                if block_id in block_ids:
                    problems.append(Problem(f'block_id "{block_id}" already exists',
                                            f"{pointer}/block_id"))
                block_ids.add(block_id)
            problems += self._block(block, pointer)
        return problems

    def _block(self, block: dict[str, Any], pointer: str) -> list[Problem]:
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            return [Problem(f"unsupported type: {kind}", f"{pointer}/type")]
        problems = list(_element_types(block, pointer))
        if problems:
            return problems
        problems += _action_ids(block, pointer)
        problems += _fields(block, pointer)
        problems += _options(block, pointer)
        problems += _file_inputs(block, pointer)
        try:
            model = Block.parse(block)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            problems.append(Problem(f"cannot be parsed: {exc}", pointer))
        else:
            problems += _sdk_problems(model, block, pointer)
        for text, text_pointer in _mrkdwn_texts(block, pointer):
            problems += self._escaping(text, text_pointer)
        return problems

    def _escaping(self, text: str, pointer: str) -> list[Problem]:
        return [Problem(LOCAL + message, pointer) for message in escaping_problems(
            text, link_hosts=self.link_hosts, special_mentions=self.special_mentions)]

# --------------------------------------------------------------------- helpers
def _elements(block: dict[str, Any], pointer: str) -> Iterator[tuple[dict[str, Any], str]]:
    """A block's elements (actions/context ``elements``, ``accessory``, input ``element``)."""
    if block.get("type") in _ELEMENT_LISTS and isinstance(block.get("elements"), list):
        for j, element in enumerate(block["elements"]):
            if isinstance(element, dict):
                yield element, f"{pointer}/elements/{j}"
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield block[key], f"{pointer}/{key}"


def _element_types(block: dict[str, Any], pointer: str) -> Iterator[Problem]:
    for element, where in _elements(block, pointer):
        if element.get("type") not in ELEMENT_TYPES:
            yield Problem(f"unsupported type: {element.get('type')}", f"{where}/type")


def _action_ids(block: dict[str, Any], pointer: str) -> Iterator[Problem]:
    """``action_id`` is unique within its block (Slack's words: ``action_id "x" already
    exists``). https://docs.slack.dev/reference/block-kit/block-elements"""
    seen: set[str] = set()
    for element, where in _elements(block, pointer):
        action_id = element.get("action_id")
        if isinstance(action_id, str):
            if action_id in seen:
                yield Problem(f'action_id "{action_id}" already exists', f"{where}/action_id")
            seen.add(action_id)


def _fields(block: dict[str, Any], pointer: str) -> Iterator[Problem]:
    """Section fields: slack_sdk counts them (10) but does not measure each (2,000)."""
    if block.get("type") != "section" or not isinstance(block.get("fields"), list):
        return
    for j, field in enumerate(block["fields"]):
        text = field.get("text") if isinstance(field, dict) else None
        if isinstance(text, str) and len(text) > FIELD_TEXT:
            yield Problem(f"must be less than {FIELD_TEXT + 1} characters",
                          f"{pointer}/fields/{j}/text")


def _options(block: dict[str, Any], pointer: str) -> Iterator[Problem]:
    """A static select offers at most 100 options, also when they come in option groups
    (https://docs.slack.dev/reference/block-kit/composition-objects/option-group-object);
    slack_sdk counts plain ``options`` and the groups, not the options in them."""
    for element, where in _elements(block, pointer):
        groups = element.get("option_groups")
        if element.get("type") not in _STATIC_SELECTS or not isinstance(groups, list):
            continue
        count = sum(len(g.get("options") or []) for g in groups if isinstance(g, dict))
        if count > SELECT_OPTIONS:
            yield Problem(f"no more than {SELECT_OPTIONS} options allowed (the groups hold "
                          f"{count})", f"{where}/option_groups")


def _file_inputs(block: dict[str, Any], pointer: str) -> Iterator[Problem]:
    """A ``file_input`` is an input block's element, takes 1 to 10 files (``max_files``) and
    names its ``filetypes`` as extensions (https://docs.slack.dev/reference/block-kit/
    block-elements/file-input-element); slack_sdk models it without checking either."""
    for element, where in _elements(block, pointer):
        if element.get("type") != "file_input":
            continue
        if block.get("type") != "input" or where != f"{pointer}/element":
            yield Problem("file_input can only be used in an input block", f"{where}/type")
        limit = element.get("max_files")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or not MIN_FILES <= limit <= MAX_FILES):
            yield Problem(f"must be between {MIN_FILES} and {MAX_FILES}", f"{where}/max_files")
        types = element.get("filetypes")
        if types is not None and (not isinstance(types, list) or not all(
                isinstance(t, str) and t.strip() for t in types)):
            yield Problem("must be an array of file extensions", f"{where}/filetypes")


def _modal_problems(view: dict[str, Any]) -> Iterator[Problem]:
    if not view.get("title"):
        yield Problem("missing required field: title", "/view")
    blocks = view.get("blocks") or []
    if not view.get("submit") and isinstance(blocks, list):
        for i, block in enumerate(blocks):
            if isinstance(block, dict) and block.get("type") == "input":
                yield Problem("must define `submit` to use an `input` block in modals",
                              f"/view/blocks/{i}")
                return


def _mrkdwn_texts(node: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Every ``mrkdwn`` text object under ``node``: (its text, the text's pointer)."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"], f"{pointer}/text"
        for key, value in node.items():
            yield from _mrkdwn_texts(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _mrkdwn_texts(value, f"{pointer}/{i}")


def _sdk_problems(model: Any, node: Any, pointer: str) -> Iterator[Problem]:
    """slack_sdk's validators on ``model`` and on every model below it, each failure named by
    the pointer of the object whose validator failed."""
    if isinstance(model, JsonObject):
        try:
            model.validate_json()
        except SlackObjectFormationError as exc:
            yield Problem(str(exc), pointer)
        except (TypeError, ValueError, AttributeError) as exc:  # a validator met a bad type
            yield Problem(f"invalid value: {exc}", pointer)
    if isinstance(node, dict):
        for key, value in node.items():
            try:
                child = _child(model, key, value)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                yield Problem(f"cannot be parsed: {exc}", f"{pointer}/{key}")
                continue
            if child is not None:
                yield from _sdk_problems(child, value, f"{pointer}/{key}")
    elif isinstance(node, list) and isinstance(model, list):
        for i, (child, value) in enumerate(zip(model, node, strict=False)):
            yield from _sdk_problems(child, value, f"{pointer}/{i}")


def _child(model: Any, key: str, value: Any) -> Any:
    """The model slack_sdk built for ``key``: some keep it as ``_key`` (Option's text); static
    selects keep their options as raw dicts, parsed here so that Option's checks run."""
    if key in _RAW_OPTIONS and isinstance(value, list) and value:
        return _RAW_OPTIONS[key]([v for v in value if isinstance(v, dict)])
    if key == "initial_option" and isinstance(value, dict):
        parsed = Option.parse_all([value])
        return parsed[0] if parsed else None
    for name in (f"_{key}", f"_block_{key}", key):
        found = getattr(model, name, None)
        if isinstance(found, JsonObject) or (
                isinstance(found, list) and any(isinstance(v, JsonObject) for v in found)):
            return found
    return None


_RAW_OPTIONS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "options": Option.parse_all, "initial_options": Option.parse_all,
    "option_groups": OptionGroup.parse_all}
