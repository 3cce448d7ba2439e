"""PET: projector operators, resolution model, attenuation factors (and, later, the system model).

Import the submodules directly (``recon.pet.projector``, ``recon.pet.resolution``,
``recon.pet.attenuation``); this package file stays empty so parallel work can add modules freely.
"""
