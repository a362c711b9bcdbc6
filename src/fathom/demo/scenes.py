"""Render one demo frame: a water background, animals of varied size, depth-dependent light."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from fathom.demo.shapes import Species, draw_species
from fathom.demo.worlds import WORLDS, World

# The largest animal spans this share of the frame's long side, the smallest MIN_SCALE of it;
# sizes are log-uniform in between, so most animals are small, as in the real frames.
MAX_SCALE, MIN_SCALE = 0.075, 0.015


def background(rng: np.random.Generator, width: int, height: int, depth: float, light_offset: float = 0.0,
               tint: float = 0.0, world: World = WORLDS["gain"]) -> tuple[np.ndarray, float]:
    """Water darkening and turning bluer with depth, a vertical light gradient, low-frequency murk and
    sensor noise. Lighting varies from dive to dive and frame to frame (an ROV carries its own lamps), so
    colour alone only partly tells how deep a frame is (in the content world hardly at all). Returns the image
    and the light level for the animals."""
    light = float(np.clip(1.0 - world.light_per_depth * depth + light_offset + rng.normal(0, world.light_jitter),
                          0.35, 1.2))
    blue = float(np.clip(world.blue_per_depth * depth + tint + rng.normal(0, world.blue_jitter), 0, 1))
    top = light * ((1 - blue) * np.array([40, 110, 120]) + blue * np.array([20, 60, 125]))
    bottom = 0.55 * top
    ramp = np.linspace(0, 1, height)[:, None, None]
    image = top * (1 - ramp) + bottom * ramp + np.zeros((1, width, 1))
    murk = Image.fromarray(rng.integers(0, 255, (4, 6), dtype=np.uint8)).resize((width, height), Image.BILINEAR)
    image += (np.asarray(murk, dtype=np.float32)[:, :, None] - 128) * 0.12
    image += rng.normal(0, 3, image.shape)
    for _ in range(int(rng.integers(5, 30))):  # marine snow
        y, x = rng.integers(0, height), rng.integers(0, width)
        image[y, x] += 90
    return image, min(light, 1.0)


def render(rng: np.random.Generator, width: int, height: int, animals: list[Species], depth: float,
           light_offset: float = 0.0, tint: float = 0.0, world: World = WORLDS["gain"], lower: float = 0.0
           ) -> tuple[Image.Image, list[tuple[int, list[float]]]]:
    """Draw `animals` (a list of species, one entry per instance); returns the image and
    (index into `animals`, COCO bbox [x, y, w, h]) for each. `lower` (0..1) packs the animals towards the
    bottom of the frame."""
    water, light = background(rng, width, height, depth, light_offset, tint, world)
    image = Image.fromarray(np.clip(water, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    long_side = max(width, height)
    boxes = []
    for n, species in enumerate(animals):
        radius = 0.5 * long_side * np.exp(rng.uniform(np.log(MIN_SCALE), np.log(MAX_SCALE)))
        radius = max(radius, 3.0)
        cx = rng.uniform(radius, max(radius + 1, width - radius))
        top, bottom = radius, max(radius + 1, height - radius)
        cy = rng.uniform(top, bottom)
        if lower:
            cy = bottom - (bottom - cy) * (1 - lower)  # the same draw, squeezed towards the bottom
        draw_species(draw, species, cx, cy, radius, rng.uniform(0, 2 * np.pi), light * rng.uniform(0.85, 1.0))
        x0, y0 = max(0.0, cx - radius), max(0.0, cy - radius)
        x1, y1 = min(float(width), cx + radius), min(float(height), cy + radius)
        boxes.append((n, [round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)]))
    return image, boxes
