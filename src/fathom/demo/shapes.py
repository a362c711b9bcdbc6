"""Shape families (super-categories) and their subtle variants (fine categories), drawn with PIL.

Every super-category is one outline family; a fine category is a consistent variation inside it:
a small hue shift, a marking (none, centre dot, stripe, dark rim) and an aspect ratio. 4 x 4 x 3 = 48
variants, enough for the largest family.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw


def regular(n: int, inner: float | None = None) -> np.ndarray:
    """A regular n-gon, or an n-pointed star when `inner` (the inner radius) is given."""
    if inner is None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    t = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def arc(cx: float, cy: float, r: float, start: float, stop: float, n: int = 16) -> np.ndarray:
    t = np.linspace(start, stop, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def offset(points: np.ndarray, dx: float, dy: float, scale: float) -> np.ndarray:
    return points * scale + np.array([dx, dy])


# Each family: (name, [(unit outline, "fill" | line width as a fraction of the radius), ...]).
FAMILIES: list[tuple[str, list[tuple[np.ndarray, object]]]] = [
    ("Disc", [(regular(24), "fill")]),
    ("Ring", [(np.vstack([regular(24), regular(24)[:1]]), 0.3)]),
    ("Triangle", [(regular(3), "fill")]),
    ("Square", [(regular(4), "fill")]),
    ("Pentagon", [(regular(5), "fill")]),
    ("Hexagon", [(regular(6), "fill")]),
    ("Star four", [(regular(4, 0.4), "fill")]),
    ("Star five", [(regular(5, 0.45), "fill")]),
    ("Star six", [(regular(6, 0.55), "fill")]),
    ("Urchin", [(regular(14, 0.6), "fill")]),
    ("Cross", [(np.array([[1, .2], [.2, .2], [.2, 1], [-.2, 1], [-.2, .2], [-1, .2], [-1, -.2], [-.2, -.2],
                          [-.2, -1], [.2, -1], [.2, -.2], [1, -.2]]), "fill")]),
    ("Crescent", [(np.vstack([arc(0, 0, 1, -2.4, 2.4), arc(0.45, 0, 0.8, 2.2, -2.2)]), "fill")]),
    ("Rhombus", [(np.array([[1, 0], [0, .45], [-1, 0], [0, -.45]]), "fill")]),
    ("Chevron", [(np.array([[1, 0], [-.6, .9], [-.2, 0], [-.6, -.9]]), "fill")]),
    ("Fan", [(np.vstack([arc(0, 0, 1, 0, np.pi), [[0, 0]]]), "fill")]),
    ("Worm", [(np.stack([np.linspace(-1, 1, 16), 0.35 * np.sin(np.linspace(0, 2 * np.pi, 16))], 1), 0.28)]),
    ("Bar", [(np.array([[1, .3], [-1, .3], [-1, -.3], [1, -.3]]), "fill")]),
    ("Trio", [(offset(regular(12), np.cos(a), np.sin(a), 0.5) * 0.7, "fill") for a in (0, 2.1, 4.2)]),
    ("Feather", [(np.array([[0, 0], [np.cos(a), np.sin(a)]]), 0.16) for a in np.linspace(0, 2 * np.pi, 7)[:-1]]),
    ("Drop", [(np.vstack([arc(0, 0, .6, -np.pi / 2, np.pi / 2, 12), [[-1, 0]]]) * [1, 1] + [.3, 0], "fill")]),
]

# Creatures no category describes (the real test frames hold concepts outside the 290): outlines no family
# uses, drawn in colours between the families'. They carry no label; the deeper a frame, the likelier.
UNKNOWN_SHAPES: list[list[tuple[np.ndarray, object]]] = [
    [(np.stack([np.linspace(0.1, 1, 24) * np.cos(np.linspace(0, 4 * np.pi, 24)),
                np.linspace(0.1, 1, 24) * np.sin(np.linspace(0, 4 * np.pi, 24))], 1), 0.14)],  # spiral
    [(np.vstack([arc(0, 0, 1, np.pi, 2 * np.pi, 12), [[1, 0]]]), "fill")]
    + [(np.array([[x, 0], [x + 0.1, 0.9]]), 0.08) for x in (-0.8, -0.4, 0.0, 0.4)],  # jelly with tentacles
    [(np.array([[-1, -.2], [1, -.2], [1, .2], [-1, .2]]), "fill")]
    + [(np.array([[x, .2], [x, .8]]), 0.1) for x in (-0.8, -0.3, 0.2, 0.7)],  # comb
    [(regular(3) * 0.5 + [0.4, 0], "fill"), (regular(4) * 0.5 - [0.4, 0], "fill")],  # two-bodied
]

HUE_SHIFTS = (-0.05, -0.017, 0.017, 0.05)
MARKINGS = ("none", "dot", "stripe", "rim")
ASPECTS = (1.0, 0.72, 0.52)
MAX_VARIANTS = len(HUE_SHIFTS) * len(MARKINGS) * len(ASPECTS)


@dataclass(frozen=True)
class Species:
    """How one fine category looks."""

    family: int
    hue: float
    marking: str
    aspect: float

    @classmethod
    def of(cls, family: int, variant: int) -> "Species":
        if variant >= MAX_VARIANTS:
            raise ValueError(f"family {family} has no variant {variant} (max {MAX_VARIANTS - 1})")
        base_hue = (family * 0.618034) % 1.0  # golden-ratio spacing keeps family colours apart
        return cls(
            family=family,
            hue=(base_hue + HUE_SHIFTS[variant % 4]) % 1.0,
            marking=MARKINGS[(variant // 4) % 4],
            aspect=ASPECTS[variant // 16],
        )

    @classmethod
    def unknown(cls, kind: int, hue: float) -> "Species":
        """A creature outside every category: UNKNOWN_SHAPES[kind], family index past the real ones."""
        return cls(family=len(FAMILIES) + kind % len(UNKNOWN_SHAPES), hue=hue, marking="none", aspect=1.0)


def outlines(family: int) -> list[tuple[np.ndarray, object]]:
    return FAMILIES[family][1] if family < len(FAMILIES) else UNKNOWN_SHAPES[family - len(FAMILIES)]


def rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def draw_species(draw: ImageDraw.ImageDraw, species: Species, cx: float, cy: float, radius: float,
                 angle: float, light: float) -> None:
    """Draw one animal centred at (cx, cy); `light` (0..1) dims it with depth."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def place(points: np.ndarray) -> list[tuple[float, float]]:
        scaled = points * np.array([1.0, species.aspect]) * radius
        return [tuple(p) for p in scaled @ rotation.T + np.array([cx, cy])]

    body = rgb(species.hue, 0.65, 0.9 * light)
    dark = rgb(species.hue, 0.8, 0.35 * light)
    for outline, style in outlines(species.family):
        if style == "fill":
            draw.polygon(place(outline), fill=body, outline=dark if species.marking == "rim" else None,
                         width=max(1, int(radius * 0.12)))
        else:
            draw.line(place(outline), fill=body, width=max(1, int(radius * style)), joint="curve")
    if species.marking == "dot":
        r = max(1.0, radius * 0.22)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=dark)
    elif species.marking == "stripe":
        draw.line(place(np.array([[-0.8, 0.0], [0.8, 0.0]])), fill=rgb(species.hue, 0.2, light),
                  width=max(1, int(radius * 0.14)))
