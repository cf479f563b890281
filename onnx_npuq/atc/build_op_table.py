"""Regenerate onnx_op_keys.json, the ONNX parser keys CANN's built-in plugins register.

    python -m onnx_npuq.atc.build_op_table MIRROR_DIR... [-o onnx_npuq/atc/onnx_op_keys.json]

Each MIRROR_DIR is a git clone (bare or not) of one of CANN's open-source operator
repositories (hicann/ops-nn, ops-math, ops-cv, ...); its HEAD is read with git, nothing is
checked out. In every file under a `framework/` folder whose name contains `onnx_plugin`,
each `REGISTER_CUSTOM_OP("GeOp")...OriginOpType(...)` statement gives the keys ATC's ONNX
parser looks a node up by (`<domain>::<opset>::<op_type>`, Ascend/parser onnx_parser.cc).
The key lists are string literals, single or in braces; the one file that builds them with a
macro (ops-math common/src/framework/similar_opp_onnx_plugin.cpp: `.OriginOpType(#ONNX_OPP)`)
is handled by expanding the file's own function-like macros (`#` and `##` included) first.
Anything else (a key that is not a literal after expansion) stops the script: the table must
list what the sources say, not a guess.

The repository name comes from `--repo DIR=owner/name` or, by default, the mirror's folder
name (`owner+name`, as the fetch tool names them, or the last two path parts).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).with_name("onnx_op_keys.json")


class SourceError(RuntimeError):
    """A plugin file this script cannot read a key list from without guessing."""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def plugin_files(repo: Path) -> list[str]:
    names = _git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    return sorted(p for p in names if "framework/" in p and "onnx_plugin" in p.rsplit("/", 1)[-1]
                  and p.endswith((".cc", ".cpp", ".h")))


def strip_comments(src: str) -> str:
    """C++ comments out (string literals kept, so a "//" inside one survives)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)\(([^)]*)\)[ \t]*((?:[^\n]*\\\n)*[^\n]*)", re.M)


def _balanced(src: str, start: int) -> int:
    """Index just past the parenthesis closing the one before `start`."""
    depth, i = 1, start
    while depth:
        if i >= len(src):
            raise SourceError("unbalanced parentheses")
        c = src[i]
        if c == '"':
            i = src.index('"', i + 1) + 1
            continue
        depth += (c == "(") - (c == ")")
        i += 1
    return i


def _split_args(text: str) -> list[str]:
    args, depth, cur = [], 0, []
    for c in text:
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        depth += (c in "({[") - (c in ")}]")
        cur.append(c)
    args.append("".join(cur).strip())
    return args


def expand_macros(src: str) -> str:
    """Expand the function-like macros the file defines itself (repeatedly, for macros that use
    macros), with `#param` stringizing and `##` pasting; the #defines are removed."""
    macros = {}
    for m in _DEFINE.finditer(src):
        params = [p.strip() for p in m.group(2).split(",") if p.strip()]
        macros[m.group(1)] = (params, m.group(3).replace("\\\n", " "))
    src = _DEFINE.sub("", src)
    for _ in range(8):
        changed = False
        for name, (params, body) in macros.items():
            pattern = re.compile(rf"\b{name}\s*\(")
            while (m := pattern.search(src)) is not None:
                end = _balanced(src, m.end())
                args = _split_args(src[m.end():end - 1])
                if len(args) != len(params):
                    raise SourceError(f"macro {name} called with {len(args)} argument(s), defined with {len(params)}")
                text = body
                for p, a in zip(params, args):
                    text = re.sub(rf"(?<!#)#\s*{p}\b", lambda _m, a=a: json.dumps(a), text)
                    text = re.sub(rf"\b{p}\b", lambda _m, a=a: a, text)
                text = re.sub(r"\s*##\s*", "", text)
                src = src[:m.start()] + text + src[end:]
                changed = True
        if not changed:
            break
    return src


