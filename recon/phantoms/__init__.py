"""Analytic phantoms rasterised with sub-voxel sampling."""
