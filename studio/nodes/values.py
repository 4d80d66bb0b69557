"""Values that flow along IMAGE links: pictures that remember how they were made."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from studio.formats.parameters import GenerationParams


@dataclass(frozen=True, eq=False)
class Picture:
    image: Image.Image
    params: GenerationParams | None = None
    # Where the image's top-left pixel lies on the canvas picture it was cut from.
    origin: tuple[int, int] = (0, 0)

    def with_image(self, image: Image.Image, **param_changes: Any) -> Picture:
        params = (
            self.params.with_(**param_changes) if self.params and param_changes else self.params
        )
        return replace(self, image=image, params=params)

    @property
    def nbytes(self) -> int:
        return self.image.width * self.image.height * len(self.image.getbands())


Pictures = tuple[Picture, ...]
