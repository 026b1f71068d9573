"""sharens: deep sharing ensembles (SE) and the suite that checks the paper's tables."""

from sharens.ensemble import FusedHeads, SharingEnsemble, TappedBackbone

__all__ = ["FusedHeads", "SharingEnsemble", "TappedBackbone"]
__version__ = "0.1.0"
