"""SPECT physics: system model, collimator response, attenuation, scatter."""
