"""The shape every demo family produces: one prompt, a better and a worse response. No Django here."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pair:
    key: str  # stable across runs: it becomes the item's external id
    category: str
    better: str
    worse: str
    prompt: str = ""
    messages: list[dict] = field(default_factory=list)
    gold: bool = False  # the better side is obvious to anyone reading carefully


def chat(*turns: str) -> list[dict]:
    """Alternating user / assistant turns, ending with the user's turn that the two responses answer."""
    assert len(turns) % 2 == 1, "a conversation to answer ends with the user"
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]


def slug(text: str) -> str:
    """A short id part: lower-case words joined by dashes, cut at a word boundary."""
    kept = "".join(c.lower() if c.isalnum() else "-" for c in text)
    out = ""
    for part in (p for p in kept.split("-") if p):
        if out and len(out) + 1 + len(part) > 40:
            break
        out = f"{out}-{part}" if out else part
    return out
