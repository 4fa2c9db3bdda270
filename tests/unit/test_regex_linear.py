"""Every regular expression that reads image content runs in linear time (DESIGN.md, "Threat
model": cost is bounded by configuration, never by input).

The patterns are not listed here: they are collected by walking every module of the packages
that read image content (module-level patterns, and patterns held in module-level tuples,
dicts and dataclass instances), plus the compiled secret rule sets and the path dispatcher,
which compile their patterns when they are built. A regex built inside a function would be
missed by that walk, so a test forbids it.

Each pattern is fed adversarial text made of its own pieces, taken from the stdlib's parse of
it (``re._parser``, as ``secrets.rules.derive_keywords`` does): the text before a quantified
part, then that part repeated, then a character that makes the match fail (the shape of the
confirmed attacks: 200,000 "a" then "@"; ".version=" then "a/" many times then "x"). The
slowest few inputs found at a small size are then timed at growing sizes, and the time must
grow no faster than the input: a ratio between sizes, never an absolute time.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import time
from collections.abc import Callable, Iterator
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from analyzerd.analysis.dispatch import Dispatch
from analyzerd.catalogers.registry import CATALOGERS
from analyzerd.secrets.scanner import MAX_LINE, build_rule_set

#: The packages whose code reads image content (file contents, paths, binaries' strings) or a
#: registry's answers (challenges, link headers), which are as hostile.
CONTENT_PACKAGES = ("analyzerd.catalogers", "analyzerd.secrets", "analyzerd.analysis", "analyzerd.archive",
                    "analyzerd.registry")
#: Functions that compile patterns into objects the walk reaches (built below) or that only
#: check that a configured regex compiles.
COMPILING_FUNCTIONS = {
    ("analyzerd.secrets.scanner", "__post_init__"),  # RuleSet: walked via build_rule_set()
    ("analyzerd.secrets.scanner", "build_rule_set"),  # compiles to validate, then builds a RuleSet
    ("analyzerd.secrets.rules", "anchore_rule"),  # compiles to validate a configured entry
    ("analyzerd.analysis.dispatch", "__init__"),  # Dispatch: walked via Dispatch(CATALOGERS)
}
_RE_FUNCTIONS = {"compile", "search", "match", "fullmatch", "sub", "subn", "split", "findall", "finditer"}

#: Sizes at which a suspect input is timed. A secret rule's regex sees one line, cut by the
#: scanner to MAX_LINE bytes on each side of a keyword hit, so it is timed up to that bound.
SIZES = (1024, 16 * 1024, 256 * 1024, 1024 * 1024)
SECRET_LINE = 2 * MAX_LINE
#: Size at which every candidate input is tried once, to find the slowest few.
SCREEN_SIZE = 4096
SUSPECTS = 3
#: Linear time may look up to this much worse than proportional (caches, allocation, noise).
SLACK = 4


# -- the walk ---------------------------------------------------------------------------------

def _content_modules() -> list[Any]:
    modules = []
    for package_name in CONTENT_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            modules.append(importlib.import_module(info.name))
    return modules


def _patterns_in(value: Any, seen: set[int], mode: str = "search",
                 depth: int = 0) -> Iterator[tuple[re.Pattern[Any], str]]:
    """Compiled patterns held by ``value``, each with the call that runs it: "search" (which
    also stands for ``match``: a search tries every start, each try costing what a match
    costs), "match" from a line's start for Anchore's rules, which the scanner runs so, and
    "fullmatch" for the dispatcher's globs."""
    if depth > 6 or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, re.Pattern):
        yield value, mode
    elif isinstance(value, (str, bytes, int, float, type, type(None))) or callable(value) and not \
            dataclasses.is_dataclass(value):
        return
    elif isinstance(value, dict):
        for item in (*value.keys(), *value.values()):
            yield from _patterns_in(item, seen, mode, depth + 1)
    elif isinstance(value, (tuple, list, set, frozenset)):
        for item in value:
            yield from _patterns_in(item, seen, mode, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        from_line_start = getattr(getattr(value, "rule", None), "anchore", False)  # the scanner's compiled rule
        for field in dataclasses.fields(value):
            field_mode = "match" if from_line_start and field.name == "regex" else mode
            yield from _patterns_in(getattr(value, field.name, None), seen, field_mode, depth + 1)
    elif hasattr(value, "__dict__") and type(value).__module__.startswith("analyzerd."):
        for item in vars(value).values():
            yield from _patterns_in(item, seen, mode, depth + 1)


def _rule_sets() -> list[Any]:
    return [build_rule_set(mode="default"), build_rule_set(mode="anchore")]


def collect_patterns() -> dict[tuple[Any, int, str], tuple[re.Pattern[Any], str, int]]:
    """Every pattern that reads image content, keyed by (pattern, flags, call), with where
    it was found and the longest input it can be given."""
    found: dict[tuple[Any, int, str], tuple[re.Pattern[Any], str, int]] = {}

    def add(pattern: re.Pattern[Any], mode: str, origin: str, bound: int) -> None:
        key = (pattern.pattern, pattern.flags, mode)
        if key not in found or found[key][2] < bound:
            found[key] = (pattern, origin, bound)

    for module in _content_modules():
        for name, value in vars(module).items():
            if inspect.ismodule(value):
                continue
            for pattern, mode in _patterns_in(value, set()):
                add(pattern, mode, f"{module.__name__}.{name}", SIZES[-1])
    for rule_set in _rule_sets():
        for pattern, mode in _patterns_in(rule_set, set()):
            # rule regexes and their allow regexes see a line (or a value cut from one); path
            # regexes see a path, which the tar reader bounds only by its metadata limit
            bound = SIZES[-1] if isinstance(pattern.pattern, str) else SECRET_LINE
            add(pattern, mode, "secret rule set", bound)
    for pattern, mode in _patterns_in(Dispatch(CATALOGERS), set(), "fullmatch"):
        add(pattern, mode, "dispatch glob", SIZES[-1])
    return found


PATTERNS = collect_patterns()


# -- adversarial inputs from a pattern's own pieces -------------------------------------------

_PROBE = "aA0 _-./=:@;,#\"'\\[](){}<>|*+?!$%&~^`\t\r\x00é"


def _in_class(items: list[tuple[Any, Any]], char: str) -> bool:
    code, negate, hit = ord(char), False, False
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            hit = hit or code == av
        elif op is sre.RANGE:
            hit = hit or av[0] <= code <= av[1]
        elif op is sre.CATEGORY:
            hit = hit or _in_category(av, char)
    return hit != negate


def _in_category(category: Any, char: str) -> bool:
    tests: dict[Any, Callable[[str], bool]] = {
        sre.CATEGORY_DIGIT: lambda c: c.isdigit(), sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
        sre.CATEGORY_SPACE: lambda c: c.isspace(), sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
        sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
        sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    }
    return tests.get(category, lambda c: False)(char)


class _Pieces:
    """What a parsed pattern is made of: the text that leads to each quantified part and one
    repetition of it, the single characters its classes accept, and every literal character
    (any of which may be the one that makes a match fail)."""

    def __init__(self, parsed: Any) -> None:
        self.groups: dict[int, str] = {}
        self.repeats: list[tuple[str, str]] = []
        self.chars: set[str] = set()
        self.literals: set[str] = set()
        #: the most text a bounded repetition takes ({30,2048}, nested ones multiplied)
        self.widest = 0
        self.followed: set[tuple[str, str]] = set()
        self._outer = 1
        self._sequence(parsed, "")

    def _sequence(self, nodes: Any, before: str) -> str:
        texts: list[str] = []
        repeats_at: list[tuple[int, int]] = []  # (node index, its entry in self.repeats)
        for op, av in nodes:
            if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
                repeats_at.append((len(texts), len(self.repeats)))
            texts.append(self._node(op, av, before + "".join(texts)))
        # A repetition followed by the text after it, up to 3 of the following parts (a run of
        # literal characters counts as one): "a-linux-" repeated, where "[^/]+-linux-[^/]+"
        # would try each "-linux-" in turn.
        for index, entry in repeats_at:
            if entry >= len(self.repeats):
                continue  # it matched no text
            lead, body = self.repeats[entry]
            following = _parts(nodes[index + 1:], texts[index + 1:])
            for count in range(1, min(3, len(following)) + 1):
                self.followed.add((lead, body + "".join(following[:count])))
        return "".join(texts)

    def _node(self, op: Any, av: Any, before: str) -> str:  # noqa: C901 - one case per node kind
        if op is sre.LITERAL:
            self.literals.add(chr(av))
            self.chars.add(chr(av))
            return chr(av)
        if op is sre.NOT_LITERAL:
            self.literals.add(chr(av))
            return next(c for c in _PROBE if ord(c) != av)
        if op is sre.ANY:
            self.chars.add("a")
            return "a"
        if op is sre.IN:
            for item_op, item_av in av:
                if item_op is sre.LITERAL:
                    self.literals.add(chr(item_av))
                elif item_op is sre.RANGE:
                    self.literals.update((chr(item_av[0]), chr(item_av[1])))
            members = [c for c in _PROBE if _in_class(av, c)]
            self.chars.update(members[:3])
            return members[0] if members else ""
        if op is sre.CATEGORY:
            members = [c for c in _PROBE if _in_category(av, c)]
            self.chars.update(members[:3])
            return members[0] if members else ""
        if op is sre.BRANCH:
            texts = [self._sequence(branch, before) for branch in av[1]]
            return texts[0]
        if op is sre.SUBPATTERN:
            text = self._sequence(av[3], before)
            if av[0] is not None:
                self.groups[av[0]] = text
            return text
        if op is sre.ATOMIC_GROUP:
            return self._sequence(av, before)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, body = av
            outer = self._outer
            if high != sre.MAXREPEAT:
                self._outer *= high
                self.widest = max(self.widest, self._outer)
            once = self._sequence(body, before)
            self._outer = outer
            if once:
                self.repeats.append((before, once))
            return once * low
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            self._sequence(av[1], before)
            return ""
        if op is sre.GROUPREF:
            return self.groups.get(av, "")
        if op is sre.GROUPREF_EXISTS:
            self._sequence(av[1], before)
            if av[2] is not None:
                self._sequence(av[2], before)
            return ""
        return ""  # AT (anchors) and the like match no text


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An adversarial text: ``lead``, then ``unit`` repeated to the size asked, then ``tail``
    (the character that makes the match fail at the end)."""

    lead: str
    unit: str
    tail: str

    def text(self, size: int) -> str:
        return self.lead + self.unit * max(1, (size - len(self.lead)) // len(self.unit)) + self.tail


def _parts(nodes: Any, texts: list[str]) -> list[str]:
    """The texts of ``nodes`` with each run of literal characters joined into one part."""
    parts: list[str] = []
    literal_before = False
    for (op, _), text in zip(nodes, texts):
        if op is sre.LITERAL and literal_before:
            parts[-1] += text
        elif text:
            parts.append(text)
        literal_before = op is sre.LITERAL
    return parts


def pieces_of(pattern: re.Pattern[Any]) -> _Pieces:
    text = pattern.pattern if isinstance(pattern.pattern, str) else pattern.pattern.decode("latin-1")
    return _Pieces(sre_parse.parse(text, pattern.flags))


def recipes(pattern: re.Pattern[Any]) -> list[Recipe]:
    pieces = pieces_of(pattern)
    tails = sorted(pieces.literals | {"", "\x00", "\n", "x", " "})
    bodies: set[tuple[str, str]] = set(pieces.repeats)
    bodies.update(("", c) for c in pieces.chars)
    found: set[Recipe] = set()
    for before, body in bodies:
        for tail in tails:
            found.add(Recipe(before, body, tail))
            if before:  # the text before it repeated too: a search retries at each repetition
                found.add(Recipe("", before + body, tail))
    for before, unit in pieces.followed:
        for tail in ("", "\x00", "\n"):  # the text ends before the pattern does
            found.add(Recipe(before, unit, tail))
    return sorted(found, key=repr)


# -- timing -----------------------------------------------------------------------------------

def _runner(pattern: re.Pattern[Any], mode: str, text: str) -> Callable[[], object]:
    subject: str | bytes = text if isinstance(pattern.pattern, str) else text.encode("utf-8", "surrogatepass")
    method = getattr(pattern, mode)
    return lambda: method(subject)


def once(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def seconds(run: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of a few timings of ``run``, each long enough to be above the clock's noise."""
    best = float("inf")
    for attempt in range(repeats):
        if attempt == 2 and best > 0.02:
            break  # a long run is its own average
        calls, started = 0, time.perf_counter()
        while True:
            run()
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed > 0.0005:
                break
        best = min(best, elapsed / calls)
    return best


def growth(pattern: re.Pattern[Any], mode: str, bound: int) -> list[tuple[Recipe, list[tuple[int, float]]]]:
    """For the slowest few recipes at a small size: [(size, seconds)] at growing sizes.

    The smallest size is at least 4 times what the pattern's widest bounded repetition
    takes: below it a repetition can still match where a bigger text fails it, and the
    time of a match is no base to compare a failure with. That can go past the bound."""
    floor = 4 * pieces_of(pattern).widest
    sizes = [s for s in SIZES if floor <= s <= bound]
    if len(sizes) < 3:  # a bounded pattern: a ladder up to its bound (or above its floor), 4 x a step
        top = max(bound, 16 * floor)
        sizes = [top // 16, top // 4, top]
    screen = max(min(SCREEN_SIZE, bound), sizes[0])
    timed = []
    for recipe in recipes(pattern):
        run = _runner(pattern, mode, recipe.text(screen))
        timed.append((min(once(run), once(run)), recipe))
    results = []
    for rank, (_, recipe) in enumerate(sorted(timed, key=lambda pair: pair[0], reverse=True)[:SUSPECTS]):
        ladder: list[tuple[int, float]] = []
        for size in sizes if rank == 0 else sizes[:3]:  # the slowest goes all the way
            ladder.append((size, seconds(_runner(pattern, mode, recipe.text(size)))))
            if not _proportional(ladder):
                # a few microseconds is within a busy machine's noise: time the step again,
                # longer, before calling it superlinear
                ladder[-2:] = [(s, seconds(_runner(pattern, mode, recipe.text(s)), repeats=9)) for s, _ in ladder[-2:]]
            if not _proportional(ladder):
                break  # failed: a bigger size would only take longer
        results.append((recipe, ladder))
    return results


def _proportional(ladder: list[tuple[int, float]]) -> bool:
    return all(t2 / t1 <= SLACK * s2 / s1 for (s1, t1), (s2, t2) in zip(ladder, ladder[1:]))


# -- the tests --------------------------------------------------------------------------------

def test_the_walk_finds_the_patterns_of_every_kind_of_holder():
    origins = {origin for _, origin, _ in PATTERNS.values()}
    assert {"analyzerd.catalogers.python._REQUIREMENT", "analyzerd.catalogers.golang._LDFLAGS_KEYS",
            "secret rule set", "dispatch glob"} <= origins
    assert sum(mode == "match" for _, _, mode in PATTERNS) >= 5  # Anchore's rules: match from a line's start
    assert len(PATTERNS) > 300


@pytest.mark.parametrize("module", _content_modules(), ids=lambda m: m.__name__)
def test_no_regex_is_built_where_the_walk_cannot_see_it(module):
    """A pattern compiled or passed as text inside a function is invisible to the walk:
    hoist it to module level (where the walk finds it and it is compiled once)."""
    source = inspect.getsource(module)
    offenders = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if (module.__name__, function.name) in COMPILING_FUNCTIONS:
            continue
        for call in ast.walk(function):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == "re"
                    and call.func.attr in _RE_FUNCTIONS):
                offenders.append(f"{function.name}: line {call.lineno}")
    assert offenders == []


@pytest.mark.parametrize("module", _content_modules(), ids=lambda m: m.__name__)
def test_every_module_level_pattern_is_walked(module):
    """Each module-level name whose value compiles a regex holds patterns the walk finds: a
    new kind of holder (a class the walk does not open) fails here."""
    tree = ast.parse(inspect.getsource(module))
    missed = []
    for statement in tree.body:
        targets = statement.targets if isinstance(statement, ast.Assign) else \
            [statement.target] if isinstance(statement, ast.AnnAssign) and statement.value else []
        compiles = any(isinstance(n, ast.Attribute) and n.attr == "compile" and isinstance(n.value, ast.Name)
                       and n.value.id == "re" for n in ast.walk(statement))
        for target in targets:
            if compiles and isinstance(target, ast.Name):
                if not list(_patterns_in(getattr(module, target.id), set())):
                    missed.append(target.id)
    assert missed == []


@pytest.mark.parametrize("module", _content_modules(), ids=lambda m: m.__name__)
def test_only_the_dispatcher_calls_fullmatch(module):
    """The walk times every pattern with search (which covers match) and the dispatcher's
    globs with fullmatch: a fullmatch elsewhere would be a call it does not time."""
    calls = [node for node in ast.walk(ast.parse(inspect.getsource(module)))
             if isinstance(node, ast.Attribute) and node.attr == "fullmatch"]
    assert not calls or module.__name__ == "analyzerd.analysis.dispatch"


PATTERN_IDS = [f"{origin}:{str(key[0])[:40]}" for key, (_, origin, _) in PATTERNS.items()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key", list(PATTERNS), ids=PATTERN_IDS)
def test_time_grows_linearly_with_adversarial_input(key):
    pattern, origin, bound = PATTERNS[key]
    for recipe, ladder in growth(pattern, key[2], bound):
        assert _proportional(ladder), (origin, pattern.pattern, key[2], recipe, ladder)


def test_the_measure_tells_the_confirmed_attacks_apart():
    """The two attacks of issue 16, against the regexes as they were: the ratio test sees
    the quadratic one, and the exponential one never gets past a few dozen components."""
    old_requirement = re.compile(
        r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
        r"(?P<spec>[^;@]*?)\s*(?:;(?P<marker>.*))?$")
    ladder = [(n, seconds(lambda n=n: old_requirement.match("a" * n + "@"), repeats=2)) for n in (512, 4096)]
    assert not _proportional(ladder), ladder
    old_ldflags = re.compile(r"\.(?:[gG]it)?(?:[bB]uild)?[vV]er(?:sion)?=(?:\S+/)*(?P<version>v?\d+.\d+.\d+[-\w]*)",
                             re.ASCII)
    ladder = [(n, seconds(lambda n=n: old_ldflags.search(".version=" + "a/" * n + "x"), repeats=1)) for n in (6, 12)]
    assert not _proportional(ladder), ladder


def test_the_confirmed_attacks_now_take_linear_time():
    from analyzerd.catalogers.golang import _LDFLAGS_KEYS, _ldflags_version
    from analyzerd.catalogers.python import _REQUIREMENT
    attacks = ((lambda n: _REQUIREMENT.match("a" * n + "@")),
               (lambda n: _ldflags_version(_LDFLAGS_KEYS[0], "-X main.version=" + "a/" * (n // 2) + "x")))
    for attack in attacks:
        ladder = [(n, seconds(lambda n=n: attack(n))) for n in (16 * 1024, 64 * 1024, 256 * 1024)]
        assert _proportional(ladder), ladder


if __name__ == "__main__":  # figures for the record: python -m tests.unit.test_regex_linear
    for key, (pattern, origin, bound) in PATTERNS.items():
        for recipe, ladder in growth(pattern, key[2], bound):
            if ladder[-1][1] > 0.001 or not _proportional(ladder):
                print(origin, str(pattern.pattern)[:60], key[2], recipe, ladder)
