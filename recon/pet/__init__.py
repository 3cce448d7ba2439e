"""PET physics and system model: attenuation, normalisation, randoms, scatter, resolution, projector."""
