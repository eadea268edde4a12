"""Small helpers for the words of messages (library and commands alike)."""


def counted(n, word, plural=None):
    """"1 receiver", "2 receivers", "0 chunks": `n` and `word`, plural
    (`plural`, else word + "s") unless n is 1."""
    return f"{n} {word if n == 1 else plural or word + 's'}"
