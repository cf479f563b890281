"""Recipe: which format each weight layer of a model gets, by module name and type.

    default:  {weights: mxfp4, activations: null}
    rules:
      - {match: "model.layers.*.mlp.*", weights: hif4, activations: mxfp8e4m3}
      - {types: [Conv2d], weights: int8sym}
      - {match: "*.embed_tokens", types: Embedding, weights: int4sym}
    exclude: [lm_head, "*.embed*"]

Globs are fnmatch (case-sensitive; `*` also crosses dots). `types` are class-name globs,
matched against the module's class and its bases ("Conv*" covers Conv1d/2d/3d and the
transposed ones; "nn.Conv2d" works too). A rule with both matches modules that fit both.
`exclude` beats everything, then the first matching rule, then the default. A rule that
leaves out `weights` or `activations` takes the default's; an explicit null means "not
quantized".
"""
from __future__ import annotations

import fnmatch
import reprlib
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .spec import parse_spec, spec_of

DEFAULTS = {"weights": "mxfp4", "activations": None}
TOP_KEYS = ("default", "rules", "exclude")
DEFAULT_KEYS = ("weights", "activations")
RULE_KEYS = ("match", "types", "weights", "activations")
UNSET = object()


class RecipeError(ValueError):
    """An invalid recipe: bad YAML, unknown key, unknown format or option."""


