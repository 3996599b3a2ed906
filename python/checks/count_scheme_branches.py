"""Count the conditionals that test which scheme a cipher uses (issue 37: "Cipher dispatches once").

A branch is an ``if``, ``elif``, conditional expression or ``while`` whose test compares a scheme
name (``scheme ==``, ``made_with !=``, ``scheme in``, ...), asks ``replays``, or asks whether the
digits attack or the replayed generator exists (``attack is``, ``nae is``).

    python python/checks/count_scheme_branches.py $(find ric_ext -name '*.py' | sort)
"""

import ast
import re
import sys

PATTERN = re.compile(r"\b(scheme|made_with)\b\s*(==|!=|in\b|not in\b|is\b)|replays|\b(attack|nae)\s+is\b")


def branches(path: str) -> list:
    src = open(path).read()
    found = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)):
            test = ast.get_source_segment(src, node.test) or ""
            if PATTERN.search(test):
                found.append((node.lineno, test))
    return sorted(found)


def main() -> None:
    total = 0
    for path in sys.argv[1:]:
        found = branches(path)
        total += len(found)
        for line, test in found:
            print(f"  {path}:{line}: {test[:100]}")
        print(f"{path}: {len(found)}")
    print(f"total: {total}")


if __name__ == "__main__":
    main()
