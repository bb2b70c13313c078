"""Gradient influence of candidate training examples on a trusted seed set (G-DIG, TracIn/LESS baseline).

See docs/GDIG.md. Sign: positive influence = training on the candidate lowers the seed loss.
"""

from tamis.signals.influence.gradients import GradientConfig, TrackedModel, load_tracked_model, prepare_model
from tamis.signals.influence.kfac import DenseCurvature, Factors, fit_factors
from tamis.signals.influence.projection import CountSketch
from tamis.signals.influence.scores import influence_scores, per_batch, seed_batches, seed_features

__all__ = ["GradientConfig", "TrackedModel", "load_tracked_model", "prepare_model", "DenseCurvature", "Factors",
           "fit_factors", "CountSketch", "influence_scores", "per_batch", "seed_batches", "seed_features"]