def _check_keys(d, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {_show(unknown)}; allowed: {list(allowed)}")


def _spec(value, where: str):
    """Validate a spec now (not at quantize time) and return its canonical form."""
    if value is None:
        return None
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        raise RecipeError(f"{where}: option names must be strings, got {_show(list(value))}")
    try:
        return spec_of(parse_spec(value))
    except (ValueError, TypeError, OverflowError) as err:
        text = " ".join(str(err).split())
        raise RecipeError(f"{where}: {text if len(text) <= 300 else text[:300] + '...'}") from None


def _globs(value, where: str) -> tuple[str, ...]:
    globs = [value] if isinstance(value, str) else value
    if not isinstance(globs, (list, tuple)) or not all(isinstance(g, str) for g in globs):
        raise RecipeError(f"{where}: expected a glob or a list of globs, got {_show(value)}")
    return tuple(globs)


MAX_YAML_BYTES = 1 << 20  # a recipe is a few lines; this bounds a hostile file
MAX_YAML_NODES = 10_000  # nodes once aliases are expanded (a recipe has a few dozen)
MAX_YAML_DEPTH = 64


def _show(value, limit: int = 80) -> str:
    """A bounded repr (a value built from YAML aliases can be huge)."""
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlist, r.maxdict = 3, limit, limit, 6, 6
    return r.repr(value)


def _names_a_file(obj) -> bool:
    if not isinstance(obj, str) or "\n" in obj or not obj.strip() or len(obj) > 4096:
        return False
    try:
        return Path(obj).is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


def _read_recipe_file(path: Path) -> str:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise RecipeError(f"{path}: not a regular file")
        if st.st_size > MAX_YAML_BYTES:
            raise RecipeError(f"{path}: {st.st_size} bytes is past the {MAX_YAML_BYTES}-byte limit of a recipe")
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as err:
        raise RecipeError(f"{path}: {err.strerror or err}") from None
    if len(data) > MAX_YAML_BYTES:
        raise RecipeError(f"{path}: past the {MAX_YAML_BYTES}-byte limit of a recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.start})") from None


def _expanded_size(root) -> int:
    """Nodes of a composed YAML document once its aliases are expanded (shared nodes counted
    per use, memoized); RecipeError for a recursive alias or a document too large / deep."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise RecipeError("a recursive YAML alias (an anchor used inside itself)")
        if depth > MAX_YAML_DEPTH:
            raise RecipeError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        on_path.discard(key)
        if total > MAX_YAML_NODES:
            raise RecipeError(f"YAML with more than {MAX_YAML_NODES} nodes once its aliases are expanded "
                              "(an alias bomb?)")
        sizes[key] = total
        return total

    return size(root, 0)


def _flow_depth(text: str) -> int:
    """Deepest nesting of flow brackets ([ and {), counted roughly (quotes not parsed): PyYAML's
    scanner takes time quadratic in it."""
    depth = deepest = 0
    for c in text:
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}" and depth:
            depth -= 1
    return deepest


def _parse_yaml(text: str, source: str):
    if ("[" in text or "{" in text) and _flow_depth(text) > MAX_YAML_DEPTH:
        raise RecipeError(f"{source}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters already
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        ctx, cmark = getattr(err, "context", None), getattr(err, "context_mark", None)
        if ctx and cmark:  # where the unclosed construct began
            problem += f" ({ctx} at line {cmark.line + 1})"
        raise RecipeError(f"{source}: invalid YAML{at}: {' '.join(str(problem).split())}") from None
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}") from None
    except RecursionError:
        raise RecipeError(f"{source}: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def type_names(module) -> list[str]:
    """The class names a `types` glob is matched against: the module's class and its bases."""
    return [c.__name__ for c in type(module).__mro__ if c.__name__ not in ("Module", "object")]


@dataclass(frozen=True)
class Rule:
    match: tuple[str, ...] = ()  # module-name globs; () matches every name
    types: tuple[str, ...] = ()  # class-name globs; () matches every type
    weights: object = UNSET  # a canonical spec, None, or UNSET (take the default)
    activations: object = UNSET

    def matches(self, name: str, module=None) -> bool:
        """Whether the rule covers `name` (and `module`, when its types are to be checked)."""
        if self.match and not any(fnmatch.fnmatchcase(name, g) for g in self.match):
            return False
        if self.types and module is not None:
            classes = type_names(module)
            return any(fnmatch.fnmatchcase(c, t.rpartition(".")[2]) for t in self.types for c in classes)
        return True

    def describe(self) -> str:
        def globs(g):
            return _show(g[0] if len(g) == 1 else list(g))

        parts = ([f"match {globs(self.match)}"] if self.match else []) + \
                ([f"types {globs(self.types)}"] if self.types else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class Recipe:
    default: dict = field(default_factory=dict)  # only the keys the recipe set
    rules: tuple[Rule, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d, source: str | None = None) -> "Recipe":
        if source is not None:  # errors name the file
            try:
                return cls.from_dict(d)
            except RecipeError as err:
                raise RecipeError(f"{source}: {err}") from None
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise RecipeError(f"a recipe is a YAML mapping (or a path to one), got {_show(d)}")
        _check_keys(d, TOP_KEYS, "recipe")
        default = {} if d.get("default") is None else d["default"]
        _check_keys(default, DEFAULT_KEYS, "default")
        default = {k: _spec(v, f"default.{k}") for k, v in default.items()}
        rules = [] if d.get("rules") is None else d["rules"]
        if not isinstance(rules, list):
            raise RecipeError(f"rules: expected a list, got {type(rules).__name__}")
        parsed = []
        for i, r in enumerate(rules):
            where = f"rules[{i}]"
            _check_keys(r, RULE_KEYS, where)
            if "match" not in r and "types" not in r:
                raise RecipeError(f"{where}: missing 'match' or 'types' (which modules the rule is for)")
            match = _globs(r["match"], f"{where}.match") if "match" in r else ()
            types = _globs(r["types"], f"{where}.types") if "types" in r else ()
            rule = Rule(match, types)
            where = f"{where} ({rule.describe()})"  # errors name the rule by its globs
            kw = {k: _spec(r[k], f"{where}.{k}") for k in ("weights", "activations") if k in r}
            parsed.append(Rule(match, types, **kw))
        exclude = _globs([] if d.get("exclude") is None else d["exclude"], "exclude")
        return cls(default, tuple(parsed), exclude)

    @classmethod
    def from_yaml(cls, path_or_text) -> "Recipe":
        """A recipe from a YAML file path (a Path, or a one-line str naming a file) or from
        YAML text. Safe YAML only (no Python tags), at most MAX_YAML_BYTES, and at most
        MAX_YAML_NODES nodes once aliases are expanded (no "billion laughs")."""
        text, source = path_or_text, "recipe"
        if isinstance(path_or_text, Path) or _names_a_file(path_or_text):
            text, source = _read_recipe_file(Path(path_or_text)), str(path_or_text)
        elif not isinstance(text, str):
            raise RecipeError(f"cannot make a recipe from {type(text).__name__}")
        elif len(text) > MAX_YAML_BYTES:
            raise RecipeError(f"recipe text of {len(text)} characters is past the {MAX_YAML_BYTES} limit")
        return cls.from_dict(_parse_yaml(text, source), source)

    @classmethod
    def load(cls, obj) -> "Recipe":
        """A Recipe, a dict, YAML text or a YAML file path -> a Recipe."""
        if isinstance(obj, Recipe):
            return obj
        if obj is None or isinstance(obj, dict):
            return cls.from_dict(obj)
        if isinstance(obj, (str, Path)):
            return cls.from_yaml(obj)
        raise RecipeError(f"cannot make a recipe from {type(obj).__name__}")

    def with_defaults(self, weights=UNSET, activations=UNSET) -> "Recipe":
        """A copy whose default takes these values where the recipe did not set one."""
        given = {"weights": weights, "activations": activations}
        default = dict(self.default)
        for k, v in given.items():
            if k not in default and v is not UNSET:
                default[k] = _spec(v, k)
        return Recipe(default, self.rules, self.exclude)

    def excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self.exclude)

    def rule_for(self, name: str, module=None) -> Rule | None:
        return next((r for r in self.rules if r.matches(name, module)), None)

    def resolve(self, module_name: str, module=None):
        """-> (weight spec or None, activation spec or None) for a module name (and the module,
        for rules by type)."""
        if self.excluded(module_name):
            return None, None
        rule = self.rule_for(module_name, module)
        out = []
        for key in ("weights", "activations"):
            value = UNSET if rule is None else getattr(rule, key)
            if value is UNSET:
                value = self.default.get(key, DEFAULTS[key])
            out.append(value)
        return tuple(out)

    def named_explicitly(self, module_name: str) -> bool:
        """Whether a rule names this module by its exact name (a glob without wildcards)."""
        return any(g == module_name for r in self.rules for g in r.match if not is_glob(g))
