"""Console command text as srcds reads it from .cfg files and RCON: quotes, // and ;."""

from __future__ import annotations


def _split_line(line: str) -> list[list[str]]:
    """Tokenise one line into commands; `;` separates commands, `//` ends the line."""
    commands: list[list[str]] = []
    tokens: list[str] = []
    current: list[str] = []
    in_quotes = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == '"':
            if in_quotes:
                tokens.append("".join(current))
                current = []
            in_quotes = not in_quotes
        elif in_quotes:
            current.append(char)
        elif line.startswith("//", index):
            break
        elif char in " \t;":
            if current:
                tokens.append("".join(current))
                current = []
            if char == ";" and tokens:
                commands.append(tokens)
                tokens = []
        else:
            current.append(char)
        index += 1
    if current:
        tokens.append("".join(current))
    if tokens:
        commands.append(tokens)
    return commands


def split_commands(text: str) -> list[list[str]]:
    """All commands in a cfg file or an RCON command string, in order."""
    commands: list[list[str]] = []
    for line in text.splitlines():
        commands.extend(_split_line(line))
    return commands