_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def registrations(src: str) -> list[tuple[str, list[str]]]:
    """(GE op type, [keys]) for every REGISTER_CUSTOM_OP(...) ... ; statement with OriginOpType."""
    src = expand_macros(strip_comments(src))
    out = []
    for m in re.finditer(r"\bREGISTER_CUSTOM_OP\s*\(", src):
        end = _balanced(src, m.end())
        name = _LITERAL.fullmatch(src[m.end():end - 1].strip())
        stmt_end = src.find(";", end)
        stmt = src[end:stmt_end]
        if ".FrameworkType(ONNX)" not in re.sub(r"\s+", "", stmt):
            continue
        if name is None:
            raise SourceError(f"REGISTER_CUSTOM_OP({src[m.end():end - 1].strip()}): not a string literal")
        keys = []
        for o in re.finditer(r"\.\s*OriginOpType\s*\(", stmt):
            arg = stmt[o.end():_balanced(stmt, o.end()) - 1]
            found = _LITERAL.findall(arg)
            rest = _LITERAL.sub("", arg)
            rest = re.sub(r"std::vector\s*<\s*ge::AscendString\s*>|ge::AscendString|[\s{}(),]", "", rest)
            if not found or rest:
                raise SourceError(f"OriginOpType({' '.join(arg.split())[:80]}): not a list of string literals")
            keys += found
        if keys:
            out.append((name.group(1), keys))
    return out


def repo_name(path: Path) -> str:
    path = path.resolve()
    parts = [p for p in path.parts if p not in ("repo", ".git")]
    if "+" in parts[-1]:
        return parts[-1].replace("+", "/", 1)
    return "/".join(parts[-2:])


def build(mirrors: dict[Path, str]) -> dict:
    keys: dict[str, list] = {}
    files: list[dict] = []
    commits = {}
    for path, repo in mirrors.items():
        commit = _git(path, "rev-parse", "HEAD").strip()
        commits[repo] = commit
        for file in plugin_files(path):
            src = _git(path, "show", f"HEAD:{file}")
            try:
                regs = registrations(src)
            except SourceError as err:
                raise SourceError(f"{repo} {file}: {err}") from None
            if not regs:
                continue
            index = len(files)
            files.append({"repo": repo, "path": file, "commit": commit})
            for ge_op, ks in regs:
                for k in ks:
                    if [index, ge_op] not in keys.setdefault(k, []):
                        keys[k].append([index, ge_op])
    return {
        "_about": {
            "what": "Every key CANN's built-in ONNX parser plugins register (REGISTER_CUSTOM_OP(op)"
                    ".FrameworkType(ONNX).OriginOpType(keys)): ATC looks a node up by "
                    "'<domain>::<opset>::<op_type>' and stops with E19010 / E16002 when no plugin has it.",
            "how": "Generated, not edited: python -m onnx_npuq.atc.build_op_table MIRROR_DIR... over clones of "
                   "the repositories below (files under framework/ named *onnx_plugin*, their own macros "
                   "expanded).",
            "format": "keys: key -> [[index into files, GE op type it maps to], ...]; files: the plugin files "
                      "(repo, path, commit).",
            "experimental": "Paths under experimental/ are contributions outside the released op set; "
                            "preflight does not count a key only they register as confirmed.",
            "repositories": commits,
        },
        "files": files,
        "keys": {k: keys[k] for k in sorted(keys, key=_order)},
    }


def dumps(table: dict) -> str:
    """JSON with one key (and one file) per line: small, and diffs read per key."""
    def block(name, items, fmt):
        lines = [f"  {fmt(item)}" for item in items]
        return f' "{name}": {open_}\n' + ",\n".join(lines) + f"\n {close_}"
    parts = [' "_about": ' + json.dumps(table["_about"], ensure_ascii=False)]
    open_, close_ = "[", "]"
    parts.append(block("files", table["files"], lambda f: json.dumps(f)))
    open_, close_ = "{", "}"
    parts.append(block("keys", table["keys"].items(), lambda kv: f"{json.dumps(kv[0])}: {json.dumps(kv[1])}"))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _order(key: str):
    parts = key.split("::")
    if len(parts) == 3 and parts[1].isdigit():
        return (parts[0], parts[2], int(parts[1]))
    return (key, "", 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m onnx_npuq.atc.build_op_table", description=__doc__.split("\n\n")[0])
    ap.add_argument("mirrors", nargs="+", type=Path, help="git clones of CANN operator repositories")
    ap.add_argument("--repo", action="append", default=[], metavar="DIR=owner/name",
                    help="the repository name of a mirror (default: from its folder name)")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    names = dict(r.split("=", 1) for r in args.repo)
    mirrors = {p: names.get(str(p), repo_name(p)) for p in args.mirrors}
    try:
        table = build(mirrors)
    except (SourceError, subprocess.CalledProcessError) as err:
        print(f"build_op_table: {err}", file=sys.stderr)
        return 2
    args.output.write_text(dumps(table), encoding="utf-8")
    print(f"wrote {args.output}: {len(table['keys'])} keys from {len(table['files'])} plugin files in "
          f"{len(mirrors)} repositories")
    return 0


if __name__ == "__main__":
    sys.exit(main())
