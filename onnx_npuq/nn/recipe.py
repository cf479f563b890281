"""Recipe: which format each Linear of a model gets, by module-name glob.

    default:  {weights: mxfp4, activations: null}
    rules:
      - {match: "model.layers.*.mlp.*", weights: hif4, activations: mxfp8e4m3}
    exclude: [lm_head, "*.embed*"]

Globs are fnmatch (case-sensitive; `*` also crosses dots). `exclude` beats everything,
then the first matching rule, then the default. A rule that leaves out `weights` or
`activations` takes the default's; an explicit null means "not quantized".
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .linear import parse_spec, spec_of

DEFAULTS = {"weights": "mxfp4", "activations": None}
TOP_KEYS = ("default", "rules", "exclude")
DEFAULT_KEYS = ("weights", "activations")
RULE_KEYS = ("match", "weights", "activations")
_UNSET = object()


class RecipeError(ValueError):
    """An invalid recipe: bad YAML, unknown key, unknown format or option."""


def _check_keys(d, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")


def _spec(value, where: str):
    """Validate a spec now (not at quantize time) and return its canonical form."""
    if value is None:
        return None
    try:
        return spec_of(parse_spec(value))
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{where}: {err}") from None


def _globs(value, where: str) -> tuple[str, ...]:
    globs = [value] if isinstance(value, str) else value
    if not isinstance(globs, (list, tuple)) or not all(isinstance(g, str) for g in globs):
        raise RecipeError(f"{where}: expected a glob or a list of globs, got {value!r}")
    return tuple(globs)


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Rule:
    match: tuple[str, ...]
    weights: object = _UNSET  # a canonical spec, None, or _UNSET (take the default)
    activations: object = _UNSET

    def matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self.match)


@dataclass(frozen=True)
class Recipe:
    default: dict = field(default_factory=dict)  # only the keys the recipe set
    rules: tuple[Rule, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d) -> "Recipe":
        d = {} if d is None else d
        _check_keys(d, TOP_KEYS, "recipe")
        default = d.get("default") or {}
        _check_keys(default, DEFAULT_KEYS, "default")
        default = {k: _spec(v, f"default.{k}") for k, v in default.items()}
        rules = d.get("rules") or []
        if not isinstance(rules, list):
            raise RecipeError(f"rules: expected a list, got {type(rules).__name__}")
        parsed = []
        for i, r in enumerate(rules):
            where = f"rules[{i}]"
            _check_keys(r, RULE_KEYS, where)
            if "match" not in r:
                raise RecipeError(f"{where}: missing 'match'")
            match = _globs(r["match"], f"{where}.match")
            where = f"{where} (match {r['match']!r})"  # errors name the rule by its glob
            kw = {k: _spec(r[k], f"{where}.{k}") for k in ("weights", "activations") if k in r}
            parsed.append(Rule(match, **kw))
        exclude = _globs(d.get("exclude") or [], "exclude")
        return cls(default, tuple(parsed), exclude)

    @classmethod
    def from_yaml(cls, path_or_text) -> "Recipe":
        """A recipe from a YAML file path or from YAML text."""
        text, source = path_or_text, "recipe"
        if isinstance(path_or_text, Path) or (
            isinstance(path_or_text, str) and "\n" not in path_or_text
            and Path(path_or_text).is_file()
        ):
            text, source = Path(path_or_text).read_text(), str(path_or_text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            ctx, cmark = getattr(err, "context", None), getattr(err, "context_mark", None)
            if ctx and cmark:  # where the unclosed construct began
                problem += f" ({ctx} at line {cmark.line + 1})"
            raise RecipeError(f"{source}: invalid YAML{at}: {problem}") from None
        if data is not None and not isinstance(data, dict):
            raise RecipeError(
                f"{source}: a recipe is a YAML mapping (or a path to one), got {data!r:.80}"
            )
        return cls.from_dict(data)

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

    def with_defaults(self, weights=_UNSET, activations=_UNSET) -> "Recipe":
        """A copy whose default takes these values where the recipe did not set one."""
        given = {"weights": weights, "activations": activations}
        default = dict(self.default)
        for k, v in given.items():
            if k not in default and v is not _UNSET:
                default[k] = _spec(v, k)
        return Recipe(default, self.rules, self.exclude)

    def excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self.exclude)

    def rule_for(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.matches(name)), None)

    def resolve(self, module_name: str):
        """-> (weight spec or None, activation spec or None) for a module name."""
        if self.excluded(module_name):
            return None, None
        rule = self.rule_for(module_name)
        out = []
        for key in ("weights", "activations"):
            value = _UNSET if rule is None else getattr(rule, key)
            if value is _UNSET:
                value = self.default.get(key, DEFAULTS[key])
            out.append(value)
        return tuple(out)

    def named_explicitly(self, module_name: str) -> bool:
        """Whether a rule names this module by its exact name (a glob without wildcards)."""
        return any(g == module_name for r in self.rules for g in r.match if not is_glob(g))
