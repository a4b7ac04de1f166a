"""Lists of config values typed on one command line: sweep.py's --grid KEY=V1,V2 and search.py's
--space KEY=choice:V1,V2."""
from __future__ import annotations


def split_values(text: str) -> list[str]:
    """"1e-3,3e-3" -> ["1e-3", "3e-3"]; commas inside brackets stay: "(0.9,0.99),(0.8,0.9)" is two values."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values
