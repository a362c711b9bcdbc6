"""The demo's worlds: two ways the eval set can be shifted from train, chosen with `demo-data --world`.

In both, an eval frame deeper than train's 800 m is out-of-sample (the competition's definition), 91% of
eval frames come from dives train never shows, and eval draws flatter category frequencies. What tells the
out-of-sample frames apart differs:

- gain (the default demo): depth darkens and blues the water far more than lamps vary, the eval era's new
  dives are filmed with another camera (a per-channel gain, more noise), and the deeper a frame the more of
  its animals belong to unseen categories. Appearance carries most of the signal; every new dive shares
  the camera's shift.
- content: out-of-sample frames are out of sample by what they hold: past 800 m a large share of the
  animals belong to categories train never shows, and creatures outside every category are common. Depth
  changes the water less than frame-to-frame lighting does, and there is no new camera. The in-sample eval
  frames differ from train by their scene make-up instead: more animals per category, sitting lower in the
  frame. "Unlike train" and "out-of-sample" are different things here.

A rule for choosing the osd score is checked in both (docs/ensemble-and-osd.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    name: str
    new_camera: bool  # eval's new dives filmed with another camera (fathom.demo.dives.camera)
    light_per_depth: float  # how much the lamps' light falls from the surface to the bottom
    light_jitter: float  # frame-to-frame spread of the light
    blue_per_depth: float  # how much bluer the water turns from the surface to the bottom
    blue_jitter: float
    unseen_base: float  # an eval animal's chance of an unseen category within train's depth
    unseen_past: float  # ... added at train's depth limit, beyond it (0 = no step)
    unseen_bottom: float  # ... added at the bottom, growing linearly beyond the limit
    unknown_base: float  # mean creatures outside every category in an eval frame within train's depth
    unknown_past: float
    unknown_bottom: float
    eval_crowding: float  # eval frames' extra animals per category, as a multiple of train's
    eval_lower: float  # 0: animals anywhere in eval frames; 1: packed towards the bottom

    def unseen_share(self, beyond: float, deep: bool) -> float:
        """An eval animal's chance of an unseen category; `beyond` 0 at train's limit, 1 at the bottom."""
        return self.unseen_base + (self.unseen_past if deep else 0.0) + self.unseen_bottom * beyond

    def unknown_mean(self, beyond: float, deep: bool) -> float:
        return self.unknown_base + (self.unknown_past if deep else 0.0) + self.unknown_bottom * beyond


WORLDS = {
    "gain": World("gain", new_camera=True, light_per_depth=0.45, light_jitter=0.12, blue_per_depth=1.0,
                  blue_jitter=0.2, unseen_base=0.03, unseen_past=0.0, unseen_bottom=0.75, unknown_base=0.05,
                  unknown_past=0.0, unknown_bottom=1.2, eval_crowding=1.0, eval_lower=0.0),
    "content": World("content", new_camera=False, light_per_depth=0.1, light_jitter=0.18, blue_per_depth=0.25,
                     blue_jitter=0.3, unseen_base=0.03, unseen_past=0.35, unseen_bottom=0.4, unknown_base=0.05,
                     unknown_past=0.5, unknown_bottom=0.8, eval_crowding=2.5, eval_lower=0.6),
}
DEFAULT_WORLD = "gain"
