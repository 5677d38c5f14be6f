"""Studies that serve the course: experiments built from the library's layers, above training and evaluation.

calibration   LPIPS's linear layers fitted to 2AFC triplets derived from human DMOS ratings (LIVE),
              cross-validated with whole reference scenes held out
"""

from .calibration import CalibrationResult, calibrate_on_live, scene_folds

__all__ = ["CalibrationResult", "calibrate_on_live", "scene_folds"]
