"""Reconstruction algorithms against the SystemModel protocol only."""
