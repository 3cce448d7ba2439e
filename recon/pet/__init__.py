"""PET: projector operators, resolution model, attenuation, normalisation, randoms, scatter, the system
models, simulation, calibration and reconstruction.

Import the submodules directly (``recon.pet.projector``, ``recon.pet.reconstruct``, ...).
"""
