"""Helper for spaces whose settings must change together across sections (not a space itself).

`Space.grid` crosses its keys, and a whole-section dict sets one section only, so a protocol in
which the model, its optimiser settings and its pruning rates move together (LTH's Conv-2/4/6:
each net has its own lr, steps and conv rate) cannot be written as a grid without producing
mismatched combinations. `LinkedSpace.linked` lists such multi-section points; each is crossed
with the ordinary grid and the seeds. Files starting with "_" are not search spaces.
"""

from typing import Any

from pydantic import model_validator

from study.space import SECTIONS, Space


class LinkedSpace(Space):
    linked: list[dict[str, dict[str, Any]]]
    """Points such as {"model": {...}, "train": {...}, "prune": {...}}, applied together."""

    @model_validator(mode="after")
    def _linked_fits_grid(self) -> "LinkedSpace":
        if not self.linked:
            raise ValueError("linked: give at least one point")
        varied = {k for k in self.grid if "." in k}
        varied |= {f"{k}.{f}" for k, vs in self.grid.items() if "." not in k
                   for v in vs for f in v}
        for point in self.linked:
            for section, fields in point.items():
                if section not in SECTIONS:
                    raise ValueError(f"linked: section {section!r} must be one of "
                                     f"{', '.join(SECTIONS)}")
                clash = sorted(f"{section}.{f}" for f in fields if f"{section}.{f}" in varied)
                if clash:  # a linked value would silently override the grid's
                    raise ValueError(f"linked: {', '.join(clash)} is also varied by the grid")
        return self

    def combinations(self) -> list[dict[str, dict[str, Any]]]:
        return [{s: {**sections[s], **point.get(s, {})} for s in SECTIONS}
                for sections in super().combinations() for point in self.linked]

