"""torch/diffusers side of Studio: devices, model loading, sampling, previews, masks, upscaling.

Importing this package forces Hugging Face libraries offline before any of them is imported:
nothing here may ever reach the network.
"""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DIFFUSERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")
