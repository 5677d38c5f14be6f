"""Studies that serve the course: experiments built from the library's layers, above training and evaluation.

audit         ``lpips-core audit``: other LPIPS implementations and protocol choices against the
              reference; how often the [0, 1] warning fires on correct inputs
published     ``lpips-core score-published``: real BAPPS judgments without images (published
              distances): one judge's agreement with the panel, the oracle bound, agreement by margin
mini_bapps    the mini set: BAPPS's layout from real photographs, judged by a SIMULATED
              observer (data_scripts/make_mini_bapps.py)
derived       2AFC triplets derived from LIVE's DMOS, scored from the stored per-image distances
calibration   LPIPS's linear layers fitted to 2AFC triplets derived from human DMOS ratings (LIVE),
              cross-validated with whole reference scenes held out
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

#: Public name -> the module that defines it; loaded on first use (see lpips_core._lazy).
_EXPORTS = {
    "CalibrationResult": ".calibration",
    "calibrate_on_live": ".calibration",
    "scene_folds": ".calibration",
}

__all__ = ["CalibrationResult", "calibrate_on_live", "scene_folds"]

if TYPE_CHECKING:  # what static tools see
    from .calibration import CalibrationResult, calibrate_on_live, scene_folds

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
