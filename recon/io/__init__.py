"""File formats: read, validate and convert to data objects; write results."""
