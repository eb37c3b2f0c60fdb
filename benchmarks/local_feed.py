"""A real feed's size for ``sentiment-local run``: an RSS file of N reviews, one in ten a long one.

Deterministic for a seed: short reviews (60-400 characters) and, every tenth item, a long review of
3,000-6,000 characters; some items carry HTML markup (escaped in the RSS description, as feeds do),
emoji, right-to-left text (Hebrew, Arabic) or a mix. ``--prefix`` names the items (their guids), so two
feeds of different prefixes share no item.

    uv run python -m benchmarks.local_feed --items 2000 --out /tmp/feed-2000.xml [--seed 1] [--prefix a]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from xml.sax.saxutils import escape

OPINIONS = (
    "is wonderful and I would buy it again",
    "broke after two days, a terrible purchase",
    "is fine, nothing special either way",
    "exceeded every expectation I had",
    "was a disappointing waste of money",
    "works as described",
    "made my mornings so much better",
    "arrived late and the support never answered",
)
PRODUCTS = ("headphones", "kettle", "router", "keyboard", "blender", "camera", "scooter", "thermostat")
EMOJI = ("😀", "😡", "👍", "👎", "🔥", "💔", "🎉", "🤷‍♀️", "👨‍👩‍👧")
RTL = (
    "המוצר הזה מצוין ואני ממליץ עליו בחום",
    "זה היה בזבוז כסף מוחלט",
    "هذا المنتج رائع جدا وأنصح به",
    "تجربة سيئة للغاية ولن أشتري مرة أخرى",
)
LONG_EVERY = 10
LONG_CHARS = (3_000, 6_000)


def _sentence(rng: random.Random) -> str:
    return f"The {rng.choice(PRODUCTS)} {rng.choice(OPINIONS)}."


def _decorate(text: str, rng: random.Random, n: int) -> str:
    kind = n % 5
    if kind == 1:
        return f"<p><b>{text}</b> {rng.choice(EMOJI)}</p><ul><li>rated {n % 5 + 1}/5</li></ul>"
    if kind == 2:
        return f"{rng.choice(RTL)} — {text} {rng.choice(EMOJI)}"
    if kind == 3:
        return f"{text} {''.join(rng.choice(EMOJI) for _ in range(3))}"
    return text


def review(n: int, rng: random.Random, long_every: int = LONG_EVERY) -> str:
    """Item ``n``'s text (before RSS escaping); every ``long_every``-th a long one (0: none)."""
    if long_every and n % long_every == long_every - 1:
        target = rng.randint(*LONG_CHARS)
        parts: list[str] = []
        size = 0
        while size < target:
            part = _decorate(" ".join(_sentence(rng) for _ in range(3)), rng, n + len(parts))
            parts.append(f"<p>{part}</p>")
            size += len(parts[-1])
        return "".join(parts)[:target]
    text = " ".join(_sentence(rng) for _ in range(rng.randint(1, 5)))
    return _decorate(text, rng, n)


def feed_xml(items: int, *, seed: int = 1, prefix: str = "a", long_every: int = LONG_EVERY) -> str:
    rng = random.Random(seed)
    entries = []
    for n in range(items):
        text = review(n, rng, long_every)
        entries.append(
            f"<item><guid isPermaLink='false'>{prefix}-{n}</guid><title>Review {prefix}-{n}</title>"
            f"<link>https://reviews.example/{prefix}/{n}</link><description>{escape(text)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Reviews</title>'
        "<link>https://reviews.example/</link><description>benchmark feed</description>\n"
        + "\n".join(entries)
        + "\n</channel></rss>\n"
    )


def write_feed(path: Path, items: int, *, seed: int = 1, prefix: str = "a", long_every: int = LONG_EVERY) -> Path:
    path.write_text(feed_xml(items, seed=seed, prefix=prefix, long_every=long_every), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prefix", default="a")
    args = parser.parse_args()
    write_feed(args.out, args.items, seed=args.seed, prefix=args.prefix)
    print(f"wrote {args.items} items to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
