"""Many studies in one command: manifest, per-study work, Dask or sequential runner, summary table."""
from recon.batch.manifest import ManifestError, StudySpec, read_manifest
from recon.batch.plan import plan_batch
from recon.batch.runner import ClusterOptions, run_studies
from recon.batch.study import StudyResult, run_study

__all__ = ["ClusterOptions", "ManifestError", "StudyResult", "StudySpec", "plan_batch", "read_manifest",
           "run_studies", "run_study"]
